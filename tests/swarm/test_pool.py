"""The SAPO swarm pool: bounded, per-peer fair, deduplicated, evicting by age, staleness, use."""

from __future__ import annotations

from collections import Counter

from _node_helpers import group, sapo
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmrl.swarm.sapo import SwarmPool


def counts(pool: SwarmPool) -> Counter[str]:
    return Counter(e.sender for e in pool.entries.values())


def check_invariants(pool: SwarmPool) -> None:
    cfg = pool.cfg
    assert len(pool) <= cfg.pool_capacity
    assert all(n <= pool.per_peer_cap for n in counts(pool).values())
    # by_peer is an exact index of entries, in arrival order
    indexed = [cid for cids in pool.by_peer.values() for cid in cids]
    assert sorted(indexed) == sorted(pool.entries)
    for peer, cids in pool.by_peer.items():
        assert all(pool.entries[c].sender == peer for c in cids)
    assert pool.peer_counts() == dict(counts(pool))


def test_a_flooding_peer_holds_at_most_its_share_and_evicts_only_its_own() -> None:
    pool = SwarmPool(sapo(pool_capacity=16, per_peer_share=0.25))
    assert pool.per_peer_cap == 4
    for peer in ("b", "c", "d"):
        for i in range(3):
            assert pool.add(group(100 * ord(peer) + i), peer, 0) is None
    others = {cid: e.sender for cid, e in pool.entries.items()}
    flood = [group(i) for i in range(100)]
    for g in flood:
        assert pool.add(g, "flood", 0) is None
        check_invariants(pool)
    assert counts(pool)["flood"] == 4
    # the newest four of the flood are kept; every other peer's entries are untouched
    kept = [pool.entries[c].group for c in pool.by_peer["flood"]]
    assert kept == flood[-4:]
    assert {cid: pool.entries[cid].sender for cid in others} == others
    assert pool.stats.evicted["peer_share"] == 96
    assert pool.stats.evicted["capacity"] == 0


def test_a_full_pool_evicts_from_the_busiest_peer() -> None:
    pool = SwarmPool(sapo(pool_capacity=8, per_peer_share=0.5))  # per-peer cap 4
    for i in range(4):
        pool.add(group(i), "a", 0)
    for i in range(2):
        pool.add(group(10 + i), "b", 0)
        pool.add(group(20 + i), "c", 0)
    assert len(pool) == 8
    first_of_a = pool.by_peer["a"][0]
    assert pool.add(group(30), "d", 0) is None
    assert len(pool) == 8
    assert first_of_a not in pool.entries
    assert counts(pool) == Counter({"a": 3, "b": 2, "c": 2, "d": 1})
    # a newcomer keeps pushing out the busiest peer, never the small ones
    for i in range(1, 6):
        pool.add(group(30 + i), "d", 0)
        check_invariants(pool)
    assert counts(pool)["b"] == 2 and counts(pool)["c"] == 2
    assert pool.stats.evicted["capacity"] >= 1


def test_the_same_group_twice_is_a_duplicate_from_anyone_even_after_eviction() -> None:
    pool = SwarmPool(sapo(pool_capacity=4, max_uses=1))
    g = group(1)
    assert pool.add(g, "a", 0) is None
    assert pool.add(g, "a", 0) == "duplicate"
    assert pool.add(group(1), "b", 0) == "duplicate"  # equal content, another sender
    entry = pool.entries[g.content_id()]
    pool.mark_used([entry])
    assert len(pool) == 0
    assert pool.add(g, "a", 1) == "duplicate"  # used once already: not admitted again
    assert pool.stats.dropped["duplicate"] == 3
    other = group(1, completions=["<answer>1</answer>"])  # same task, other completions
    assert pool.add(other, "a", 1) is None


def test_a_group_far_behind_its_senders_policy_is_refused() -> None:
    pool = SwarmPool(sapo(max_staleness=20))
    assert pool.add(group(1, version=30), "a", 0) is None
    assert pool.add(group(2, version=5), "a", 0) == "stale"
    assert pool.add(group(3, version=10), "a", 0) is None  # exactly max_staleness behind
    assert pool.add(group(4, version=5), "b", 0) is None  # staleness is per sender
    assert pool.stats.dropped["stale"] == 1


