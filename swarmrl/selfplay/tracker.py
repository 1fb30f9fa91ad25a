"""A creator's ledger of its open proposals and the solve rate the swarm shows on each.

The creator never trusts a solver's claimed rewards: every completion it counts was re-scored by
the creator itself (see ``SelfPlay.observe_rollouts``). A proposal *settles* once enough
completions were counted, or *expires* after a number of steps with whatever it has; either way
its reward is then fixed and handed to the creator that made it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from swarmrl.protocol.messages import FreeFormTask, TaskSpec, task_key
from swarmrl.selfplay.learnability import Kind, proposal_reward

MAX_OPEN = 4096
"""Open proposals held at most (a creator that outpaces its solvers closes its oldest)."""
_SEEN_PER_RECORD = 256


@dataclass
class Proposal:
    """One proposed task and what the swarm did with it so far."""

    key: str
    task: TaskSpec | FreeFormTask
    question: str
    created_step: int
    arm: int | None = None  # parametric creator: which arm made it
    duplicate_fraction: float = 0.0
    attempts: int = 0  # completions counted
    solved: float = 0.0  # sum of their correctness in [0, 1]
    groups: int = 0
    seen: set[str] = field(default_factory=set)  # rollout content ids already counted
    reward: float | None = None  # fixed when the proposal closes
    closed_by: str = ""  # 'settled' or 'expired'

    @property
    def p(self) -> float:
        return self.solved / self.attempts if self.attempts else 0.0


class ProposalTracker:
    def __init__(
        self, settle: int, ttl_steps: int, kind: Kind, penalty: float
    ) -> None:
        self.settle = settle
        self.ttl = ttl_steps
        self.kind = kind
        self.penalty = penalty
        self.open: OrderedDict[str, Proposal] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        return key in self.open

    def add(
        self,
        task: TaskSpec | FreeFormTask,
        question: str,
        step: int,
        arm: int | None = None,
        duplicate_fraction: float = 0.0,
    ) -> Proposal | None:
        """Open a proposal; None if the same task is already open (nothing new to learn)."""
        key = task_key(task)
        if key in self.open:
            return None
        prop = Proposal(key, task, question, step, arm, duplicate_fraction)
        self.open[key] = prop
        return prop

    def observe(self, key: str, correct: list[float], content_id: str) -> bool:
        """Count one rollout group of an open proposal (once per content id)."""
        prop = self.open.get(key)
        if prop is None or content_id in prop.seen or not correct:
            return False
        if len(prop.seen) < _SEEN_PER_RECORD:
            prop.seen.add(content_id)
        prop.attempts += len(correct)
        prop.solved += sum(min(1.0, max(0.0, c)) for c in correct)
        prop.groups += 1
        return True

    def close_due(self, step: int) -> list[Proposal]:
        """Close proposals that settled or expired by ``step``; returns them, reward fixed."""
        closed = []
        for key, prop in list(self.open.items()):
            if prop.attempts >= self.settle:
                closed.append(self._close(key, "settled"))
            elif step - prop.created_step >= self.ttl:
                closed.append(self._close(key, "expired"))
        while len(self.open) > MAX_OPEN:
            closed.append(self._close(next(iter(self.open)), "expired"))
        return closed

    def _close(self, key: str, how: str) -> Proposal:
        prop = self.open.pop(key)
        prop.closed_by = how
        prop.reward = proposal_reward(
            prop.p, prop.attempts, prop.duplicate_fraction, self.kind, self.penalty
        )
        prop.seen.clear()
        return prop

    def summary(self) -> dict[str, Any]:
        return {"open": len(self.open)}
