"""What a peer can make a node generate: every family at the corner of its shipped bounds.

For each task family (built in and reasoning-gym), a spec with every numeric param at the top
of its default bound (``swarmrl/tasks/bounds.py``) is generated and scored in the sandbox a
daemon uses (its default time and memory limits), for a few items. Prints one JSON line per
family: how many items generated in budget, were over budget, or were refused by the generator,
and the slowest item's seconds. Families over budget at their corner are the ones SAFE_BOUNDS
should tighten; the sandbox is what keeps them off the node until then.

    .venv/bin/python benchmarks/task_bounds.py [--items 3] [--families a,b]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import trio

from swarmrl.config import GuardConfig
from swarmrl.tasks.bounds import default_bounds
from swarmrl.tasks.families import get_family, list_families
from swarmrl.tasks.sandbox import CheckFailed, Limits, Sandbox
from swarmrl.training.precision import machine_meta


def corner(family: str) -> dict[str, Any]:
    """The family's defaults with every numeric param at the top of its bound."""
    params = dict(get_family(family).default_params())
    for name, bound in default_bounds(family).items():
        if isinstance(bound, tuple) and not isinstance(params.get(name), bool):
            hi = bound[1]
            params[name] = int(hi) if isinstance(params.get(name), int) else float(hi)
    return params


async def probe(sandbox: Sandbox, family: str, items: int) -> dict[str, Any]:
    row: dict[str, Any] = {"bench": "task_bounds", "family": family, "ok": 0,
                           "over_budget": 0, "refused": 0, "slowest_s": 0.0}
    params = corner(family)
    try:
        specs = [get_family(family).make_spec(params, seed=s, index=s) for s in range(items)]
    except Exception as e:  # the generator refuses its own corner (e.g. min > max)
        row["refused"] = items
        row["detail"] = str(e)[:160]
        return row
    for spec in specs:
        t0 = time.perf_counter()
        try:
            await sandbox.check(spec, ["<answer>0</answer>"])
            row["ok"] += 1
        except CheckFailed as e:
            row["over_budget" if e.reason == "over_budget" else "refused"] += 1
            row["detail"] = str(e)[:160]
        row["slowest_s"] = round(max(row["slowest_s"], time.perf_counter() - t0), 3)
    return row


async def main_async(families: list[str], items: int) -> None:
    g = GuardConfig()
    sandbox = Sandbox(Limits(timeout_s=g.sandbox_timeout_s, memory_mb=g.sandbox_memory_mb))
    await sandbox.warm_up()
    totals = {"families": 0, "over_budget_families": 0, "refused_families": 0}
    try:
        for family in families:
            row = await probe(sandbox, family, items)
            print(json.dumps(row), flush=True)
            totals["families"] += 1
            totals["over_budget_families"] += row["over_budget"] > 0
            totals["refused_families"] += row["refused"] == items
    finally:
        sandbox.close()
    print(json.dumps({"bench": "task_bounds_summary", "items_per_family": items, **totals,
                      "timeout_s": g.sandbox_timeout_s, "memory_mb": g.sandbox_memory_mb}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=3)
    ap.add_argument("--families", default="", help="comma-separated (default: every family)")
    args = ap.parse_args()
    print(json.dumps({"bench": "task_bounds", "meta": True, **machine_meta()}), flush=True)
    families = [f for f in args.families.split(",") if f] or list_families()
    trio.run(main_async, families, args.items)


if __name__ == "__main__":
    main()
