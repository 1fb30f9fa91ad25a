"""Prompt formats and reading completions back."""

from __future__ import annotations

import pytest

from swarmrl.tasks import (
    TaskError,
    completion_to_answer_text,
    extract_answer,
    format_prompt,
    format_target,
    get_family,
    materialize,
)


def _problem():
    spec = get_family("arith").make_spec(seed=0, index=0)
    return materialize(spec)


def test_short_prompt_ends_with_open_tag() -> None:
    p = _problem()
    prompt = format_prompt(p, "short")
    assert prompt == f"Q: {p.question}\nA: <answer>"
    assert prompt.endswith("<answer>")
    assert format_target(p, "short") == f"{p.answer}</answer>"
    text = completion_to_answer_text("short", format_target(p, "short"))
    assert extract_answer(text) == p.answer


def test_instruct_prompt_asks_for_tag() -> None:
    p = _problem()
    prompt = format_prompt(p, "instruct")
    assert p.question in prompt and "<answer>" in prompt and "</answer>" in prompt
    assert "briefly" in prompt
    target = format_target(p, "instruct")
    assert completion_to_answer_text("instruct", target) == target
    assert extract_answer(target) == p.answer


def test_unknown_style() -> None:
    with pytest.raises(TaskError, match="style"):
        format_prompt(_problem(), "long")
    with pytest.raises(TaskError, match="style"):
        completion_to_answer_text("long", "x")
