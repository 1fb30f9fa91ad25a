"""A swarm's task space: families and param bounds, checked before anything is generated."""

from __future__ import annotations

import pytest

from swarmrl.config import ConfigError, NodeConfig, parse_config
from swarmrl.protocol.messages import FreeFormTask, TaskSpec
from swarmrl.tasks.bounds import SAFE_BOUNDS, TaskSpace, default_bounds, generic_bound
from swarmrl.tasks.families import get_family
from swarmrl.tasks.problem import TaskError


def spec(family: str, **params) -> TaskSpec:
    return TaskSpec(family=family, family_version=get_family(family).version, params=params,
                    seed=1, index=0)


def test_generic_bounds_follow_the_generators_defaults() -> None:
    assert generic_bound(4) == (0, 8) and generic_bound(1) == (0, 5)
    assert generic_bound(-100) == (-200, 0)
    assert generic_bound(0.3) == (0.0, 1.0) and generic_bound(5.0) == (0.0, 10.0)
    assert generic_bound("+,-") == 16 and generic_bound("x" * 20) == 40
    assert generic_bound(True) is None and generic_bound(None) is None


def test_shipped_bounds_cover_every_family_and_tighten_the_exponential_ones() -> None:
    b = default_bounds("count_primes")
    assert b["max_n"][1] < 10**5  # 2e7 took 12 s
    hanoi = SAFE_BOUNDS["tower_of_hanoi"]["max_disks"]
    assert default_bounds("tower_of_hanoi")["max_disks"] == hanoi
    assert default_bounds("arith")["max_digits"] == (1, 18)  # cheap at any size it accepts


def test_a_task_outside_the_space_is_named_with_its_reason() -> None:
    space = TaskSpace.build({"arith", "count_primes"}, {"arith": {"max_digits": 3}})
    assert space.check(spec("arith", max_digits=18)) is None
    assert space.check(spec("arith", max_digits=19))[0] == "out_of_bounds"
    assert space.check(spec("arith", ops="+-*+-*")) == ("out_of_bounds",
                                                         "arith: ops='+-*+-*' longer than 3 chars")
    assert space.check(spec("arith", negative=False)) is None  # true/false costs nothing
    reason, detail = space.check(spec("count_primes", max_n=20_000_000))
    assert reason == "out_of_bounds" and "max_n" in detail
    assert space.check(spec("chain_sum")) == ("foreign_family", "chain_sum")
    assert space.check(FreeFormTask(prompt="1+1=", reference_answer="2")) is None


def test_an_unbounded_param_keeps_the_default_or_the_swarms_value() -> None:
    # propositional_logic's params are bounded by the generic rule; remove one bound by hand
    space = TaskSpace.build({"basic_arithmetic"}, {"basic_arithmetic": {"format_style": "simple"}})
    fb = space.families["basic_arithmetic"]
    fixed = TaskSpace({"basic_arithmetic": type(fb)({k: v for k, v in fb.bounds.items()
                                                     if k != "format_style"},
                                                    {"format_style": ("simple",)})})
    assert fixed.check(spec("basic_arithmetic", format_style="simple")) is None
    reason, detail = fixed.check(spec("basic_arithmetic", format_style="natural"))
    assert reason == "out_of_bounds" and "not a parameter this swarm varies" in detail


def test_bounds_in_a_config_widen_narrow_and_must_hold_the_nodes_own_params() -> None:
    cfg = parse_config(NodeConfig, {"tasks": {"families": {"count_primes": 1.0},
                                              "bounds": {"count_primes": {"max_n": [2, 50]}}}})
    space = TaskSpace.build(set(cfg.tasks.families), cfg.tasks.family_params, cfg.tasks.bounds)
    assert space.check(spec("count_primes", max_n=60))[0] == "out_of_bounds"
    with pytest.raises(ConfigError, match="family_params.count_primes: max_n=100 outside"):
        parse_config(NodeConfig, {"tasks": {"families": {"count_primes": 1.0},
                                            "family_params": {"count_primes": {"max_n": 100}},
                                            "bounds": {"count_primes": {"max_n": [2, 50]}}}})
    with pytest.raises(ConfigError, match=r"bounds of arith.terms: a number range is \[lo, hi\]"):
        parse_config(NodeConfig, {"tasks": {"bounds": {"arith": {"terms": [5, 2]}}}})
    with pytest.raises(ConfigError, match="bounds name family 'chain_sum'"):
        parse_config(NodeConfig, {"tasks": {"bounds": {"chain_sum": {"min_terms": [2, 3]}}}})


def test_a_creators_search_space_must_lie_inside_the_task_space() -> None:
    space = TaskSpace.build({"arith"})
    space.check_search_space({"arith": {"max_digits": [1, 2, 18]}})
    with pytest.raises(TaskError, match="max_digits=40 outside"):
        space.check_search_space({"arith": {"max_digits": [1, 40]}})
    space.check_search_space({"chain_sum": {"min_terms": [2]}})  # not ours: peers decide
    with pytest.raises(ConfigError, match="selfplay.search_space.arith"):
        parse_config(NodeConfig, {"roles": ["creator"],
                                  "selfplay": {"search_space": {"arith": {"terms": [2, 99]}}}})
