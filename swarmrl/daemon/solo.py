"""`swarmrl train`: one node alone, through the same node loop as the swarm (no peers)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import trio
from rich.console import Console

from swarmrl.config import NodeConfig
from swarmrl.net import MemoryNetwork
from swarmrl.node.loop import Node
from swarmrl.node.progress import make_progress
from swarmrl.node.runtime import RealRuntime
from swarmrl.protocol import Identity
from swarmrl.tasks.sandbox import InProcessChecker


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if x == x]
    return sum(xs) / len(xs) if xs else float("nan")


def train_alone(
    cfg: NodeConfig, out: Path, resume: bool = True, console: Console | None = None
) -> dict[str, Any]:
    """Train ``cfg.steps`` steps in ``out``; returns a summary of the run."""
    from swarmrl.brain.lm import LMBrain

    out.mkdir(parents=True, exist_ok=True)
    brain = LMBrain.from_config(cfg, progress=console is not None)
    ident = Identity.generate()
    t0 = time.time()

    async def main() -> Node:
        async with MemoryNetwork(seed=cfg.seed) as net:
            node = Node(cfg, brain, net.endpoint(ident.peer_id), ident, RealRuntime(), out,
                        checker=InProcessChecker())  # alone: no peer's task ever arrives
            if resume and node.resume() and console is not None:
                left = max(0, cfg.steps - node.step)
                console.print(f"resuming {out} at step {node.step} (its newest checkpoint): "
                              f"{left} more to reach --steps {cfg.steps}, the run's total; "
                              "--no-resume starts over")
            with make_progress(console, f"train {cfg.model.name}") as bar:
                task = bar.add_task("train", total=cfg.steps, completed=node.step, info="")
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_watch, node, bar, task)
                    await node.run()
                    nursery.cancel_scope.cancel()
                _update(node, bar, task)
            node.save_checkpoint()
            node.metrics.close()
            return node

    node = trio.run(main)
    rewards = [r["reward"] for r in node.metrics.history]
    secs = time.time() - t0
    return {
        "steps": node.step,
        "reward_first10": _mean(rewards[:10]),
        "reward_last10": _mean(rewards[-10:]),
        "seconds": secs,
        "seconds_per_step": secs / max(1, len(rewards)),
        "metrics": str(out / "metrics.jsonl"),
    }


async def _watch(node: Node, bar: Any, task: Any) -> None:
    while True:
        _update(node, bar, task)
        await trio.sleep(0.5)


def _update(node: Node, bar: Any, task: Any) -> None:
    recent = [r["reward"] for r in list(node.metrics.history)[-10:]]
    info = f"reward {_mean(recent):.3f}" if recent else ""
    bar.update(task, completed=node.step, info=info)
