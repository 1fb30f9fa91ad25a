"""Helpers for the control API tests: a finished simulation to inspect, and live nodes training
on the wall clock in a trio thread (the way a daemon runs them beside the control server)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio

from swarmrl.brain.stub import StubBrain
from swarmrl.config import ControlConfig, NodeConfig
from swarmrl.control.inspection import Served, ServedNode
from swarmrl.control.server import ControlHandle, start_control
from swarmrl.net import LinkSpec, MemoryNetwork
from swarmrl.node.loop import Node
from swarmrl.node.runtime import PacedRuntime
from swarmrl.protocol import Identity
from swarmrl.simulator.runner import Simulation, run_scenario
from swarmrl.simulator.scenario import load_scenario
from swarmrl.simulator.serve import served

STUB_SCENARIO: dict[str, Any] = {
    "name": "inspect",
    "seed": 3,
    "steps": 12,
    "defaults": {
        "tasks": {"families": {"arith": 1.0}, "pool_size": 8},
        "generation": {"group_size": 4, "max_new_tokens": 6},
        "sapo": {"local": 2, "external": 2},
        "checkpoint": {"every": 0},
        "peer_card_every_s": 1.0,
    },
    "nodes": [{"name": "s", "count": 3, "brain": "stub"}],
    "network": {"latency_ms": 20, "jitter_ms": 5},
}


def finished_sim(out: Path) -> Simulation:
    """A 3-node stub swarm run to its end (about a second), its metrics under ``out``."""
    sims: list[Simulation] = []
    run_scenario(load_scenario(data=STUB_SCENARIO), out, serve=sims.append)
    return sims[0]


def serve(what: Served, **cfg: Any) -> ControlHandle:
    return start_control(what, ControlConfig(**{"listen": "127.0.0.1:0", **cfg}))


def serve_sim(sim: Simulation, **cfg: Any) -> ControlHandle:
    return serve(served(sim), **cfg)


def _ident(i: int) -> Identity:
    return Identity.from_private_bytes(bytes([40 + i]) * 32)


def live_config(name: str, seed: int) -> NodeConfig:
    return NodeConfig.model_validate({
        "name": name, "seed": seed, "steps": 0,
        "tasks": {"families": {"arith": 1.0}, "pool_size": 8, "seed": seed},
        "generation": {"group_size": 4, "max_new_tokens": 6},
        "sapo": {"local": 2, "external": 2},
        "checkpoint": {"every": 0},
        "peer_card_every_s": 0.5,
    })


@contextmanager
def live_nodes(n: int = 2, seconds_per_token: float = 3e-4) -> Iterator[list[Node]]:
    """``n`` stub nodes on an in-memory network training until the block ends, on a trio
    thread with the wall clock (work paced by the cost model: a few dozen steps a second)."""
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        state["token"] = trio.lowlevel.current_trio_token()
        link = LinkSpec(latency_s=0.002, jitter_s=0.0)
        async with MemoryNetwork(seed=1, default_link=link) as net, trio.open_nursery() as nursery:
            nodes = []
            for i in range(n):
                ident, cfg = _ident(i), live_config(f"live-{i}", i)
                nodes.append(Node(cfg, StubBrain(seed=i), net.endpoint(ident.peer_id), ident,
                                  PacedRuntime(seconds_per_token)))
            for node in nodes:
                nursery.start_soon(node.run, 0)
            state["nodes"], state["scope"] = nodes, nursery.cancel_scope
            ready.set()

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as e:  # surfaced by the test below, never silently
            state["error"] = e
            ready.set()

    thread = threading.Thread(target=run, name="live-nodes", daemon=True)
    thread.start()
    assert ready.wait(10), "live nodes did not start"
    assert "error" not in state, state.get("error")
    try:
        yield state["nodes"]
    finally:
        trio.from_thread.run_sync(state["scope"].cancel, trio_token=state["token"])
        thread.join(10)
    assert "error" not in state, state.get("error")


def live_served(nodes: list[Node]) -> Served:
    names = {node.peer_id: node.cfg.name for node in nodes}
    return Served("simulation", lambda: [ServedNode(node) for node in nodes], lambda: names)
