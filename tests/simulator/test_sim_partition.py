"""Partitions and churn: a node cut off keeps training alone; leaving and rejoining completes."""

from __future__ import annotations

import pytest
from _sim_helpers import scenario

from swarmrl.simulator import run_scenario
from swarmrl.simulator.report import node_rows, summarize

STEPS = 15


def test_a_node_partitioned_for_the_whole_run_trains_alone() -> None:
    sc = scenario(
        [{"name": "alone", "brain": "stub"}, {"name": "pair", "count": 2, "brain": "stub"}],
        steps=STEPS,
        partitions=[{"at_s": 0, "until_s": 1e6, "groups": [["alone"], ["pair"]]}],
    )
    result = run_scenario(sc, None)
    rows = node_rows(result)
    by_name = {sn.cfg.name: sn.node for sn in result.nodes}
    alone = by_name["alone"]
    assert alone.step == STEPS
    assert [r["step"] for r in rows["alone"]] == list(range(1, STEPS + 1))
    assert all(r["groups_external"] == 0 and r["pool"] == 0 for r in rows["alone"])
    assert alone.metrics.counters["admitted:rollout_group"] == 0
    assert len(alone.peers) == 0
    assert alone.brain.policy_version > 0  # it learned from its own groups
    for name in ("pair-0", "pair-1"):
        assert by_name[name].step == STEPS
        assert sum(r["groups_external"] for r in rows[name]) > 0
        assert by_name[name].peers.get(alone.peer_id) is None


def test_after_a_partition_heals_the_cut_off_node_joins_in() -> None:
    heal = 1.0
    sc = scenario(
        [{"name": "alone", "brain": "stub"}, {"name": "pair", "count": 2, "brain": "stub"}],
        steps=STEPS,
        partitions=[{"at_s": 0, "until_s": heal, "groups": [["alone"], ["pair"]]}],
    )
    result = run_scenario(sc, None)
    rows = node_rows(result)["alone"]
    assert result.virtual_seconds > heal
    before = [r for r in rows if r["time"] <= heal]
    after = [r for r in rows if r["time"] > heal + 0.5]
    assert before and after
    assert all(r["groups_external"] == 0 for r in before)
    assert sum(r["groups_external"] for r in after) > 0
    assert result.events == ["t=0.0s partition [['alone'], ['pair']]", f"t={heal:.1f}s heal"]


def test_a_node_that_leaves_and_rejoins_completes_its_steps() -> None:
    sc = scenario(
        [{"name": "n", "count": 3, "brain": "stub"}],
        steps=STEPS,
        churn=[{"node": "n-1", "leave_at_s": 0.5, "join_at_s": 1.5}],
    )
    result = run_scenario(sc, None)
    summary = summarize(result, 0.0)
    assert [n["steps"] for n in summary["nodes"]] == [STEPS] * 3
    assert result.events == ["t=0.5s n-1 leaves", "t=1.5s n-1 rejoins"]
    churned = node_rows(result)["n-1"]
    assert [r["step"] for r in churned] == list(range(1, STEPS + 1))
    # it was away: some step took at least the time it was offline
    times = [0.0] + [r["time"] for r in churned]
    assert max(b - a for a, b in zip(times, times[1:], strict=False)) >= 1.0
    assert summary["nodes"][1]["external_groups_used"] > 0


@pytest.mark.timeout(60)  # it used to loop forever in virtual time
def test_a_node_that_leaves_for_good_does_not_stall_the_simulation() -> None:
    sc = scenario(
        [{"name": "n", "count": 3, "brain": "stub"}],
        steps=STEPS,
        churn=[{"node": "n-2", "leave_at_s": 0.5}],
    )
    result = run_scenario(sc, None)
    steps = {sn.cfg.name: sn.node.step for sn in result.nodes}
    assert steps["n-0"] == steps["n-1"] == STEPS
    assert 0 < steps["n-2"] < STEPS
    assert result.events == ["t=0.5s n-2 leaves"]
