"""Regenerate any task, procedural or free-form, into a :class:`Problem`."""

from __future__ import annotations

import threading
from collections import OrderedDict

from swarmrl.protocol.messages import FreeFormTask, TaskSpec, task_key
from swarmrl.tasks.families import get_family
from swarmrl.tasks.problem import Problem, TaskError
from swarmrl.tasks.verifiers import VERIFIERS

FREE_FAMILY = "free"
"""``Problem.family`` of free-form tasks."""
FAMILY_ONLY_VERIFIERS = frozenset({"reasoning_gym"})
"""Verifiers that need a generated entry and so cannot score free-form text."""

_CACHE_SIZE = 1024
_cache: OrderedDict[str, Problem] = OrderedDict()
_lock = threading.Lock()


def _free(task: FreeFormTask) -> Problem:
    if task.verifier not in VERIFIERS or task.verifier in FAMILY_ONLY_VERIFIERS:
        usable = sorted(set(VERIFIERS) - FAMILY_ONLY_VERIFIERS)
        raise TaskError(f"free-form task names verifier {task.verifier!r}; "
                        f"usable: {', '.join(usable)}")
    return Problem(
        question=task.prompt,
        answer=task.reference_answer,
        family=FREE_FAMILY,
        verifier=task.verifier,
        task=task,
        # The reference answer is the creator's claim, not a fact, until our solvers agree.
        metadata={"verified": False, "creator": task.creator, "created_round": task.created_round},
    )


def materialize(task: TaskSpec | FreeFormTask) -> Problem:
    """The problem of ``task``: regenerated from its spec, or taken from its free-form text.

    Results are cached by task key (the same task recurs in many rollout groups); the returned
    Problem is shared, so do not mutate it. Raises :class:`TaskError` for tasks this node cannot
    reproduce (unknown family or version, bad params, unknown verifier).
    """
    if not isinstance(task, (TaskSpec, FreeFormTask)):
        raise TaskError(f"not a task: {type(task).__name__}")
    key = task_key(task)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    problem = get_family(task.family).generate(task) if isinstance(task, TaskSpec) else _free(task)
    with _lock:
        _cache[key] = problem
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return problem


def remember(task: TaskSpec | FreeFormTask, problem: Problem) -> None:
    """Cache a problem generated elsewhere (the sandbox's worker) as ``task``'s."""
    key = task_key(task)
    with _lock:
        _cache[key] = problem
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


def clear_cache() -> None:
    with _lock:
        _cache.clear()
