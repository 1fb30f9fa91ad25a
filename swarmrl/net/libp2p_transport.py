"""The real network: a py-libp2p host with GossipSub topics and request/response streams.

    async with Libp2pTransport.open(identity, net_cfg, swarm_id="demo", handshake=h) as t:
        sub = t.subscribe("/swarmrl/demo/rollouts/1")
        await t.publish("/swarmrl/demo/rollouts/1", data)

The host's key is the node's ed25519 key, so its libp2p peer id *is* the node's peer id and
gossip senders can be checked against envelope signatures.

What this module adds on top of py-libp2p (see docs/networking.md):

* topics live under ``/swarmrl/<swarm-id>/``; publishing or subscribing elsewhere is refused;
* a hello exchange (``/swarmrl/hello/1``) on every connection: a peer on another swarm, genesis
  or protocol version is disconnected and remembered in :attr:`Libp2pTransport.refused`;
* the node's validator (decode + signature) runs inside GossipSub before a message is
  forwarded, so invalid data stops at the first honest hop;
* own publishes paced per topic (token bucket, bounded outbox), the gossipsub rate limit and
  queue bounds set deliberately, payloads above ``max_message_bytes`` refused;
* bootstrap peers redialled with exponential backoff, and peers learned from peer cards
  (:meth:`learn_peer`) dialled while we have fewer than ``target_peers``;
* every drop counted in :attr:`stats` with its reason.
"""

from __future__ import annotations

import logging
import math
import random
import sys
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.io.exceptions import MessageTooLarge
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from libp2p.pubsub.pb import rpc_pb2
from libp2p.tools.anyio_service import background_trio_service

from swarmrl.net.budget import GossipBudget
from swarmrl.net.errors import RequestTimeout, TransportClosed, TransportError
from swarmrl.net.libp2p_nat import start_nat_services
from swarmrl.net.libp2p_router import CountingGossipSub, DeliveringPubsub, guard_streams
from swarmrl.net.libp2p_settings import NetworkSettings
from swarmrl.net.libp2p_wire import (
    HELLO_MAX_BYTES,
    HELLO_PROTOCOL,
    Hello,
    decode_reply,
    encode_reply,
    error_reply,
    read_frame,
    request_protocol,
    write_frame,
)
from swarmrl.net.transport import (
    Handler,
    Subscription,
    Transport,
    check_payload,
    topic_namespace,
)
from swarmrl.protocol.identity import Identity

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

log = logging.getLogger(__name__)

Validator = Callable[[str, str, bytes], bool]
"""``validator(topic, sender_peer_id, data) -> bool``: False = invalid, neither delivered nor
forwarded. A message that names several topics must pass for each."""

_DIAL_TIMEOUT_S = 10.0
_HELLO_TIMEOUT_S = 10.0
_HELLO_ATTEMPTS = 3  # the connected event can fire before the muxer is ready for streams
_OUTBOUND_QUEUE = 1024  # gossipsub RPCs held per peer (py-libp2p default: 32)
_REPLY_OVERHEAD = 1  # the status byte in front of a reply


class _Outbox:
    """One topic's pending publishes and its pacing (a token bucket refilled at ``rate``/s)."""

    def __init__(self, rate: float, maxsize: int) -> None:
        self.rate = rate
        self.burst = max(1.0, rate)  # at most one second's worth at once
        self.tokens = self.burst
        self.stamp = trio.current_time()
        self.queue: deque[bytes] = deque()
        self.maxsize = maxsize
        self.wakeup = trio.Event()

    def wait_s(self) -> float:
        """Seconds until a token is available (0 = now); refills first."""
        now = trio.current_time()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate


class _Notifee(INotifee):
    """Forwards libp2p connection events to the transport (which must not block them)."""

    def __init__(self, transport: Libp2pTransport) -> None:
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


