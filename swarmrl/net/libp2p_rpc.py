"""Request/response for :class:`~swarmrl.net.libp2p_transport.Libp2pTransport`.

One stream per request on ``/swarmrl/req/...``: a framed request, a framed reply with a status
byte in front. Only peers whose hello matched are served.
"""

from __future__ import annotations

import logging
from collections import Counter

import trio
from libp2p.abc import IHost, INetStream
from libp2p.io.exceptions import MessageTooLarge
from libp2p.peer.id import ID

from swarmrl.net.errors import RequestTimeout, TransportClosed, TransportError
from swarmrl.net.libp2p_peering import _HELLO_TIMEOUT_S, _close_quietly
from swarmrl.net.libp2p_settings import NetworkSettings
from swarmrl.net.libp2p_wire import (
    decode_reply,
    encode_reply,
    error_reply,
    read_frame,
    request_protocol,
    write_frame,
)
from swarmrl.net.transport import Handler

# One logger for the whole transport, named as before the split (log filters and tests use it).
log = logging.getLogger("swarmrl.net.libp2p_transport")

_REPLY_OVERHEAD = 1  # the status byte in front of a reply


class RpcMixin:
    """Libp2pTransport's request/response streams: asking peers and serving them."""

    stats: Counter[str]
    refused: dict[str, str]
    _net: NetworkSettings
    _host: IHost
    _max_bytes: int
    _closed: bool
    _handlers: dict[str, Handler]
    _served: set[str]
    _calls: set[trio.CancelScope]
    _verified: set[str]

    def set_handler(self, protocol: str, handler: Handler | None) -> None:
        stream_protocol = request_protocol(protocol)
        if handler is None:
            self._handlers.pop(protocol, None)
            if stream_protocol in self._served:
                self._host.remove_stream_handler(stream_protocol)  # type: ignore[arg-type]
                self._served.discard(stream_protocol)
            return
        self._handlers[protocol] = handler
        if stream_protocol not in self._served and not self._closed:

            async def serve(stream: INetStream) -> None:
                await self._serve_request(protocol, stream)

            self._host.set_stream_handler(stream_protocol, serve)  # type: ignore[arg-type]
            self._served.add(stream_protocol)

    async def request(self, peer: str, protocol: str, data: bytes, timeout: float) -> bytes:
        """Open a stream to ``peer``'s ``protocol`` handler, send ``data``, wait for the reply."""
        self._check_open()
        self._check_size(data)
        try:
            peer_id = ID.from_base58(peer)
        except Exception as exc:
            raise TransportError(f"not a peer id: {peer!r}") from exc
        self.stats["requests_sent"] += 1
        scope = trio.CancelScope(deadline=trio.current_time() + timeout)
        self._calls.add(scope)
        frame = b""
        try:
            with scope:
                frame = await self._exchange(peer_id, request_protocol(protocol), data)
        finally:
            self._calls.discard(scope)
        if self._closed:
            raise TransportClosed(f"{self.peer_id}: transport closed")
        if scope.cancelled_caught:
            self.stats["request_timeouts"] += 1
            raise RequestTimeout(f"{protocol} to {peer}: no reply within {timeout} s")
        try:
            ok, payload = decode_reply(frame)
        except ValueError as exc:
            raise TransportError(f"{protocol} to {peer}: {exc}") from exc
        if not ok:
            detail = payload.decode("utf-8", "replace")
            raise TransportError(f"{protocol} on {peer}: remote handler failed ({detail})")
        return payload

    async def _exchange(self, peer_id: ID, stream_protocol: str, data: bytes) -> bytes:
        try:
            stream = await self._host.new_stream(peer_id, [stream_protocol])  # type: ignore[list-item]
        except Exception as exc:
            self.stats["request_failed"] += 1
            raise TransportError(f"cannot open {stream_protocol} to {peer_id}: {exc!r}") from exc
        try:
            await write_frame(stream, data)
            return await read_frame(stream, self._max_bytes + _REPLY_OVERHEAD)
        except MessageTooLarge as exc:
            self.stats["dropped_oversize"] += 1
            raise TransportError(f"{stream_protocol} reply from {peer_id} too large") from exc
        except Exception as exc:
            self.stats["request_failed"] += 1
            raise TransportError(f"{stream_protocol} to {peer_id} failed: {exc!r}") from exc
        finally:
            await _close_quietly(stream)

    async def _serve_request(self, protocol: str, stream: INetStream) -> None:
        peer = stream.muxed_conn.peer_id.to_base58()
        scope = trio.CancelScope()
        self._calls.add(scope)  # close() cancels handlers in flight too
        try:
            with scope, trio.move_on_after(self._net.request_timeout_s * 2):
                if not await self._hello_done(peer):
                    # Only members of this swarm are served: a stranger who skipped the hello
                    # (or was refused at it) costs us no read and no handler work.
                    self.stats["refused_unverified_request"] += 1
                    await write_frame(stream, error_reply("unverified: no matching hello"))
                    return
                data = await read_frame(stream, self._max_bytes)
                reply = await self._run_handler(protocol, peer, data)
                await write_frame(stream, reply)
        except MessageTooLarge:
            self.stats["dropped_oversize"] += 1
            log.info("%s: %s request from %s over the size limit", self.peer_id, protocol, peer)
        except Exception as exc:
            self.stats["stream_errors"] += 1
            log.debug("%s: serving %s to %s: %r", self.peer_id, protocol, peer, exc)
        finally:
            self._calls.discard(scope)
            await _close_quietly(stream)

    async def _hello_done(self, peer: str) -> bool:
        """Whether ``peer``'s hello matched ours, waiting for one under way: a member's first
        request can arrive on a fresh connection before both hellos are through."""
        peer_id = ID.from_base58(peer)
        with trio.move_on_after(_HELLO_TIMEOUT_S):
            while peer not in self._verified:
                gone = not self._host.get_network().connections.get(peer_id)
                if peer in self.refused or self._closed or gone:
                    return False
                await trio.sleep(0.05)
        return peer in self._verified

    async def _run_handler(self, protocol: str, peer: str, data: bytes) -> bytes:
        handler = self._handlers.get(protocol)
        if handler is None:
            self.stats["no_handler"] += 1
            return error_reply(f"no handler for {protocol}")
        self.stats["requests_served"] += 1
        try:
            reply = await handler(peer, data)
            if not isinstance(reply, (bytes, bytearray)):
                raise TypeError(f"handler returned {type(reply).__name__}, not bytes")
            if len(reply) > self._max_bytes:
                self.stats["dropped_oversize"] += 1
                raise ValueError(f"reply too large: {len(reply)} > {self._max_bytes}")
            return encode_reply(True, bytes(reply))
        except Exception as exc:
            # A failing handler answers with an error frame; it must not take the node down.
            self.stats["handler_errors"] += 1
            log.warning("%s: %s handler failed: %r", self.peer_id, protocol, exc)
            return error_reply("remote handler failed")
