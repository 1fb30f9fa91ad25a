"""The guard: regeneration, claims, free-form tasks, per-peer rate, reputation, down-weighting."""

from __future__ import annotations

import random

from _node_helpers import (
    NOW,
    FixedRuntime,
    admit,
    group,
    ident,
    node_config,
    problem,
    stub_node,
    wrong,
)

from swarmrl.node.loop import Node
from swarmrl.protocol import FreeFormTask, Identity, RolloutGroup, TaskSpec, encode, seal
from swarmrl.protocol.messages import task_key
from swarmrl.swarm.sapo import PoolEntry, select_external

ME, PEER, LIAR = ident(1), ident(2), ident(3)


def make_node(**guard) -> Node:
    cfg = node_config(swarm_id="alpha", guard=guard) if guard else node_config(swarm_id="alpha")
    return stub_node(cfg, identity=ME, runtime=FixedRuntime())


class Wire:
    """Signs messages as one peer with rising sequence numbers."""

    def __init__(self, who: Identity) -> None:
        self.who, self.seq = who, 0

    def __call__(self, msg, ts: float = NOW) -> bytes:
        self.seq += 1
        return encode(seal(msg, self.who, seq=self.seq, timestamp=ts))


def dropped(node: Node) -> dict[str, int]:
    return {k[8:]: v for k, v in node.metrics.counters.items() if k.startswith("dropped:")}


def test_tasks_that_do_not_regenerate_never_reach_the_pool_even_with_the_guard_off() -> None:
    answers = ["<answer>1</answer>", "<answer>2</answer>"]
    bad = [
        (TaskSpec(family="no_such_family", seed=1, index=0), "foreign_family"),
        (TaskSpec(family="arith", params={"max_digits": 10**9}, seed=1, index=0), "out_of_bounds"),
        (TaskSpec(family="arith", params={"min_digits": 5, "max_digits": 2}, seed=1, index=0),
         "bad_task"),  # inside the bounds, refused by the generator
        (TaskSpec(family="arith", family_version="9", seed=1, index=0), "bad_task"),
    ]
    for enabled in (True, False):
        node, send = make_node(enabled=enabled), Wire(PEER)
        for task, reason in bad:
            msg = RolloutGroup(task=task, completions=answers)
            assert admit(node, PEER.peer_id, send(msg)) == reason
        assert len(node.pool) == 0
        # They used to enter the pool and raise TaskError when J groups were chosen.
        select_external(node.pool, node.rescorer, node.skills, node.cfg.sapo, random.Random(0))


def test_a_task_outside_the_nodes_families_is_dropped_before_it_is_generated() -> None:
    """A swarm's task space is its families: a peer cannot make this node run another
    generator (some take minutes or gigabytes at peer-chosen, or even default, parameters)."""
    node, send = make_node(), Wire(PEER)
    assert set(node.task_space.families) == {"arith"}
    other = TaskSpec(family="basic_arithmetic", seed=1, index=0)  # real, cheap, not ours
    msg = RolloutGroup(task=other, completions=["<answer>1</answer>"])
    assert admit(node, PEER.peer_id, send(msg)) == "foreign_family"
    assert task_key(other) not in node.rescorer._problems  # never generated
    assert node.guard.standing(PEER.peer_id, NOW)["failed_checks"] == {"foreign_family": 1}


def test_a_peer_claiming_success_on_wrong_answers_is_caught() -> None:
    node, liar, honest = make_node(), Wire(LIAR), Wire(PEER)
    ans = problem(1).answer
    lie = group(1, completions=[f"<answer>{wrong(ans)}</answer>"] * 2, claimed=[1.0, 1.0])
    assert admit(node, LIAR.peer_id, liar(lie)) == "claim_mismatch"
    truth = group(2, claimed=[1.0, 0.0])  # one right, one wrong, claimed as such
    assert admit(node, PEER.peer_id, honest(truth)) is None
    short = group(3, claimed=[1.0])  # one claim for two completions
    assert admit(node, PEER.peer_id, honest(short)) == "bad_claims"
    assert node.guard.standing(LIAR.peer_id, NOW)["failed_checks"] == {"claim_mismatch": 1}
    # With the guard off the lie gets into the pool (re-scoring still ignores the claims).
    off = make_node(enabled=False)
    assert admit(off, LIAR.peer_id, Wire(LIAR)(lie)) is None


def test_free_form_tasks_need_this_nodes_own_verification() -> None:
    node, send = make_node(), Wire(PEER)
    task = FreeFormTask(prompt="What is 2 + 2?", reference_answer="5")  # a forged answer key
    msg = RolloutGroup(task=task, completions=["<answer>5</answer>", "<answer>4</answer>"])
    assert admit(node, PEER.peer_id, send(msg)) == "unverified_task"
    node.guard.verified_tasks.add(task_key(task))  # e.g. our own solvers agreed with it
    again = RolloutGroup(task=task, completions=["<answer>5</answer>", "<answer>3</answer>"])
    assert admit(node, PEER.peer_id, send(again)) is None


