"""What one connection may make this node verify, and how little a brand-new key gets.

Signing keys cost nothing to mint, so limits keyed on them alone (the guard's per-peer rate)
do not bound a flood from 3,000 fresh keys. Two budgets apply to gossip *before* any signature
is checked or any byte decoded, keyed on what is not free — the connection a message arrived
on (its forwarder, a libp2p peer that passed the hello):

- **connection**: every message a connection forwards takes from its token bucket (messages and
  bytes). Past it the message is dropped (and not relayed): one hostile connection costs us a
  dictionary lookup per message, whatever keys it signs with.
  A connection that keeps sending past its budgets is hung up on and refused for a while:
  past that point its bytes cost us nothing at all, not even decryption. Every drop (of either
  budget) is a strike; ``ban_forgive`` strikes a second are forgiven, and ``ban_after`` strikes
  standing hang it up. Counting connection-budget drops alone made the ban's delay depend on
  how fast the victim could read: a busy node read a 300/s flood at 160-240/s, little of it
  over the connection budget, and took 25-40 s (its steps cut 27-50%) to get to 1,000. The
  newcomer drops are the signal of a key flood; the forgiveness lets an honest relay forward
  a new fast peer's groups (a tiny-model node publishes ~20 a second) until it is trusted.
- **newcomers**: a message whose author is not yet trusted also takes from the connection's
  newcomer bucket, a small shared share: a thousand fresh keys behind one connection get what
  one new peer gets. An author becomes trusted once ``trust_after`` of its groups entered this
  node's pool (regenerated, scored as claimed, new) over at least ``trust_after_s`` seconds
  (``vouch``): a share that grows with useful traffic, not with messages sent. As each of those
  groups had to come through the shared share, one connection can raise few keys to trust.

No torch, no config import: the transport passes the numbers.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    bytes: float
    at: float


@dataclass
class _Strikes:
    count: float
    at: float


@dataclass
class _Record:
    useful: int
    first: float


class TokenBuckets:
    """Token buckets (messages and bytes) by key, at most ``max_keys`` of them (LRU)."""

    def __init__(self, rate: float, burst: float, bytes_per_message: int, max_keys: int) -> None:
        self.rate, self.burst = rate, burst
        self.byte_rate, self.byte_burst = rate * bytes_per_message, burst * bytes_per_message
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: Hashable, size: int, now: float) -> bool:
        if self.rate <= 0:
            return True  # unlimited
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(self.burst, self.byte_burst, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            dt = max(0.0, now - b.at)
            b.tokens = min(self.burst, b.tokens + dt * self.rate)
            b.bytes = min(self.byte_burst, b.bytes + dt * self.byte_rate)
            b.at = now
        if b.tokens < 1.0 or b.bytes < size:
            return False
        b.tokens -= 1.0
        b.bytes -= size
        return True


class GossipBudget:
    """The two budgets above; ``check`` is called for every gossip message, first thing."""

    def __init__(
        self,
        *,
        per_connection: float,
        connection_burst: float,
        newcomers: float,
        newcomer_burst: float,
        trust_after: int,
        trust_after_s: float,
        ban_after: int = 0,
        ban_forgive: float = 0.0,
        bytes_per_message: int = 65_536,
        max_keys: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connections = TokenBuckets(per_connection, connection_burst, bytes_per_message,
                                        max_keys)
        self.newcomers = TokenBuckets(newcomers, newcomer_burst, bytes_per_message, max_keys)
        self.trust_after, self.trust_after_s = trust_after, trust_after_s
        self.clock = clock
        self.ban_after, self.ban_forgive = ban_after, ban_forgive
        self._strikes: OrderedDict[bytes, _Strikes] = OrderedDict()
        self._records: OrderedDict[bytes, _Record] = OrderedDict()
        self._max_keys = max_keys

    def check(self, connection: bytes, author: bytes, size: int) -> str | None:
        """None if the message may go on to verification, else the counted drop reason."""
        now = self.clock()
        if not self.connections.take(connection, size, now):
            self._strike(connection, now)
            return "dropped_connection_budget"
        if not self.trusted(author, now) and not self.newcomers.take(connection, size, now):
            self._strike(connection, now)
            return "dropped_newcomer_budget"
        return None

    def _strike(self, connection: bytes, now: float) -> None:
        s = self._strikes.get(connection)
        if s is None:
            s = self._strikes[connection] = _Strikes(0.0, now)
            while len(self._strikes) > self._max_keys:
                self._strikes.popitem(last=False)
        else:
            self._strikes.move_to_end(connection)
            s.count = max(0.0, s.count - max(0.0, now - s.at) * self.ban_forgive)
            s.at = now
        s.count += 1.0

    def over_limit(self, connection: bytes) -> bool:
        """Whether ``connection`` has ``ban_after`` strikes standing (0 = never banned)."""
        s = self._strikes.get(connection)
        return self.ban_after > 0 and s is not None and s.count >= self.ban_after

    def forget(self, connection: bytes) -> None:
        """A banned connection's slate (it is refused for a while; afterwards it starts over)."""
        self._strikes.pop(connection, None)

    def trusted(self, author: bytes, now: float | None = None) -> bool:
        r = self._records.get(author)
        if r is None or r.useful < self.trust_after:
            return self.trust_after == 0
        return (self.clock() if now is None else now) - r.first >= self.trust_after_s

    def vouch(self, author: bytes) -> None:
        """One useful message from ``author`` (its group entered this node's pool)."""
        r = self._records.get(author)
        if r is None:
            r = self._records[author] = _Record(0, self.clock())
            while len(self._records) > self._max_keys:
                self._records.popitem(last=False)
        else:
            self._records.move_to_end(author)
        r.useful += 1
