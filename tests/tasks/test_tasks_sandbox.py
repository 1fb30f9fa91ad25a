"""Peers' tasks are generated and scored in a worker with a time and memory limit."""

from __future__ import annotations

import resource
import time

import pytest
import trio

from swarmrl.protocol.messages import FreeFormTask, TaskSpec
from swarmrl.tasks import materialize, verify
from swarmrl.tasks.families import get_family
from swarmrl.tasks.sandbox import CheckFailed, InProcessChecker, Limits, Sandbox


@pytest.fixture(scope="module")
def sandbox():
    sb = Sandbox(Limits(timeout_s=2.0, memory_mb=1536, max_text_chars=20_000))
    trio.run(sb.warm_up)
    yield sb
    sb.close()


def spec(family: str, index: int = 0, seed: int = 7, **params) -> TaskSpec:
    return get_family(family).make_spec(params, seed=seed, index=index)


def test_the_worker_gives_what_this_process_would(sandbox: Sandbox) -> None:
    texts = ["<answer>3</answer>", "no tag", "<answer>" + "9" * 400 + "</answer>"]
    for task in (spec("arith", 1), spec("chain_sum", 2), spec("basic_arithmetic", 3),
                 FreeFormTask(prompt="1 + 1 =", reference_answer="2")):
        got = trio.run(sandbox.check, task, texts, "instruct", 0.2)
        here = materialize(task)
        assert (got.problem.question, got.problem.answer) == (here.question, here.answer)
        assert got.rewards == [verify(here, t, "instruct", 0.2).reward for t in texts]


def test_a_task_over_time_is_dropped_remembered_and_the_worker_replaced(sandbox: Sandbox) -> None:
    slow = spec("knights_knaves", seed=1, n_people=16)  # took 107 s on the event loop
    t0 = time.monotonic()
    with pytest.raises(CheckFailed) as e:
        trio.run(sandbox.check, slow)
    assert e.value.reason == "over_budget" and "over 2.0 s" in str(e.value), str(e.value)
    assert time.monotonic() - t0 < 10
    t0 = time.monotonic()
    with pytest.raises(CheckFailed):  # never tried again
        trio.run(sandbox.check, slow)
    assert time.monotonic() - t0 < 0.1 and sandbox.stats["remembered_failure"] >= 1
    ok = trio.run(sandbox.check, spec("arith", 5), ["<answer>1</answer>"])  # a fresh worker
    assert len(ok.rewards) == 1


def test_a_problem_too_big_to_carry_is_over_budget(sandbox: Sandbox) -> None:
    hanoi = spec("tower_of_hanoi", min_disks=14, max_disks=14)  # 16383 moves
    with pytest.raises(CheckFailed) as e:
        trio.run(sandbox.check, hanoi)
    assert e.value.reason == "over_budget" and "over 20000 chars" in str(e.value)


def test_a_task_that_does_not_regenerate_is_a_bad_task(sandbox: Sandbox) -> None:
    for task in (TaskSpec(family="arith", family_version="9", seed=1, index=0),
                 TaskSpec(family="arith", params={"min_digits": 5, "max_digits": 2}, seed=1,
                          index=0),
                 FreeFormTask(prompt="x", reference_answer="y", verifier="nope")):
        with pytest.raises(CheckFailed) as e:
            trio.run(sandbox.check, task)
        assert e.value.reason == "bad_task", e.value
        with pytest.raises(CheckFailed) as e:
            trio.run(InProcessChecker().check, task)
        assert e.value.reason == "bad_task"


def test_the_worker_runs_under_the_memory_cap(sandbox: Sandbox) -> None:
    def ask():
        return sandbox._pool.schedule(resource.getrlimit, args=[resource.RLIMIT_AS]).result(30)

    assert ask() == (1536 << 20, 1536 << 20)


def test_a_worker_that_cannot_start_drops_tasks_and_never_ends_the_node(caplog) -> None:
    """A memory cap too small to import the generators: the worker's import fails with a
    MemoryError. warm_up says so in one line and returns; peers' tasks are dropped as
    ``sandbox_down`` (not remembered as the task's fault), and after RETRY_S it tries again."""
    sb = Sandbox(Limits(timeout_s=5.0, memory_mb=64))
    try:
        assert trio.run(sb.warm_up) is False
        assert "guard.sandbox_memory_mb = 64 MiB" in caplog.text
        task = spec("arith", index=3)
        for _ in range(2):
            with pytest.raises(CheckFailed) as e:
                trio.run(sb.check, task)
            assert e.value.reason == "sandbox_down"
        assert sb.stats["sandbox_down"] == 2 and not sb.failed
        sb.RETRY_S = 0.0  # retried now: still too small, still down, still not the task's fault
        with pytest.raises(CheckFailed) as e:
            trio.run(sb.check, task)
        assert e.value.reason == "sandbox_down" and not sb.failed
    finally:
        sb.close()


def test_the_worker_after_a_timeout_is_warm_before_the_next_task() -> None:
    """A killed worker's replacement imports the generators (~1.5 s) before the next task's
    deadline starts: an honest task right after a hostile one is not over budget."""
    sb = Sandbox(Limits(timeout_s=0.4, memory_mb=1536))
    try:
        assert trio.run(sb.warm_up)
        with pytest.raises(CheckFailed) as e:
            trio.run(sb.check, spec("knights_knaves", seed=2, n_people=16))
        assert e.value.reason == "over_budget"
        honest = spec("tower_of_hanoi", index=1, min_disks=3, max_disks=3)  # reasoning-gym
        assert trio.run(sb.check, honest, ["<answer>x</answer>"]).rewards == [0.0]
    finally:
        sb.close()
