"""Generating a peer's task and checking a peer's answers, within a time and memory budget.

Task bounds (:mod:`swarmrl.tasks.bounds`) keep a peer's parameters in the swarm's range, but a
generator or scorer can still be slow on some item, and the answer text is the peer's. So swarm
input is generated and scored in a worker process, never on the node's event loop:

- one persistent worker (pebble's ProcessPool, spawned: no torch, no trio state inherited),
  niced so a node's own training wins the CPU;
- the worker's address space is capped (``RLIMIT_AS``): a generator that blows up memory gets a
  MemoryError there, not in the node;
- each call has a deadline; past it pebble kills the worker and starts a fresh one;
- a task that failed is remembered by key and never tried again (a peer cannot make us pay twice
  for the same spec); results are cached, so the same task recurring in many groups is generated
  once;
- a worker that cannot start (its memory cap too small to import the generators) never ends the
  node: one error line says what to change, and peers' tasks are dropped as ``sandbox_down``
  (no penalty to anyone, not remembered) until a worker starts, retried every 30 s.

:class:`InProcessChecker` has the same interface without the worker: for a simulation, whose
peers are all its own code, and for tests of the node loop.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import logging
import multiprocessing
import os
import time
from collections import OrderedDict
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, NoReturn

import trio
from pebble import ProcessExpired, ProcessPool

from swarmrl.protocol.messages import FreeFormTask, TaskSpec, task_key
from swarmrl.tasks.materialize import materialize, remember
from swarmrl.tasks.problem import Problem, TaskError
from swarmrl.tasks.verifiers import verify

log = logging.getLogger("swarmrl.tasks.sandbox")

Task = TaskSpec | FreeFormTask


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 2.0
    """Wall seconds one generation plus its scoring may take in the worker."""
    memory_mb: int = 2048
    """The worker's address-space cap (RLIMIT_AS), MiB. Its interpreter and reasoning-gym take
    about 600 MiB of address space before any task."""
    max_text_chars: int = 65536
    """Longest question or answer key accepted from a generator (22-disk Hanoi: 134 MB)."""


@dataclass(frozen=True)
class Checked:
    problem: Problem
    rewards: list[float]
    """One per text given, by :func:`swarmrl.tasks.verify` with the given style and weight."""


class CheckFailed(TaskError):
    """A task (or its answers) could not be checked; ``reason`` is the counted drop reason:
    ``bad_task`` (it does not regenerate) or ``over_budget`` (time, memory or size)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)  # both in args: it crosses the worker's pipe
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


def check_here(
    task: Task, texts: list[str], style: str, format_weight: float, max_chars: int
) -> Checked:
    """Generate ``task`` and score ``texts``: the work the sandbox's worker does."""
    problem = materialize(task)
    if max(len(problem.question), len(problem.answer)) > max_chars:
        raise CheckFailed("over_budget", f"{problem.family}: problem text over {max_chars} chars")
    rewards = [verify(problem, t, style, format_weight).reward for t in texts]
    return Checked(problem, rewards)


