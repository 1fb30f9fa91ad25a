"""The built-in arithmetic family: short integer expressions tiny models can learn in minutes.

Pure Python and fast (microseconds per problem), so a CPU node never needs reasoning-gym for it.
Questions are the bare expression, e.g. ``68 - 32 =``, with the usual precedence for ``*``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from swarmrl.protocol.messages import TaskSpec
from swarmrl.tasks.base import Family, derive_seed
from swarmrl.tasks.problem import Problem, TaskError

ALLOWED_OPS = "+-*"
MAX_DIGITS = 18
MAX_TERMS = 16
_RETRIES = 32

DEFAULTS: dict[str, Any] = {
    "ops": "+-",  # which operators may appear
    "min_digits": 1,  # digits per operand, drawn per operand in [min_digits, max_digits]
    "max_digits": 2,
    "terms": 2,  # operands per expression
    "negative": True,  # False: only expressions whose value is >= 0
}


def _expect(name: str, value: Any, kind: type) -> Any:
    # bool is an int subclass; a True where a count is meant is a mistake worth naming.
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise TaskError(f"arith: param {name!r} must be an integer, got {value!r}")
    if kind is not int and not isinstance(value, kind):
        raise TaskError(f"arith: param {name!r} must be {kind.__name__}, got {value!r}")
    return value


def evaluate(operands: list[int], ops: list[str]) -> int:
    """Value of ``operands`` joined by ``ops`` with ``*`` binding tighter than ``+``/``-``."""
    total, sign, product = 0, 1, operands[0]
    for op, x in zip(ops, operands[1:], strict=True):
        if op == "*":
            product *= x
        else:
            total += sign * product
            sign, product = (1 if op == "+" else -1), x
    return total + sign * product


class ArithFamily(Family):
    """add / sub / mul and chains of them; params ``ops``, ``min_digits``, ``max_digits``,
    ``terms``, ``negative`` (see :data:`DEFAULTS`)."""

    name = "arith"
    version = "1"
    verifier = "numeric"

    def check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - set(DEFAULTS))
        if unknown:
            raise TaskError(
                f"arith: unknown param {unknown[0]!r} (known: {', '.join(sorted(DEFAULTS))})"
            )
        p = {**DEFAULTS, **params}
        ops = _expect("ops", p["ops"], str)
        if not ops or any(c not in ALLOWED_OPS for c in ops):
            raise TaskError(
                f"arith: param 'ops' must be a non-empty mix of {ALLOWED_OPS!r}, got {ops!r}"
            )
        lo = _expect("min_digits", p["min_digits"], int)
        hi = _expect("max_digits", p["max_digits"], int)
        if not 1 <= lo <= MAX_DIGITS:
            raise TaskError(f"arith: param 'min_digits' must be in 1..{MAX_DIGITS}, got {lo}")
        if not lo <= hi <= MAX_DIGITS:
            raise TaskError(f"arith: param 'max_digits' must be in {lo}..{MAX_DIGITS}, got {hi}")
        terms = _expect("terms", p["terms"], int)
        if not 2 <= terms <= MAX_TERMS:
            raise TaskError(f"arith: param 'terms' must be in 2..{MAX_TERMS}, got {terms}")
        _expect("negative", p["negative"], bool)
        # Canonical order of ops, so '-+' and '+-' name the same generator (and task key).
        p["ops"] = "".join(c for c in ALLOWED_OPS if c in ops)
        return p

    def default_params(self) -> dict[str, Any]:
        return dict(DEFAULTS)

    def _generate(self, spec: TaskSpec, params: dict[str, Any]) -> Problem:
        rng = random.Random(derive_seed("arith", spec.seed, spec.index))
        ops_pool = params["ops"]
        for _ in range(_RETRIES):
            operands = [self._operand(rng, params) for _ in range(params["terms"])]
            ops = [rng.choice(ops_pool) for _ in range(params["terms"] - 1)]
            value = evaluate(operands, ops)
            if params["negative"] or value >= 0:
                break
        else:
            # Deterministic way out for op sets that rarely stay non-negative: drop the minuses.
            ops = ["+" if op == "-" else op for op in ops]
            value = evaluate(operands, ops)
        pairs = zip(ops, operands[1:], strict=True)
        expression = " ".join([str(operands[0])] + [f"{op} {x}" for op, x in pairs])
        return Problem(
            question=f"{expression} =",
            answer=str(value),
            family=self.name,
            verifier=self.verifier,
            task=spec,
            metadata={"expression": expression, "terms": len(operands)},
        )

    @staticmethod
    def _operand(rng: random.Random, params: dict[str, Any]) -> int:
        digits = rng.randint(params["min_digits"], params["max_digits"])
        low = 0 if digits == 1 else 10 ** (digits - 1)
        return rng.randint(low, 10**digits - 1)
