"""Helpers shared by the self-play tests: configs, a standing clock, signed wire messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from swarmrl.brain.stub import StubBrain
from swarmrl.config import NodeConfig
from swarmrl.node.loop import Node
from swarmrl.node.runtime import SIM_EPOCH
from swarmrl.protocol import Identity, encode, seal

NOW = SIM_EPOCH + 100.0


def ident(i: int) -> Identity:
    return Identity.from_private_bytes(bytes([i % 256]) * 32)


class FixedRuntime:
    def now(self) -> float:
        return NOW

    async def run(self, fn: Callable[[], Any], work_tokens: Callable[[Any], int]) -> Any:
        return fn()


class OfflineTransport:
    def learn_peer(self, peer_id: str, addrs: list[str]) -> None:
        pass

    def vouch(self, peer_id: str) -> None:
        pass

    def listen_addrs(self) -> list[str]:
        return []


def config(**kw: Any) -> NodeConfig:
    data: dict[str, Any] = {
        "name": "n",
        "steps": 4,
        "tasks": {"families": {"arith": 1.0}, "pool_size": 8},
        "generation": {"group_size": 4, "max_new_tokens": 6},
        "sapo": {"local": 2, "external": 0},
        "checkpoint": {"every": 0},
    }
    data.update(kw)
    return NodeConfig.model_validate(data)


def offline_node(cfg: NodeConfig, me: Identity) -> Node:
    return Node(cfg, StubBrain(seed=cfg.seed), OfflineTransport(), me, FixedRuntime())


def wire(msg: Any, who: Identity, seq: int = 1) -> bytes:
    return encode(seal(msg, who, seq=seq, timestamp=NOW))


def admit(node: Node, via: str, data: bytes) -> str | None:
    """Admission of one message, outside any event loop (the way tests call it)."""
    import trio

    return trio.run(node.admission.admit, via, data)
