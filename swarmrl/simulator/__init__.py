"""Many nodes on one machine: the real node loop over an in-memory network, on a virtual clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from swarmrl.node.progress import make_progress
from swarmrl.simulator.runner import SimResult, run_scenario
from swarmrl.simulator.scenario import Scenario, load_scenario

__all__ = ["Scenario", "SimResult", "load_scenario", "run_scenario", "run_with_progress"]


def run_with_progress(
    scenario: Scenario,
    out: Path,
    console: Console | None,
    serve: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """Run a scenario with a progress bar, then write summary.json, plots and report.md
    (``serve``: see ``run_scenario``)."""
    from swarmrl.simulator.report import write_report

    total = scenario.steps * sum(n.count for n in scenario.nodes)
    done: dict[str, int] = {}
    t0 = time.time()
    with make_progress(console, f"sim {scenario.name}") as bar:
        task = bar.add_task("sim", total=total, info="")

        def on_step(name: str, step: int) -> None:
            done[name] = step
            bar.update(task, completed=sum(done.values()))

        result = run_scenario(scenario, out, on_step, serve=serve)
    return write_report(result, out, time.time() - t0)
