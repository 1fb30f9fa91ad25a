"""The guard's plausibility check: junk or corrupted reasoning around right answers is caught
by scoring the text under the node's own policy."""

from __future__ import annotations

import math

import pytest
import trio
from _node_helpers import FixedRuntime, OfflineTransport, group, ident, lm_config, problem

from swarmrl.brain.lm import LMBrain
from swarmrl.config import GuardConfig
from swarmrl.node.loop import Node
from swarmrl.swarm.plausibility import Plausibility
from swarmrl.swarm.sapo import PoolEntry

HONEST, JUNK, CORRUPT = ident(2), ident(3), ident(4)


def test_judge_learns_the_nodes_own_scores_before_it_judges() -> None:
    check = Plausibility(GuardConfig(plausibility_min_samples=8, plausibility_excess_nats=20.0,
                                     plausibility_group_share=0.25))
    assert check.judge([[0.0] * 4], [[300.0] * 4]) == [True]  # 4 own samples: too early
    own = [[0.5, -0.3, 1.2, 0.1], [2.0, -1.0, 0.4, 0.0]]
    external = [
        [0.3, 5.0, -1.0, 12.0],  # honest: unsure in places, nothing like junk
        [400.0, 0.1, 0.2, 0.3],  # one junk completion of four reaches the 25% share
        [400.0, 380.0, 0.1, 0.2],  # half junk: the junk adversary's shape
        [0.1, math.nan, 0.2, 0.3],  # a score that is not a number counts as implausible
    ]
    assert check.judge(own, external) == [True, False, False, False]
    assert check.threshold() == 20.0  # the floor: own scores are far below it
    lenient = Plausibility(GuardConfig(plausibility_min_samples=8, plausibility_group_share=0.5))
    assert lenient.judge(own, external) == [True, True, False, True]


def test_each_sender_is_judged_against_its_own_normal() -> None:
    """A peer with other skills or another model writes honest text this policy finds
    surprising (25-45 nats here) where its own samples score ~0: it is judged against its own
    baseline (its first group starts it), never past the ceiling junk scores above."""
    cfg = GuardConfig(plausibility_min_samples=8, plausibility_excess_nats=20.0,
                      plausibility_group_share=0.25, plausibility_max_nats=100.0)
    check = Plausibility(cfg)
    own = [[0.5, -0.3, 1.2, 0.1, 2.0, -1.0, 0.4, 0.0]]
    other = [[25.0, 31.0, 12.0, 40.0, 3.0, 18.0, 33.0, 9.0], [28.0, 35.0, 22.0, 44.0],
             [30.0, 26.0, 38.0, 21.0]]
    # a sender's first group starts its baseline: 3 of 8 over 20 nats, yet plausible
    assert check.judge(own, [other[0]], ["sub|fp"]) == [True]
    assert check.judge(own, other[1:], ["sub|fp", "sub|fp"]) == [True, True]
    assert 44.0 < check.threshold("sub|fp") <= 100.0
    assert check.threshold("tiny|fp") == check.threshold() == 20.0  # unknown model: own
    # The same scores from a model whose text is normally like ours are still implausible.
    check.judge(own, [[0.1, 0.4, -0.2, 0.3, 0.0, 1.1, -0.5, 0.2]], ["same|fp"])
    assert check.judge(own, [other[2]], ["same|fp"]) == [False]
    # Junk above the ceiling: implausible whatever model sent it, and it moves no baseline.
    junk = [[300.0, 250.0, 0.1, 0.2]] * 6
    assert check.judge(own, junk, ["junk|fp"] * 6) == [False] * 6
    assert check.threshold("junk|fp") == 20.0 and check.baselines["junk|fp"].n == 12
    assert check.judge(own, junk, ["sub|fp"] * 6) == [False] * 6
    assert check.blatant == [True] * 6  # past the ceiling: its sender pays at once
    check.judge(own, [other[1]], ["sub|fp"])
    assert check.blatant == [False]
    # One honest sample past the ceiling (temperature 1 writes one now and then) drops nothing
    # and charges nothing; a group with the group share of them past it is blatant.
    odd = [[25.0, 31.0, 12.0, 140.0, 3.0, 18.0, 33.0, 9.0]]
    assert check.judge(own, odd, ["sub|fp"]) == [True] and check.blatant == [False]
    two = [[25.0, 31.0, 12.0, 140.0, 3.0, 180.0, 33.0, 9.0]]
    assert check.judge(own, two, ["sub|fp"]) == [False] and check.blatant == [True]