class Libp2pTransport(Transport):
    """One node on the libp2p network. Create with :meth:`open` (an async context manager)."""

    def __init__(
        self,
        identity: Identity,
        net: NetworkSettings,
        host: IHost,
        *,
        swarm_id: str,
        handshake: bytes,
        validator: Validator | None,
        explain_mismatch: Callable[[bytes, bytes], str] | None = None,
    ) -> None:
        self.stats: Counter[str] = Counter()
        self.refused: dict[str, str] = {}
        """Peers refused at the hello exchange, with the reason (a sentence for the user)."""
        self._identity = identity
        self._net = net
        self._host = host
        self._swarm_id = swarm_id
        self._prefix = topic_namespace(swarm_id)
        self._hello = Hello(swarm_id, handshake, explain_mismatch)
        self._validator = validator
        self._max_bytes = net.max_message_bytes
        self._closed = False
        self._nursery: trio.Nursery | None = None
        self._subs: dict[str, list[Subscription]] = {}
        self._topic_locks: dict[str, trio.Lock] = {}
        self._outboxes: dict[str, _Outbox] = {}
        self._handlers: dict[str, Handler] = {}
        self._served: set[str] = set()  # stream protocols registered with the host
        self._calls: set[trio.CancelScope] = set()
        self._verified: set[str] = set()  # connected peers whose hello matched ours
        self._greeting: set[str] = set()
        self._gone: dict[str, trio.Event] = {}  # set when a peer's last connection closes
        self._dialing: set[str] = set()
        self._next_dial: dict[str, float] = {}  # learned peer -> earliest redial time
        self._dial_delay: dict[str, float] = {}
        self._bootstrap_ids: set[str] = set()
        self._nat_status: dict[str, str] = {}
        self.pubsub: DeliveringPubsub = DeliveringPubsub(
            host,
            CountingGossipSub(
                self.stats,
                outbound_queue_size=_OUTBOUND_QUEUE,
                messages_per_topic_per_second=net.messages_per_topic_per_second,
            ),
            self.stats,
            self._deliver,
            self._within_budget,
        )
        self.budget = GossipBudget(
            per_connection=net.messages_per_connection_per_s,
            connection_burst=net.connection_burst,
            newcomers=net.newcomer_messages_per_s,
            newcomer_burst=net.newcomer_burst,
            trust_after=net.trust_after,
            trust_after_s=net.trust_after_s,
            ban_after=net.ban_after,
            ban_forgive=net.ban_forgive_per_s,
        )
        self.banned: dict[str, float] = {}
        """Peers hung up on for flooding -> when (trio clock) they may connect again."""

    # --- lifecycle --------------------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        identity: Identity,
        net: NetworkSettings,
        *,
        swarm_id: str,
        handshake: bytes = b"",
        validator: Callable[[str, bytes], bool] | None = None,
        explain_mismatch: Callable[[bytes, bytes], str] | None = None,
    ) -> AsyncIterator[Libp2pTransport]:
        """Start a host listening on ``net.listen``, join the swarm, and close it all on exit.

        ``explain_mismatch(ours, theirs)`` words a refused peer's handshake for the log."""
        listen = [multiaddr.Multiaddr(a) for a in net.listen]
        host = new_host(
            key_pair=identity.to_libp2p_keypair(),
            listen_addrs=listen,
            announce_addrs=[multiaddr.Multiaddr(a) for a in net.announce] or None,
        )
        self = cls(
            identity, net, host, swarm_id=swarm_id, handshake=handshake, validator=validator,
            explain_mismatch=explain_mismatch,
        )
        guard_streams(host, self.stats)
        _no_auto_connector(host)
        body_ok = False
        try:
            async with AsyncExitStack() as stack:
                await stack.enter_async_context(host.run(listen))
                await stack.enter_async_context(background_trio_service(self.pubsub))
                await stack.enter_async_context(background_trio_service(self.pubsub.router))
                await self.pubsub.wait_until_ready()
                outer = await stack.enter_async_context(trio.open_nursery())
                # Our tasks live in a nursery owned by a background task, so close() can cancel
                # them without cancelling the caller's own code inside this block.
                self._nursery = await outer.start(_task_nursery)
                self._nat_status = await start_nat_services(host, net, stack)
                self._start()
                try:
                    yield self
                    body_ok = True
                finally:
                    await self.close()
        except BaseExceptionGroup as group:
            leaves = _leaves(group)
            if body_ok and all(isinstance(e, Exception) for e in leaves):
                # py-libp2p can trip over its own shutdown (a stream handler scheduling work
                # on a service nursery that is closing); the node is leaving anyway.
                log.warning("%s: error while stopping libp2p: %r", self.peer_id, leaves)
                return
            # host.run and the services wrap the body's exception in nested groups; hand a
            # lone exception back as itself so `async with open(...)` is transparent to errors.
            if len(leaves) == 1:
                raise leaves[0] from None
            raise

    def _start(self) -> None:
        assert self._nursery is not None
        self._host.set_stream_handler(HELLO_PROTOCOL, self._serve_hello)
        self._host.get_network().register_notifee(_Notifee(self))
        for addr in self._net.bootstrap:
            self._nursery.start_soon(self._keep_bootstrap, addr)
        log.info("libp2p node %s listening on %s", self.peer_id, ", ".join(self.listen_addrs()))
        if any(state != "off" for state in self._nat_status.values()):
            log.info("NAT options: %s", self._nat_status)

    @property
    def peer_id(self) -> str:
        return self._identity.peer_id

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def nat_status(self) -> dict[str, str]:
        """What each NAT option does on this node ("on", "off", or why it is unavailable)."""
        return dict(self._nat_status)

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosed(f"{self.peer_id}: transport is closed")

    async def close(self) -> None:
        """End subscriptions, fail pending requests, stop our tasks. The host stops when the
        :meth:`open` block exits."""
        if self._closed:
            return
        self._closed = True
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.close()
        for scope in list(self._calls):
            scope.cancel()
        for protocol in list(self._served):
            self._host.remove_stream_handler(protocol)  # type: ignore[arg-type]
        self._served.clear()
        for outbox in self._outboxes.values():
            self.stats["dropped_closed"] += len(outbox.queue)
            outbox.queue.clear()
            outbox.wakeup.set()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        # Leave the network: peers see us go at once, and no gossip stream is still being read
        # while the pubsub service stops (py-libp2p does not expect that).
        with trio.move_on_after(_DIAL_TIMEOUT_S):
            for peer_id in list(self._host.get_connected_peers()):
                await self._disconnect(peer_id)
        await trio.lowlevel.checkpoint()

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

    def _within_budget(self, forwarder: ID, msg: rpc_pb2.Message) -> str | None:
        conn = forwarder.to_bytes()
        reason = self.budget.check(conn, msg.from_id, len(msg.data))
        if reason is not None and self.budget.over_limit(conn) and self._nursery is not None:
            self.budget.forget(conn)
            self._nursery.start_soon(self._ban, forwarder)
        return reason

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

    # --- gossip -----------------------------------------------------------------------------

    def _check_topic(self, topic: str) -> None:
        if not topic.startswith(self._prefix):
            raise ValueError(f"topic {topic!r} is outside this swarm's namespace {self._prefix}")

    def _check_size(self, data: bytes) -> None:
        check_payload(data, self._max_bytes, self.stats)

    async def publish(self, topic: str, data: bytes) -> None:
        """Queue ``data`` for ``topic``; a per-topic task sends at ``publish_per_second``.

        Raises TransportError (counted ``dropped_oversize``) above ``max_message_bytes``. When
        the topic's outbox is full the oldest queued publish is dropped and counted.
        """
        self._check_open()
        self._check_topic(topic)
        self._check_size(data)
        outbox = self._outboxes.get(topic)
        if outbox is None:
            outbox = _Outbox(self._net.publish_per_second, self._net.queue_size)
            self._outboxes[topic] = outbox
            assert self._nursery is not None
            self._nursery.start_soon(self._send_loop, topic, outbox)
        if len(outbox.queue) >= outbox.maxsize:
            outbox.queue.popleft()
            self.stats["dropped_publish_queue_full"] += 1
        outbox.queue.append(bytes(data))
        outbox.wakeup.set()
        await trio.lowlevel.checkpoint()

    async def _send_loop(self, topic: str, outbox: _Outbox) -> None:
        while not self._closed:
            if not outbox.queue:
                outbox.wakeup = trio.Event()
                await outbox.wakeup.wait()
                continue
            wait = outbox.wait_s()
            if wait > 0:
                await trio.sleep(wait)
                continue
            outbox.tokens -= 1.0
            data = outbox.queue.popleft()
            try:
                await self.pubsub.publish(topic, data)
                self.stats["published"] += 1
            except Exception as exc:
                self.stats["publish_failed"] += 1
                log.warning("%s: publishing on %s failed: %r", self.peer_id, topic, exc)

    def subscribe(self, topic: str, *, queue_size: int | None = None) -> Subscription:
        """Receive ``topic`` into a queue of ``queue_size`` (default: ``network.queue_size``).

        Joining the GossipSub topic (network I/O) happens in a task.
        """
        self._check_open()
        self._check_topic(topic)
        size = self._net.queue_size if queue_size is None else queue_size
        sub = Subscription(topic, size, self.stats, on_close=self._unsubscribed)
        first = topic not in self._subs
        self._subs.setdefault(topic, []).append(sub)
        if first:
            self.pubsub.set_topic_validator(topic, self._validate, False)
            assert self._nursery is not None
            self._nursery.start_soon(self._sync_topic, topic)
        return sub

    def _unsubscribed(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.topic, [])
        if sub in subs:
            subs.remove(sub)
        if not subs and self._subs.pop(sub.topic, None) is not None and not self._closed:
            assert self._nursery is not None
            self._nursery.start_soon(self._sync_topic, sub.topic)

    async def _sync_topic(self, topic: str) -> None:
        """Make GossipSub's membership of ``topic`` match whether we have subscriptions."""
        lock = self._topic_locks.setdefault(topic, trio.Lock())
        async with lock:
            want, have = topic in self._subs, topic in self.pubsub.topic_ids
            try:
                if want and not have:
                    await self.pubsub.subscribe(topic)
                elif have and not want:
                    self.pubsub.remove_topic_validator(topic)
                    await self.pubsub.unsubscribe(topic)
            except Exception as exc:
                self.stats["subscribe_failed"] += 1
                log.warning("%s: (un)subscribing %s failed: %r", self.peer_id, topic, exc)

    def _deliver(self, topic: str, sender: str, data: bytes) -> None:
        for sub in self._subs.get(topic, ()):
            sub.offer(sender, data)

    def _validate(self, forwarder: ID, msg: rpc_pb2.Message) -> bool:
        """GossipSub's topic validator: runs before a message is delivered or forwarded."""
        if msg.from_id == self.pubsub._my_id_bytes:
            return True  # our own publish: already checked at publish()
        peer = forwarder.to_base58()
        if peer in self.refused or peer not in self._verified:
            self.stats["dropped_unverified_peer"] += 1
            return False
        if len(msg.data) > self._max_bytes:
            self.stats["dropped_oversize"] += 1
            return False
        if self._validator is None:
            return True
        try:
            sender, data = ID(msg.from_id).to_base58(), bytes(msg.data)
            ok = bool(msg.topicIDs) and all(
                self._validator(t, sender, data) for t in msg.topicIDs
            )
        except Exception as exc:  # a validator bug must not kill the pubsub read loop
            log.warning("%s: validator raised %r; message dropped", self.peer_id, exc)
            ok = False
        if not ok:
            self.stats["dropped_invalid"] += 1
        return ok

    # --- request / response -----------------------------------------------------------------

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

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"Libp2pTransport({self.peer_id}, {state})"


async def _task_nursery(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    async with trio.open_nursery() as nursery:
        task_status.started(nursery)
        await trio.sleep_forever()


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


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
