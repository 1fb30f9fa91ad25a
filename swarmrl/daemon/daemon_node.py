"""The daemon's node: the one node loop with words in the log (:class:`DaemonNode`), and the
model-less brain of a bootstrap node (:class:`NullBrain`)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from swarmrl.brain.base import TrainStats
from swarmrl.node.loop import Node, StepResult

log = logging.getLogger("swarmrl.daemon")


class DaemonNode(Node):
    """The one node loop, with words in the log about steps and checkpoints, and a flag telling
    a stop signal whether a step is in flight (so it can let it finish)."""

    LOG_EVERY_S = 2.0
    """Fast steps (tiny models) are summarised: at most one step line per this many seconds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stepping = False
        self.saved_step = -1
        self._unlogged: list[StepResult] = []
        self._last_log = -float("inf")
        self._last_ckpt_log = -float("inf")

    async def train_one_step(self) -> StepResult:
        self.stepping = True
        try:
            r = await super().train_one_step()
        finally:
            self.stepping = False
        self._unlogged.append(r)
        if time.monotonic() - self._last_log >= self.LOG_EVERY_S:
            self._log_steps()
        return r

    def flush_log(self) -> None:
        if self._unlogged:
            self._log_steps()

    def _log_steps(self) -> None:
        done, self._unlogged = self._unlogged, []
        self._last_log = time.monotonic()
        rewards = [r.reward for r in done if r.reward == r.reward]
        reward = sum(rewards) / len(rewards) if rewards else float("nan")
        external = sum(len(r.external_groups) for r in done)
        span = f" (last {len(done)} steps)" if len(done) > 1 else ""
        log.info(
            "step %d: reward %.2f, %s trained%s, %d in pool, %s",
            done[-1].step, reward, _count(external, "external group"), span, len(self.pool),
            _count(len(self.transport.peers()), "peer"),
        )

    def save_checkpoint(self) -> Path | None:
        path = super().save_checkpoint()
        if path is not None:
            self.saved_step = self.step
            # Frequent checkpoints of a fast node would drown the log: say so every 10 s, and
            # always for the last one (taken while stopping).
            now = time.monotonic()
            loud = self.stopping or now - self._last_ckpt_log >= 10.0
            log.log(logging.INFO if loud else logging.DEBUG, "checkpoint saved: %s", path)
            self._last_ckpt_log = now if loud else self._last_ckpt_log
        return path


class NullBrain:
    """The brain of a bootstrap node: no model. It never trains; its card says so."""

    model_id = ""
    tokenizer_fingerprint = ""
    policy_version = 0

    def rollout(self, requests: Any, group_size: int) -> Any:
        raise RuntimeError("a bootstrap node has no model")

    def train(self, groups: Any) -> TrainStats:
        raise RuntimeError("a bootstrap node has no model")

    def save(self, root: Path, step: int, extra: dict[str, Any], keep: int) -> Path:
        raise RuntimeError("a bootstrap node has no model")

    def load(self, path: Path) -> dict[str, Any]:
        raise RuntimeError("a bootstrap node has no model")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
