"""Replay protection: sliding sequence windows, timestamp bounds, bounded memory."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from swarmrl.protocol import Identity, ProtocolError, ReplayGuard, SeqCounter, TeacherReply, seal

NOW = 1_000_000.0


@dataclass(frozen=True)
class Stamp:
    sender: str
    seq: int
    timestamp: float = NOW


def test_real_envelopes(identity: Identity) -> None:
    guard = ReplayGuard()
    envelope = seal(TeacherReply(request_id=1), identity, seq=5, timestamp=NOW)
    guard.check(envelope, now=NOW)
    with pytest.raises(ProtocolError, match="replayed"):
        guard.check(envelope, now=NOW)
    fresh = seal(TeacherReply(request_id=1), identity, seq=6)
    guard.check(fresh)  # now defaults to the wall clock


def test_out_of_order_within_window_is_accepted_once() -> None:
    guard = ReplayGuard(window=64)
    order = list(range(100, 164))
    random.Random(1).shuffle(order)
    for seq in order:
        guard.check(Stamp("a", seq), NOW)
    for seq in order:
        with pytest.raises(ProtocolError, match="replayed"):
            guard.check(Stamp("a", seq), NOW)


def test_behind_the_window_is_too_old() -> None:
    guard = ReplayGuard(window=32)
    guard.check(Stamp("a", 100), NOW)
    guard.check(Stamp("a", 69), NOW)  # offset 31: the last slot of the window
    with pytest.raises(ProtocolError, match="too old"):
        guard.check(Stamp("a", 68), NOW)
    guard.check(Stamp("a", 1_000_000), NOW)  # a jump beyond the window forgets everything
    with pytest.raises(ProtocolError, match="too old"):
        guard.check(Stamp("a", 100), NOW)
    with pytest.raises(ProtocolError, match="replayed"):
        guard.check(Stamp("a", 1_000_000), NOW)
    assert guard.rejected["too old"] == 2 and guard.rejected["replayed"] == 1


def test_window_slides_and_remembers_what_it_should() -> None:
    guard = ReplayGuard(window=8)
    for seq in (1, 3, 5):
        guard.check(Stamp("a", seq), NOW)
    guard.check(Stamp("a", 9), NOW)  # window now covers 2..9
    with pytest.raises(ProtocolError, match="replayed"):
        guard.check(Stamp("a", 3), NOW)
    guard.check(Stamp("a", 4), NOW)
    with pytest.raises(ProtocolError, match="too old"):
        guard.check(Stamp("a", 1), NOW)


def test_senders_are_independent() -> None:
    guard = ReplayGuard()
    guard.check(Stamp("a", 1), NOW)
    guard.check(Stamp("b", 1), NOW)
    with pytest.raises(ProtocolError):
        guard.check(Stamp("b", 1), NOW)


def test_timestamp_skew() -> None:
    guard = ReplayGuard(max_skew_s=300)
    guard.check(Stamp("a", 1, NOW - 299), NOW)
    guard.check(Stamp("a", 2, NOW + 299), NOW)
    with pytest.raises(ProtocolError, match="too old"):
        guard.check(Stamp("a", 3, NOW - 301), NOW)
    with pytest.raises(ProtocolError, match="from the future"):
        guard.check(Stamp("a", 4, NOW + 301), NOW)
    guard.check(Stamp("a", 3), NOW)  # a refused message leaves no trace in the window


def test_memory_is_bounded_by_lru_eviction() -> None:
    guard = ReplayGuard(max_senders=3)
    for sender in "abc":
        guard.check(Stamp(sender, 1), NOW)
    guard.check(Stamp("a", 2), NOW)  # "a" becomes most recent; "b" is now the oldest
    guard.check(Stamp("d", 1), NOW)
    assert len(guard) == 3 and guard.evicted == 1
    guard.check(Stamp("b", 1), NOW)  # evicted state is forgotten (the timestamp bound remains)
    with pytest.raises(ProtocolError, match="replayed"):
        guard.check(Stamp("a", 2), NOW)


def test_many_senders_stay_bounded() -> None:
    guard = ReplayGuard(max_senders=100)
    for i in range(10_000):
        guard.check(Stamp(f"peer{i}", i), NOW)
    assert len(guard) == 100


def test_bad_configuration() -> None:
    with pytest.raises(ValueError):
        ReplayGuard(window=0)
    with pytest.raises(ValueError):
        ReplayGuard(max_skew_s=0)


def test_seq_counter() -> None:
    assert [SeqCounter(start=7).next() for _ in range(2)] == [7, 7]
    counter = SeqCounter(start=7)
    assert [counter.next() for _ in range(3)] == [7, 8, 9]
    # A restarted node starts ahead of anything it sent before (clock-based start).
    first = SeqCounter()
    numbers = [first.next() for _ in range(10)]
    assert SeqCounter().next() >= numbers[0]
    assert numbers == list(range(numbers[0], numbers[0] + 10))
