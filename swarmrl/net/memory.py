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
from types import TracebackType
from typing import Any

import trio

from swarmrl.net.memory_endpoint import MemoryTransport, _Call
from swarmrl.net.memory_link import LinkSpec
from swarmrl.net.transport import DEFAULT_MAX_MESSAGE_SIZE, check_payload

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

log = logging.getLogger(__name__)

_PUBLISH, _REQUEST, _REPLY = 0, 1, 2
_REST = -1  # partition group of peers not named in any group
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
