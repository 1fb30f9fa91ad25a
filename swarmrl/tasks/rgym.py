"""Any reasoning-gym dataset as a task family.

An item is ``dataset(name, seed=spec.seed, **params)[spec.index]``. reasoning-gym datasets
draw item ``i`` from ``Random(seed + i)`` and do no work at construction, so one dataset object
with a large virtual size serves every index; objects are cached per (name, seed, params).

reasoning-gym is imported on first use only: it takes about a second, and an arith-only node
never needs it.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from swarmrl.protocol.messages import TaskSpec
from swarmrl.tasks.base import Family
from swarmrl.tasks.problem import Problem, TaskError

VIRTUAL_SIZE = 2**31 + 1
"""Dataset size we ask for: larger than any spec index (TaskSpec.index <= 2**31)."""

_HASH_DEPENDENT = "its items depend on PYTHONHASHSEED (not reproducible across nodes)"
UNSUPPORTED: dict[str, str] = {
    # Found by generating the same items under two PYTHONHASHSEEDs (reasoning-gym 0.1.25): their
    # items depend on set/dict iteration order, so two nodes would disagree on the answer key.
    "codeio": _HASH_DEPENDENT,
    "isomorphic_strings": _HASH_DEPENDENT,
    "knight_swap": _HASH_DEPENDENT,
    "list_functions": _HASH_DEPENDENT,
    "polynomial_multiplication": _HASH_DEPENDENT,
    "ransom_note": _HASH_DEPENDENT,
    "word_ladder": _HASH_DEPENDENT + "; its size is also capped at 20000",
    # Generated eagerly at construction, and item i depends on the dataset size.
    "acre": "it generates the whole dataset at construction and items depend on its size",
    "composite": "it is a mixture of other datasets; name those datasets directly",
}

UNSAFE_SCORERS: frozenset[str] = frozenset({
    # These scorers run eval() or sympy.parse_expr() (which evals) on the answer text: a peer's
    # completion would be executed as Python. They are scored by exact match instead.
    "binary_matrix", "spiral_matrix", "string_insertion", "n_queens",
    "simple_integration", "intermediate_integration", "polynomial_multiplication",
    "puzzle24", "countdown",
})

ANSWER_CAPS: dict[str, int] = {
    # Its scorer parses by recursive string slicing: quadratic, ~3 s for 2000 chars of "¬".
    # Real conclusions are a few dozen chars.
    "propositional_logic": 96,
}
"""Longest answer (chars) a dataset's scorer is given; others get :func:`answer_cap`."""

ANSWER_PATTERNS: dict[str, re.Pattern[str]] = {
    # Its parser turns any unparsable text (")", "hello") into a variable and can grade it as a
    # trivially true conclusion (0.25): junk would earn reward. Only formulas are scored.
    "propositional_logic": re.compile(r"(?=[^A-Z]*[A-Z])[A-Z\s()\u2227\u2228\u00ac\u2192\u2194]+"),
}
"""Answers of these datasets must fullmatch the pattern before their scorer sees them."""

_RESERVED = ("seed", "size")
_CACHE_SIZE = 32


def _rg():
    import reasoning_gym  # noqa: F401  (registers every dataset)
    from reasoning_gym.factory import DATASETS

    _quiet_bf_optimizer()
    return DATASETS


@lru_cache(maxsize=1)
def _quiet_bf_optimizer() -> None:
    # bf's bundled compiler prints a "." to stdout for every program it optimizes (a leftover
    # progress print). Shadowing `print` in that one module silences it without touching
    # sys.stdout, which other threads use.
    try:
        from reasoning_gym.code.contrib.bfit.Compiler import Optimizer
    except Exception:  # pragma: no cover - layout of another reasoning-gym version
        return
    Optimizer.print = lambda *args, **kwargs: None  # type: ignore[attr-defined]


@lru_cache(maxsize=1)
def rg_version() -> str:
    # reasoning_gym.__version__ lags the distribution's version, so ask the installer.
    try:
        return importlib.metadata.version("reasoning-gym")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source checkout
        import reasoning_gym

        return str(getattr(reasoning_gym, "__version__", "unknown"))


def dataset_names() -> list[str]:
    """All registered reasoning-gym dataset names (supported or not)."""
    return sorted(_rg())


