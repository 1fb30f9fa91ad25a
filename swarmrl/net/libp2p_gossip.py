"""Gossip for :class:`~swarmrl.net.libp2p_transport.Libp2pTransport`: topics and messages.

Publishing (paced per topic: a token bucket and a bounded outbox) and subscribing under
``/swarmrl/<swarm-id>/``, and the inbound path: the per-connection budget and the node's
validator run inside GossipSub before a message is delivered or forwarded.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable

import trio
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2

from swarmrl.net.budget import GossipBudget
from swarmrl.net.libp2p_router import DeliveringPubsub
from swarmrl.net.libp2p_settings import NetworkSettings
from swarmrl.net.transport import Subscription, check_payload

# One logger for the whole transport, named as before the split (log filters and tests use it).
log = logging.getLogger("swarmrl.net.libp2p_transport")


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



class GossipMixin:
    """Libp2pTransport's GossipSub side: publish, subscribe, and what comes in."""

    stats: Counter[str]
    refused: dict[str, str]
    budget: GossipBudget
    pubsub: DeliveringPubsub
    _net: NetworkSettings
    _prefix: str
    _validator: Callable[[str, str, bytes], bool] | None
    _max_bytes: int
    _closed: bool
    _nursery: trio.Nursery | None
    _subs: dict[str, list[Subscription]]
    _topic_locks: dict[str, trio.Lock]
    _outboxes: dict[str, _Outbox]
    _verified: set[str]

    def _within_budget(self, forwarder: ID, msg: rpc_pb2.Message) -> str | None:
        conn = forwarder.to_bytes()
        reason = self.budget.check(conn, msg.from_id, len(msg.data))
        if reason is not None and self.budget.over_limit(conn) and self._nursery is not None:
            self.budget.forget(conn)
            self._nursery.start_soon(self._ban, forwarder)
        return reason

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
