"""Held-out evaluation: a brain's accuracy on fixed task sets, one set per difficulty level.

The sets are pure functions of (level, size, seed), so every node, arm and seed of an experiment
is measured on the very same problems, none of which it trained on (their generator seed is
not one a node's own stream or a creator uses). Accuracy is the mean correctness of sampled
completions (the brain's own sampling settings), scored by the same ``verify`` as training.
"""

from __future__ import annotations

from typing import Any

from swarmrl.brain.base import Brain, RolloutRequest
from swarmrl.protocol.messages import TaskSpec, task_key
from swarmrl.tasks import derive_seed, format_prompt, get_family, materialize, verify

ARITH_LEVELS: dict[str, dict[str, Any]] = {
    f"{d}d": {"ops": "+-", "min_digits": d, "max_digits": d, "terms": 2} for d in (1, 2, 3, 4, 5)
}
"""The default levels: two operands of exactly d digits, + and -."""


def heldout_sets(
    levels: dict[str, dict[str, Any]] | None = None,
    size: int = 32,
    seed: int = 0,
    family: str = "arith",
) -> dict[str, list[TaskSpec]]:
    """``size`` fixed specs per level (same on every call)."""
    fam = get_family(family)
    out = {}
    for name, params in (levels or ARITH_LEVELS).items():
        s = derive_seed("heldout", family, name, seed)
        out[name] = [fam.make_spec(params, seed=s, index=i) for i in range(size)]
    return out


def evaluate(
    brain: Brain,
    sets: dict[str, list[TaskSpec]],
    prompt_style: str = "short",
    samples: int = 4,
) -> dict[str, float]:
    """Accuracy per level: mean correctness over ``samples`` completions of every problem."""
    out = {}
    for name, specs in sets.items():
        problems = [materialize(s) for s in specs]
        requests = [
            RolloutRequest(format_prompt(p, prompt_style), p.family, task_key(s), p.answer)
            for s, p in zip(specs, problems, strict=True)
        ]
        groups = brain.rollout(requests, samples)
        scores = [
            verify(p, c.text, prompt_style, 0.0).correct
            for p, group in zip(problems, groups, strict=True)
            for c in group
        ]
        out[name] = sum(scores) / len(scores) if scores else 0.0
    return out