def _is_seq_field(f: dataclasses.Field, default: Any) -> bool:
    if isinstance(default, (list, tuple)):
        return True
    text = str(f.type)
    return any(t in text for t in ("list", "List", "Sequence", "tuple", "Tuple"))


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


class _Cached:
    __slots__ = ("dataset", "lock")

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        # A few datasets keep RNG state on the instance; serialize item generation per object.
        self.lock = threading.Lock()


_cache: OrderedDict[tuple, _Cached] = OrderedDict()
_cache_lock = threading.Lock()


class ReasoningGymFamily(Family):
    """One reasoning-gym dataset; ``params`` are its config's fields (minus seed and size).

    Sequence-valued config fields travel as comma-separated strings (the wire carries scalars
    only): ``operators = "+,-,*"``.
    """

    verifier = "reasoning_gym"

    def __init__(self, dataset_name: str) -> None:
        registry = _rg()
        if dataset_name in UNSUPPORTED:
            raise TaskError(f"reasoning-gym dataset {dataset_name!r} is not supported: "
                            f"{UNSUPPORTED[dataset_name]}")
        if dataset_name not in registry:
            raise TaskError(f"unknown reasoning-gym dataset {dataset_name!r}")
        self.name = dataset_name
        self.version = f"rg{rg_version()}"
        self._dataset_cls, self._config_cls = registry[dataset_name]
        self._fields = {
            f.name: f for f in dataclasses.fields(self._config_cls) if f.name not in _RESERVED
        }
        self._checked: dict[tuple, dict[str, Any]] = {}

    # --- params ---------------------------------------------------------------------------
    def check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        try:
            key = tuple(sorted((k, _freeze(v)) for k, v in params.items()))
        except TypeError as e:
            raise TaskError(f"{self.name}: params must be plain values ({e})") from None
        hit = self._checked.get(key)
        if hit is not None:
            return dict(hit)
        wire = {name: self._to_wire(name, value) for name, value in params.items()}
        self._build_config(wire, seed=0)  # raises TaskError on values the config refuses
        if len(self._checked) < 256:
            self._checked[key] = wire
        return dict(wire)

    def default_params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, f in self._fields.items():
            default = _field_default(f)
            try:
                out[name] = self._to_wire(name, default)
            except TaskError:  # no default, or one the wire cannot carry (None, a dict)
                continue
        return out

    def _to_wire(self, name: str, value: Any) -> Any:
        if name in _RESERVED:
            raise TaskError(f"{self.name}: param {name!r} is set by the task spec, not by params")
        f = self._fields.get(name)
        if f is None:
            raise TaskError(f"{self.name}: unknown param {name!r} "
                            f"(known: {', '.join(sorted(self._fields)) or 'none'})")
        if isinstance(value, (list, tuple)):
            if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
                raise TaskError(f"{self.name}: param {name!r}: list items must be numbers or text")
            if any("," in str(v) for v in value):
                raise TaskError(f"{self.name}: param {name!r}: list items may not contain ','")
            return ",".join(str(v) for v in value)
        if value is None or not isinstance(value, (bool, int, float, str)):
            raise TaskError(f"{self.name}: param {name!r} must be a bool, number or text, "
                            f"got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise TaskError(f"{self.name}: param {name!r} must be finite")
        return value

    def _from_wire(self, name: str, value: Any) -> Any:
        f = self._fields[name]
        default = _field_default(f)
        if _is_seq_field(f, default) and isinstance(value, str):
            items: list[Any] = [s.strip() for s in value.split(",") if s.strip()]
            sample = next(iter(default), None) if isinstance(default, (list, tuple)) else None
            if isinstance(sample, (int, float)) and not isinstance(sample, bool):
                try:
                    items = [type(sample)(x) for x in items]
                except ValueError:
                    raise TaskError(f"{self.name}: param {name!r}: items must be "
                                    f"{type(sample).__name__}s, got {value!r}") from None
            return items
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise TaskError(f"{self.name}: param {name!r} must be true/false, got {value!r}")
        elif isinstance(default, int):
            integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
            if isinstance(value, bool) or not integral:
                raise TaskError(f"{self.name}: param {name!r} must be an integer, got {value!r}")
            return int(value)
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TaskError(f"{self.name}: param {name!r} must be a number, got {value!r}")
            return float(value)
        elif isinstance(default, str) and not isinstance(value, str):
            raise TaskError(f"{self.name}: param {name!r} must be text, got {value!r}")
        return value

    def _build_config(self, wire: Mapping[str, Any], seed: int) -> Any:
        kwargs = {k: self._from_wire(k, v) for k, v in wire.items()}
        try:
            config = self._config_cls(**kwargs, seed=seed, size=VIRTUAL_SIZE)
            if callable(getattr(config, "validate", None)):
                config.validate()
        except TaskError:
            raise
        except Exception as e:  # reasoning-gym validates with assert; report its words
            shown = repr(dict(wire))
            shown = shown if len(shown) <= 200 else shown[:200] + "...}"
            raise TaskError(f"{self.name}: bad params {shown}: "
                            f"{type(e).__name__}: {str(e)[:300]}") from None
        return config

    # --- datasets and items ---------------------------------------------------------------
    def _cached(self, seed: int, wire: dict[str, Any]) -> _Cached:
        key = (self.name, seed, tuple(sorted((k, _freeze(v)) for k, v in wire.items())))
        with _cache_lock:
            hit = _cache.get(key)
            if hit is not None:
                _cache.move_to_end(key)
                return hit
        config = self._build_config(wire, seed)
        try:
            entry = _Cached(self._dataset_cls(config=config))
        except MemoryError:
            raise
        except Exception as e:
            raise TaskError(
                f"{self.name}: could not build dataset: {type(e).__name__}: {e}"
            ) from None
        with _cache_lock:
            entry = _cache.setdefault(key, entry)
            _cache.move_to_end(key)
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
        return entry

    def _generate(self, spec: TaskSpec, params: dict[str, Any]) -> Problem:
        cached = self._cached(spec.seed, params)
        try:
            with cached.lock:
                entry = cached.dataset[spec.index]
        except MemoryError:  # a cost, not a malformed task: the sandbox counts it as such
            raise
        except Exception as e:
            raise TaskError(f"{self.name}: could not generate item {spec.index}: "
                            f"{type(e).__name__}: {e}") from None
        answer = entry.get("answer")
        if answer is None:
            # Some datasets accept many answers and carry none; keep an example when they
            # give one (propositional_logic), else the key is empty and the scorer decides.
            answer = (entry.get("metadata") or {}).get("example_answer") or ""
        return Problem(
            question=str(entry["question"]),
            answer=str(answer),
            family=self.name,
            verifier=self.verifier,
            task=spec,
            metadata={"entry": entry},
        )

    # --- scoring --------------------------------------------------------------------------
    def score_answer(self, problem: Problem, answer: str) -> tuple[float, str]:
        """reasoning-gym's own scorer for this dataset, never raising; reward in [0, 1]."""
        cap = answer_cap(self.name, problem.answer)
        if len(answer) > cap:
            # Scorers parse untrusted text, some in superlinear time: keep their input small.
            return 0.0, f"answer longer than {cap} chars"
        pattern = ANSWER_PATTERNS.get(self.name)
        if pattern is not None and not pattern.fullmatch(answer):
            return 0.0, "answer is not in the form this dataset expects"
        if self.name in UNSAFE_SCORERS:
            ok = " ".join(answer.split()) == " ".join(problem.answer.split())
            return (1.0 if ok else 0.0), "exact match (reasoning-gym scorer evals text; bypassed)"
        spec = problem.task
        entry = problem.metadata.get("entry")
        if not isinstance(spec, TaskSpec) or not isinstance(entry, dict):
            return 0.0, "not a reasoning-gym problem"
        try:
            dataset = self._cached(spec.seed, self.check_params(spec.params)).dataset
            value = float(dataset.score_answer(answer, entry))
        except Exception as e:  # RecursionError included: scorers parse untrusted text
            return 0.0, f"reasoning-gym scorer failed: {type(e).__name__}"
        if not math.isfinite(value):
            return 0.0, "reasoning-gym scorer returned a non-finite value"
        return min(1.0, max(0.0, value)), "reasoning-gym scorer"


def answer_cap(name: str, answer_key: str) -> int:
    """How many chars of answer the scorer of dataset ``name`` is given at most."""
    return ANSWER_CAPS.get(name, max(512, 4 * len(answer_key) + 64))


def _freeze(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    hash(v)
    return (type(v).__name__, v)


def clear_cache() -> None:
    """Drop cached dataset objects (tests, or to free memory)."""
    with _cache_lock:
        _cache.clear()
