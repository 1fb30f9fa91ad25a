"""Budgets keyed on connections, not on free keys: one connection's flood, fresh keys' share."""

from __future__ import annotations

from swarmrl.net.budget import GossipBudget


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def budget(clock: Clock, **kw) -> GossipBudget:
    args = dict(per_connection=100.0, connection_burst=100.0, newcomers=5.0, newcomer_burst=10.0,
                trust_after=3, trust_after_s=60.0, clock=clock)
    return GossipBudget(**{**args, **kw})


def test_fresh_keys_behind_one_connection_share_one_newcomers_share() -> None:
    clock = Clock()
    b = budget(clock)
    keys = [bytes([i % 256, i // 256]) for i in range(3000)]
    passed = sum(b.check(b"evil", k, 100) is None for k in keys)
    assert passed == 10  # the burst, not 3000 x a per-key allowance
    clock.now = 1.0
    assert sum(b.check(b"evil", k, 100) is None for k in keys) == 5  # then its rate
    # another connection's newcomer is not starved by the flood
    assert b.check(b"honest-link", b"new-peer", 100) is None


def test_trust_grows_with_useful_traffic_over_time_not_with_messages_sent() -> None:
    clock = Clock()
    b = budget(clock)
    for _ in range(10):
        b.check(b"link", b"peer", 100)
    assert b.check(b"link", b"peer", 100) == "dropped_newcomer_budget"
    for _ in range(3):
        b.vouch(b"peer")  # three of its groups trained on...
    assert not b.trusted(b"peer")  # ...but not yet over trust_after_s
    clock.now = 61.0
    assert b.trusted(b"peer")
    results = [b.check(b"link", b"peer", 100) for _ in range(50)]
    assert results.count(None) == 50  # only the connection's own budget applies now


def test_one_connection_is_capped_whatever_keys_it_signs_with() -> None:
    clock = Clock()
    b = budget(clock, newcomers=0.0, trust_after=0)  # newcomer share off: the connection cap
    passed = sum(b.check(b"evil", bytes([i % 256, i // 256]), 100) is None for i in range(1000))
    assert passed == 100
    assert b.check(b"other", b"x", 100) is None
    big = budget(clock, trust_after=0, bytes_per_message=1000)
    assert big.check(b"c", b"a", 200_000) == "dropped_connection_budget"  # bytes count too


def test_a_connection_that_keeps_flooding_is_marked_for_a_ban() -> None:
    clock = Clock()
    b = budget(clock, newcomers=0.0, trust_after=0, ban_after=50)
    results = [b.check(b"evil", b"k", 10) for _ in range(149)]
    assert results.count("dropped_connection_budget") == 49 and not b.over_limit(b"evil")
    b.check(b"evil", b"k", 10)
    assert b.over_limit(b"evil") and not b.over_limit(b"other")
    b.forget(b"evil")
    assert not b.over_limit(b"evil")
    assert not budget(clock).over_limit(b"evil")  # ban_after = 0: never


def test_newcomer_drops_are_strikes_too_and_a_slow_trickle_is_forgiven() -> None:
    clock = Clock()
    # a key flood that never exceeds the connection budget: its newcomer drops ban it
    b = budget(clock, ban_after=50, ban_forgive=20.0)
    for i in range(60):
        b.check(b"evil", bytes([i]), 10)
    assert b.over_limit(b"evil")  # 10 passed (the newcomer burst), 50 strikes
    # an honest relay forwarding a new peer's 25 groups a second: 5 over the newcomer share,
    # under the 20 forgiven each second; never banned however long it goes on
    for second in range(1, 120):
        for k in range(25):
            clock.now = second + k / 25
            b.check(b"relay", b"new-peer", 10)
    assert not b.over_limit(b"relay")
