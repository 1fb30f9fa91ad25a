"""Peering for :class:`~swarmrl.net.libp2p_transport.Libp2pTransport`: whom it dials and keeps.

Addresses and peers; bootstrap peers redialled with exponential backoff and peers learned from
peer cards dialled while there are fewer than ``target_peers``; flooders hung up on and refused
for a while; and the hello exchange (``/swarmrl/hello/1``) on every connection: a peer on another
swarm, genesis or protocol version is disconnected and remembered in ``refused``.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from contextlib import suppress
from typing import Any

import multiaddr
import trio
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr

from swarmrl.net.budget import GossipBudget
from swarmrl.net.libp2p_router import DeliveringPubsub
from swarmrl.net.libp2p_settings import NetworkSettings
from swarmrl.net.libp2p_wire import HELLO_MAX_BYTES, HELLO_PROTOCOL, Hello, read_frame, write_frame

# One logger for the whole transport, named as before the split (log filters and tests use it).
log = logging.getLogger("swarmrl.net.libp2p_transport")

_DIAL_TIMEOUT_S = 10.0
_HELLO_TIMEOUT_S = 10.0
_HELLO_ATTEMPTS = 3  # the connected event can fire before the muxer is ready for streams


class _Notifee(INotifee):
    """Forwards libp2p connection events to the transport (which must not block them)."""

    def __init__(self, transport: PeeringMixin) -> None:
        self._t = transport

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._t._on_connected(conn.muxed_conn.peer_id)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._t._on_disconnected(conn.muxed_conn.peer_id)

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None



class PeeringMixin:
    """Libp2pTransport's peers: dialling, keeping, banning, and the hello exchange."""

    stats: Counter[str]
    refused: dict[str, str]
    banned: dict[str, float]
    budget: GossipBudget
    pubsub: DeliveringPubsub
    _net: NetworkSettings
    _host: IHost
    _hello: Hello
    _closed: bool
    _nursery: trio.Nursery | None
    _verified: set[str]
    _greeting: set[str]
    _gone: dict[str, trio.Event]
    _dialing: set[str]
    _next_dial: dict[str, float]
    _dial_delay: dict[str, float]
    _bootstrap_ids: set[str]
    peer_id: str  # Libp2pTransport's property

    # --- addresses and peers ----------------------------------------------------------------

    def listen_addrs(self) -> list[str]:
        """Full multiaddrs (ending in /p2p/<peer id>) other peers can dial."""
        out: list[str] = []
        for addr in self._host.get_addrs():
            text = str(addr)
            if "/ip4/0.0.0.0/" in text or "/ip6/::/" in text:
                out.extend(_expand_wildcard(addr, self.peer_id))
            else:
                out.append(text)
        return sorted(set(out))

    def peers(self) -> list[str]:
        """Connected peers that passed the hello exchange, sorted."""
        if self._closed:
            return []
        connected = {p.to_base58() for p in self._host.get_connected_peers()}
        return sorted(connected & self._verified)

    def topic_peers(self, topic: str) -> list[str]:
        """Verified peers known to subscribe to ``topic`` (they will get what we publish)."""
        known = self.pubsub.peer_topics.get(topic, ())
        return sorted({p.to_base58() for p in known} & set(self.peers()))

    async def _ban(self, peer_id: ID) -> None:
        peer = peer_id.to_base58()
        self.banned[peer] = trio.current_time() + self._net.ban_s
        while len(self.banned) > 4096:  # ids are free: hold a bounded number
            self.banned.pop(next(iter(self.banned)))
        self._verified.discard(peer)
        self.stats["banned_flooding"] += 1
        log.info("peer %s kept sending past its budget: hung up, refused for %.0f s", peer,
                 self._net.ban_s)
        await self._disconnect(peer_id)

    def _is_banned(self, peer: str) -> bool:
        until = self.banned.get(peer)
        if until is None:
            return False
        if trio.current_time() >= until:
            del self.banned[peer]
            return False
        return True

    def vouch(self, peer_id: str) -> None:
        """A group of ``peer_id``'s entered this node's pool: its share grows (budget.py)."""
        try:
            self.budget.vouch(ID.from_base58(peer_id).to_bytes())
        except Exception:  # noqa: BLE001 - not a libp2p peer id (memory-network names)
            return

    def learn_peer(self, peer_id: str, addrs: list[str]) -> None:
        """Dial ``peer_id`` (from its peer card) if we have fewer than ``target_peers`` peers."""
        if self._closed or self._nursery is None or peer_id == self.peer_id:
            return
        if peer_id in self.refused or peer_id in self._dialing or self._is_connected(peer_id):
            return
        if self._is_banned(peer_id):
            return
        if len(self.peers()) >= self._net.target_peers:
            return
        if trio.current_time() < self._next_dial.get(peer_id, -math.inf):
            return  # it failed recently: wait out its backoff
        infos = _peer_info(peer_id, addrs)
        if infos is None:
            self.stats["bad_peer_addr"] += 1
            return
        self._dialing.add(peer_id)
        self._nursery.start_soon(self._dial_learned, infos)

    def _is_connected(self, peer_id: str) -> bool:
        try:
            return bool(self._host.get_network().connections.get(ID.from_base58(peer_id)))
        except Exception:  # not a valid id
            return False

    async def _dial_learned(self, info: PeerInfo) -> None:
        peer = info.peer_id.to_base58()
        try:
            ok = await self._dial(info)
        finally:
            self._dialing.discard(peer)
        delay = self._dial_delay.get(peer, self._net.reconnect_min_s)
        if ok:
            self.stats["learned_peer_connected"] += 1
            self._dial_delay.pop(peer, None)
        else:
            self._next_dial[peer] = trio.current_time() + delay
            self._dial_delay[peer] = min(delay * 2, self._net.reconnect_max_s)

    async def _dial(self, info: PeerInfo) -> bool:
        with trio.move_on_after(_DIAL_TIMEOUT_S) as scope:
            try:
                await self._host.connect(info)
                return True
            except Exception as exc:
                self.stats["dial_failed"] += 1
                log.debug("%s: dialling %s failed: %r", self.peer_id, info.peer_id, exc)
                return False
        if scope.cancelled_caught:
            self.stats["dial_failed"] += 1
        return False

    async def _keep_bootstrap(self, addr: str) -> None:
        """Dial a bootstrap peer, and whenever it is lost, redial with exponential backoff."""
        try:
            info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
        except Exception as exc:
            self.stats["bad_peer_addr"] += 1
            log.warning("bootstrap address %s is not a /.../p2p/<id> multiaddr: %s", addr, exc)
            return
        peer = info.peer_id.to_base58()
        if peer == self.peer_id:
            return  # a bootstrap node listing itself
        self._bootstrap_ids.add(peer)
        delay = self._net.reconnect_min_s
        while not self._closed:
            if not self._is_connected(peer) and not await self._dial(info):
                await trio.sleep(_jitter(delay))
                delay = min(delay * 2, self._net.reconnect_max_s)
                continue
            gone = self._gone.setdefault(peer, trio.Event())
            if self._is_connected(peer):
                await gone.wait()
            if peer in self.refused:  # it will refuse again: back off, do not hammer it
                delay = min(delay * 2, self._net.reconnect_max_s)
            else:
                self.stats["bootstrap_lost"] += 1
                delay = self._net.reconnect_min_s
            await trio.sleep(_jitter(delay))

    # --- connection events and the hello exchange -------------------------------------------

    def _on_connected(self, peer_id: ID) -> None:
        peer = peer_id.to_base58()
        if self._closed or self._nursery is None:
            return
        if len(self._host.get_connected_peers()) > self._net.max_peers:
            self.stats["refused_max_peers"] += 1
            self._nursery.start_soon(self._disconnect, peer_id)
            return
        if self._is_banned(peer):
            self.stats["refused_banned"] += 1
            self._nursery.start_soon(self._disconnect, peer_id)
            return
        if peer not in self._verified and peer not in self._greeting:
            self._greeting.add(peer)
            self._nursery.start_soon(self._greet, peer_id)

    def _on_disconnected(self, peer_id: ID) -> None:
        peer = peer_id.to_base58()
        if self._host.get_network().connections.get(peer_id):
            return  # another connection to it is still open
        self._verified.discard(peer)
        gone = self._gone.pop(peer, None)
        if gone is not None:
            gone.set()

    async def _disconnect(self, peer_id: ID) -> None:
        try:
            await self._host.disconnect(peer_id)
        except Exception as exc:
            log.debug("%s: disconnecting %s: %r", self.peer_id, peer_id, exc)

    async def _greet(self, peer_id: ID) -> None:
        """Send our hello, read theirs, and keep or drop the connection."""
        peer = peer_id.to_base58()
        try:
            for attempt in range(_HELLO_ATTEMPTS):
                if peer in self._verified or not self._is_connected(peer):
                    return
                with trio.move_on_after(_HELLO_TIMEOUT_S):
                    try:
                        stream = await self._host.new_stream(peer_id, [HELLO_PROTOCOL])
                        try:
                            await write_frame(stream, self._hello.encode())
                            remote = await read_frame(stream, HELLO_MAX_BYTES)
                        finally:
                            await _close_quietly(stream)
                        await self._judge(peer_id, remote)
                        return
                    except Exception as exc:
                        log.debug("%s: hello to %s failed: %r", self.peer_id, peer, exc)
                await trio.sleep(0.2 * (attempt + 1))
            self.stats["hello_failed"] += 1
            log.info("peer %s did not answer the swarmrl hello: disconnecting", peer)
            await self._disconnect(peer_id)
        finally:
            self._greeting.discard(peer)

    async def _serve_hello(self, stream: INetStream) -> None:
        peer_id = stream.muxed_conn.peer_id
        try:
            with trio.move_on_after(_HELLO_TIMEOUT_S):
                remote = await read_frame(stream, HELLO_MAX_BYTES)
                await write_frame(stream, self._hello.encode())
                await self._judge(peer_id, remote)
        except Exception as exc:
            log.debug("%s: hello from %s failed: %r", self.peer_id, peer_id, exc)
        finally:
            await _close_quietly(stream)

    async def _judge(self, peer_id: ID, remote_bytes: bytes) -> None:
        peer = peer_id.to_base58()
        try:
            reason = self._hello.mismatch(Hello.decode(remote_bytes), peer)
        except ValueError as exc:
            reason = f"peer {peer} sent an unreadable hello ({exc}): refused"
        if reason is None:
            self._verified.add(peer)
            self.refused.pop(peer, None)
            return
        if self.refused.get(peer) != reason:  # warn once per peer and reason, not per redial
            log.warning("%s", reason)
        self.refused[peer] = reason
        self.stats["refused_handshake"] += 1
        self._verified.discard(peer)
        await self._disconnect(peer_id)


