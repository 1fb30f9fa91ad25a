"""Scenario files shipped in examples/ load and describe the swarm their comments promise."""

from __future__ import annotations

from pathlib import Path

from swarmrl.simulator.scenario import load_scenario

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_shared_pool_sapo_variant_gives_every_node_the_same_pool() -> None:
    sc = load_scenario(EXAMPLES / "sapo_shared.toml")
    seeds = {cfg.tasks.seed for _, cfg in sc.node_configs()}
    node_seeds = {cfg.seed for _, cfg in sc.node_configs()}
    assert len(seeds) == 1 and len(node_seeds) == 8  # one pool, eight different nodes
