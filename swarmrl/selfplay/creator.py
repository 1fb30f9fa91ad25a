"""What a node's self-play asks of its creator: one interface, two implementations.

``SelfPlay`` (agent.py) owns the proposals' life: it opens each one in its tracker, publishes it,
scores the swarm's attempts and closes it. A creator only writes the step's tasks and learns from
how its proposals closed. ``ParametricCreator`` (parametric.py) picks generator params with a
bandit and needs nothing of the node; ``LMCreator`` (lm_creator.py) has the node's own policy
write problems, so a step's :class:`Turn` hands it the node's sampler, and it returns GRPO groups
for the node's update once their proposals closed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from swarmrl.brain.base import Completion, RolloutRequest, ScoredGroup
from swarmrl.protocol.messages import FreeFormTask, TaskSpec
from swarmrl.selfplay.tracker import Proposal

Count = Callable[[str, int], None]
"""Adds to the node's ``selfplay:<name>`` counter (``SelfPlay._count``)."""

SampleGroup = Callable[[RolloutRequest], Awaitable[list[Completion]]]
"""One group (G completions) of the node's own policy on a request, sampled in the node's worker
(``node.runtime.run``: the brain never runs on the event loop)."""


@dataclass(frozen=True)
class Turn:
    """What a creator writes one step's proposals with."""

    step: int
    quota: int  # proposals to publish this step (selfplay.proposals_per_step; always > 0 here)
    creator_id: str  # this node's peer id: a free-form task names its creator
    recent: Sequence[str]  # questions published lately, oldest first (the agent's live deque)
    sample: SampleGroup  # the node's policy; only a creator that writes with it calls it
    count: Count


@dataclass(frozen=True)
class Draft:
    """One task a creator wrote this step, for the agent to open in its tracker and publish."""

    task: TaskSpec | FreeFormTask
    question: str
    arm: int | None = None  # the parametric creator's arm, credited when the proposal closes
    # Near-duplicate fraction of the question. None: the agent measures it when it publishes
    # the draft, so it counts this step's earlier drafts too.
    duplicate: float | None = None
    publish: bool = True  # False: opened (so it closes and earns its reward) but never sent


class Creator(Protocol):
    """A creator as ``SelfPlay`` uses it (``ParametricCreator``, ``LMCreator``)."""

    kind: str  # 'parametric' or 'lm': the key of its checkpointed state

    async def proposals(self, turn: Turn) -> list[Draft]:
        """This step's drafts, in the order the agent opens and publishes them."""
        ...

    def already_open(self, draft: Draft) -> bool:
        """The tracker already holds ``draft``'s task open (the same problem is out, so the
        draft opened nothing). Returns whether to publish it all the same."""
        ...

    def closed(self, prop: Proposal) -> None:
        """One of its proposals closed (settled or expired): its reward is fixed."""
        ...

    def ready_groups(self, count: Count) -> list[ScoredGroup]:
        """Its own generation groups that are fully scored now, to train on this step."""
        ...

    def metrics(self) -> dict[str, Any]:
        """Its ``selfplay_*`` figures for the node's step row."""
        ...

    def state(self) -> dict[str, Any]:
        """What inspect shows of it (``node.selfplay.state()["creator"]``)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """What the node checkpoints of it; empty: nothing (the policy is checkpointed anyway)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
