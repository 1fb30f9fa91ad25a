"""Verifiers: named scorers of an answer text against a problem, and the one ``verify`` entry.

A verifier never raises and always returns a reward in [0, 1] with a reason: completions come
from our own sampler and from untrusted peers alike, and one bad completion must cost a node
nothing but a zero.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from swarmrl.tasks.extract import extract, has_answer_tag
from swarmrl.tasks.mathcheck import math_equal
from swarmrl.tasks.problem import Problem, TaskError
from swarmrl.tasks.prompts import STYLES, completion_to_answer_text


@dataclass(frozen=True)
class Score:
    """A verifier's judgement. ``reward`` is what training uses."""

    reward: float
    reason: str
    correct: float = 0.0
    """Correctness alone, before the format reward is mixed in."""
    well_formed: bool = False
    answer: str | None = None
    """The extracted answer (for logs and inspection)."""


Verifier = Callable[[Problem, str], Score]
VERIFIERS: dict[str, Verifier] = {}


def register_verifier(name: str) -> Callable[[Verifier], Verifier]:
    """Decorator: make ``fn(problem, answer_text) -> Score`` available under ``name``."""

    def deco(fn: Verifier) -> Verifier:
        VERIFIERS[name] = fn
        return fn

    return deco


def get_verifier(name: str) -> Verifier:
    try:
        return VERIFIERS[name]
    except KeyError:
        known = ", ".join(sorted(VERIFIERS))
        raise TaskError(f"unknown verifier {name!r} (known: {known})") from None


# --- helpers ------------------------------------------------------------------------------
_NUMBER_TEXT = re.compile(r"([+-]?)\s*([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(\.[0-9]+)?\.?")
_MAX_NUMBER_CHARS = 128


def parse_number(text: str) -> Decimal | None:
    """A plain decimal number written as text ("36", " +36 ", "-1,024", "2.50"), else None."""
    text = text.strip()
    if len(text) > _MAX_NUMBER_CHARS:
        return None
    m = _NUMBER_TEXT.fullmatch(text)
    if not m:
        return None
    sign, digits, frac = m.group(1), m.group(2).replace(",", ""), m.group(3) or ""
    try:
        return Decimal(f"{sign}{digits}{frac}")
    except InvalidOperation:  # pragma: no cover - the regex admits only valid numbers
        return None


def normalize_text(text: str) -> str:
    """Whitespace collapsed, case folded: how exact matching compares."""
    return " ".join(text.split()).casefold()


def _result(correct: float, reason: str, answer: str | None) -> Score:
    return Score(reward=correct, reason=reason, correct=correct, answer=answer)


def _extracted(text: str) -> tuple[str | None, Score | None]:
    found = extract(text)
    if found.answer is None:
        return None, _result(0.0, found.reason, None)
    return found.answer, None


# --- verifiers ----------------------------------------------------------------------------
@register_verifier("numeric")
def numeric(problem: Problem, text: str) -> Score:
    """Number equality: '36', ' +36', '36.0' all match 36."""
    answer, fail = _extracted(text)
    if fail:
        return fail
    gold = parse_number(problem.answer)
    if gold is None:
        return _result(0.0, "answer key is not a number", answer)
    got = parse_number(answer)
    if got is None:
        return _result(0.0, "answer is not a number", answer)
    ok = got == gold
    return _result(1.0 if ok else 0.0, "numeric match" if ok else "wrong number", answer)


@register_verifier("exact")
def exact(problem: Problem, text: str) -> Score:
    """Text equality after collapsing whitespace and folding case."""
    answer, fail = _extracted(text)
    if fail:
        return fail
    ok = normalize_text(answer) == normalize_text(problem.answer)
    return _result(1.0 if ok else 0.0, "exact match" if ok else "no exact match", answer)


@register_verifier("math")
def math_answer(problem: Problem, text: str) -> Score:
    """Mathematical equivalence by math-verify (``1/2`` = ``0.5`` = ``\\frac{1}{2}``), falling
    back to number and then text equality when math-verify cannot decide."""
    answer, fail = _extracted(text)
    if fail:
        return fail
    equal, why = math_equal(problem.answer, answer)
    if equal is not None:
        return _result(1.0 if equal else 0.0, why, answer)
    gold, got = parse_number(problem.answer), parse_number(answer)
    if gold is not None and got is not None:
        return _result(1.0 if gold == got else 0.0, f"{why}; numeric fallback", answer)
    ok = normalize_text(answer) == normalize_text(problem.answer)
    return _result(1.0 if ok else 0.0, f"{why}; exact fallback", answer)


@register_verifier("reasoning_gym")
def reasoning_gym(problem: Problem, text: str) -> Score:
    """The dataset's own ``score_answer`` (partial credit included) for reasoning-gym problems."""
    answer, fail = _extracted(text)
    if fail:
        return fail
    from swarmrl.tasks.families import get_family

    family = get_family(problem.family)
    value, why = family.score_answer(problem, answer)
    return _result(value, why, answer)


# --- the entry point ----------------------------------------------------------------------
def verify(
    problem: Problem,
    completion: str,
    prompt_style: str = "short",
    format_weight: float = 0.0,
) -> Score:
    """Score one completion of ``problem``: the one call nodes make, for local and swarm rollouts.

    ``reward = (1 - w) * correct + w * well_formed``, where ``well_formed`` means a complete,
    non-empty ``<answer>`` tag and ``w = format_weight``. Never raises on any completion text;
    raises :class:`TaskError` only for a prompt style that does not exist (a caller's bug).
    """
    if prompt_style not in STYLES:
        raise TaskError(f"unknown prompt style {prompt_style!r} (known: {', '.join(STYLES)})")
    w = float(format_weight)
    w = min(1.0, max(0.0, w)) if math.isfinite(w) else 0.0
    if not isinstance(completion, str):
        return Score(0.0, f"completion is {type(completion).__name__}, not text")
    text = completion_to_answer_text(prompt_style, completion)
    try:
        scorer = get_verifier(problem.verifier)
        score = scorer(problem, text)
        correct = float(score.correct)
        if not math.isfinite(correct):
            correct = 0.0
        correct = min(1.0, max(0.0, correct))
        well_formed = has_answer_tag(text)
    except Exception as e:  # a verifier bug must not stop a node: score zero and say why
        return Score(0.0, f"verifier {problem.verifier!r} failed: {type(e).__name__}: {e}"[:300])
    reward = (1.0 - w) * correct + w * (1.0 if well_formed else 0.0)
    return Score(
        reward=min(1.0, max(0.0, reward)),
        reason=score.reason,
        correct=correct,
        well_formed=well_formed,
        answer=score.answer,
    )
