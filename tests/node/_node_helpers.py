"""Helpers shared by the node tests: wire groups, a fixed clock, nodes and a tiny LM brain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio
import trio.testing

from swarmrl.brain.stub import StubBrain
from swarmrl.config import NodeConfig, SAPOConfig
from swarmrl.node.loop import Node
from swarmrl.node.runtime import SIM_EPOCH
from swarmrl.protocol import Identity, RolloutGroup, SamplerInfo, TaskSpec
from swarmrl.tasks import Problem, materialize
from swarmrl.tasks.sandbox import InProcessChecker

NOW = SIM_EPOCH + 100.0


def ident(i: int) -> Identity:
    """A deterministic identity per index."""
    return Identity.from_private_bytes(bytes([i % 256]) * 32)


def spec(i: int, family: str = "arith", seed: int = 7) -> TaskSpec:
    return TaskSpec(family=family, params={}, seed=seed, index=i)


def problem(i: int, family: str = "arith") -> Problem:
    return materialize(spec(i, family))


def wrong(answer: str) -> str:
    return str(int(answer) + 1)


def group(
    i: int,
    version: int = 0,
    completions: list[str] | None = None,
    claimed: list[float] | None = None,
    family: str = "arith",
) -> RolloutGroup:
    """Task i's group; by default one right and one wrong wire completion (has signal)."""
    if completions is None:
        ans = problem(i, family).answer
        completions = [f"<answer>{ans}</answer>", f"<answer>{wrong(ans)}</answer>"]
    return RolloutGroup(
        task=spec(i, family),
        completions=completions,
        sampler=SamplerInfo(policy_version=version),
        claimed_rewards=claimed,
    )


def sapo(**kw: Any) -> SAPOConfig:
    return SAPOConfig(**kw)


class FixedRuntime:
    """A runtime whose clock stands still and whose work runs inline (no trio needed)."""

    def __init__(self, now: float = NOW) -> None:
        self._now = now

    def now(self) -> float:
        return self._now

    async def run(self, fn: Callable[[], Any], work_tokens: Callable[[Any], int]) -> Any:
        return fn()


def node_config(**kw: Any) -> NodeConfig:
    """A small stub-friendly config: arith pool, G=4, 2 local + 2 external, no checkpoints."""
    data: dict[str, Any] = {
        "name": "n",
        "steps": 4,
        "tasks": {"families": {"arith": 1.0}, "pool_size": 8},
        "generation": {"group_size": 4, "max_new_tokens": 6},
        "sapo": {"local": 2, "external": 2},
        "checkpoint": {"every": 0},
    }
    for key, value in kw.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return NodeConfig.model_validate(data)


def lm_config(**kw: Any) -> NodeConfig:
    """tiny-0.5m without a warm start (never build the warm-start cache in tests)."""
    base = {
        "model": {"name": "tiny-0.5m", "warm_start": False, "device": "cpu"},
        "generation": {"group_size": 2, "max_new_tokens": 4},
        "grpo": {"learning_rate": 1e-3},
    }
    base.update(kw)
    return node_config(**base)


class OfflineTransport:
    """For admission-only tests: no network; remembers the addresses peer cards taught it."""

    def __init__(self) -> None:
        self.learned: dict[str, list[str]] = {}
        self.vouched: list[str] = []

    def learn_peer(self, peer_id: str, addrs: list[str]) -> None:
        self.learned[peer_id] = addrs

    def vouch(self, peer_id: str) -> None:
        self.vouched.append(peer_id)

    def listen_addrs(self) -> list[str]:
        return []


def stub_node(
    cfg: NodeConfig,
    transport: Any = None,
    identity: Identity | None = None,
    runtime: Any = None,
    out_dir: Path | None = None,
    checker: InProcessChecker | None = None,
) -> Node:
    """A node with a stub brain. Peers' tasks are checked in this process unless ``checker``
    says otherwise: a sandbox's worker thread under the virtual clock of :func:`run_virtual`
    lets time jump while a check is in flight (whole steps passed while the first check waited
    for the worker to spawn, and the two nodes never saw each other's groups)."""
    return Node(
        cfg,
        StubBrain(seed=cfg.seed),
        transport if transport is not None else OfflineTransport(),
        identity or ident(1),
        runtime or FixedRuntime(),
        out_dir,
        checker=checker or InProcessChecker(),
    )


def run_virtual(fn: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``fn`` under trio with a virtual clock that jumps whenever every task is blocked."""
    return trio.run(fn, clock=trio.testing.MockClock(autojump_threshold=0))




def admit(node, via: str, data: bytes) -> str | None:
    """Admission of one message, outside any event loop (the way tests call it)."""
    import trio

    return trio.run(node.admission.admit, via, data)