async def _no_dials() -> None:
    return None


def _no_auto_connector(host: Any) -> None:
    """This transport decides whom to dial: its bootstrap peers (redialled with backoff) and
    peers from valid cards up to ``target_peers``. py-libp2p's auto-connector would also dial
    anyone in the peerstore (peer records arrive with every pubsub RPC), aiming at 200
    connections: it redialled a peer that had left cleanly for 9+ minutes, an ERROR line each
    time, and ignored ``target_peers``. Its periodic task stays; its dialling is a no-op."""
    connector = getattr(host.get_network(), "auto_connector", None)
    if connector is not None:
        connector.maybe_connect = _no_dials


def _jitter(delay: float) -> float:
    # +-20 %: peers that lost the same bootstrap node do not all redial in the same instant.
    return delay * random.uniform(0.8, 1.2)


def _peer_info(peer_id: str, addrs: list[str]) -> PeerInfo | None:
    """A PeerInfo from peer-card addresses (with or without /p2p/<id>); None if none parse."""
    try:
        pid = ID.from_base58(peer_id)
    except Exception:
        return None
    parsed: list[multiaddr.Multiaddr] = []
    for text in addrs[:16]:
        try:
            addr = multiaddr.Multiaddr(text)
            if "/p2p/" in text:
                info = info_from_p2p_addr(addr)
                if info.peer_id != pid:
                    continue  # a card may not point us at somebody else
                parsed.extend(info.addrs)
            else:
                parsed.append(addr)
        except Exception:
            continue
    return PeerInfo(pid, parsed) if parsed else None


def _expand_wildcard(addr: multiaddr.Multiaddr, peer_id: str) -> list[str]:
    """A 0.0.0.0 listener is reachable on each interface address; list those instead."""
    from libp2p.utils.address_validation import get_available_interfaces

    try:
        port = int(addr.value_for_protocol("tcp"))
        return [f"{a}/p2p/{peer_id}" for a in get_available_interfaces(port)]
    except Exception:
        return [str(addr)]


async def _close_quietly(stream: Any) -> None:
    with suppress(Exception):  # the peer may have reset it already
        await stream.close()
