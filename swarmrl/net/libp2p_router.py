"""GossipSub and Pubsub as swarmrl needs them: every drop counted, nothing echoed to ourselves.

py-libp2p's stock classes drop messages in several places with at most a log line:

* the per-peer, per-topic rate limit (``max_messages_per_topic_per_second``, default 10/s),
  checked when a message is *forwarded*: past it the message is delivered locally but not
  relayed, and the forwarder's score is penalised;
* the subscription channel (32 messages) when the application does not drain it fast enough;
* the outbound per-peer RPC queue (32 RPCs) and RPCs above the 1 MiB limit.

The subclasses here keep the protocol logic and only hook those points: deliveries go straight
into swarmrl's bounded :class:`~swarmrl.net.transport.Subscription` queues (drop-oldest,
counted) instead of the 32-slot channel, the outbound queue bound is raised, and every drop
increments a counter in the transport's ``stats``.
"""

from __future__ import annotations

import logging
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from google.protobuf.message import DecodeError
from libp2p.abc import INetStream
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub

log = logging.getLogger("swarmrl.net.libp2p")

# v1.2 adds IDONTWANT (fewer duplicate copies of big messages); 1.1/1.0 for older peers.
# v1.3+ (extensions) is left out: younger code, and nothing here needs it.
GOSSIP_PROTOCOLS = [PROTOCOL_ID_V12, PROTOCOL_ID_V11, PROTOCOL_ID]

Budget = Callable[[ID, rpc_pb2.Message], str | None]
"""``budget(forwarder, message)``: None to go on, else the counted reason to drop it."""

Deliver = Callable[[str, str, bytes], None]
"""``deliver(topic, sender_peer_id, data)``: hand a validated message to the subscriptions."""


class CountingGossipSub(GossipSub):
    """GossipSub that counts what it refuses to forward and holds more outbound RPCs per peer."""

    def __init__(
        self,
        stats: Counter[str],
        *,
        outbound_queue_size: int,
        messages_per_topic_per_second: float,
        heartbeat_interval: int = 1,
    ) -> None:
        super().__init__(
            GOSSIP_PROTOCOLS,
            degree=6,  # GossipSub's standard mesh degrees
            degree_low=4,
            degree_high=12,
            heartbeat_interval=heartbeat_interval,
            # Deliberate: the limit counts every message a neighbour *forwards* on a topic, i.e.
            # the whole swarm's traffic on that link, not one peer's own publishing.
            max_messages_per_topic_per_second=messages_per_topic_per_second,
            max_pending_messages_per_peer=outbound_queue_size,
        )
        self._stats = stats
        self._outbound_queue_size = outbound_queue_size

    def _check_spam_protection(self, peer_id: ID, msg: rpc_pb2.Message) -> bool:
        # Our own publishes are already paced by the transport; never rate-limit them here
        # (stock py-libp2p would silently stop relaying our 11th message in a second).
        if self.pubsub is not None and peer_id == self.pubsub.my_id:
            return True
        allowed = super()._check_spam_protection(peer_id, msg)
        if not allowed:
            self._stats["dropped_rate_limited"] += 1
        return allowed

    def send_rpc(self, peer_id: ID, rpc: rpc_pb2.RPC, priority: bool = False) -> None:
        self._raise_queue_bound(peer_id)
        super().send_rpc(peer_id, rpc, priority)

    def _raise_queue_bound(self, peer_id: ID) -> None:
        # Pubsub creates each peer's RpcQueue with the module default (32); a burst of rollout
        # groups to a slow peer would overflow it. The bound lives on the inner PriorityQueue.
        if self.pubsub is None:
            return
        queue = self.pubsub.peer_queues.get(peer_id)
        inner: Any = getattr(queue, "_queue", None)
        if inner is not None and getattr(inner, "max_size", 0) < self._outbound_queue_size:
            inner.max_size = self._outbound_queue_size

    def _handle_dropped_rpc(self, peer_id: ID, rpc: rpc_pb2.RPC, reason: str) -> None:
        if rpc.publish:  # control messages are retried by gossipsub itself; data is lost
            self._stats[f"dropped_outbound_{reason}"] += len(rpc.publish)
        super()._handle_dropped_rpc(peer_id, rpc, reason)


