"""materialize: one call regenerates any task."""

from __future__ import annotations

import pytest

from swarmrl.protocol.messages import FreeFormTask, TaskSpec
from swarmrl.tasks import TaskError, get_family, materialize, verify


def test_spec_regenerates_the_same_problem() -> None:
    spec = get_family("arith").make_spec({"terms": 3}, seed=5, index=9)
    a = materialize(spec)
    b = materialize(TaskSpec.model_validate(spec.model_dump()))  # as if decoded off the wire
    assert (a.question, a.answer) == (b.question, b.answer)
    assert a.task == spec and a.family == "arith"


def test_free_form_task() -> None:
    task = FreeFormTask(prompt="What is the capital of France?", reference_answer="Paris",
                        verifier="exact", creator="QmCreator")
    p = materialize(task)
    assert (p.question, p.answer, p.verifier, p.family) == (task.prompt, "Paris", "exact", "free")
    assert p.metadata["verified"] is False and p.metadata["creator"] == "QmCreator"
    assert verify(p, "<answer>paris</answer>", "instruct").reward == 1.0


@pytest.mark.parametrize("verifier", ["reasoning_gym", "no_such_verifier"])
def test_free_form_with_unusable_verifier(verifier: str) -> None:
    with pytest.raises(TaskError, match="verifier"):
        materialize(FreeFormTask(prompt="q", reference_answer="a", verifier=verifier))


def test_unknown_family_or_bad_params_from_the_wire() -> None:
    with pytest.raises(TaskError, match="unknown task family"):
        materialize(TaskSpec(family="nope", seed=0, index=0))
    with pytest.raises(TaskError, match="terms"):
        materialize(TaskSpec(family="arith", params={"terms": 10_000}, seed=0, index=0))
    with pytest.raises(TaskError, match="not a task"):
        materialize("arith")  # type: ignore[arg-type]


def test_wire_params_must_fit_the_schema() -> None:
    with pytest.raises(TaskError, match="schema"):
        get_family("basic_arithmetic").make_spec({"operators": "+," * 200}, seed=0, index=0)
