"""The Transport interface: gossip topics plus request/response, as a node sees the network.

Two implementations share it: :mod:`swarmrl.net.memory` (many nodes in one trio process,
virtual time) and the libp2p transport (gossipsub + streams). The node is written against this
interface only, so the simulator runs the same node loop as the daemon.

Contract every implementation keeps:

* ``publish`` never delivers to the publisher itself.
* Subscriptions have bounded queues. When one is full the *oldest* message is dropped and counted
  in ``transport.stats["dropped_queue_full"]`` (and ``subscription.dropped``): a slow consumer
  loses stale data, never memory, and never silently.
* ``request`` raises :class:`RequestTimeout` if no reply comes within ``timeout`` seconds and
  :class:`TransportError` if the remote handler failed; handlers run as their own tasks.
* All payloads are opaque bytes; authentication of content is the codec's job (signed envelopes).
"""

from __future__ import annotations

import abc
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from types import TracebackType

import trio

from swarmrl.net.errors import TransportClosed, TransportError

Handler = Callable[[str, bytes], Awaitable[bytes]]
"""A request handler: ``async def handler(sender_peer_id, request_bytes) -> reply_bytes``."""

DEFAULT_QUEUE_SIZE = 1024
DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024  # gossipsub's default RPC limit; transports refuse more


def topic_name(swarm_id: str, name: str) -> str:
    """The gossip topic of ``name`` ("rollouts", "tasks", "peers") in swarm ``swarm_id``, the
    same on every transport (the node subscribes to it, the libp2p validator keys on it)."""
    return f"{topic_namespace(swarm_id)}{name}/1"


def topic_namespace(swarm_id: str) -> str:
    """What every topic of swarm ``swarm_id`` starts with (a transport refuses any other)."""
    return f"/swarmrl/{swarm_id}/"


def check_payload(data: bytes, max_size: int, stats: Counter[str] | None = None) -> None:
    """What every transport checks before sending: bytes, and no more than ``max_size`` of
    them (counted as ``dropped_oversize`` in ``stats`` when given)."""
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"transport payloads are bytes, got {type(data).__name__}")
    if len(data) > max_size:
        if stats is not None:
            stats["dropped_oversize"] += 1
        raise TransportError(f"message too large: {len(data)} > {max_size}")


class Subscription:
    """A bounded queue of ``(sender_peer_id, data)`` for one topic.

    Use as ``async for sender, data in sub`` (ends when the subscription or its transport is
    closed) or ``await sub.receive()``; close with ``sub.close()`` or ``async with sub``.
    """

    def __init__(
        self,
        topic: str,
        maxsize: int,
        stats: Counter[str],
        on_close: Callable[[Subscription], None] | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError("queue size must be >= 1")
        self.topic = topic
        self.maxsize = maxsize
        self.dropped = 0
        self._stats = stats  # the owning transport's counters, so drops show up there
        self._queue: deque[tuple[str, bytes]] = deque()
        self._lot = trio.lowlevel.ParkingLot()
        self._closed = False
        self._on_close = on_close

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._queue)

    def offer(self, sender: str, data: bytes) -> None:
        """Enqueue without blocking (for transports). Full: drop the oldest and count it."""
        if self._closed:
            return
        if len(self._queue) >= self.maxsize:
            self._queue.popleft()
            self.dropped += 1
            self._stats["dropped_queue_full"] += 1
        self._queue.append((sender, data))
        if self._lot:  # someone is waiting
            self._lot.unpark()

    def receive_nowait(self) -> tuple[str, bytes]:
        """The next message if one is queued; raises trio.WouldBlock or TransportClosed."""
        if self._closed:
            raise TransportClosed(f"subscription to {self.topic!r} is closed")
        if not self._queue:
            raise trio.WouldBlock
        return self._queue.popleft()

    async def receive(self) -> tuple[str, bytes]:
        """Wait for the next message; raises TransportClosed once closed.

        Always a cancellation point, but it yields to other tasks only when it has to wait:
        a full yield per message would double the cost of a busy simulation, and the bounded
        queue bounds how long a consumer can run without yielding.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self._queue:
            if self._closed:
                raise TransportClosed(f"subscription to {self.topic!r} is closed")
            await self._lot.park()
        if self._closed:
            raise TransportClosed(f"subscription to {self.topic!r} is closed")
        return self._queue.popleft()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> tuple[str, bytes]:
        try:
            return await self.receive()
        except TransportClosed:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Stop receiving: queued messages are discarded and iteration ends. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._lot.unpark_all()
        if self._on_close is not None:
            self._on_close(self)

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Transport(abc.ABC):
    """What a node needs from the network. See the module docstring for the contract."""

    stats: Counter[str]
    """Counters by event, drops by reason among them (``dropped_queue_full``, ...)."""

    @property
    @abc.abstractmethod
    def peer_id(self) -> str:
        """This node's peer id."""

    @abc.abstractmethod
    async def publish(self, topic: str, data: bytes) -> None:
        """Gossip ``data`` to the other subscribers of ``topic`` (best effort)."""

    @abc.abstractmethod
    def subscribe(self, topic: str, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> Subscription:
        """Start receiving ``topic``; each subscription gets its own copy of every message.

        Synchronous so it can sit in ``async for sender, data in t.subscribe(topic)``; a
        transport whose subscribing needs I/O (libp2p) does that in its own tasks.
        """

    @abc.abstractmethod
    async def request(self, peer: str, protocol: str, data: bytes, timeout: float) -> bytes:
        """Send ``data`` to ``peer``'s handler for ``protocol`` and wait for its reply."""

    @abc.abstractmethod
    def set_handler(self, protocol: str, handler: Handler | None) -> None:
        """Serve ``protocol`` with ``handler`` (None removes it)."""

    @abc.abstractmethod
    def peers(self) -> list[str]:
        """Peer ids this node can currently talk to, sorted."""

    def listen_addrs(self) -> list[str]:
        """Addresses other peers can dial (full multiaddrs with /p2p/<id>); none in memory."""
        return []

    def learn_peer(self, peer_id: str, addrs: list[str]) -> None:
        """Hint: ``peer_id`` says it listens on ``addrs`` (from its peer card). A transport that
        dials (libp2p) may connect to it to widen its mesh beyond the bootstrap peers."""
        return None

    def vouch(self, peer_id: str) -> None:
        """Hint: a group of ``peer_id``'s entered this node's pool (useful traffic). A transport
        that budgets newcomers (libp2p) trusts the peer more; others ignore it."""
        return None

    @abc.abstractmethod
    async def close(self) -> None:
        """Leave the network: end subscriptions, stop handlers, fail pending requests."""

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
