"""A simulation scenario: the nodes, the network between them, and what happens over time.

Loaded from TOML (``swarmrl sim --scenario FILE``) through the same config machinery as a node,
so a bad field is reported as one line naming it. Times are virtual seconds on the simulator's
clock; a node's step costs modelled time (tokens x seconds_per_token / speed).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from swarmrl.config import ControlConfig, NodeConfig, _Section, load_toml, parse_config


class NodeSpec(_Section):
    """One kind of node in the scenario (``count`` copies of it)."""

    name: str = Field(
        min_length=1,
        max_length=48,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Node name; copies are suffixed -0, -1, ...",
    )
    count: int = Field(default=1, ge=1, le=100_000, description="How many nodes like this.")
    speed: float = Field(
        default=1.0, gt=0.0, description="Compute speed factor (2 = twice as fast)."
    )
    brain: str = Field(
        default="lm",
        pattern=r"^(lm|stub)$",
        description="'lm': a real transformers policy; 'stub': the cheap per-family-skill learner.",
    )
    stub_skills: dict[str, float] = Field(
        default_factory=dict, description="Stub only: initial skill (logit) per task family."
    )
    adversary: Literal[
        "none", "liar", "forger", "junk", "corrupt", "flood", "impersonator"
    ] = Field(
        default="none",
        description="Make these nodes adversaries (simulator/adversary.py): they train like "
        "the others but publish poison: 'liar' (wrong answers claimed right), 'forger' "
        "(free-form tasks with forged answer keys), 'junk' (junk appended to right answers), "
        "'corrupt' (garbage reasoning before right answers), 'flood' (8x their share plus "
        "malformed, oversized and replayed bytes), 'impersonator' (signs as an honest peer).",
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="NodeConfig overrides for these nodes (merged over [defaults]), "
        "e.g. {model = {name = 'tiny-0.5m'}, sapo = {local = 4, external = 4}}.",
    )


class NetworkSpec(_Section):
    transport: Literal["memory", "libp2p"] = Field(
        default="memory",
        description="'memory': the in-memory network on a virtual clock (seeded, repeatable, "
        "latency/loss/partitions modelled). 'libp2p': real libp2p hosts on 127.0.0.1 and the "
        "wall clock (the real network path; link conditions are whatever loopback gives).",
    )
    latency_ms: float = Field(default=50.0, ge=0.0, description="One-way latency of every link.")
    jitter_ms: float = Field(default=10.0, ge=0.0, description="Uniform jitter added to latency.")
    loss: float = Field(default=0.0, ge=0.0, le=1.0, description="Probability a message is lost.")
    bandwidth_mbps: float = Field(default=100.0, gt=0.0, description="Per-link bandwidth.")
    fanout: int | None = Field(
        default=None,
        ge=1,
        description="Each publish reaches this many random peers (None = all); like gossip's "
        "bounded mesh, it keeps 1000-node simulations linear in the number of nodes.",
    )


class PartitionEvent(_Section):
    """From ``at_s`` to ``until_s`` the named groups of nodes cannot reach each other."""

    at_s: float = Field(ge=0.0, description="Virtual second the partition starts.")
    until_s: float = Field(gt=0.0, description="Virtual second it heals.")
    groups: list[list[str]] = Field(min_length=2, description="Node names (or name prefixes).")


class ChurnEvent(_Section):
    """A node leaves the swarm at ``leave_at_s`` and (optionally) rejoins at ``join_at_s``."""

    node: str = Field(description="Node name (or name prefix) that leaves.")
    leave_at_s: float = Field(ge=0.0, description="Virtual second the node leaves.")
    join_at_s: float | None = Field(default=None, description="None = never comes back.")


class Scenario(_Section):
    """A whole simulated swarm."""

    name: str = Field(default="scenario", max_length=64, description="Scenario name (in reports).")
    seed: int = Field(default=0, ge=0, description="Seeds network randomness and node seeds.")
    steps: int = Field(default=40, ge=1, description="Training steps per node.")
    seconds_per_token: float = Field(
        default=1e-3, gt=0.0, description="Modelled virtual cost of one token of model work."
    )
    threads: int = Field(default=1, ge=1, description="torch CPU threads for the whole simulation.")
    defaults: dict[str, Any] = Field(
        default_factory=dict, description="NodeConfig fields applied to every node."
    )
    nodes: list[NodeSpec] = Field(min_length=1, description="The kinds of node in the swarm.")
    network: NetworkSpec = Field(default_factory=NetworkSpec, description="Every link.")
    partitions: list[PartitionEvent] = Field(default_factory=list, description="Splits over time.")
    churn: list[ChurnEvent] = Field(default_factory=list, description="Leaves and rejoins.")
    control: ControlConfig = Field(
        default_factory=lambda: ControlConfig(listen=""),
        description="The control API for all the nodes (`swarmrl inspect --peer NAME`); off "
        "unless listen is set here or with `swarmrl sim --control HOST:PORT`.",
    )

    @model_validator(mode="after")
    def _names_unique(self) -> Scenario:
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError("nodes: node names must be unique")
        return self

    def node_configs(self) -> list[tuple[NodeSpec, NodeConfig]]:
        """Every node's full config: [defaults] <- node overrides <- name, seed, steps."""
        out = []
        for spec in self.nodes:
            for i in range(spec.count):
                name = spec.name if spec.count == 1 else f"{spec.name}-{i}"
                data = _merge(copy.deepcopy(self.defaults), spec.config)
                data.update(name=name, steps=self.steps)
                data.setdefault("seed", self.seed * 100_003 + len(out))
                tasks = data.setdefault("tasks", {})
                tasks.setdefault("seed", data["seed"])
                cfg = parse_config(NodeConfig, data)
                out.append((spec, cfg))
        return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = _merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def load_scenario(path: str | Path | None = None, data: dict[str, Any] | None = None) -> Scenario:
    """A scenario from a TOML file, a dict, or the embedded default (``scenarios/demo.toml``)."""
    if data is None:
        data = load_toml(path if path else default_scenario_path())
    return parse_config(Scenario, data)


def default_scenario_path() -> Path:
    return Path(__file__).parent / "scenarios" / "demo.toml"
