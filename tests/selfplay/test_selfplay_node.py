"""One node's self-play state: free-form verification gate, task mix, checkpointed bandit."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from _selfplay_helpers import config, ident, offline_node

from swarmrl.brain.base import Completion, ScoredGroup
from swarmrl.protocol import FreeFormTask, TaskSpec
from swarmrl.protocol.messages import task_key
from swarmrl.selfplay.agent import SelfPlayNode
from swarmrl.selfplay.freeform import FreeFormCheck


def test_free_form_tasks_are_verified_only_when_the_reference_is_the_majority() -> None:
    check = FreeFormCheck(min_answers=4)
    assert not check.add("k", [("7", True), ("8", False), ("7", True)])  # too few answers
    assert check.add("k", [("9", False)])  # reference 2, others 1 each
    assert not check.add("k", [("8", False), ("8", False)])  # '8' now ahead: overturned
    assert not check.is_verified("k")
    assert not check.add("j", [("5", False)] * 3 + [("6", True)] * 3)  # a tie is not a majority


def test_the_node_has_what_selfplay_describes_of_it() -> None:
    """selfplay/ sits below node/, so it describes its node (SelfPlayNode) instead of importing
    Node: the description must not drift from the real thing."""
    node = offline_node(config(), ident(1))
    assert isinstance(node, SelfPlayNode)
    assert node.selfplay.node is node


def test_unverified_free_form_groups_are_kept_out_of_the_update() -> None:
    node = offline_node(config(selfplay={"creator_ratio": 0.5, "free_form_min_answers": 2}),
                        ident(1))
    free = FreeFormTask(prompt="2 + 2 =", reference_answer="5")
    spec = TaskSpec(family="arith", seed=1, index=0)
    comps = [Completion("4</answer>"), Completion("4</answer>")]
    groups = [ScoredGroup("Q: 2 + 2 =\nA: <answer>", comps, [0.0, 0.0], True, task_key(free),
                          "free", "5", free),
              ScoredGroup("p", comps, [1.0, 0.0], True, task_key(spec), "arith", "1", spec)]
    node.selfplay.observe_local(groups)
    assert node.selfplay.trainable(groups) == groups[1:]
    assert node.metrics.counters["selfplay:unverified_skipped"] == 1
    assert not node.selfplay.trainable_task(free) and node.selfplay.trainable_task(spec)


def test_creator_tasks_fill_their_share_of_local_slots() -> None:
    node = offline_node(config(sapo={"local": 4, "external": 0},
                               selfplay={"creator_ratio": 0.25, "max_attempts": 1}), ident(1))
    for i in range(3):
        node.selfplay.queue.offer(TaskSpec(family="arith", seed=99, index=i), "peer", 0)
    mixes = []
    for _ in range(4):
        tasks = node.selfplay.tasks_for_step(node.sampler, 4)
        mixes.append(sum(t.seed == 99 for t in tasks))
        assert len(tasks) == 4
    assert mixes == [1, 1, 1, 0]  # one slot a step while the queue lasts, then own tasks only


def test_the_parametric_creator_resumes_with_its_arm_evidence(tmp_path: Path) -> None:
    cfg = config(roles=["creator"], selfplay={"proposals_per_step": 2})
    node = offline_node(cfg, ident(1))
    node.out_dir = tmp_path

    async def steps() -> None:
        node.transport.publish = _swallow  # type: ignore[attr-defined]
        for _ in range(3):
            await node.train_one_step()

    trio.run(steps, clock=trio.testing.MockClock(autojump_threshold=0))
    creator = node.selfplay.creator
    creator.feedback(0, 0.2, attempted=True)
    node.save_checkpoint()
    fresh = offline_node(cfg, ident(1))
    fresh.out_dir = tmp_path
    assert fresh.resume()
    assert [a.value for a in fresh.selfplay.creator.arms] == [a.value for a in creator.arms]
    assert [a.pulls for a in fresh.selfplay.creator.arms] == [a.pulls for a in creator.arms]


async def _swallow(topic: str, data: bytes) -> None:
    return None
