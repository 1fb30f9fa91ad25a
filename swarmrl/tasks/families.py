"""The family registry: resolve a family name to its generator.

'arith' is built in; any other name is looked up among reasoning-gym's datasets. Extra families
(e.g. from a creator) can be added with :func:`register_family`.
"""

from __future__ import annotations

import difflib
import threading

from swarmrl.tasks.arith import ArithFamily
from swarmrl.tasks.base import Family
from swarmrl.tasks.problem import TaskError

_builtin: dict[str, Family] = {"arith": ArithFamily()}
_rg_families: dict[str, Family] = {}
_lock = threading.Lock()


def register_family(family: Family, *, replace: bool = False) -> None:
    """Add a family under ``family.name`` (it shadows a reasoning-gym dataset of that name)."""
    with _lock:
        if family.name in _builtin and not replace:
            raise TaskError(f"family {family.name!r} is already registered")
        _builtin[family.name] = family


def unregister_family(name: str) -> None:
    """Remove a family added with :func:`register_family` ('arith' stays). Idempotent."""
    with _lock:
        if name != "arith":
            _builtin.pop(name, None)


def get_family(name: str) -> Family:
    """The family called ``name``: 'arith', a registered family, or a reasoning-gym dataset.

    Raises :class:`TaskError` for unknown or unsupported names, listing close matches.
    """
    if not isinstance(name, str) or not name:
        raise TaskError(f"family name must be a non-empty string, got {name!r}")
    family = _builtin.get(name) or _rg_families.get(name)
    if family is not None:
        return family
    from swarmrl.tasks import rgym

    names = rgym.dataset_names()
    if name not in names:
        candidates = sorted(set(_builtin) | set(names))
        close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise TaskError(f"unknown task family {name!r} (not built in, not a reasoning-gym "
                        f"dataset){hint}")
    with _lock:
        family = _rg_families.get(name)
        if family is None:
            family = rgym.ReasoningGymFamily(name)  # raises TaskError for unsupported datasets
            _rg_families[name] = family
    return family


def list_families(include_reasoning_gym: bool = True) -> list[str]:
    """Names :func:`get_family` accepts (reasoning-gym ones need its import, ~1 s)."""
    names = set(_builtin)
    if include_reasoning_gym:
        from swarmrl.tasks import rgym

        names |= {n for n in rgym.dataset_names() if n not in rgym.UNSUPPORTED}
    return sorted(names)
