"""Creators and solvers in the real node loop over the in-memory network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from swarmrl.brain.base import Brain, Completion, RolloutRequest
from swarmrl.config import NodeConfig
from swarmrl.protocol.messages import FreeFormTask
from swarmrl.selfplay.lm_creator import CREATOR_FAMILY
from swarmrl.simulator import load_scenario
from swarmrl.simulator.exp_selfplay import run_selfplay, selfplay_brain
from swarmrl.simulator.report import node_rows
from swarmrl.simulator.runner import make_brain, run_scenario
from swarmrl.simulator.scenario import NodeSpec

DEFAULTS: dict[str, Any] = {
    "tasks": {"families": {"arith": 1.0}},
    "generation": {"group_size": 4, "max_new_tokens": 8},
    "sapo": {"local": 2, "external": 0},
    "checkpoint": {"every": 0},
}


def swarm(nodes: list[dict[str, Any]], steps: int = 12) -> Any:
    return load_scenario(data={"name": "sp", "seed": 2, "steps": steps, "defaults": DEFAULTS,
                               "nodes": nodes, "network": {"latency_ms": 20}})


def counters(result, name: str) -> dict[str, int]:
    (sn,) = [s for s in result.nodes if s.cfg.name == name]
    return dict(sn.node.metrics.counters)


def test_a_creator_node_proposes_and_solver_nodes_attempt_its_tasks() -> None:
    sc = swarm([
        {"name": "solver", "count": 2, "brain": "stub", "stub_skills": {"arith": 1.0},
         "config": {"selfplay": {"creator_ratio": 0.5, "settle_completions": 4}}},
        {"name": "creator", "brain": "stub",
         "config": {"roles": ["creator"], "sapo": {"local": 0},
                    "selfplay": {"proposals_per_step": 2, "settle_completions": 4}}},
    ])
    res = run_scenario(sc, None, brain_factory=selfplay_brain)
    for name in ("solver-0", "solver-1"):
        c = counters(res, name)
        assert c["admitted:task_proposal"] > 0
        assert c["selfplay:creator_tasks"] > 0
    c = counters(res, "creator")
    assert c["published:tasks"] == c["selfplay:proposed"] > 0
    assert c["selfplay:observed_groups"] > 0 and c["selfplay:settled"] > 0
    creator = next(s for s in res.nodes if s.cfg.name == "creator").node
    state = creator.selfplay.state()
    assert state["creating"] and not state["solving"]
    assert state["creator"]["feedbacks"] == c["selfplay:settled"]
    rows = node_rows(res)
    assert all(r["selfplay_arm"] for r in rows["creator"])
    assert any(r["selfplay_p"] is not None for r in rows["creator"])
    assert sum(r["selfplay_creator_tasks"] for r in rows["solver-0"]) == counters(
        res, "solver-0")["selfplay:creator_tasks"]
    assert creator.card().roles == ["creator"]


def test_plain_nodes_show_no_selfplay_figures() -> None:
    res = run_scenario(swarm([{"name": "n", "count": 2, "brain": "stub"}], steps=3), None)
    for rows in node_rows(res).values():
        assert not any(k.startswith("selfplay_") for r in rows for k in r)


def _lm_creator_brain(spec: NodeSpec, cfg: NodeConfig) -> Brain:
    """LM nodes: a fresh tiny LM whose first completion of a creator prompt is a well-formed
    problem (a random tiny LM never writes one) and of a solver prompt the right answer."""
    if spec.brain != "lm":
        return make_brain(spec, cfg)
    from swarmrl.brain.lm import LMBrain

    class WritesProblems(LMBrain):
        def rollout(self, requests: list[RolloutRequest], group_size: int):
            out = super().rollout(requests, group_size)
            for req, comps in zip(requests, out, strict=True):
                if req.family == CREATOR_FAMILY:
                    text = f"{len(comps[0].text) % 7} + 3 =\nA: {len(comps[0].text) % 7 + 3}\n"
                else:
                    text = f"{req.answer}</answer>"
                ids = self.policy.retokenize(text)
                comps[0] = Completion(text, False, ids, len(ids))
            return out

    return WritesProblems.from_config(cfg, progress=False)


@pytest.mark.slow
def test_lm_creator_proposes_free_form_tasks_and_trains_on_their_learnability() -> None:
    lm = {"model": {"name": "tiny-0.5m", "warm_start": False, "device": "cpu"}}
    sc = swarm([
        {"name": "writer", "brain": "lm",
         "config": {**lm, "roles": ["solver", "creator"],
                    "selfplay": {"creator": "lm", "creator_ratio": 0.5, "settle_completions": 4,
                                 "proposals_per_step": 4, "proposal_ttl_steps": 3}}},
        {"name": "solver", "brain": "stub", "stub_skills": {"free": 1.0},
         "config": {"selfplay": {"creator_ratio": 0.5, "free_form_min_answers": 4}}},
    ], steps=8)
    res = run_scenario(sc, None, brain_factory=_lm_creator_brain)
    c = counters(res, "writer")
    assert c["selfplay:proposed"] > 0 and c["selfplay:lm_groups_trained"] > 0
    s = counters(res, "solver")
    assert s["admitted:task_proposal"] > 0 and s["selfplay:creator_tasks"] > 0
    solver = next(sn for sn in res.nodes if sn.cfg.name == "solver").node
    assert solver.selfplay.freeform.answers  # it judged free-form tasks against their reference
    writer = next(sn for sn in res.nodes if sn.cfg.name == "writer").node
    st = writer.selfplay.state()["creator"]
    assert st["creator"] == "lm" and st["parsed"] > 0
    assert any(isinstance(sg.task, FreeFormTask) for r in writer.recent for sg in r.local_groups)
    rows = node_rows(res)["writer"]
    assert rows[-1]["selfplay_parse_rate"] is not None


def test_the_experiment_runs_both_arms_and_writes_its_table_and_plot(tmp_path: Path) -> None:
    base = Path(__file__).parents[2] / "swarmrl/simulator/scenarios/selfplay.toml"
    table = run_selfplay(tmp_path, seeds=1, steps=12, scenario=base)
    assert "| solvers only |" in table and "| with creator |" in table
    assert (tmp_path / "difficulty.png").stat().st_size > 1000
    import json

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["solvers only"][0]["creator_tasks"] == 0
    assert results["with creator"][0]["creator_tasks"] > 0
    assert results["with creator"][0]["chosen"]
