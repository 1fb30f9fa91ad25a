"""One node's endpoint on the in-memory network (:mod:`swarmrl.net.memory`): its
subscriptions, its request handlers and its pending requests; the network carries the bytes."""

from __future__ import annotations

import logging
import random
from collections import Counter
from typing import Any, Protocol

import trio

from swarmrl.net.errors import RequestTimeout, TransportClosed, TransportError
from swarmrl.net.transport import DEFAULT_QUEUE_SIZE, Handler, Subscription, Transport

# One logger for the in-memory network, named as before the split.
log = logging.getLogger("swarmrl.net.memory")


class _Router(Protocol):
    """What an endpoint asks of its :class:`~swarmrl.net.memory.MemoryNetwork` (which imports
    this module, so it is described here rather than imported)."""

    def endpoints(self) -> list[str]: ...
    def reachable(self, a: str, b: str) -> bool: ...
    def _check_size(self, data: bytes) -> None: ...
    def _joined_topic(self, endpoint: MemoryTransport, topic: str) -> None: ...
    def _left_topic(self, endpoint: MemoryTransport, topic: str) -> None: ...
    def _left(self, endpoint: MemoryTransport) -> None: ...
    def _publish(self, src: MemoryTransport, topic: str, data: bytes) -> None: ...
    def _request(
        self, src: MemoryTransport, peer: str, protocol: str, data: bytes, call: _Call
    ) -> None: ...
    def _reply(
        self, src: MemoryTransport, dst: MemoryTransport, call: _Call, reply: Any, size: int
    ) -> None: ...


class _Call:
    """A pending request: the requester waits on ``done``; the reply or error lands here."""

    __slots__ = ("done", "reply", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.reply: bytes | None = None
        self.error: TransportError | None = None

    def finish(self, reply: bytes | None, error: TransportError | None = None) -> None:
        if not self.done.is_set():
            self.reply, self.error = reply, error
            self.done.set()


class MemoryTransport(Transport):
    """One node's endpoint on a :class:`MemoryNetwork`. Create with ``net.endpoint(peer_id)``."""

    def __init__(self, network: _Router, peer_id: str, rng: random.Random) -> None:
        self._net = network
        self._peer_id = peer_id
        self._rng = rng
        self._sent = 0
        self._closed = False
        self._subs: dict[str, list[Subscription]] = {}
        self._handlers: dict[str, Handler] = {}
        self._calls: set[_Call] = set()
        self._serving: set[trio.CancelScope] = set()
        self.stats: Counter[str] = Counter()

    @property
    def peer_id(self) -> str:
        return self._peer_id

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosed(f"{self._peer_id}: transport is closed")

    # --- gossip -----------------------------------------------------------------------------

    async def publish(self, topic: str, data: bytes) -> None:
        self._check_open()
        self._net._check_size(data)
        data = bytes(data)
        self.stats["published"] += 1
        self._net._publish(self, topic, data)
        await trio.lowlevel.checkpoint()

    def subscribe(self, topic: str, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> Subscription:
        self._check_open()
        sub = Subscription(topic, queue_size, self.stats, on_close=self._unsubscribed)
        self._subs.setdefault(topic, []).append(sub)
        self._net._joined_topic(self, topic)
        return sub

    def _unsubscribed(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.topic, [])
        if sub in subs:
            subs.remove(sub)
        if not subs:
            self._subs.pop(sub.topic, None)
            self._net._left_topic(self, sub.topic)

    def _on_message(self, sender: str, topic: str, data: bytes) -> None:
        subs = self._subs.get(topic)
        if not subs:
            return
        self.stats["received"] += 1
        for sub in subs:
            sub.offer(sender, data)

    # --- request / response -----------------------------------------------------------------

    def set_handler(self, protocol: str, handler: Handler | None) -> None:
        if handler is None:
            self._handlers.pop(protocol, None)
        else:
            self._handlers[protocol] = handler

    async def request(self, peer: str, protocol: str, data: bytes, timeout: float) -> bytes:
        self._check_open()
        self._net._check_size(data)
        call = _Call()
        self._calls.add(call)
        self.stats["requests_sent"] += 1
        try:
            self._net._request(self, peer, protocol, bytes(data), call)
            with trio.move_on_after(timeout):
                await call.done.wait()
        finally:
            self._calls.discard(call)
        if not call.done.is_set():
            self.stats["request_timeouts"] += 1
            raise RequestTimeout(f"{protocol} to {peer}: no reply within {timeout} s")
        if call.error is not None:
            raise call.error
        assert call.reply is not None
        return call.reply

    def _on_request(
        self, nursery: trio.Nursery, src: MemoryTransport, protocol: str, data: bytes, call: _Call
    ) -> None:
        handler = self._handlers.get(protocol)
        if handler is None:
            self.stats["no_handler"] += 1  # like an unsupported protocol: the caller times out
            return
        nursery.start_soon(self._serve, handler, src, protocol, data, call)

    async def _serve(
        self, handler: Handler, src: MemoryTransport, protocol: str, data: bytes, call: _Call
    ) -> None:
        scope = trio.CancelScope()
        self._serving.add(scope)
        try:
            with scope:
                reply, error = await self._run_handler(handler, src.peer_id, protocol, data)
                size = len(reply) if reply is not None else 0
                self._net._reply(self, src, call, (reply, error), size)
        finally:
            self._serving.discard(scope)

    async def _run_handler(
        self, handler: Handler, sender: str, protocol: str, data: bytes
    ) -> tuple[bytes | None, TransportError | None]:
        self.stats["requests_served"] += 1
        try:
            reply = await handler(sender, data)
            if not isinstance(reply, (bytes, bytearray)):
                raise TypeError(f"handler returned {type(reply).__name__}, not bytes")
            self._net._check_size(reply)
            return bytes(reply), None
        except Exception as exc:
            # A failing handler resets the stream (as in libp2p); it must not crash the network.
            self.stats["handler_errors"] += 1
            log.warning("%s: %s handler failed: %r", self._peer_id, protocol, exc)
            return None, TransportError(f"{protocol} on {self._peer_id}: remote handler failed")

    # --- membership -------------------------------------------------------------------------

    def peers(self) -> list[str]:
        if self._closed:
            return []
        return [
            p for p in self._net.endpoints()
            if p != self._peer_id and self._net.reachable(self._peer_id, p)
        ]

    async def close(self) -> None:
        self.close_nowait()
        await trio.lowlevel.checkpoint()

    def close_nowait(self) -> None:
        """:meth:`close` without a checkpoint, for synchronous callers (simulated churn)."""
        if self._closed:
            return
        self._closed = True
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.close()
        for scope in list(self._serving):
            scope.cancel()
        for call in list(self._calls):
            call.finish(None, TransportClosed(f"{self._peer_id}: transport closed"))
        self._net._left(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"MemoryTransport({self._peer_id}, {state})"
