"""Serve a simulation's nodes over the control API, so `swarmrl inspect --peer NAME` works on a
running (or, with `--serve-after`, a finished) simulation."""

from __future__ import annotations

from pathlib import Path

from swarmrl.config import ControlConfig
from swarmrl.control.inspection import Served, ServedNode
from swarmrl.control.server import ControlHandle, start_control
from swarmrl.simulator.runner import SimNode, Simulation


def sim_state(sn: SimNode) -> str:
    if not sn.online:
        return "offline"
    if sn.done or sn.node.step >= sn.cfg.steps:
        return "done"
    return "paused" if sn.node.control.paused else "training"


def served(sim: Simulation) -> Served:
    transport = sim.scenario.network.transport

    def nodes() -> list[ServedNode]:
        extra = {"scenario": sim.scenario.name, "transport": transport}
        return [
            ServedNode(sn.node, state=lambda sn=sn: sim_state(sn), extra=lambda: dict(extra))
            for sn in list(sim.nodes)
        ]

    def names() -> dict[str, str]:
        return {sn.node.peer_id: sn.cfg.name for sn in list(sim.nodes)}

    return Served("simulation", nodes, names)


def serve_simulation(
    sim: Simulation, cfg: ControlConfig, base: Path | None, run_dir: Path | None = None
) -> ControlHandle:
    """Start the control API (and /metrics) for every node of ``sim``; ConfigError if it can't.
    With ``run_dir``, calls need its token (see ``start_control``)."""
    return start_control(served(sim), cfg, base, run_dir=run_dir)
