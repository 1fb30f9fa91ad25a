"""The guard's plausibility check: junk or corrupted reasoning around right answers is caught
by scoring the text under the node's own policy."""

from __future__ import annotations

import math

import pytest
import trio
from _node_helpers import FixedRuntime, OfflineTransport, group, ident, lm_config, problem

from swarmrl.config import GuardConfig
from swarmrl.node.loop import Node
from swarmrl.node.plausibility import Plausibility
from swarmrl.training.lm_brain import LMBrain
from swarmrl.training.sapo import PoolEntry

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
    assert node.guard.reputation(JUNK.peer_id, node.runtime.now()) < 1.0
    assert list(node.pool.entries.values()) == [chosen[0]]  # the implausible ones left it

    node.cfg.guard.plausibility = False  # off: everything chosen is kept
    assert len(trio.run(lambda: node._plausible([], chosen, external))[1]) == 3
