"""Verifiers on hand-made cases, the format reward, and bad input."""

from __future__ import annotations

import threading
import time

import pytest

from swarmrl.protocol.messages import FreeFormTask
from swarmrl.tasks import (
    VERIFIERS,
    Problem,
    Score,
    TaskError,
    get_family,
    materialize,
    register_verifier,
    verify,
)
from swarmrl.tasks.mathcheck import is_safe_expression, math_equal


def _arith(answer: str = "36") -> Problem:
    spec = get_family("arith").make_spec(seed=0, index=0)
    return Problem("68 - 32 =", answer, "arith", "numeric", spec)


def _free(reference: str, verifier: str) -> Problem:
    return materialize(FreeFormTask(prompt="q", reference_answer=reference, verifier=verifier))


def test_registry_has_the_named_verifiers() -> None:
    assert {"numeric", "exact", "math", "reasoning_gym"} <= set(VERIFIERS)


@pytest.mark.parametrize(
    ("completion", "reward"),
    [
        ("36</answer>", 1.0),
        (" 36 </answer>", 1.0),
        ("+36</answer>", 1.0),
        ("36.0</answer>", 1.0),
        ("37</answer>", 0.0),
        ("-36</answer>", 0.0),
        ("thirty-six</answer>", 0.0),
        ("36", 1.0),  # no closing tag: the last-number fallback still reads 36
        ("3 6</answer>", 0.0),
        ("", 0.0),
        ("</answer>", 0.0),
        ("36</answer>\x00", 0.0),
    ],
)
def test_numeric_short_style(completion: str, reward: float) -> None:
    assert verify(_arith(), completion, "short").reward == reward


def test_numeric_instruct_style_and_fallbacks() -> None:
    p = _arith()
    assert verify(p, "Let me think. <answer>36</answer>", "instruct").reward == 1.0
    assert verify(p, "so \\boxed{36}", "instruct").reward == 1.0
    assert verify(p, "68 - 32 is 36", "instruct").reward == 1.0
    assert verify(p, "<answer>36</answer> or 35", "instruct").reward == 1.0
    assert verify(p, "36 or maybe <answer>35</answer>", "instruct").reward == 0.0
    assert verify(p, "I give up", "instruct").reward == 0.0
    assert verify(_arith("-1024"), "<answer>-1,024</answer>", "instruct").reward == 1.0


def test_format_reward_mix() -> None:
    p = _arith()
    s = verify(p, "36</answer>", "short", format_weight=0.2)
    assert s == Score(1.0, s.reason, correct=1.0, well_formed=True, answer="36")
    s = verify(p, "35</answer>", "short", format_weight=0.2)
    assert s.reward == pytest.approx(0.2) and s.correct == 0.0 and s.well_formed
    s = verify(p, "36", "short", format_weight=0.2)
    assert s.reward == pytest.approx(0.8) and not s.well_formed
    for w in (float("nan"), -1.0):
        assert verify(p, "35</answer>", "short", format_weight=w).reward == 0.0
    assert verify(p, "35</answer>", "short", format_weight=5.0).reward == 1.0


def test_exact() -> None:
    p = _free("Hello   World", "exact")
    assert verify(p, "<answer>hello world</answer>", "instruct").reward == 1.0
    assert verify(p, "<answer> HELLO\nWORLD </answer>", "instruct").reward == 1.0
    assert verify(p, "<answer>hello</answer>", "instruct").reward == 0.0


@pytest.mark.parametrize(
    ("reference", "answer", "reward"),
    [
        ("\\frac{1}{2}", "0.5", 1.0),
        ("1/2", "\\frac{1}{2}", 1.0),
        ("x^2+1", "1+x^2", 1.0),
        ("\\sqrt{2}", "2^{1/2}", 1.0),
        ("3", "4", 0.0),
        ("36", "36", 1.0),
        ("1", "2^{3^{4^{5}}}", 0.0),  # refused as unsafe, falls back to comparison
        ("hello", "Hello", 1.0),  # not math: exact fallback
    ],
)
def test_math(reference: str, answer: str, reward: float) -> None:
    p = _free(reference, "math")
    assert verify(p, f"<answer>{answer}</answer>", "instruct").reward == reward


