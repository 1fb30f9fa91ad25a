"""The unit every other layer sees: one regenerated problem with its answer key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from swarmrl.protocol.messages import FreeFormTask, TaskSpec


class TaskError(ValueError):
    """A task cannot be generated or scored as asked (unknown family, bad params, bad version).

    A ValueError so callers that guard input from the swarm can catch one familiar type.
    """


@dataclass(frozen=True)
class Problem:
    """A question, its answer key and how to score answers to it.

    Problems may be cached and shared between threads (see ``materialize``): treat them, and
    their ``metadata``, as read-only.
    """

    question: str
    answer: str
    """The answer key as text. Empty when the family has no single answer (the verifier then
    judges the answer from ``metadata``, e.g. reasoning-gym's propositional_logic)."""
    family: str
    verifier: str
    """Name of the verifier in ``swarmrl.tasks.verifiers.VERIFIERS`` that scores answers."""
    task: TaskSpec | FreeFormTask
    metadata: dict[str, Any] = field(default_factory=dict)
