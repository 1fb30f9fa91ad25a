"""reasoning-gym families: resolution, params, scoring, and the scorers we refuse to run."""

from __future__ import annotations

import builtins

import pytest
from _tasks_helpers import RL_SWARM_FAMILIES

from swarmrl.protocol.messages import TaskSpec
from swarmrl.tasks import (
    TaskError,
    format_prompt,
    format_target,
    get_family,
    list_families,
    materialize,
    verify,
)
from swarmrl.tasks.rgym import UNSAFE_SCORERS, UNSUPPORTED, ReasoningGymFamily, rg_version


@pytest.mark.parametrize("name", RL_SWARM_FAMILIES)
def test_own_answer_scores_one(name: str) -> None:
    # The dataset's own answer, written as a model would, scores 1.0 through our verify path.
    family = get_family(name)
    assert isinstance(family, ReasoningGymFamily)
    assert family.version == f"rg{rg_version()}"
    for index in range(8):
        problem = materialize(family.make_spec(seed=11, index=index))
        assert problem.question and problem.answer
        assert problem.verifier == "reasoning_gym"
        for style in ("short", "instruct"):
            score = verify(problem, format_target(problem, style), style)
            assert score.reward == 1.0, (index, style, problem.answer, score)
        wrong = verify(problem, "I do not know</answer>", "short")
        assert wrong.reward < 1.0


def test_partial_credit_passes_through() -> None:
    # reasoning-gym's basic_arithmetic gives len(key)/len(answer) when the key is inside.
    problem = materialize(get_family("chain_sum").make_spec(seed=1, index=0))
    score = verify(problem, f"{problem.answer} apples</answer>", "short")
    assert 0.0 < score.reward < 1.0


def test_short_prompt_of_reasoning_gym_question() -> None:
    problem = materialize(get_family("chain_sum").make_spec(seed=1, index=0))
    assert format_prompt(problem, "short") == f"Q: {problem.question}\nA: <answer>"


def test_unknown_names_suggest_close_matches() -> None:
    with pytest.raises(TaskError, match="'chain_sum'"):
        get_family("chain_summ")
    with pytest.raises(TaskError, match="unknown task family"):
        get_family("zzzz_not_a_family")
    with pytest.raises(TaskError):
        get_family("")


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_datasets_are_refused_with_reason(name: str) -> None:
    with pytest.raises(TaskError, match="not supported"):
        get_family(name)


def test_list_families() -> None:
    names = list_families()
    assert "arith" in names and "chain_sum" in names and "acre" not in names
    assert list_families(include_reasoning_gym=False) == ["arith"]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"min_terms": 0}, "min_terms"),
        ({"max_terms": "many"}, "max_terms"),
        ({"min_digits": 1.5}, "min_digits"),
        ({"no_such_param": 1}, "no_such_param"),
        ({"seed": 3}, "seed"),
        ({"size": 3}, "size"),
        ({"allow_negation": "yes"}, "allow_negation"),
    ],
)
def test_bad_params_name_the_param(params: dict, named: str) -> None:
    with pytest.raises(TaskError, match=named):
        get_family("chain_sum").make_spec(params, seed=0, index=0)


def test_params_shape_the_items() -> None:
    family = get_family("chain_sum")
    spec = family.make_spec({"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2},
                            seed=0, index=0)
    for i in range(20):
        problem = materialize(spec.model_copy(update={"index": i}))
        expression = problem.metadata["entry"]["metadata"]["expression"]
        assert len(expression.split()) == 3


def test_sequence_params_travel_as_comma_text() -> None:
    family = get_family("basic_arithmetic")
    spec = family.make_spec({"operators": ["+", "*"], "allow_negation": False}, seed=0, index=0)
    assert spec.params["operators"] == "+,*"
    for i in range(20):
        q = materialize(spec.model_copy(update={"index": i})).question
        assert "/" not in q
    cal = get_family("calendar_arithmetic")
    spec = cal.make_spec({"tasks": "weekday_offset,is_leap_year"}, seed=0, index=0)
    task = materialize(spec).metadata["entry"]["metadata"]["task"]
    assert task in {"weekday_offset", "is_leap_year"}
    with pytest.raises(TaskError, match="tasks"):
        cal.make_spec({"tasks": "not_a_task"}, seed=0, index=0)


def test_version_mismatch_is_refused() -> None:
    with pytest.raises(TaskError, match="family_version"):
        materialize(TaskSpec(family="chain_sum", family_version="1", seed=0, index=0))


def test_unsafe_scorer_is_never_run_on_answer_text() -> None:
    # binary_matrix's own scorer eval()s the answer: a peer's completion would run as code.
    assert "binary_matrix" in UNSAFE_SCORERS
    problem = materialize(get_family("binary_matrix").make_spec(seed=0, index=0))
    payload = "setattr(__import__('builtins'), 'SWARMRL_PWNED', 1)"
    score = verify(problem, f"{payload}</answer>", "short")
    assert score.reward == 0.0
    assert not hasattr(builtins, "SWARMRL_PWNED")
    assert verify(problem, format_target(problem, "short"), "short").reward == 1.0


def test_scorer_errors_and_long_answers_score_zero() -> None:
    problem = materialize(get_family("propositional_logic").make_spec(seed=0, index=0))
    for junk in ("(" * 500, "¬" * 2000 + "P", "P ∧ " * 400 + "P", "∨∨∨", ")"):
        score = verify(problem, junk + "</answer>", "short")
        assert score.reward <= 0.05, (junk[:20], score)