def test_held_groups_are_evicted_when_their_sender_moves_on() -> None:
    pool = SwarmPool(sapo(max_staleness=20, max_age_steps=100))
    pool.add(group(1, version=0), "a", 0)
    pool.add(group(2, version=0), "b", 0)
    pool.add(group(3, version=25), "a", 1)
    pool.expire(1)
    senders = sorted((e.sender, e.group.sampler.policy_version) for e in pool.entries.values())
    assert senders == [("a", 25), ("b", 0)]
    assert pool.stats.evicted["stale"] == 1


def test_groups_expire_by_age() -> None:
    pool = SwarmPool(sapo(max_age_steps=3))
    pool.add(group(1), "a", 0)
    pool.add(group(2), "a", 2)
    pool.expire(3)
    assert len(pool) == 2
    pool.expire(4)
    assert [e.received_step for e in pool.entries.values()] == [2]
    pool.expire(6)
    assert len(pool) == 0
    assert pool.stats.evicted["age"] == 2


def test_groups_are_evicted_after_max_uses() -> None:
    pool = SwarmPool(sapo(max_uses=2))
    pool.add(group(1), "a", 0)
    pool.add(group(2), "a", 0)
    e1, e2 = pool.entries.values()
    pool.mark_used([e1])
    assert len(pool) == 2
    pool.mark_used([e1, e2])
    assert list(pool.entries.values()) == [e2]
    pool.mark_used([e1])  # already gone: nothing happens
    assert pool.stats.evicted["used"] == 1


ADD = st.tuples(
    st.just("add"), st.integers(0, 3), st.integers(0, 60), st.integers(0, 12), st.booleans()
)
EXPIRE = st.tuples(st.just("expire"), st.integers(0, 3))
USE = st.tuples(st.just("use"), st.integers(0, 3), st.randoms(use_true_random=False))


@settings(max_examples=150, deadline=None)
@given(
    capacity=st.integers(1, 8),
    share=st.sampled_from([0.1, 0.25, 0.34, 0.5, 1.0]),
    max_age=st.integers(0, 5),
    max_staleness=st.integers(0, 10),
    max_uses=st.integers(1, 3),
    ops=st.lists(st.one_of(ADD, ADD, ADD, EXPIRE, USE), min_size=10, max_size=80),
)
def test_random_traffic_keeps_every_invariant(
    capacity: int, share: float, max_age: int, max_staleness: int, max_uses: int, ops: list
) -> None:
    pool = SwarmPool(
        sapo(
            pool_capacity=capacity,
            per_peer_share=share,
            max_age_steps=max_age,
            max_staleness=max_staleness,
            max_uses=max_uses,
        )
    )
    step = 0
    seen: set[str] = set()
    latest: dict[str, int] = {}
    for op in ops:
        if op[0] == "add":
            _, p, task, version, alt = op
            peer = f"peer{p}"
            g = group(task, version, completions=["<answer>1</answer>"] if alt else None)
            cid = g.content_id()
            before = dict(pool.entries)
            before_counts = counts(pool)
            reason = pool.add(g, peer, step)
            if cid in seen:
                assert reason == "duplicate"
                assert pool.entries == before
            else:
                latest[peer] = max(latest.get(peer, version), version)
                if latest[peer] - version > max_staleness:
                    assert reason == "stale"
                    assert pool.entries == before
                else:
                    assert reason is None
                    assert pool.entries[cid].sender == peer
                    gone = [c for c in before if c not in pool.entries]
                    assert len(gone) <= 1  # one add makes room for itself, no more
                    for c in gone:
                        victim = before[c].sender
                        if victim == peer:  # its own oldest
                            assert c == next(x for x in before if before[x].sender == peer)
                        else:  # capacity: only from a peer holding at least as much
                            assert len(before) == capacity
                            assert before_counts[victim] >= before_counts[peer]
                            assert before_counts[victim] == max(before_counts.values())
            seen.add(cid)
        elif op[0] == "expire":
            step += op[1]
            before = dict(pool.entries)
            pool.expire(step)
            for cid, e in before.items():
                fresh = step - e.received_step <= max_age
                current = latest[e.sender] - e.group.sampler.policy_version <= max_staleness
                assert (cid in pool.entries) == (fresh and current)
        else:
            _, n, rnd = op
            entries = list(pool.entries.values())
            chosen = rnd.sample(entries, min(n, len(entries)))
            uses = {e.content_id: e.uses + 1 for e in chosen}
            pool.mark_used(chosen)
            for cid, u in uses.items():
                assert (cid in pool.entries) == (u < max_uses)
        check_invariants(pool)