class DeliveringPubsub(Pubsub):
    """Pubsub that hands messages to swarmrl's subscriptions instead of a 32-slot channel.

    ``notify_subscriptions`` runs synchronously inside ``push_msg`` after validation, so the
    message goes into our bounded queues (drop-oldest, counted) with no task in between that
    could fall behind. Our own publishes come back through here too: they are counted and
    dropped (the Transport contract: publish never delivers to self).
    """

    def __init__(
        self,
        host: Any,
        router: GossipSub,
        stats: Counter[str],
        deliver: Deliver,
        budget: Budget | None = None,
    ):
        install_record_caches()
        super().__init__(host, router)
        self._stats = stats
        self._deliver = deliver
        self._budget = budget
        self._my_id_bytes = host.get_id().to_bytes()
        self._write_locks: weakref.WeakKeyDictionary[INetStream, trio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    async def push_msg(self, msg_forwarder: ID, msg: rpc_pb2.Message) -> None:
        # The budgets come first: before the seen-cache, the libp2p signature check and our
        # validator, so a flood from one connection costs a lookup per message, not a verify.
        if self._budget is not None and msg_forwarder != self.my_id:
            reason = self._budget(msg_forwarder, msg)
            if reason is not None:
                self._stats[reason] += 1
                return
        await super().push_msg(msg_forwarder, msg)

    async def write_msg(self, stream: INetStream, rpc_msg: rpc_pb2.RPC) -> bool:
        # One frame at a time per stream. Several tasks write to a peer's pubsub stream (the
        # send queue, GossipSub's recent messages for a new peer, its pending flushes), and a
        # frame larger than the yamux window is written in parts, waiting for window updates
        # in between: unserialised, another task's frame landed between the parts, and the
        # peer read a frame whose inner length did not match (a relay of big messages killed
        # every newcomer that way). py-libp2p 0.8.1 has no such lock.
        lock = self._write_locks.get(stream)
        if lock is None:
            lock = self._write_locks[stream] = trio.Lock()
        async with lock:
            return await super().write_msg(stream, rpc_msg)

    async def stream_handler(self, stream: INetStream) -> None:
        # The stock reader turns a stream's read and framing errors into "reset and forget the
        # peer", but not a frame whose bytes are no protobuf RPC: protobuf's DecodeError went up
        # through the host and ended the node. Handled here the same way as the others.
        peer_id = stream.muxed_conn.peer_id
        try:
            await super().stream_handler(stream)
        except DecodeError as exc:
            self._stats["bad_stream"] += 1
            log.debug("pubsub: undecodable RPC from %s (%s): stream reset", peer_id, exc)
            await reset_quietly(stream)
            self._handle_dead_peer(peer_id)

    def notify_subscriptions(self, publish_message: rpc_pb2.Message) -> None:
        if publish_message.from_id == self._my_id_bytes:
            self._stats["dropped_own"] += 1
            return
        sender = ID(publish_message.from_id).to_base58()
        data = bytes(publish_message.data)
        self._stats["received"] += 1
        for topic in publish_message.topicIDs:
            if topic in self.topic_ids:
                self._deliver(topic, sender, data)


StreamHandler = Callable[[INetStream], Awaitable[None]]


def guard_streams(host: Any, stats: Counter[str]) -> None:
    """Make every inbound stream's handler unable to end the node: whatever a handler raises
    (bad bytes from a peer, a bug of ours or py-libp2p's), that one stream is reset, counted in
    ``stats["bad_stream"]`` and logged at debug, and the host goes on.

    py-libp2p runs each inbound stream's handler (``BasicHost._swarm_stream_handler``:
    protocol negotiation, then the handler) in the connection's task nursery, where an
    exception cancels the connection's tasks and, through the swarm's service manager, the
    host. The swarm calls ``common_stream_handler``; we wrap the host's own one there.
    """
    network = host.get_network()
    inner: StreamHandler = network.common_stream_handler

    async def guarded(stream: INetStream) -> None:
        try:
            await inner(stream)
        except Exception as exc:  # noqa: BLE001 - one stream's failure, never the node's
            stats["bad_stream"] += 1
            log.debug("stream %s from %s failed: %r; reset", stream.get_protocol(),
                      stream.muxed_conn.peer_id, exc)
            await reset_quietly(stream)

    network.set_stream_handler(guarded)


async def reset_quietly(stream: INetStream) -> None:
    try:
        await stream.reset()
    except Exception as exc:  # noqa: BLE001 - already closed or its connection is gone
        log.debug("stream reset failed: %r", exc)


# --- signed peer records: same behaviour, without redoing identical work per RPC --------------
#
# py-libp2p attaches the host's signed peer record to *every* pubsub RPC (each publish, each
# IDONTWANT), rebuilding it from host.get_addrs() each time, and every receiver verifies its
# ed25519 signature and rewrites its peerstore entry each time. With rollout-sized messages
# that was ~20 % of a node's CPU in benchmarks/gossip.py. The wrappers below keep the wire
# bytes and the checks, but reuse a record for a few seconds on the sending side and skip
# re-verifying a byte-identical record from the same peer (re-verified once a minute, so its
# peerstore TTL is still refreshed). Installed once per process; idempotent.

_RECORD_REUSE_S = 5.0
_RECORD_RECHECK_S = 60.0
_RECORD_CACHE_MAX = 4096
_installed = False


def install_record_caches() -> None:
    global _installed
    if _installed:
        return
    import time
    import weakref

    import libp2p.pubsub.gossipsub as gossipsub_module
    import libp2p.pubsub.pubsub as pubsub_module

    build = gossipsub_module.env_to_send_in_RPC
    consume = pubsub_module.maybe_consume_signed_record
    sent: weakref.WeakKeyDictionary[Any, tuple[float, tuple[bytes, bool]]] = (
        weakref.WeakKeyDictionary()
    )
    seen: dict[tuple[bytes, bytes], float] = {}

    def cached_build(host: Any) -> tuple[bytes, bool]:
        now = time.monotonic()
        hit = sent.get(host)
        if hit is not None and now - hit[0] < _RECORD_REUSE_S:
            return hit[1]
        value = build(host)
        sent[host] = (now, value)
        return value

    def cached_consume(msg: Any, host: Any, peer_id: ID) -> bool:
        if not msg.HasField("senderRecord"):
            return True
        key = (peer_id.to_bytes(), msg.senderRecord)
        now = time.monotonic()
        if now - seen.get(key, -_RECORD_RECHECK_S) < _RECORD_RECHECK_S:
            return True
        ok = consume(msg, host, peer_id)
        if ok:
            if len(seen) >= _RECORD_CACHE_MAX:
                seen.clear()
            seen[key] = now
        return ok

    gossipsub_module.env_to_send_in_RPC = cached_build  # type: ignore[attr-defined]
    pubsub_module.maybe_consume_signed_record = cached_consume  # type: ignore[attr-defined]
    _installed = True
