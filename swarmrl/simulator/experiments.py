"""Named experiments: several arms of one scenario on the same seeds, tabulated side by side.

``sapo``: the same 8-node swarm under I local / J external = 8/0 (silo), 6/2, 4/4, 2/6, plus
4/4 with our 'learnable' sampling rule. Every arm trains on I + J = 8 groups per step, on the
same seeds and the same per-node task streams. The figure is the paper's: cumulative reward =
the sum over steps of a node's mean reward on its own fresh rollouts, averaged over nodes.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from swarmrl.simulator.exp_distill import run_distill
from swarmrl.simulator.exp_guard import run_guard
from swarmrl.simulator.exp_selfplay import run_selfplay
from swarmrl.simulator.report import finish_figure, node_rows, write_json_atomic
from swarmrl.simulator.runner import run_scenario
from swarmrl.simulator.scenario import Scenario, load_scenario

SAPO_ARMS: list[tuple[str, int, int, str]] = [
    ("8/0", 8, 0, "uniform"),
    ("6/2", 6, 2, "uniform"),
    ("4/4", 4, 4, "uniform"),
    ("2/6", 2, 6, "uniform"),
    ("4/4 learnable", 4, 4, "learnable"),
]
PAPER = {"8/0": 561.79, "6/2": 854.43, "4/4": 1093.31, "2/6": 945.87}


def sapo_scenario_path() -> Path:
    return Path(__file__).parent / "scenarios" / "sapo.toml"


def _arm(base: Scenario, seed: int, local: int, external: int, rule: str) -> Scenario:
    data = copy.deepcopy(base.model_dump())
    data["seed"] = seed
    sapo = data["defaults"].setdefault("sapo", {})
    sapo.update(local=local, external=external, sampling=rule)
    for node in data["nodes"]:  # an arm's I/J applies to every node
        node["config"].pop("sapo", None)
    return load_scenario(data=data)


def run_sapo(
    out: Path,
    seeds: int = 3,
    steps: int | None = None,
    scenario: Path | None = None,
    console: Console | None = None,
    arms: list[tuple[str, int, int, str]] | None = None,
) -> str:
    """Run every arm over ``seeds`` seeds; write results.json, curves.png and table.md."""
    base = load_scenario(scenario or sapo_scenario_path())
    if steps is not None:
        base.steps = steps
    arms = arms or SAPO_ARMS
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, *_ in arms}
    out.mkdir(parents=True, exist_ok=True)
    for seed in range(seeds):
        for name, local, external, rule in arms:
            sc = _arm(base, seed, local, external, rule)
            label = f"{name} seed {seed}"
            if console:
                console.print(f"[bold]sapo[/] {label} ...")
            res = run_scenario(sc, None)
            rows = node_rows(res)
            curves = [[r["reward"] for r in rs] for rs in rows.values()]
            results[name].append(
                {
                    "seed": seed,
                    "cumulative": statistics.fmean(sum(c) for c in curves),
                    "curve": [
                        statistics.fmean(c[i] for c in curves) for i in range(min(map(len, curves)))
                    ],
                    "signal": statistics.fmean(
                        r["groups_with_signal"] for rs in rows.values() for r in rs
                    ),
                }
            )
            write_json_atomic(out / "results.json", results)
    table = sapo_table(results, base)
    (out / "table.md").write_text(table + "\n")
    plot_sapo(results, out / "curves.png")
    return table


def sapo_table(results: dict[str, list[dict[str, Any]]], base: Scenario) -> str:
    silo = [r["cumulative"] for r in results.get("8/0", [])]
    lines = [
        f"SAPO experiment: {sum(n.count for n in base.nodes)} nodes, {base.steps} steps, "
        f"{len(silo)} seeds (scenario {base.name})",
        "",
        "| I/J | cumulative reward (mean ± sd over seeds) | ratio to 8/0 (per seed: mean ± sd) "
        "| groups with signal / step | paper |",
        "|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        cums = [r["cumulative"] for r in runs]
        ratios = [c / s for c, s in zip(cums, silo, strict=False) if s > 0]
        lines.append(
            f"| {name} | {statistics.fmean(cums):.2f} ± {_sd(cums):.2f} | "
            f"{statistics.fmean(ratios):.3f} ± {_sd(ratios):.3f} | "
            f"{statistics.fmean(r['signal'] for r in runs):.2f} | {PAPER.get(name, '-')} |"
        )
    return "\n".join(lines)


def _sd(xs: list[float]) -> float:
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def plot_sapo(results: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Left: swarm reward per step; right: cumulative reward ratio to 8/0 against rounds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from swarmrl.simulator.report import smooth

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    silo = results.get("8/0", [])
    for name, runs in results.items():
        n = min(len(r["curve"]) for r in runs)
        mean_curve = [statistics.fmean(r["curve"][i] for r in runs) for i in range(n)]
        ax1.plot(range(1, n + 1), smooth(mean_curve, 10), label=name)
        if silo:
            ratio = []
            for i in range(n):
                num = [sum(r["curve"][: i + 1]) for r in runs]
                den = [sum(s["curve"][: i + 1]) for s in silo]
                ratio.append(
                    statistics.fmean(a / b for a, b in zip(num, den, strict=True) if b > 0)
                )
            ax2.plot(range(1, n + 1), ratio, label=name)
    ax1.set(xlabel="round", ylabel="swarm mean reward (moving avg 10)", title="Reward")
    ax2.set(xlabel="round", ylabel="cumulative reward / 8-0", title="Ratio to silo")
    ax2.axhline(1.0, color="gray", lw=0.8)
    finish_figure(fig, (ax1, ax2), path)


EXPERIMENTS: dict[str, Callable[..., str]] = {
    "sapo": run_sapo,
    "selfplay": run_selfplay,  # asymmetric self-play (exp_selfplay.py)
    "distill": run_distill,  # on-policy distillation (exp_distill.py)
    "guard": run_guard,  # adversarial peers, guard on / off (exp_guard.py)
}