class InProcessChecker:
    """Checks on the calling thread: no isolation (for peers that are our own code)."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()

    async def check(
        self, task: Task, texts: list[str] = (), style: str = "instruct", format_weight: float = 0.0
    ) -> Checked:
        try:
            return check_here(task, list(texts), style, format_weight, self.limits.max_text_chars)
        except CheckFailed:
            raise
        except Exception as e:  # TaskError or a generator's own failure
            raise CheckFailed("bad_task", f"{type(e).__name__}: {e}"[:300]) from None

    async def warm_up(self) -> bool:
        """Whether the checker is ready (a sandbox starts its worker here)."""
        return True

    def close(self) -> None:
        return None


def _worker_init(memory_mb: int) -> None:
    import resource

    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    with contextlib.suppress(OSError):  # not allowed here: the limits still hold
        os.nice(10)


class Sandbox(InProcessChecker):
    """Checks in a worker process with a time and memory limit (see the module docstring)."""

    FAILED_MEMORY = 65536

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__(limits)
        self._pool = self._new_pool()
        self.failed: OrderedDict[str, tuple[str, str]] = OrderedDict()
        """Task key -> (reason, detail) of tasks that failed: never tried again."""
        self.stats = {"checked": 0, "over_budget": 0, "bad_task": 0, "remembered_failure": 0,
                      "sandbox_down": 0}
        self._down: tuple[float, str] | None = None
        """(monotonic time, why) of the last worker that failed to start; retried RETRY_S later."""

    RETRY_S = 30.0

    def _new_pool(self) -> ProcessPool:
        return ProcessPool(
            max_workers=1,
            initializer=_worker_init,
            initargs=(self.limits.memory_mb,),
            context=multiprocessing.get_context("spawn"),
        )

    async def check(
        self, task: Task, texts: list[str] = (), style: str = "instruct", format_weight: float = 0.0
    ) -> Checked:
        key = task_key(task)
        failed = self.failed.get(key)
        if failed is not None:
            self.stats["remembered_failure"] += 1
            raise CheckFailed(*failed)
        if self._down is not None and (
            time.monotonic() - self._down[0] < self.RETRY_S or not await self.warm_up()
        ):
            self.stats["sandbox_down"] += 1
            raise CheckFailed("sandbox_down", self._down[1])
        args = (task, list(texts), style, format_weight, self.limits.max_text_chars)
        try:
            future = self._pool.schedule(check_here, args=args, timeout=self.limits.timeout_s)
        except RuntimeError as e:  # the pool broke (pebble: "not active"): not this task's fault
            self._down_for(e)
        try:
            checked = await trio.to_thread.run_sync(future.result, abandon_on_cancel=True)
        except BrokenProcessPool as e:  # no worker could start: not this task's fault
            self._down_for(e)
        except CheckFailed as e:
            self._fail(key, e.reason, str(e))
        except concurrent.futures.TimeoutError:
            self._rewarm()
            self._fail(key, "over_budget", f"over {self.limits.timeout_s} s")
        except MemoryError:
            self._fail(key, "over_budget", f"over {self.limits.memory_mb} MiB")
        except ProcessExpired as e:  # the worker died (a crash, the kernel's OOM killer)
            self._rewarm()
            self._fail(key, "bad_task", f"{type(e).__name__}: {e}"[:300])
        except Exception as e:  # TaskError or a generator's failure
            self._fail(key, "bad_task", f"{type(e).__name__}: {e}"[:300])
        self.stats["checked"] += 1
        remember(task, checked.problem)  # later materialize() calls on this node hit the cache
        return checked

    def _fail(self, key: str, reason: str, detail: str) -> NoReturn:
        self.stats[reason] += 1
        self.failed[key] = (reason, detail)
        while len(self.failed) > self.FAILED_MEMORY:
            self.failed.popitem(last=False)
        raise CheckFailed(reason, detail)

    async def warm_up(self) -> bool:
        """Start the worker and import the generators now, not on the first peer's message.
        False (and one error line) if it cannot start; the node goes on without it."""
        try:
            future = self._pool.schedule(_worker_warm_up)
            await trio.to_thread.run_sync(future.result, abandon_on_cancel=True)
        except Exception as e:  # noqa: BLE001 - MemoryError on import, a broken pool, ...
            self._went_down(e)
            return False
        if self._down is not None:
            log.info("the task sandbox's worker started: peers' tasks are checked again")
        self._down = None
        return True

    def _rewarm(self) -> None:
        """The worker was killed: its replacement imports the generators first, with no
        deadline, ahead of the next task. Else the next peer's task (an honest one, even) paid
        the new worker's imports (~1.5 s) against its 2 s and was dropped as over budget,
        and remembered so."""
        with contextlib.suppress(Exception):
            self._pool.schedule(_worker_warm_up)

    def _down_for(self, error: BaseException) -> NoReturn:
        self._went_down(error)
        self.stats["sandbox_down"] += 1
        raise CheckFailed("sandbox_down", self._down[1] if self._down else "") from None

    def _went_down(self, error: BaseException) -> None:
        why = f"{type(error).__name__}: {error}".strip(": ")[:200]
        if self._down is None:
            log.error(
                "the task sandbox's worker could not start (%s): peers' tasks are dropped as "
                "'sandbox_down' until it can (retried every %.0f s); its memory cap is "
                "guard.sandbox_memory_mb = %d MiB, raise it if this is a MemoryError",
                why, self.RETRY_S, self.limits.memory_mb,
            )
        self._down = (time.monotonic(), why)
        self._restart_pool()

    def _restart_pool(self) -> None:
        if self._pool.active:
            return  # the pool replaces dead workers itself; only a broken one is rebuilt
        with contextlib.suppress(Exception):
            self._pool.stop()
        self._pool = self._new_pool()

    def close(self) -> None:
        self._pool.stop()
        self._pool.join(timeout=5)


def _worker_warm_up() -> None:
    from swarmrl.tasks.families import list_families

    list_families()  # imports reasoning-gym


_shared: dict[Limits, Sandbox] = {}


def default_checker(cfg: Any) -> InProcessChecker:
    """The checker a node's guard config asks for (``guard.sandbox*``). Sandboxes are shared per
    process and per limits: one worker serves every node of a process, and lives until exit."""
    if not cfg.sandbox:
        return InProcessChecker()
    limits = Limits(timeout_s=cfg.sandbox_timeout_s, memory_mb=cfg.sandbox_memory_mb)
    sandbox = _shared.get(limits)
    if sandbox is None:
        sandbox = _shared[limits] = Sandbox(limits)
        atexit.register(sandbox.close)
    return sandbox
