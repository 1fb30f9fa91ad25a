"""Shared by the task tests (and run as a script in subprocesses for the determinism test)."""

from __future__ import annotations

import hashlib
import json
import sys

RL_SWARM_FAMILIES = [
    "arc_1d", "basic_arithmetic", "base_conversion", "bf", "binary_matrix",
    "calendar_arithmetic", "decimal_arithmetic", "fraction_simplification",
    "propositional_logic", "chain_sum",
]
"""rl-swarm's nine reasoning-gym families plus chain_sum (the tiny-model family)."""

DETERMINISM_CASES: list[tuple[str, dict, int, int]] = [
    ("arith", {}, 0, 0),
    ("arith", {"ops": "+-*", "terms": 4, "max_digits": 3}, 7, 12345),
    ("arith", {"negative": False, "terms": 3}, 2**63 - 1, 2**31),
] + [(name, {}, seed, index) for name in RL_SWARM_FAMILIES for seed, index in ((1, 0), (99, 7))]


def problem_digest(problem) -> str:
    data = [problem.question, problem.answer, problem.family, problem.verifier, problem.metadata]
    blob = json.dumps(data, sort_keys=True, default=repr, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def digests() -> list[str]:
    from swarmrl.tasks import get_family, materialize

    out = []
    for name, params, seed, index in DETERMINISM_CASES:
        spec = get_family(name).make_spec(params, seed=seed, index=index)
        out.append(problem_digest(materialize(spec)))
    return out


if __name__ == "__main__":
    result = digests()
    # tasks/ must stay torch-free (every layer, the node's guard included, imports it).
    assert "torch" not in sys.modules, "swarmrl.tasks imported torch"
    json.dump(result, sys.stdout)
