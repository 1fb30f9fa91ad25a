"""How much a proposed task is worth to its creator: learnability of the swarm's solve rate.

A task the swarm always solves or never solves teaches nothing (GRPO advantages are all zero);
one it solves about half the time teaches most. ``p(1-p)`` is that variance (R-Zero, eva);
``1-p`` for ``p > 0`` is Absolute Zero's proposer reward (hard but not impossible). Proposals
nobody attempted yet earn nothing. Near-duplicates of recent proposals are penalised so that a
creator cannot farm one good task.

Plain Python, no torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Kind = Literal["p(1-p)", "1-p"]
KINDS: tuple[str, ...] = ("p(1-p)", "1-p")


def learnability(p: float, attempts: int, kind: Kind = "p(1-p)") -> float:
    """Reward for a task solved at rate ``p`` over ``attempts`` completions (0 if none)."""
    if attempts <= 0:
        return 0.0
    if kind not in KINDS:
        raise ValueError(f"unknown learnability {kind!r} (known: {', '.join(KINDS)})")
    p = min(1.0, max(0.0, float(p)))
    if kind == "p(1-p)":
        return p * (1.0 - p)
    return 1.0 - p if p > 0.0 else 0.0


def max_learnability(kind: Kind = "p(1-p)") -> float:
    """The best reward a task can earn (to put rewards of both kinds on one scale)."""
    return 0.25 if kind == "p(1-p)" else 1.0


def _grams(text: str, n: int = 3) -> frozenset[str]:
    t = " ".join(text.split()).casefold()
    if len(t) <= n:
        return frozenset({t})
    return frozenset(t[i : i + n] for i in range(len(t) - n + 1))


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of character 3-grams (1.0 for texts equal up to spacing and case)."""
    ga, gb = _grams(a), _grams(b)
    return len(ga & gb) / len(ga | gb) if ga | gb else 1.0


def near_duplicate_fraction(text: str, others: Iterable[str], threshold: float) -> float:
    """Fraction of ``others`` that ``text`` nearly duplicates (similarity >= threshold)."""
    others = list(others)
    if not others:
        return 0.0
    return sum(similarity(text, o) >= threshold for o in others) / len(others)


def proposal_reward(
    p: float,
    attempts: int,
    duplicate_fraction: float,
    kind: Kind = "p(1-p)",
    penalty: float = 0.0,
) -> float:
    """Learnability minus the diversity penalty; 0 for a proposal nobody attempted."""
    if attempts <= 0:
        return 0.0
    return learnability(p, attempts, kind) - penalty * duplicate_fraction