def test_a_flooding_peer_is_rate_limited_and_others_are_not() -> None:
    node = make_node(messages_per_peer_per_s=10.0, burst=5.0)
    flood, honest = Wire(LIAR), Wire(PEER)
    results = [admit(node, LIAR.peer_id, flood(group(i))) for i in range(20)]
    assert results.count(None) == 5 and results.count("rate_limited") == 15
    assert admit(node, PEER.peer_id, honest(group(100))) is None
    node.runtime._now += 1.0  # a second later, 10 more tokens
    later = [
        admit(node, LIAR.peer_id, flood(group(50 + i), ts=NOW + 1)) for i in range(12)
    ]
    assert later.count(None) == 5  # the bucket refills to its burst, no further


def test_bytes_count_against_the_rate_too() -> None:
    node = make_node(messages_per_peer_per_s=100.0, burst=10.0, bytes_per_message=1024)
    big = group(1, completions=["<answer>" + "7" * 5000 + "</answer>", "<answer>1</answer>"])
    send = Wire(PEER)
    first, second, third = (admit(node, PEER.peer_id, send(big)) for _ in range(3))
    assert "rate_limited" in (second, third)  # 10 KiB of allowance, ~5 KiB a message


def test_reputation_falls_ignores_then_forgives() -> None:
    node, liar = make_node(reputation_half_life_s=60.0), Wire(LIAR)
    ans = problem(1).answer
    for i in range(4):
        lie = group(i, completions=[f"<answer>{wrong(ans)}</answer>"] * 2, claimed=[1.0, 1.0])
        admit(node, LIAR.peer_id, liar(lie))
    assert node.guard.reputation(LIAR.peer_id, NOW) < 0.25
    assert admit(node, LIAR.peer_id, liar(group(10))) == "ignored_peer"
    assert node.guard.standing(LIAR.peer_id, NOW)["ignored"] is True
    node.runtime._now += 6 * 60.0  # six half-lives: 4 -> 0.06
    assert node.guard.reputation(LIAR.peer_id, node.runtime.now()) > 0.9
    assert admit(node, LIAR.peer_id, liar(group(11), ts=node.runtime.now())) is None
    assert dropped(node) == {"claim_mismatch": 4, "ignored_peer": 1}


def test_low_reputation_peers_are_chosen_less_often() -> None:
    node = make_node()
    entries = []
    for i in range(40):
        sender = LIAR.peer_id if i % 2 else PEER.peer_id
        entries.append(PoolEntry(group(i), sender, f"c{i}", 0))
    node.pool.entries.update({e.content_id: e for e in entries})
    cfg = node.cfg.sapo.model_copy(update={"external": 10})
    weight = {PEER.peer_id: 1.0, LIAR.peer_id: 0.05}
    picked = []
    for seed in range(30):
        chosen = select_external(node.pool, node.rescorer, node.skills, cfg,
                                 random.Random(seed), weight.get)
        picked += [e.sender for e in chosen]
    assert picked.count(LIAR.peer_id) < 0.1 * len(picked)


def test_minted_peer_ids_cannot_grow_the_guards_tables_without_bound() -> None:
    node = make_node()
    node.guard.max_peers = 100
    for i in range(1000):
        node.guard.allow(f"peer{i}", 100, NOW)
        node.guard.penalize(f"peer{i}", "malformed", NOW)
    assert len(node.guard._rate) <= 100 and len(node.guard._standing) <= 100


def test_a_flood_keeps_memory_bounded_and_honest_traffic_flowing() -> None:
    """20,000 messages at 10,000/s from a flooder (new groups, replays, junk bytes) while an
    honest peer sends one group per 100 ms: memory stays bounded, every honest group gets in."""
    import tracemalloc

    node = make_node()
    flooder, honest = Wire(LIAR), Wire(PEER)
    rng = random.Random(0)
    flood = [flooder(group(i)) for i in range(500)] + [rng.randbytes(3000) for _ in range(200)]
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    got = 0
    for i in range(20_000):
        node.runtime._now = NOW + i / 10_000
        admit(node, LIAR.peer_id, flood[i % len(flood)])
        if i % 1000 == 0:
            got += admit(node, PEER.peer_id, honest(group(10_000 + i), ts=NOW)) is None
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    assert got == 20
    assert peak < 16 * 2**20, peak  # the pool, replay window and guard tables are bounded
    assert node.guard.ignored(LIAR.peer_id, node.runtime.now())
