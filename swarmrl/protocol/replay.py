"""Replay protection: a per-sender sliding sequence window plus a timestamp bound.

Like IPsec anti-replay (RFC 4303 §3.4.3): for each sender we remember the highest sequence
number accepted and a bitmap of which of the ``window`` numbers below it were seen. Gossip
reorders messages, so a window (not "strictly increasing") is needed; the timestamp bound makes
a message useless to an attacker once it is ``max_skew_s`` old, even if its sender's window state
has been evicted.

Call :meth:`ReplayGuard.check` only on envelopes whose signature has been verified
(:func:`~swarmrl.protocol.codec.decode` does that); otherwise forged sequence numbers could push
an honest sender's window forward and make its real messages look old.

Senders should pick sequence numbers that survive restarts; :class:`SeqCounter` starts from the
wall clock in microseconds, so a restarted node never reuses numbers its peers still remember.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from typing import Protocol

from swarmrl.protocol.errors import ProtocolError


class _Stamped(Protocol):
    @property
    def sender(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def timestamp(self) -> float: ...


class ReplayGuard:
    """Rejects replayed, too old and future-dated envelopes; memory bounded in senders.

    Memory: one int of ``window`` bits plus an int per sender, at most ``max_senders`` senders
    (least recently accepted evicted first).
    """

    def __init__(
        self, window: int = 1024, max_skew_s: float = 300.0, max_senders: int = 65_536
    ) -> None:
        if window < 1 or max_senders < 1 or max_skew_s <= 0:
            raise ValueError("window and max_senders must be >= 1, max_skew_s > 0")
        self.window = window
        self.max_skew_s = max_skew_s
        self.max_senders = max_senders
        self._mask = (1 << window) - 1
        # sender -> (highest accepted seq, bitmap: bit i set <=> seq (highest - i) was seen)
        self._state: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self.rejected: Counter[str] = Counter()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._state)

    def check(self, envelope: _Stamped, now: float | None = None) -> None:
        """Accept (and remember) the envelope, or raise ProtocolError saying why not."""
        now = time.time() if now is None else now
        self._check_time(envelope.timestamp, now)
        self._check_seq(envelope.sender, envelope.seq)

    def _reject(self, reason: str, detail: str) -> ProtocolError:
        self.rejected[reason] += 1
        return ProtocolError(f"{reason}: {detail}")

    def _check_time(self, timestamp: float, now: float) -> None:
        if timestamp > now + self.max_skew_s:
            raise self._reject("from the future", f"timestamp {timestamp:.3f} > now {now:.3f}")
        if timestamp < now - self.max_skew_s:
            raise self._reject("too old", f"timestamp {timestamp:.3f} < now {now:.3f}")

    def _check_seq(self, sender: str, seq: int) -> None:
        state = self._state.get(sender)
        if state is None:
            self._remember(sender, seq, 1)
            return
        top, bitmap = state
        if seq > top:
            # Slide the window forward; numbers that fall off the end are forgotten (too old).
            shift = seq - top
            bitmap = ((bitmap << shift) | 1) & self._mask if shift < self.window else 1
            self._remember(sender, seq, bitmap)
            return
        offset = top - seq
        if offset >= self.window:
            raise self._reject("too old", f"seq {seq} is behind the window (highest {top})")
        if bitmap >> offset & 1:
            raise self._reject("replayed", f"seq {seq} from {sender}")
        self._remember(sender, top, bitmap | (1 << offset))

    def _remember(self, sender: str, top: int, bitmap: int) -> None:
        self._state[sender] = (top, bitmap)
        self._state.move_to_end(sender)
        if len(self._state) > self.max_senders:
            self._state.popitem(last=False)
            self.evicted += 1


class SeqCounter:
    """Sequence numbers that keep increasing across process restarts.

    Starts at the wall clock in microseconds and then counts by one, so a restarted node is
    ahead of what peers remember (unless it sent over a million messages a second on average),
    while consecutive numbers stay close enough for reordered gossip to fit the replay window.
    """

    def __init__(self, start: int | None = None) -> None:
        self._next = time.time_ns() // 1000 if start is None else start

    def next(self) -> int:
        value = self._next
        self._next += 1
        return value
