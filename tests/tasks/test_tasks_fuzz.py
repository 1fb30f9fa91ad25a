"""Property: verify never raises on any completion and always returns a reward in [0, 1]."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swarmrl.protocol.messages import FreeFormTask
from swarmrl.tasks import extract_answer, get_family, materialize, verify

_PROBLEMS = []


def _problems():
    if not _PROBLEMS:
        _PROBLEMS.extend([
            materialize(get_family("arith").make_spec(seed=0, index=0)),
            materialize(get_family("chain_sum").make_spec(seed=0, index=0)),
            materialize(get_family("propositional_logic").make_spec(seed=0, index=0)),
            materialize(get_family("fraction_simplification").make_spec(seed=0, index=0)),
            materialize(FreeFormTask(prompt="q", reference_answer="\\frac{1}{2}", verifier="math")),
            materialize(FreeFormTask(prompt="q", reference_answer="Paris", verifier="exact")),
        ])
    return _PROBLEMS


# Text biased toward the pieces our parsers care about, plus anything at all.
_PIECES = st.sampled_from([
    "<answer>", "</answer>", "\\boxed{", "{", "}", "(", ")", "^", "**", "!", "-", "+", ".",
    "1", "36", "9999", "/", "\\frac{", "P", "∧", "¬", "$", " ", "\n", "\x00", "e",
])
_TEXT = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(_PIECES, st.text(max_size=5)), max_size=80).map("".join),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=_TEXT,
    style=st.sampled_from(["short", "instruct"]),
    weight=st.one_of(st.floats(min_value=-1, max_value=2), st.just(float("nan"))),
)
def test_verify_never_raises_and_in_unit_interval(text: str, style: str, weight: float) -> None:
    for problem in _problems():
        score = verify(problem, text, style, weight)
        assert isinstance(score.reward, float) and math.isfinite(score.reward)
        assert 0.0 <= score.reward <= 1.0
        assert isinstance(score.reason, str)


@settings(max_examples=150, deadline=None)
@given(text=_TEXT)
def test_extract_answer_never_raises(text: str) -> None:
    answer = extract_answer(text)
    assert answer is None or (isinstance(answer, str) and answer)
