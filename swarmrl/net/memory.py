"""An in-memory network: many nodes in one trio process, with latency, loss, partitions, churn.

    async with MemoryNetwork(seed=1, default_link=LinkSpec(latency_s=0.05)) as net:
        a, b = net.endpoint("A"), net.endpoint("B")
        sub = await b.subscribe("rollouts")
        await a.publish("rollouts", b"hi")
        sender, data = await sub.receive()        # 50 ms later (virtual or real)

Delivery is driven by one scheduler task and a heap keyed by delivery time, so the cost is a
heap operation per delivery instead of a task per message; with
``trio.testing.MockClock(autojump_threshold=0)`` a thousand nodes run in virtual time.

Gossip here is a direct broadcast to every reachable subscriber (each over its own link), not a
relay mesh: it models what gossipsub achieves, not how.

Determinism: every random draw (loss, jitter) comes from the *sending* endpoint's own RNG, seeded
from ``(seed, peer_id, incarnation)``, and simultaneous deliveries are ordered by
``(time, sender, sender's send counter, receiver)``. So a run repeats exactly as long as each
node's own sends happen in the same order, whatever order trio runs the tasks in.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import trio

from swarmrl.net.errors import RequestTimeout, TransportClosed, TransportError
from swarmrl.net.transport import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_QUEUE_SIZE,
    Handler,
    Subscription,
    Transport,
    check_payload,
)

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

log = logging.getLogger(__name__)

_PUBLISH, _REQUEST, _REPLY = 0, 1, 2
_REST = -1  # partition group of peers not named in any group


@dataclass(frozen=True)
class LinkSpec:
    """One direction of a link between two peers.

    latency_s: fixed one-way delay. jitter_s: extra delay drawn uniformly from [0, jitter_s]
    per message (so messages can overtake each other, as gossip does). loss: probability a
    message is dropped. bandwidth_bps: bits per second; adds size*8/bandwidth to the delay
    (no queueing between messages); None means unlimited.
    """

    latency_s: float = 0.05
    jitter_s: float = 0.0
    loss: float = 0.0
    bandwidth_bps: float | None = None

    def __post_init__(self) -> None:
        if self.latency_s < 0 or self.jitter_s < 0:
            raise ValueError("latency and jitter must be >= 0")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError("loss must be in [0, 1]")
        if self.bandwidth_bps is not None and not self.bandwidth_bps > 0:
            raise ValueError("bandwidth must be > 0 (or None for unlimited)")

    def delay(self, size: int, rng: random.Random) -> float:
        d = self.latency_s
        if self.jitter_s:
            d += rng.random() * self.jitter_s
        if self.bandwidth_bps is not None:
            d += size * 8 / self.bandwidth_bps
        return d


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


class _Flight:
    """One send (a publish to many, or a request/reply to one) and its pending arrivals."""

    __slots__ = ("kind", "src", "name", "data", "call", "counter", "arrivals")

    def __init__(
        self, kind: int, src: MemoryTransport, name: str, data: Any, call: _Call | None
    ) -> None:
        self.kind = kind
        self.src = src
        self.name = name  # topic or protocol
        self.data = data  # bytes, or for a reply (bytes | None, error | None)
        self.call = call
        self.counter = 0  # the sender's send number: a deterministic tie-break
        # (deliver_at, receiver id, receiver), sorted latest first so pop() yields the next one
        self.arrivals: list[tuple[float, str, MemoryTransport]] = []


class MemoryNetwork:
    """Creates :class:`MemoryTransport` endpoints and carries their traffic.

    Run it with ``async with MemoryNetwork(...) as net:``; leaving the block closes every
    endpoint and stops delivery.

    ``time_quantum_s``: arrival times are rounded up to a multiple of it (default 1 ms), so that
    with jitter a thousand nodes' traffic batches into few wakeups; 0 keeps exact times.
    ``max_message_size``: larger payloads are refused (TransportError), as gossipsub would.
    ``fanout``: if set, a publish reaches only this many random subscribers (drawn with the
    sender's RNG) instead of all of them. Large simulations use it: flooding 1000 nodes costs
    a million deliveries per round, while SAPO needs only a sample of the swarm's rollouts.
    """

    def __init__(
        self,
        seed: int = 0,
        default_link: LinkSpec | None = None,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        time_quantum_s: float = 0.001,
        fanout: int | None = None,
    ) -> None:
        if time_quantum_s < 0:
            raise ValueError("time_quantum_s must be >= 0")
        if fanout is not None and fanout < 1:
            raise ValueError("fanout must be >= 1 (or None for every subscriber)")
        self.fanout = fanout
        self.seed = seed
        self.time_quantum_s = time_quantum_s
        self.default_link = default_link if default_link is not None else LinkSpec()
        self.max_message_size = max_message_size
        self.stats: Counter[str] = Counter()
        self._endpoints: dict[str, MemoryTransport] = {}
        self._incarnations: Counter[str] = Counter()
        self._links: dict[str, dict[str, LinkSpec]] = {}  # src -> dst -> override
        self._groups: dict[str, int] | None = None  # peer -> partition group; None: healed
        self._topics: dict[str, dict[str, MemoryTransport]] = {}
        self._topic_order: dict[str, list[MemoryTransport]] = {}  # cached, sorted by peer id
        self._heap: list[tuple[float, str, int, int, _Flight]] = []
        self._pushes = 0
        self._wakeup = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._nursery_cm: Any = None

    # --- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> MemoryNetwork:
        if self._nursery_cm is not None:
            raise RuntimeError("MemoryNetwork is already running")
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
        self._nursery.start_soon(self._scheduler)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._nursery is not None
        for endpoint in list(self._endpoints.values()):
            endpoint.close_nowait()
        self._nursery.cancel_scope.cancel()
        cm, self._nursery, self._nursery_cm = self._nursery_cm, None, None
        self._heap.clear()
        try:
            return await cm.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # The nursery wraps the body's own exception in a group; hand it back unwrapped
            # when it is the only one, so `async with MemoryNetwork()` is transparent to errors.
            if exc is not None and len(group.exceptions) == 1 and group.exceptions[0] is exc:
                return False
            raise

    @property
    def now(self) -> float:
        """The network's clock (trio's, hence virtual under a MockClock)."""
        return trio.current_time()

    def endpoint(self, peer_id: str) -> MemoryTransport:
        """Join the network as ``peer_id`` (again, after a close: a fresh endpoint)."""
        if self._nursery is None:
            raise RuntimeError("MemoryNetwork is not running: use 'async with MemoryNetwork()'")
        if peer_id in self._endpoints:
            raise ValueError(f"{peer_id} is already on the network")
        self._incarnations[peer_id] += 1
        rng = random.Random(f"{self.seed}/{peer_id}/{self._incarnations[peer_id]}")
        endpoint = MemoryTransport(self, peer_id, rng)
        self._endpoints[peer_id] = endpoint
        return endpoint

    def endpoints(self) -> list[str]:
        """Peer ids currently on the network, sorted."""
        return sorted(self._endpoints)

    # --- links and partitions ---------------------------------------------------------------

    def set_link(
        self, src: str, dst: str, spec: LinkSpec | None, *, both_ways: bool = False
    ) -> None:
        """Override the link src -> dst (and dst -> src if both_ways); None restores default."""
        for a, b in ((src, dst), (dst, src)) if both_ways else ((src, dst),):
            if spec is None:
                self._links.get(a, {}).pop(b, None)
            else:
                self._links.setdefault(a, {})[b] = spec

    def link(self, src: str, dst: str) -> LinkSpec:
        overrides = self._links.get(src)
        if overrides:
            return overrides.get(dst, self.default_link)
        return self.default_link

    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        """Split the network: peers talk only within their group.

        Peers named in no group (including ones that join later) form one more group together.
        Messages already in flight across the cut are lost when they arrive.
        """
        assignment: dict[str, int] = {}
        for index, group in enumerate(groups):
            for peer in group:
                if peer in assignment:
                    raise ValueError(f"{peer} is in two partition groups")
                assignment[peer] = index
        self._groups = assignment

    def heal(self) -> None:
        """Remove every partition."""
        self._groups = None

    def reachable(self, a: str, b: str) -> bool:
        if self._groups is None:
            return True
        return self._groups.get(a, _REST) == self._groups.get(b, _REST)

    # --- endpoint bookkeeping (called by MemoryTransport) -----------------------------------

    def _joined_topic(self, endpoint: MemoryTransport, topic: str) -> None:
        self._topics.setdefault(topic, {})[endpoint.peer_id] = endpoint
        self._topic_order.pop(topic, None)

    def _left_topic(self, endpoint: MemoryTransport, topic: str) -> None:
        members = self._topics.get(topic)
        if members is not None and members.get(endpoint.peer_id) is endpoint:
            del members[endpoint.peer_id]
            self._topic_order.pop(topic, None)
            if not members:
                del self._topics[topic]

    def _left(self, endpoint: MemoryTransport) -> None:
        if self._endpoints.get(endpoint.peer_id) is endpoint:
            del self._endpoints[endpoint.peer_id]

    def _subscribers(self, topic: str) -> list[MemoryTransport]:
        order = self._topic_order.get(topic)
        if order is None:
            members = self._topics.get(topic, {})
            order = [members[p] for p in sorted(members)]
            self._topic_order[topic] = order
        return order

    def _check_size(self, data: bytes) -> None:
        check_payload(data, self.max_message_size)

    # --- sending ----------------------------------------------------------------------------

    def _send(self, flight: _Flight, targets: Iterable[MemoryTransport], size: int) -> None:
        """Decide loss and arrival time of each copy, then queue the flight.

        This is the hot loop of a big simulation (one pass per receiver per publish), hence the
        local variables. Random draws come from the sender's RNG only (see the module doc).
        """
        now = trio.current_time()
        src_id = flight.src._peer_id
        rng = flight.src._rng
        overrides = self._links.get(src_id) or {}
        default = self.default_link
        groups = self._groups
        src_group = groups.get(src_id, _REST) if groups is not None else _REST
        arrivals = flight.arrivals
        for dst in targets:
            dst_id = dst._peer_id
            if groups is not None and groups.get(dst_id, _REST) != src_group:
                self.stats["partitioned"] += 1
                continue
            spec = overrides.get(dst_id, default)
            if spec.loss and rng.random() < spec.loss:
                self.stats["lost"] += 1
                continue
            arrivals.append((self._quantize(now + spec.delay(size, rng)), dst_id, dst))
        if arrivals:
            arrivals.sort(key=lambda a: (a[0], a[1]), reverse=True)
            flight.src._sent += 1
            flight.counter = flight.src._sent
            self._push(flight)

    def _quantize(self, at: float) -> float:
        # Round arrival times up to the quantum: arrivals a few microseconds apart then share one
        # scheduler wakeup (and one task switch per receiver) instead of one each. The epsilon
        # keeps exact multiples (0.05 s) from being pushed a whole quantum later by float error.
        q = self.time_quantum_s
        return math.ceil(at / q - 1e-9) * q if q else at

    def _push(self, flight: _Flight) -> None:
        self._pushes += 1
        at = flight.arrivals[-1][0]
        entry = (at, flight.src._peer_id, flight.counter, self._pushes, flight)
        heapq.heappush(self._heap, entry)
        if self._heap[0] is entry:
            self._wakeup.set()  # the scheduler may be sleeping until a later time

    def _publish(self, src: MemoryTransport, topic: str, data: bytes) -> None:
        flight = _Flight(_PUBLISH, src, topic, data, None)
        others = [d for d in self._subscribers(topic) if d is not src]
        if self.fanout is not None and len(others) > self.fanout:
            others = src._rng.sample(others, self.fanout)
        self._send(flight, others, len(data))

    def _request(
        self, src: MemoryTransport, peer: str, protocol: str, data: bytes, call: _Call
    ) -> None:
        dst = self._endpoints.get(peer)
        if dst is None:
            self.stats["no_such_peer"] += 1
            return
        self._send(_Flight(_REQUEST, src, protocol, data, call), (dst,), len(data))

    def _reply(
        self, src: MemoryTransport, dst: MemoryTransport, call: _Call, reply: Any, size: int
    ) -> None:
        if dst.closed:
            return
        self._send(_Flight(_REPLY, src, "", reply, call), (dst,), size)

    # --- delivering -------------------------------------------------------------------------

    async def _scheduler(self) -> None:
        while True:
            self._deliver_due(trio.current_time())
            deadline = self._heap[0][0] if self._heap else math.inf
            self._wakeup = trio.Event()
            with trio.move_on_at(deadline):
                await self._wakeup.wait()

    def _deliver_due(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, _, _, flight = heapq.heappop(heap)
            arrivals = flight.arrivals
            # Deliver this flight's arrivals due at exactly `at`, then requeue the rest, so that
            # deliveries happen in global (time, sender, counter) order.
            while arrivals and arrivals[-1][0] <= at:
                _, _, dst = arrivals.pop()
                self._arrive(flight, dst)
            if arrivals:
                self._push(flight)

    def _arrive(self, flight: _Flight, dst: MemoryTransport) -> None:
        if dst._closed:
            self.stats["dropped_closed"] += 1
            return
        if self._groups is not None and not self.reachable(flight.src._peer_id, dst._peer_id):
            self.stats["partitioned"] += 1
            return
        self.stats["delivered"] += 1
        if flight.kind == _PUBLISH:
            dst._on_message(flight.src._peer_id, flight.name, flight.data)
        elif flight.kind == _REQUEST:
            assert flight.call is not None and self._nursery is not None
            dst._on_request(self._nursery, flight.src, flight.name, flight.data, flight.call)
        else:
            assert flight.call is not None
            reply, error = flight.data
            flight.call.finish(reply, error)


class MemoryTransport(Transport):
    """One node's endpoint on a :class:`MemoryNetwork`. Create with ``net.endpoint(peer_id)``."""

    def __init__(self, network: MemoryNetwork, peer_id: str, rng: random.Random) -> None:
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
