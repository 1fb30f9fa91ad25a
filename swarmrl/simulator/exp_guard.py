"""The guard experiment: 25% adversarial nodes of each kind, with the guard on and off.

For every adversary kind the same swarm runs twice (guard on, guard off) next to an all-honest
baseline, on the same seeds. Two figures per arm, over the honest nodes only:

- **honest reward**: their cumulative reward (sum over steps of the mean reward of their own
  rollouts) as a fraction of the same nodes' in the all-honest run;
- **poisoned share**: of all the groups they trained on (local + external), the share that came
  from an adversary.
"""

from __future__ import annotations

import copy
import statistics
from pathlib import Path
from typing import Any

from rich.console import Console

from swarmrl.protocol.atomic_file import write_json_atomic
from swarmrl.simulator.adversary import KINDS
from swarmrl.simulator.report import node_rows
from swarmrl.simulator.runner import SimResult, run_scenario
from swarmrl.simulator.scenario import Scenario, load_scenario


def guard_scenario_path() -> Path:
    return Path(__file__).parent / "scenarios" / "guard.toml"


def _arm(base: Scenario, seed: int, kind: str, guard: bool) -> Scenario:
    data = copy.deepcopy(base.model_dump())
    data["seed"] = seed
    data["defaults"].setdefault("guard", {})["enabled"] = guard
    data["nodes"][-1]["adversary"] = kind
    return load_scenario(data=data)


def measure(res: SimResult) -> dict[str, float]:
    """Honest nodes' cumulative reward and the share of their training that was poison."""
    bad = {sn.node.peer_id for sn in res.nodes if sn.spec.adversary != "none"}
    honest = [sn for sn in res.nodes if sn.spec is not res.nodes[-1].spec]  # all-honest too
    rows = node_rows(res)
    cumulative = statistics.fmean(sum(r["reward"] for r in rows[sn.cfg.name]) for sn in honest)
    trained = poisoned = 0
    drops: dict[str, int] = {}
    for sn in honest:
        trained += sum(r["groups_local"] + r["groups_external"] for r in rows[sn.cfg.name])
        poisoned += sum(i.trained for i in sn.node.peers if i.peer_id in bad)
        for k, v in sn.node.metrics.counters.items():
            if k.startswith("dropped:"):
                drops[k[8:]] = drops.get(k[8:], 0) + v
    return {"cumulative": cumulative, "poisoned": poisoned / max(1, trained), "drops": drops}


def run_guard(
    out: Path,
    seeds: int = 2,
    steps: int | None = None,
    scenario: Path | None = None,
    console: Console | None = None,
    kinds: tuple[str, ...] = KINDS,
) -> str:
    base = load_scenario(scenario or guard_scenario_path())
    if steps is not None:
        base.steps = steps
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict[str, Any]]] = {}
    for seed in range(seeds):
        arms = [("all honest", "none", True)]
        arms += [(f"{k} guard {g}", k, g == "on") for k in kinds for g in ("on", "off")]
        for name, kind, guard in arms:
            if console:
                console.print(f"[bold]guard[/] {name} seed {seed} ...")
            m = measure(run_scenario(_arm(base, seed, kind, guard), None))
            results.setdefault(name, []).append({"seed": seed, **m})
            write_json_atomic(out / "results.json", results)
    table = guard_table(results, base, kinds)
    (out / "table.md").write_text(table + "\n")
    return table


def guard_table(results: dict[str, list[dict[str, Any]]], base: Scenario, kinds) -> str:
    honest = [r["cumulative"] for r in results["all honest"]]
    n = sum(s.count for s in base.nodes)
    lines = [
        f"Guard experiment: {n} nodes, {base.nodes[-1].count} adversarial, {base.steps} steps, "
        f"{len(honest)} seeds (scenario {base.name})",
        "",
        "| adversary | honest reward vs all-honest (guard on / off) "
        "| poisoned share of training (on / off) | top drop reasons (guard on) |",
        "|---|---|---|---|",
    ]

    def ratio(name: str) -> float:
        return statistics.fmean(
            r["cumulative"] / h for r, h in zip(results[name], honest, strict=False) if h > 0
        )

    for k in kinds:
        on, off = results[f"{k} guard on"], results[f"{k} guard off"]
        drops: dict[str, int] = {}
        for r in on:
            for reason, v in r["drops"].items():
                drops[reason] = drops.get(reason, 0) + v
        top = ", ".join(f"{r} {v}" for r, v in sorted(drops.items(), key=lambda x: -x[1])[:3])
        lines.append(
            f"| {k} | {ratio(f'{k} guard on'):.3f} / {ratio(f'{k} guard off'):.3f} "
            f"| {100 * statistics.fmean(r['poisoned'] for r in on):.2f}% / "
            f"{100 * statistics.fmean(r['poisoned'] for r in off):.2f}% | {top} |"
        )
    return "\n".join(lines)
