"""Where problems come from and how answers are scored.

Families turn task specs into problems deterministically (``get_family``, ``materialize``), a
``TaskSampler`` makes a node's own task stream, ``format_prompt`` puts a problem to a model and
``verify`` scores a completion. No torch here: every layer may import this package.
"""

from swarmrl.tasks.arith import ArithFamily
from swarmrl.tasks.base import Family, derive_seed
from swarmrl.tasks.extract import Extracted, extract, extract_answer, has_answer_tag
from swarmrl.tasks.families import (
    get_family,
    list_families,
    register_family,
    unregister_family,
)
from swarmrl.tasks.materialize import materialize
from swarmrl.tasks.problem import Problem, TaskError
from swarmrl.tasks.prompts import (
    STYLES,
    completion_to_answer_text,
    format_prompt,
    format_target,
)
from swarmrl.tasks.sampler import TaskSampler
from swarmrl.tasks.verifiers import (
    VERIFIERS,
    Score,
    get_verifier,
    register_verifier,
    verify,
)


def __getattr__(name: str):
    # Imported lazily: it pulls in reasoning-gym (~1 s), which arith-only nodes never need.
    if name == "ReasoningGymFamily":
        from swarmrl.tasks.rgym import ReasoningGymFamily

        return ReasoningGymFamily
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "STYLES",
    "VERIFIERS",
    "ArithFamily",
    "Extracted",
    "Family",
    "Problem",
    "ReasoningGymFamily",
    "Score",
    "TaskError",
    "TaskSampler",
    "completion_to_answer_text",
    "derive_seed",
    "extract",
    "extract_answer",
    "format_prompt",
    "format_target",
    "get_family",
    "get_verifier",
    "has_answer_tag",
    "list_families",
    "materialize",
    "register_family",
    "unregister_family",
    "register_verifier",
    "verify",
]