def test_a_senders_normal_is_a_quantile_of_its_recent_scores() -> None:
    """Honest samples have a heavy tail: here one in 25 of a sender's samples scores 60 nats
    where the rest score 5. Its normal is the 0.99 quantile of its last 256 scores plus a 10-nat
    margin (70), so a group that happens to hold two of those samples is plausible; text far
    past its tail is not, and its window forgets old scores."""
    cfg = GuardConfig(plausibility_min_samples=8, plausibility_excess_nats=20.0,
                      plausibility_group_share=0.25, plausibility_window=256)
    check = Plausibility(cfg)
    own = [[0.5, -0.3, 1.2, 0.1, 2.0, -1.0, 0.4, 0.0]]
    samples = [60.0 if i % 25 == 0 else 5.0 for i in range(400)]
    groups = [samples[i: i + 8] for i in range(0, 400, 8)]
    assert all(check.judge(own, groups, ["peer|fp"] * len(groups)))
    assert check.threshold("peer|fp") == pytest.approx(70.0)
    assert check.judge(own, [[5.0, 60.0, 5.0, 60.0, 5.0, 5.0, 5.0, 5.0]], ["peer|fp"]) == [True]
    assert check.judge(own, [[90.0, 95.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]], ["peer|fp"]) == [False]
    # 256 samples later its tail is gone from the window: normal is 5 + 10, the node's own
    # floor (20 nats) judges
    check.judge(own, [[5.0] * 8] * 32, ["peer|fp"] * 32)
    assert check.threshold("peer|fp") == 20.0
    assert check.baselines["peer|fp"].n == 400 + 16 + 256


def test_only_a_peer_whose_groups_are_mostly_implausible_pays_for_them() -> None:
    check = Plausibility(GuardConfig())
    honest = [check.persistent("honest", i % 10 == 3) for i in range(40)]
    assert not any(honest)  # one odd group in ten: dropped, never charged
    junk = [check.persistent("junk", True) for _ in range(6)]
    assert junk == [False, False, False, True, True, True]
    assert not check.persistent("junk", False)  # a plausible group is never charged


@pytest.mark.slow
def test_junk_and_corrupted_reasoning_are_caught_by_a_real_policy(tmp_path) -> None:
    """A tiny-0.5m with a short warm start writes '<answer>N</answer>'; completions with junk
    after the answer or garbage before it score far below its own, plain answers do not."""
    cfg = lm_config(
        model={"name": "tiny-0.5m", "warm_start": True, "warm_start_steps": 150, "device": "cpu",
               "cache_dir": str(tmp_path)},
        generation={"group_size": 8, "max_new_tokens": 8},
        tasks={"families": {"arith": 1.0}, "pool_size": 8,
               "family_params": {"arith": {"ops": "+", "max_digits": 1}}},
        sapo={"local": 2, "external": 3},
        guard={"plausibility_min_samples": 8},  # one own group of 8 is reference enough here
    )
    node = Node(cfg, LMBrain.from_config(cfg, progress=False), OfflineTransport(), ident(1),
                FixedRuntime())
    for who in (HONEST, JUNK, CORRUPT):
        node.peers.touch(who.peer_id, 0.0)
    ans = [problem(i).answer for i in range(3)]
    texts = {
        # U+FFFD: bytes lost on the wire (a sampled byte that was not UTF-8) are not held
        # against honest text, and do not hide junk either.
        HONEST: [f"<answer>{ans[0]}</answer>", f"<answer>{int(ans[0]) + 1}\ufffd</answer>"],
        JUNK: [f"<answer>{ans[1]}</answer>\ufffd qzxj#@%&~^ zq~#", f"<answer>{ans[1]}1</answer>"],
        CORRUPT: [f"xq#~@z%j&q^ so <answer>{ans[2]}</answer>", f"<answer>{ans[2]}3</answer>"],
    }
    for i, who in enumerate((HONEST, JUNK, CORRUPT)):
        assert node.pool.add(group(i, completions=texts[who]), who.peer_id, 0) is None
    chosen: list[PoolEntry] = list(node.pool.entries.values())
    external = [node.rescorer.rescore(e) for e in chosen]
    assert all(g.has_signal for g in external)  # right answers: re-scoring cannot tell

    async def step():
        local = await node._rollout_local()
        return await node._plausible(local, chosen, external)

    kept_entries, kept = trio.run(step)
    assert [e.sender for e in kept_entries] == [HONEST.peer_id]
    assert len(kept) == 1 and kept[0] is external[0]
    assert node.metrics.counters["dropped:implausible"] == 2
    assert node.peers.get(JUNK.peer_id).dropped == {"implausible": 1}
    # Junk past the ceiling (100 nats) is nobody's normal: it costs its sender at once (an
    # implausible group below it would cost only a peer whose groups mostly are).
    assert node.plausibility.blatant == [False, True, True]
    assert node.guard.reputation(JUNK.peer_id, node.runtime.now()) < 1.0
    assert node.guard.reputation(HONEST.peer_id, node.runtime.now()) == 1.0
    assert list(node.pool.entries.values()) == [chosen[0]]  # the implausible ones left it

    node.cfg.guard.plausibility = False  # off: everything chosen is kept
    assert len(trio.run(lambda: node._plausible([], chosen, external))[1]) == 3


def test_a_group_past_the_ceiling_costs_only_a_sender_without_a_plausible_record() -> None:
    check = Plausibility(GuardConfig())
    # junk from its first group: charged at once
    assert check.charged("junk", True, blatant=True)
    # an honest peer with a record of plausible groups: its rare group past the ceiling is
    # dropped for free; two in a row cost it
    assert not any(check.charged("honest", False, blatant=False) for _ in range(10))
    assert not check.charged("honest", True, blatant=True)
    assert check.charged("honest", True, blatant=True)
    # an implausible group under the ceiling alone costs nothing until most groups are
    assert not any(check.charged("other", False, blatant=False) for _ in range(10))
    assert [check.charged("other", True, blatant=False) for _ in range(5)] == [
        False, False, False, True, True]
