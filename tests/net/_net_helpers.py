"""Helpers shared by the net tests (pytest-trio is not installed: trio.run is enough)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio
import trio.testing


def run_virtual(fn: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``fn`` under trio with a virtual clock that jumps whenever every task is blocked."""
    return trio.run(fn, clock=trio.testing.MockClock(autojump_threshold=0))
