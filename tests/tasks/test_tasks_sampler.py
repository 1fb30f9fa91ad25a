"""TaskSampler: deterministic, weighted, pooled, resumable."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from pydantic import ValidationError

from swarmrl.config import TaskConfig
from swarmrl.protocol.messages import task_key
from swarmrl.tasks import TaskError, TaskSampler, get_family, materialize
from swarmrl.tasks.sampler import TaskMix


def _cfg(**kw) -> TaskConfig:
    return TaskConfig(**kw)


def _keys(specs) -> list[str]:
    return [task_key(s) for s in specs]


def test_the_tasks_config_is_what_the_sampler_describes() -> None:
    """tasks/ sits below config/, so the sampler describes the config it reads (TaskMix)
    instead of importing TaskConfig: the description must not drift from the real thing."""
    assert isinstance(TaskConfig(), TaskMix)


def test_same_config_and_seed_same_stream() -> None:
    cfg = _cfg(families={"arith": 1.0, "chain_sum": 1.0}, seed=3)
    assert _keys(TaskSampler(cfg, 7).sample(50)) == _keys(TaskSampler(cfg, 7).sample(50))
    assert _keys(TaskSampler(cfg, 7).sample(50)) != _keys(TaskSampler(cfg, 8).sample(50))
    other = _cfg(families={"arith": 1.0, "chain_sum": 1.0}, seed=4)
    assert _keys(TaskSampler(cfg, 7).sample(50)) != _keys(TaskSampler(other, 7).sample(50))


def test_sample_in_pieces_equals_sample_at_once() -> None:
    cfg = _cfg(families={"arith": 2.0, "chain_sum": 1.0})
    a = TaskSampler(cfg, 1)
    pieces = a.sample(3) + a.sample(0) + a.sample(7) + [a.next()]
    assert _keys(pieces) == _keys(TaskSampler(cfg, 1).sample(11))


def test_family_order_in_config_does_not_matter() -> None:
    a = _cfg(families={"arith": 1.0, "chain_sum": 3.0})
    b = _cfg(families={"chain_sum": 3.0, "arith": 1.0})
    assert _keys(TaskSampler(a, 0).sample(30)) == _keys(TaskSampler(b, 0).sample(30))


def test_weights_params_and_increasing_index() -> None:
    cfg = _cfg(
        families={"arith": 3.0, "chain_sum": 1.0},
        family_params={"arith": {"ops": "+-*", "terms": 3}, "chain_sum": {"max_terms": 2}},
    )
    specs = TaskSampler(cfg, 0).sample(2000)
    counts = Counter(s.family for s in specs)
    assert 0.70 < counts["arith"] / len(specs) < 0.80
    for name in ("arith", "chain_sum"):
        mine = [s for s in specs if s.family == name]
        assert [s.index for s in mine] == list(range(len(mine)))
        assert len({s.seed for s in mine}) == 1
        assert mine[0].family_version == get_family(name).version
    arith = next(s for s in specs if s.family == "arith")
    assert arith.params["ops"] == "+-*" and arith.params["terms"] == 3
    assert next(s for s in specs if s.family == "chain_sum").params == {"max_terms": 2}
    assert all(materialize(s).question for s in specs[:20])


def test_fresh_stream_does_not_repeat() -> None:
    specs = TaskSampler(_cfg(), 0).sample(300)
    assert len(set(_keys(specs))) == 300


def test_pool_recurs() -> None:
    cfg = _cfg(families={"arith": 1.0, "chain_sum": 1.0}, pool_size=8, seed=5)
    sampler = TaskSampler(cfg, 0)
    specs = sampler.sample(80)
    keys = _keys(specs)
    assert len(sampler.pool) == 8
    assert set(keys) == set(_keys(sampler.pool))
    # Shuffled passes: each pool problem exactly once per 8 draws.
    for start in range(0, 80, 8):
        assert sorted(keys[start:start + 8]) == sorted(_keys(sampler.pool))
    assert keys[:8] != keys[8:16]  # but not in the same order every pass


def test_pool_is_shared_by_nodes_of_one_config_and_walked_differently() -> None:
    cfg = _cfg(pool_size=6, seed=1)
    a, b = TaskSampler(cfg, 0), TaskSampler(cfg, 1)
    assert _keys(a.pool) == _keys(b.pool)
    assert _keys(a.sample(12)) != _keys(b.sample(12))
    c = TaskSampler(_cfg(pool_size=6, seed=2), 0)
    assert _keys(c.pool) != _keys(a.pool)


@pytest.mark.parametrize("pool_size", [0, 5])
def test_state_round_trip_continues_the_stream(pool_size: int) -> None:
    cfg = _cfg(families={"arith": 1.0, "chain_sum": 2.0}, pool_size=pool_size, seed=9)
    reference = TaskSampler(cfg, 4).sample(40)
    first = TaskSampler(cfg, 4)
    first.sample(17)
    state = json.loads(json.dumps(first.state_dict()))  # must survive JSON
    resumed = TaskSampler(cfg, 4)
    resumed.load_state_dict(state)
    assert resumed.drawn == 17
    assert _keys(resumed.sample(23)) == _keys(reference[17:])


def test_state_from_another_config_is_refused() -> None:
    state = TaskSampler(_cfg(seed=1), 0).state_dict()
    other = TaskSampler(_cfg(seed=2), 0)
    with pytest.raises(TaskError, match="different task config"):
        other.load_state_dict(state)
    other.load_state_dict(state, strict=False)
    with pytest.raises(TaskError):
        other.load_state_dict({"drawn": 3})
    with pytest.raises(TaskError):
        other.load_state_dict({**state, "version": 99})


def test_bad_config_fails_at_construction() -> None:
    with pytest.raises(ValidationError, match="families.arithm: unknown task family"):
        _cfg(families={"arithm": 1.0})  # the config says so first, naming the field
    unchecked = TaskConfig.model_construct(families={"arithm": 1.0})
    with pytest.raises(TaskError, match="unknown task family"):
        TaskSampler(unchecked, 0)  # and the sampler does not rely on it
    with pytest.raises(ValidationError, match="family_params.arith.*terms"):
        _cfg(family_params={"arith": {"terms": 0}})
    bad_params = TaskConfig.model_construct(families={"arith": 1.0},
                                            family_params={"arith": {"terms": 0}})
    with pytest.raises(TaskError, match="family_params.arith.*terms"):
        TaskSampler(bad_params, 0)
    with pytest.raises(TaskError, match="family_params.chain_sum"):
        TaskSampler(_cfg(family_params={"chain_sum": {}}), 0)
    with pytest.raises(TaskError, match="node_seed"):
        TaskSampler(_cfg(), -1)
