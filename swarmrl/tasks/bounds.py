"""A swarm's task space: which families, and how far each generator parameter may go.

A peer chooses a task spec's parameters, and some generators cost what their parameters say:
reasoning-gym builds 10^7-digit sums, 2^22-move towers of Hanoi or 16-person knights-and-knaves
puzzles when asked. So a spec from the swarm is checked against the swarm's bounds *before*
anything is generated (a dictionary lookup per parameter), and dropped when it is outside.

Bounds per parameter:

- numbers: ``[lo, hi]``, inclusive;
- text (lists travel as comma-separated text): the longest text allowed, in characters;
- true/false: always allowed (two values cost nothing).

A parameter with no bound may only keep the generator's default or the swarm's own value for it
(``tasks.family_params``). Every family ships sane defaults (:func:`default_bounds`); a genesis
can widen or narrow any of them. The time and memory limits of the sandbox
(:mod:`swarmrl.tasks.sandbox`) are the second line behind these bounds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from swarmrl.protocol.messages import FreeFormTask, TaskSpec
from swarmrl.tasks.families import get_family
from swarmrl.tasks.problem import TaskError

Bound = tuple[float, float] | int
"""``(lo, hi)`` for a number, the longest text (chars) for text."""

SAFE_BOUNDS: dict[str, dict[str, Bound]] = {
    # Built in and cheap at any size it accepts (microseconds): its own limits are its bounds.
    "arith": {"min_digits": (1, 18), "max_digits": (1, 18), "terms": (2, 16), "ops": 3},
    # Families whose cost grows exponentially or combinatorially in a parameter, found by
    # generating every family at the corner of its generic bounds under the sandbox's limits
    # (benchmarks/task_bounds.py; figures in docs/security.md). These bounds are tighter.
    "tower_of_hanoi": {"min_disks": (1, 8), "max_disks": (1, 10), "min_pegs": (3, 4),
                       "max_pegs": (3, 5)},
    "knights_knaves": {"n_people": (2, 4), "depth_constraint": (1, 3), "width_constraint": (1, 3)},
    "futoshiki": {"min_board_size": (4, 7), "max_board_size": (4, 7), "min_difficulty": (0, 3),
                  "max_difficulty": (0, 3)},
    "jugs": {"num_jugs": (2, 4), "difficulty": (1, 12)},
    "number_sequence": {"max_terms": (4, 10), "max_complexity": (1, 3)},
    "game_of_life": {"grid_size_x": (3, 15), "grid_size_y": (3, 15), "simulation_steps": (1, 3)},
}
"""Hand-set default bounds that replace the generic rule for the parameters they name."""


def generic_bound(default: Any) -> Bound | None:
    """The default bound of a parameter whose generator default is ``default``: numbers may go
    from 0 (or twice a negative default) to twice the default (at least +4 for integers, at
    least 1.0 for fractions); text may be twice as long (at least 16 chars). None = no range
    (booleans, and parameters with no default: they keep the swarm's value)."""
    if isinstance(default, bool) or default is None:
        return None
    if isinstance(default, int):
        lo = min(0, 2 * default)
        hi = max(2 * default, default + 4) if default >= 0 else 0
        return (lo, hi)
    if isinstance(default, float):
        if not math.isfinite(default):
            return None
        return (min(0.0, 2 * default), max(2 * default, 1.0))
    if isinstance(default, str):
        return max(16, 2 * len(default))
    return None


def default_bounds(family_name: str) -> dict[str, Bound]:
    """The shipped bounds of a family: the generic rule over its defaults, then SAFE_BOUNDS."""
    family = get_family(family_name)
    bounds: dict[str, Bound] = {}
    for name, value in family.default_params().items():
        b = generic_bound(value)
        if b is not None:
            bounds[name] = b
    bounds.update(SAFE_BOUNDS.get(family_name, {}))
    return bounds


def parse_bound(family: str, param: str, raw: Any) -> Bound:
    """A bound as written in a genesis (``[lo, hi]`` or an int), checked; TaskError if not."""
    where = f"bounds of {family}.{param}"
    if isinstance(raw, (list, tuple)):
        ok = len(raw) == 2 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
            for x in raw
        )
        if not ok or raw[0] > raw[1]:
            raise TaskError(f"{where}: a number range is [lo, hi] with lo <= hi, got {raw!r}")
        return (raw[0], raw[1])
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return raw
    raise TaskError(f"{where}: write [lo, hi] for a number or a max length for text, got {raw!r}")


