"""Held-out evaluation: fixed problems of the node's own tasks, never drawn by its stream,
scored greedily and sampled every k steps, without changing what training samples."""

from __future__ import annotations

import trio
from _node_helpers import FixedRuntime, OfflineTransport, ident, lm_config

from swarmrl.brain.lm import LMBrain
from swarmrl.node.evaluation import HeldOut
from swarmrl.node.loop import Node
from swarmrl.tasks import TaskSampler, materialize


def _node(**kw) -> Node:
    cfg = lm_config(steps=4, sapo={"local": 2, "external": 0, "publish": False}, **kw)
    return Node(cfg, LMBrain.from_config(cfg, progress=False), OfflineTransport(), ident(1),
                FixedRuntime())


def test_the_held_out_set_is_fixed_shared_and_not_the_training_stream() -> None:
    a = lm_config(seed=1, eval={"problems": 32})
    b = lm_config(seed=2, tasks={"families": {"arith": 1.0}, "pool_size": 8, "seed": 3},
                  eval={"problems": 32})
    qa = [p.question for p in HeldOut(a).problems]
    assert qa == [p.question for p in HeldOut(b).problems] and len(qa) == 32
    # the same problems whatever the node's seed or pool: the families and params decide
    trained = {materialize(s).question for s in TaskSampler(a.tasks, node_seed=1).sample(256)}
    assert len(set(qa) & trained) <= 1  # none on purpose; a space this small may repeat one


def test_a_node_evaluates_every_k_steps_and_at_the_start() -> None:
    node = _node(eval={"every": 2, "on_start": True, "problems": 8, "samples": 2})

    async def run() -> None:
        for _ in range(4):
            await node.train_one_step()

    trio.run(run)
    rows = list(node.metrics.history)
    assert [("heldout_greedy" in r, "heldout_greedy_start" in r) for r in rows] == [
        (False, True), (True, False), (False, False), (True, False)]
    for r in rows[1::2]:
        assert 0.0 <= r["heldout_greedy"] <= 1.0 and 0.0 <= r["heldout_sampled"] <= 1.0


def test_evaluating_does_not_change_what_training_samples() -> None:
    """The sampler's random state is put back: a run with evaluation samples the same
    completions as one without."""

    def texts(**kw) -> list[list[str]]:
        node = _node(**kw)

        async def run() -> list[list[str]]:
            out = []
            for _ in range(3):
                r = await node.train_one_step()
                out.append([c.text for g in r.local_groups for c in g.completions])
            return out

        return trio.run(run)

    assert texts(eval={"every": 1, "on_start": True, "problems": 4}) == texts()
