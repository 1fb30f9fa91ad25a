"""How a node spends time: real threads and wall clock (daemon) or modelled virtual time (sim).

The node loop is the same everywhere; only this changes. In the daemon, blocking model work runs
in a worker thread so the node keeps receiving gossip meanwhile. In the simulator, model work runs
inline (so runs are deterministic) and the node then sleeps the *modelled* cost of that work on
trio's virtual clock, scaled by its speed factor, so fast and slow nodes interleave as they would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

import trio

T = TypeVar("T")

SIM_EPOCH = 1_800_000_000.0
"""Wall-clock seconds that virtual time 0 maps to in simulations (timestamps stay plausible)."""


class Runtime(Protocol):
    def now(self) -> float:
        """Seconds since the epoch, as message timestamps use them."""
        ...

    async def run(self, fn: Callable[[], T], work_tokens: Callable[[T], int]) -> T:
        """Run blocking model work and account for the time it takes."""
        ...


class RealRuntime:
    """Daemon runtime: wall clock, model work in a worker thread."""

    def now(self) -> float:
        return time.time()

    async def run(self, fn: Callable[[], T], work_tokens: Callable[[T], int]) -> T:
        return await trio.to_thread.run_sync(fn)


class SimRuntime:
    """Simulator runtime: inline work, virtual time advanced by a cost model.

    ``seconds_per_token`` is the modelled cost of one generated or trained token on a reference
    node; ``speed`` divides it (a node with speed 2 does the same work in half the virtual time).
    """

    def __init__(self, seconds_per_token: float = 1e-3, speed: float = 1.0) -> None:
        self.seconds_per_token = seconds_per_token
        self.speed = speed

    def now(self) -> float:
        return SIM_EPOCH + trio.current_time()

    async def run(self, fn: Callable[[], T], work_tokens: Callable[[T], int]) -> T:
        result = fn()
        await trio.sleep(max(1, work_tokens(result)) * self.seconds_per_token / self.speed)
        return result


class PacedRuntime:
    """Real-network simulations: wall clock, model work in a thread, paced by the cost model.

    Each unit of work takes at least its modelled time (``SimRuntime``'s model, on the wall
    clock), so speed factors still order nodes when many share one machine; work that is
    really slower than its model simply takes longer.
    """

    def __init__(self, seconds_per_token: float = 1e-3, speed: float = 1.0) -> None:
        self.seconds_per_token = seconds_per_token
        self.speed = speed

    def now(self) -> float:
        return time.time()

    async def run(self, fn: Callable[[], T], work_tokens: Callable[[T], int]) -> T:
        start = trio.current_time()
        result = await trio.to_thread.run_sync(fn)
        modelled = max(1, work_tokens(result)) * self.seconds_per_token / self.speed
        await trio.sleep_until(start + modelled)
        return result