@dataclass(frozen=True)
class FamilyBounds:
    """One family's bounds and the values its unbounded parameters may keep."""

    bounds: Mapping[str, Bound]
    fixed: Mapping[str, tuple[Any, ...]]
    """Unbounded parameter -> values allowed (the default, and the swarm's own value)."""

    def why_not(self, params: Mapping[str, Any]) -> str | None:
        """None if every parameter is inside, else the first one outside and why."""
        for name, value in params.items():
            bound = self.bounds.get(name)
            if bound is None:
                if isinstance(value, bool) or value in self.fixed.get(name, ()):
                    continue
                return f"{name}={_shown(value)} (not a parameter this swarm varies)"
            if isinstance(bound, tuple):
                number = isinstance(value, (int, float)) and not isinstance(value, bool)
                if not number or not bound[0] <= value <= bound[1]:
                    return f"{name}={_shown(value)} outside [{bound[0]}, {bound[1]}]"
            elif not isinstance(value, str) or len(value) > bound:
                return f"{name}={_shown(value)} longer than {bound} chars"
        return None


class TaskSpace:
    """The families a node accepts from the swarm, each with its parameter bounds.

    ``check`` is what admission calls on every task from a peer, before anything is generated.
    """

    def __init__(self, families: Mapping[str, FamilyBounds]) -> None:
        self.families = dict(families)

    @classmethod
    def build(
        cls,
        families: list[str] | set[str] | frozenset[str],
        family_params: Mapping[str, Mapping[str, Any]] | None = None,
        bounds: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> TaskSpace:
        """The task space of ``families`` with shipped bounds, overridden by ``bounds``
        (as written in a genesis). The swarm's own params must lie inside: TaskError if not."""
        family_params = family_params or {}
        bounds = bounds or {}
        for name in bounds:
            if name not in families:
                raise TaskError(f"bounds name family {name!r}, which the swarm does not train on")
        out: dict[str, FamilyBounds] = {}
        for name in sorted(families):
            family = get_family(name)
            merged = default_bounds(name)
            merged.update({p: parse_bound(name, p, raw) for p, raw in bounds.get(name, {}).items()})
            try:
                own = family.check_params(family_params.get(name, {}))
            except TaskError as e:
                raise TaskError(f"family_params.{name}: {e}") from None
            defaults = family.default_params()
            fixed = {p: tuple({defaults.get(p), own.get(p)} - {None})
                     for p in set(defaults) | set(own)}
            fb = FamilyBounds(merged, {p: v for p, v in fixed.items() if p not in merged})
            why = fb.why_not(own)
            if why is not None:
                raise TaskError(f"tasks.family_params.{name}: {why} of this swarm's task space")
            out[name] = fb
        return cls(out)

    def check(self, task: TaskSpec | FreeFormTask) -> tuple[str, str] | None:
        """None if a peer's task is inside this space, else ``(reason, detail)``: the reason is
        ``foreign_family`` or ``out_of_bounds``. Free-form tasks have no family or params."""
        if not isinstance(task, TaskSpec):
            return None
        fb = self.families.get(task.family)
        if fb is None:
            return "foreign_family", task.family[:64]
        why = fb.why_not(task.params)
        return None if why is None else ("out_of_bounds", f"{task.family}: {why}")

    def check_search_space(self, search_space: Mapping[str, Mapping[str, list[Any]]]) -> None:
        """A creator's search space must lie inside the swarm's task space (its proposals
        would be dropped by every member otherwise): TaskError naming the first value outside."""
        for family, params in search_space.items():
            fb = self.families.get(family)
            if fb is None:  # not one this node trains on: the peers that do will judge it
                continue
            for param, values in params.items():
                for value in values:
                    why = fb.why_not({param: value})
                    if why is not None:
                        raise TaskError(f"selfplay.search_space.{family}: {why}; widen the "
                                        "genesis bounds or narrow the search space")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."
