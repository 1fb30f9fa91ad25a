"""Helpers shared by the simulator tests: small scenarios and a tiny LM that sometimes answers."""

from __future__ import annotations

import copy
from typing import Any

from _oracle import oracle_lm_brain

from swarmrl.brain.base import Brain
from swarmrl.config import NodeConfig
from swarmrl.simulator import Scenario, load_scenario
from swarmrl.simulator.report import node_rows
from swarmrl.simulator.runner import SimResult, make_brain
from swarmrl.simulator.scenario import NodeSpec

DEFAULTS: dict[str, Any] = {
    "tasks": {"families": {"arith": 1.0}, "pool_size": 8},
    "generation": {"group_size": 4, "max_new_tokens": 6},
    "sapo": {"local": 2, "external": 2},
    "checkpoint": {"every": 0},
}

LM_MODEL = {"model": {"name": "tiny-0.5m", "warm_start": False, "device": "cpu"}}


def scenario(nodes: list[dict[str, Any]], **kw: Any) -> Scenario:
    data: dict[str, Any] = {
        "name": "test",
        "seed": 1,
        "steps": 8,
        "defaults": copy.deepcopy(DEFAULTS),
        "nodes": nodes,
        "network": {"latency_ms": 20, "jitter_ms": 10},
    }
    data.update(kw)
    return load_scenario(data=data)


def oracle_brain(spec: NodeSpec, cfg: NodeConfig) -> Brain:
    """Stub nodes as usual; LM nodes are fresh tiny models whose first completion per group is
    the right answer (a random tiny model never answers right, so nothing would have signal)."""
    if spec.brain != "lm":
        return make_brain(spec, cfg)
    return oracle_lm_brain(cfg)


VOLATILE = {"train_seconds"}  # wall-clock figures; everything else is virtual time


def comparable(result: SimResult, summary: dict[str, Any]) -> dict[str, Any]:
    """A run's summary and every node's metrics rows, minus the wall-clock parts."""
    s = copy.deepcopy(summary)
    s["swarm"].pop("wall_seconds", None)
    rows = {
        name: [{k: v for k, v in r.items() if k not in VOLATILE} for r in rs]
        for name, rs in node_rows(result).items()
    }
    return {"summary": s, "rows": rows}
