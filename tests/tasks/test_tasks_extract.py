"""Answer extraction: tags first, then \\boxed{}, then the last number; bounded on any input."""

from __future__ import annotations

import time

import pytest

from swarmrl.tasks import extract, extract_answer, has_answer_tag


@pytest.mark.parametrize(
    ("text", "answer", "source"),
    [
        ("<answer>36</answer>", "36", "tag"),
        ("think... <answer> 36 </answer> done", "36", "tag"),
        ("<answer>1</answer> then <answer>2</answer>", "2", "tag"),
        ("<answer><answer>5</answer></answer>", "5", "tag"),
        ("<answer>5</answer></answer>", "5", "tag"),
        ("<answer>4</answer><answer>unclosed", "4", "tag"),
        ("<answer>so \\boxed{7}</answer>", "7", "tag"),
        ("the answer is \\boxed{\\frac{1}{2}}", "\\frac{1}{2}", "boxed"),
        ("\\boxed{1} and \\boxed{2", "1", "boxed"),
        ("\\boxed{{a}{b}}", "{a}{b}", "boxed"),
        ("it is 12, no wait, -13.5", "-13.5", "number"),
        ("<answer>36", "36", "number"),
        ("no digits here", None, None),
        ("", None, None),
        ("<answer></answer> 12", None, None),
        ("<answer>   </answer>", None, None),
    ],
)
def test_extraction(text: str, answer: str | None, source: str | None) -> None:
    found = extract(text)
    assert (found.answer, found.source) == (answer, source)
    assert extract_answer(text) == answer
    if answer is None:
        assert found.reason


def test_has_answer_tag() -> None:
    assert has_answer_tag("<answer>3</answer>")
    assert not has_answer_tag("<answer>3")
    assert not has_answer_tag("<answer> </answer>")
    assert not has_answer_tag("3</answer>")
    assert not has_answer_tag("<answer>3</answer>\x00")


@pytest.mark.parametrize(
    "text",
    [
        "x" * 5_000_000,
        "<answer>" * 2000,
        "</answer>" * 1800,
        "<answer>" * 900 + "1" + "</answer>" * 900,
        "\\boxed{" * 2300,
        "\\boxed" + "{" * 16000,
        "1." * 8000,
        "-" * 16000,
        "<answer>" + "9" * 16000 + "</answer>",
        "\x00" * 10000,
        "".join(chr(c) for c in range(0, 0x3000, 3)),
    ],
)
def test_adversarial_text_is_bounded(text: str) -> None:
    t = time.perf_counter()
    found = extract(text)
    assert time.perf_counter() - t < 0.5
    assert found.answer is None or len(found.answer) <= 2048


def test_too_long_or_nul_is_refused_with_reason() -> None:
    assert "longer" in extract("<answer>1</answer>" + " " * 20000).reason
    assert "NUL" in extract("<answer>1\x00</answer>").reason
    assert "longer" in extract("<answer>" + "9" * 3000 + "</answer>").reason