def test_math_off_the_main_thread_is_bounded() -> None:
    # math-verify's own timeouts use SIGALRM (main thread only); off it we rely on the guard.
    results: list[tuple[float, float]] = []

    def work() -> None:
        t = time.perf_counter()
        ok = verify(_free("1/2", "math"), "<answer>0.5</answer>", "instruct").reward
        bad = verify(_free("1", "math"), "<answer>10^{10^{10}}</answer>", "instruct").reward
        results.append((ok, bad, time.perf_counter() - t))

    th = threading.Thread(target=work)
    th.start()
    th.join(timeout=30)
    assert not th.is_alive()
    ok, bad, elapsed = results[0]
    assert (ok, bad) == (1.0, 0.0) and elapsed < 10


@pytest.mark.parametrize(
    "expr",
    ["2^{3^{4^{5}}}", "9^{9999999}", "99999!", "(10^{3})^{1000}", "2**3**4", "{2}^{3}^{4}",
     "\\binom{10^{30}}{10^{29}}", "1" * 50, "x" * 300, "\\prod_{i=1}^{100} i"],
)
def test_unsafe_math_is_refused(expr: str) -> None:
    assert not is_safe_expression(expr)
    assert math_equal("1", expr)[0] is None


@pytest.mark.parametrize("expr", ["x^2+1", "\\frac{1}{2}", "2^{1/2}", "5!", "x^{2n+1}", "3.14"])
def test_ordinary_math_is_allowed(expr: str) -> None:
    assert is_safe_expression(expr)


def test_reasoning_gym_verifier_uses_the_dataset_scorer() -> None:
    p = materialize(get_family("decimal_arithmetic").make_spec(seed=0, index=0))
    assert verify(p, f"{p.answer}</answer>", "short").reward == 1.0


def test_a_failing_verifier_scores_zero_with_reason() -> None:
    @register_verifier("_test_broken")
    def broken(problem: Problem, text: str) -> Score:
        raise RuntimeError("boom")

    try:
        p = Problem("q", "a", "arith", "_test_broken", _arith().task)
        s = verify(p, "a</answer>", "short")
        assert s.reward == 0.0 and "boom" in s.reason
        s = verify(Problem("q", "a", "arith", "no_such_verifier", _arith().task), "a", "short")
        assert s.reward == 0.0 and "no_such_verifier" in s.reason
    finally:
        VERIFIERS.pop("_test_broken")


def test_non_text_and_bad_style() -> None:
    assert verify(_arith(), None, "short").reward == 0.0  # type: ignore[arg-type]
    assert verify(_arith(), b"36</answer>", "short").reward == 0.0  # type: ignore[arg-type]
    with pytest.raises(TaskError, match="prompt style"):
        verify(_arith(), "36", "chatty")


JUNK = [
    "x" * 5_000_000,
    "<answer>" * 2000,
    "</answer>" * 1800,
    "<answer>" * 900 + "1" + "</answer>" * 900,
    "\\boxed{" * 2200,
    "9" * 15990 + "</answer>",
    "1." * 7990,
    "(" * 2000 + "P" + ")" * 2000 + "</answer>",
    "¬" * 2000 + "P</answer>",
    "P ∧ " * 500 + "P</answer>",
    "[" * 2000 + "</answer>",
    "1e99999999</answer>",
    "2^{3^{4^{5}}}</answer>",
    "2**" * 600 + "2</answer>",
    "\\frac{" * 500 + "</answer>",
    "36\x00</answer>",
    "\udcff\ud800 bad surrogates </answer>",
]


def test_junk_scores_zero_in_bounded_time() -> None:
    problems = [_arith(), _free("\\frac{1}{2}", "math"), _free("hello", "exact")]
    problems += [
        materialize(get_family(n).make_spec(seed=1, index=2))
        for n in ("propositional_logic", "binary_matrix", "fraction_simplification",
                  "calendar_arithmetic", "decimal_arithmetic", "basic_arithmetic")
    ]
    for p in problems:
        for junk in JUNK:
            for style in ("short", "instruct"):
                t = time.perf_counter()
                s = verify(p, junk, style, 0.1)
                elapsed = time.perf_counter() - t
                assert 0.0 <= s.reward <= 0.1 + 0.9 * 0.1, (p.family, junk[:30], s)
                assert s.reason
                assert elapsed < 1.0, (p.family, junk[:30], elapsed)
