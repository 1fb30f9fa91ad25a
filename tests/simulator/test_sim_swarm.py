"""A small swarm of tiny LMs: rollouts cross between nodes, every node trains, reports appear."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from _sim_helpers import DEFAULTS, LM_MODEL, oracle_brain, scenario

from swarmrl.node.metrics import read_metrics
from swarmrl.simulator import run_scenario
from swarmrl.simulator.report import mean_sd, runs_mean_sd, sharing_line, write_report


@pytest.mark.slow
def test_three_lm_nodes_exchange_rollouts_and_train(tmp_path: Path) -> None:
    steps = 3
    sc = scenario([{"name": "lm", "count": 3, "brain": "lm", "config": LM_MODEL}], steps=steps)
    t0 = time.time()
    result = run_scenario(sc, tmp_path, brain_factory=oracle_brain)
    summary = write_report(result, tmp_path, time.time() - t0)

    names = [sn.cfg.name for sn in result.nodes]
    assert names == ["lm-0", "lm-1", "lm-2"]
    ids = {sn.node.peer_id for sn in result.nodes}
    for sn in result.nodes:
        node = sn.node
        assert node.step == steps
        # it heard rollout groups from both other nodes, and trained on some of them
        assert node.metrics.counters["admitted:rollout_group"] > 0
        for other in ids - {node.peer_id}:
            assert node.peers.get(other).admitted > 0
        rows = read_metrics(tmp_path / "nodes" / sn.cfg.name / "metrics.jsonl")
        assert [r["step"] for r in rows] == [1, 2, 3]
        assert sum(r["groups_external"] for r in rows) > 0
        assert rows[0]["groups_external"] == 0  # nothing has arrived before the first step
        assert all(r["groups_local"] == 2 and r["tokens"] > 0 for r in rows)
        # the policy moved: a GRPO update per step (every group has the oracle's signal)
        assert node.brain.policy_version == steps
        assert rows[-1]["policy_version"] == steps
        assert all(r["loss"] is not None for r in rows)

    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["swarm"]["nodes"] == 3
    assert [n["name"] for n in on_disk["nodes"]] == names
    assert all(n["external_groups_used"] > 0 for n in summary["nodes"])
    assert all(n["admitted"]["rollout_group"] > 0 for n in summary["nodes"])
    assert all(n["model"] == "tiny-0.5m" and n["steps"] == steps for n in summary["nodes"])
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# Simulation report: test")
    assert all(name in report for name in names)
    for png in ("reward_swarm.png", "reward_per_node.png"):
        assert (tmp_path / png).read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_the_report_puts_the_sharing_nodes_beside_one_that_trains_alone(tmp_path: Path) -> None:
    alone = {**LM_MODEL, "sapo": {"local": 4, "external": 0, "publish": False}}
    sc = scenario(
        [{"name": "lm", "count": 2, "brain": "lm", "config": LM_MODEL},
         {"name": "alone", "brain": "lm", "config": alone}],
        steps=3, defaults={**DEFAULTS, "eval": {"every": 3, "problems": 4, "samples": 0}},
    )
    result = run_scenario(sc, tmp_path, brain_factory=oracle_brain)
    summary = write_report(result, tmp_path, 1.0)
    by_name = {n["name"]: n for n in summary["nodes"]}
    assert [by_name[n]["alone"] for n in ("lm-0", "lm-1", "alone")] == [False, False, True]
    assert by_name["alone"]["external_groups_used"] == 0
    loner = next(sn.node for sn in result.nodes if sn.cfg.name == "alone")
    assert loner.metrics.counters.get("published:rollouts", 0) == 0  # it gave the swarm nothing
    assert loner.metrics.counters["published:peers"] > 0  # (only its peer card)
    for sn in result.nodes:
        info = sn.node.peers.get(loner.peer_id)
        assert info is None or info.trained == 0
    assert all(0.0 <= n["heldout_greedy"] <= 1.0 for n in summary["nodes"])
    line = sharing_line(summary["nodes"])
    assert line is not None and "the 2 nodes that share" in line and "1 training alone" in line
    assert line in (tmp_path / "report.md").read_text()
    assert sharing_line([n for n in summary["nodes"] if not n["alone"]]) is None


def test_the_tables_print_a_figure_over_seeds_as_mean_and_sd() -> None:
    assert mean_sd([1.0, 2.0, 3.0]) == "2.000 ± 1.000"
    assert mean_sd([0.5], digits=2) == "0.50 ± 0.00"  # one seed: no spread to report
    assert mean_sd([]) == "-"
    runs = [{"r": 1.0}, {"r": 3.0}, {}]  # a run without the figure is left out, not a zero
    assert runs_mean_sd(runs, "r", 1) == "2.0 ± 1.4"
    assert runs_mean_sd(runs, "missing") == "-"
