"""The built-in arithmetic family."""

from __future__ import annotations

import re

import pytest

from swarmrl.protocol.messages import TaskSpec
from swarmrl.tasks import ArithFamily, TaskError, get_family, materialize
from swarmrl.tasks.arith import evaluate


def _problems(params: dict, n: int = 200, seed: int = 1):
    family = get_family("arith")
    return [family.generate(family.make_spec(params, seed=seed, index=i)) for i in range(n)]


def test_get_family_arith() -> None:
    family = get_family("arith")
    assert isinstance(family, ArithFamily)
    assert (family.name, family.version, family.verifier) == ("arith", "1", "numeric")


def test_defaults_are_two_small_terms_of_plus_minus() -> None:
    for p in _problems({}):
        m = re.fullmatch(r"(\d{1,2}) ([+-]) (\d{1,2}) =", p.question)
        assert m, p.question
        a, op, b = int(m[1]), m[2], int(m[3])
        assert int(p.answer) == (a + b if op == "+" else a - b)
        assert p.verifier == "numeric" and p.family == "arith"


def test_answer_follows_precedence() -> None:
    assert evaluate([3, 4, 5], ["+", "*"]) == 23
    assert evaluate([3, 4, 5], ["*", "-"]) == 7
    assert evaluate([2, 3, 4, 5], ["-", "*", "*"]) == -58
    for p in _problems({"ops": "+-*", "terms": 4}):
        expression = p.metadata["expression"]
        assert int(p.answer) == eval(expression)  # our own generated text, digits and ops only


def test_digits_ops_and_terms_are_respected() -> None:
    for p in _problems({"ops": "*", "min_digits": 3, "max_digits": 3, "terms": 3}):
        nums = [int(x) for x in re.findall(r"\d+", p.question)]
        assert len(nums) == 3 and all(100 <= x <= 999 for x in nums)
        assert set(re.findall(r"[+*-]", p.question)) == {"*"}


def test_non_negative_mode() -> None:
    problems = _problems({"negative": False, "terms": 3, "ops": "-"})
    assert all(int(p.answer) >= 0 for p in problems)


def test_variety() -> None:
    questions = {p.question for p in _problems({"max_digits": 2})}
    assert len(questions) > 150


def test_ops_order_is_canonical() -> None:
    family = get_family("arith")
    a = family.make_spec({"ops": "-+"}, seed=1, index=0)
    b = family.make_spec({"ops": "+-"}, seed=1, index=0)
    assert a == b


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"ops": "/"}, "ops"), ({"ops": ""}, "ops"), ({"ops": 3}, "ops"),
        ({"terms": 1}, "terms"), ({"terms": 99}, "terms"), ({"terms": True}, "terms"),
        ({"min_digits": 0}, "min_digits"), ({"min_digits": 3, "max_digits": 2}, "max_digits"),
        ({"max_digits": 40}, "max_digits"), ({"negative": "no"}, "negative"),
        ({"digits": 2}, "digits"),
    ],
)
def test_bad_params_name_the_param(params: dict, named: str) -> None:
    with pytest.raises(TaskError, match=named):
        get_family("arith").check_params(params)


def test_version_and_family_are_checked() -> None:
    with pytest.raises(TaskError, match="family_version"):
        materialize(TaskSpec(family="arith", family_version="999", seed=0, index=0))
    with pytest.raises(TaskError, match="not 'arith'"):
        get_family("arith").generate(TaskSpec(family="chain_sum", seed=0, index=0))


def test_task_error_is_a_value_error() -> None:
    assert issubclass(TaskError, ValueError)
