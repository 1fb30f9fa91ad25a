"""Adversaries in the simulator, against the guard: 2 of 8 nodes publish poison."""

from __future__ import annotations

import pytest

from swarmrl.simulator.exp_guard import _arm, guard_scenario_path, measure
from swarmrl.simulator.runner import run_scenario
from swarmrl.simulator.scenario import load_scenario


def _run(kind: str, guard: bool, steps: int = 15) -> dict:
    base = load_scenario(guard_scenario_path())
    base.steps = steps
    res = run_scenario(_arm(base, 0, kind, guard), None)
    m = measure(res)
    m["steps"] = [sn.node.step for sn in res.nodes]
    bad = {sn.node.peer_id for sn in res.nodes if sn.spec.adversary != "none"}
    m["pooled_poison"] = sum(
        e.sender in bad for sn in res.nodes if sn.spec.adversary == "none"
        for e in sn.node.pool.entries.values()
    )
    return m


@pytest.mark.parametrize("kind", ["liar", "forger", "flood", "impersonator"])
def test_the_guard_keeps_poison_out_of_training(kind: str) -> None:
    m = _run(kind, guard=True)
    assert m["poisoned"] == 0.0, m
    assert all(s == 15 for s in m["steps"])  # every node, honest or not, kept running
    expected = {"liar": "claim_mismatch", "forger": "unverified_task", "flood": "ignored_peer",
                "impersonator": "malformed"}[kind]
    assert m["drops"].get(expected, 0) > 0, m["drops"]


def test_without_the_guard_forged_answer_keys_reach_the_pool_but_not_training() -> None:
    """Guard off, the forger's groups get into the honest pools; self-play's rule (train on a
    free-form task only once our own solvers agree with its key) still keeps them out of
    training, so the forgery is stopped twice."""
    m = _run("forger", guard=False)
    assert m["poisoned"] == 0.0
    assert "unverified_task" not in m["drops"]
    assert m["pooled_poison"] > 0
    assert _run("forger", guard=True)["pooled_poison"] == 0
