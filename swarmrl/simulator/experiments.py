"""Named experiments: several arms of one scenario on the same seeds, tabulated side by side.

``sapo``: the same 8-node swarm under I local / J external = 8/0 (silo), 6/2, 4/4, 2/6, plus
4/4 with our 'learnable' sampling rule (preset 'paper'); the other presets run the silo beside
the defaults and their ablations (ABLATION_ARMS). Arms run on the same seeds and the same
per-node task streams. The paper's figure is cumulative reward = the sum over steps of a node's
mean reward on its own fresh rollouts, averaged over nodes; beside it held-out accuracy (when
the scenario evaluates), reward per own generated token and wall seconds.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from swarmrl.protocol.atomic_file import write_json_atomic
from swarmrl.simulator.exp_distill import run_distill
from swarmrl.simulator.exp_guard import run_guard
from swarmrl.simulator.exp_selfplay import run_selfplay
from swarmrl.simulator.report import finish_figure, mean_sd, node_rows, runs_mean_sd
from swarmrl.simulator.runner import run_scenario
from swarmrl.simulator.scenario import Scenario, load_scenario

SAPO_ARMS: list[tuple[str, int, int, str]] = [
    ("8/0", 8, 0, "uniform"),
    ("6/2", 6, 2, "uniform"),
    ("4/4", 4, 4, "uniform"),
    ("2/6", 2, 6, "uniform"),
    ("4/4 learnable", 4, 4, "learnable"),
]
ABLATION_ARMS: list[tuple] = [
    ("8/0", 8, 0, "uniform"),
    ("4/4", 4, 4, "uniform"),  # the defaults
    ("4/4 no IS", 4, 4, "uniform", {"importance_cap": 0.0}),  # swarm text at ratio 1 (genrl)
    ("4/4 learnable", 4, 4, "learnable"),
    ("4/4 valued", 4, 4, "valued"),
    ("8/4", 8, 4, "uniform"),  # the silo's own groups, and the swarm's on top
]
"""The arms of every preset but 'paper' (which sweeps the paper's I/J)."""
PAPER = {"8/0": 561.79, "6/2": 854.43, "4/4": 1093.31, "2/6": 945.87}


SAPO_PRESETS = {
    "paper": "sapo.toml",  # identical nodes, each with its own recurring pool (the paper's setup)
    "skills": "sapo_skills.toml",  # nodes start good at different operators; union evaluated
    "models": "sapo_models.toml",  # tiny-0.5m, tiny-4m and a subword-tokenizer model together
    "shared": "sapo_shared.toml",  # identical nodes, one task distribution, fresh problems
}
"""Swarms of ``swarmrl sim experiment sapo --preset NAME``; each file says what it models."""


def sapo_scenario_path(preset: str = "paper") -> Path:
    if preset not in SAPO_PRESETS:
        raise ValueError(f"unknown sapo preset {preset!r}; known: {', '.join(SAPO_PRESETS)}")
    return Path(__file__).parent / "scenarios" / SAPO_PRESETS[preset]


def _arm(
    base: Scenario, seed: int, local: int, external: int, rule: str,
    sapo_extra: dict[str, Any] | None = None,
) -> Scenario:
    data = copy.deepcopy(base.model_dump())
    data["seed"] = seed
    sapo = data["defaults"].setdefault("sapo", {})
    sapo.update(local=local, external=external, sampling=rule, **(sapo_extra or {}))
    for node in data["nodes"]:  # an arm's I/J applies to every node
        node["config"].pop("sapo", None)
    return load_scenario(data=data)


def run_sapo(
    out: Path,
    seeds: int = 3,
    steps: int | None = None,
    scenario: Path | None = None,
    console: Console | None = None,
    arms: list[tuple] | None = None,
    preset: str = "paper",
) -> str:
    """Run every arm over ``seeds`` seeds; write results.json, curves.png and table.md."""
    base = load_scenario(scenario or sapo_scenario_path(preset))
    if steps is not None:
        base.steps = steps
    arms = arms or (SAPO_ARMS if preset == "paper" and scenario is None else ABLATION_ARMS)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, *_ in arms}
    out.mkdir(parents=True, exist_ok=True)
    for seed in range(seeds):
        for name, local, external, rule, *extra in arms:
            sc = _arm(base, seed, local, external, rule, *extra)
            label = f"{name} seed {seed}"
            if console:
                console.print(f"[bold]sapo[/] {label} ...")
            t0 = time.perf_counter()
            res = run_scenario(sc, None)
            results[name].append(sapo_summary(node_rows(res), seed, time.perf_counter() - t0))
            write_json_atomic(out / "results.json", results)
    table = sapo_table(results, base, paper=preset == "paper" and scenario is None)
    (out / "table.md").write_text(table + "\n")
    plot_sapo(results, out / "curves.png")
    return table


def sapo_summary(rows: dict[str, list[dict[str, Any]]], seed: int, wall_s: float) -> dict[str, Any]:
    """One arm's run: the paper's cumulative reward, held-out accuracy (start and end, when the
    scenario evaluates), reward per generated token, wall seconds."""
    curves = [[r["reward"] for r in rs] for rs in rows.values()]
    tokens = [sum(r["completion_tokens"] for r in rs) for rs in rows.values()]
    out: dict[str, Any] = {
        "seed": seed,
        "cumulative": statistics.fmean(sum(c) for c in curves),
        "curve": [statistics.fmean(c[i] for c in curves) for i in range(min(map(len, curves)))],
        "signal": statistics.fmean(r["groups_with_signal"] for rs in rows.values() for r in rs),
        # reward summed over steps per 1,000 completion tokens the node generated itself
        "reward_per_ktok": statistics.fmean(
            1000 * sum(c) / max(1, t) for c, t in zip(curves, tokens, strict=True)
        ),
        "wall_s": round(wall_s, 1),
    }
    for kind in ("greedy", "sampled"):
        start = [rs[0].get(f"heldout_{kind}_start") for rs in rows.values() if rs]
        evals = [[r[f"heldout_{kind}"] for r in rs if f"heldout_{kind}" in r]
                 for rs in rows.values()]
        if all(x is not None for x in start) and start:
            out[f"heldout_{kind}_start"] = statistics.fmean(start)
        if evals and all(evals):
            out[f"heldout_{kind}"] = statistics.fmean(e[-1] for e in evals)
            n = min(map(len, evals))
            out[f"heldout_{kind}_curve"] = [statistics.fmean(e[i] for e in evals)
                                            for i in range(n)]
    return out


def sapo_table(
    results: dict[str, list[dict[str, Any]]], base: Scenario, paper: bool = True
) -> str:
    """Per arm, mean ± sd over seeds; ratios to the silo (8/0) are taken per seed. ``paper``:
    beside the SAPO paper's cumulative reward for the same I/J (its own setup)."""
    silo = results.get("8/0", [])
    heldout = any("heldout_greedy" in r for runs in results.values() for r in runs)
    head = "| I/J | cumulative reward | ratio to 8/0 "
    rule = "|---|---|---"
    if heldout:
        head += "| held-out greedy (start -> end) | ratio to 8/0 | held-out sampled (end) "
        rule += "|---|---|---"
    head += "| groups with signal / step | reward per 1k own tokens | wall s |"
    rule += "|---|---|---"
    if paper:
        head += " paper |"
        rule += "|---"
    rule += "|"
    lines = [
        f"SAPO experiment: {sum(n.count for n in base.nodes)} nodes, {base.steps} steps, "
        f"{len(silo)} seeds (scenario {base.name}); mean ± sd over seeds",
        "",
        head,
        rule,
    ]
    for name, runs in results.items():
        row = (f"| {name} | {runs_mean_sd(runs, 'cumulative', 2)} "
               f"| {_ratio(runs, silo, 'cumulative')} ")
        if heldout:
            start = statistics.fmean(r.get("heldout_greedy_start", float("nan")) for r in runs)
            row += (f"| {start:.3f} -> {runs_mean_sd(runs, 'heldout_greedy')} "
                    f"| {_ratio(runs, silo, 'heldout_greedy')} "
                    f"| {runs_mean_sd(runs, 'heldout_sampled')} ")
        row += (f"| {runs_mean_sd(runs, 'signal', 2)} | {runs_mean_sd(runs, 'reward_per_ktok', 3)} "
                f"| {statistics.fmean(r.get('wall_s', 0.0) for r in runs):.0f} |")
        if paper:
            row += f" {PAPER.get(name, '-')} |"
        lines.append(row)
    return "\n".join(lines)


def _ratio(runs: list[dict[str, Any]], silo: list[dict[str, Any]], key: str) -> str:
    """Mean ± sd over seeds of this arm's figure over the silo's, seed by seed."""
    by_seed = {r["seed"]: r.get(key) for r in silo}
    ratios = [r[key] / by_seed[r["seed"]] for r in runs
              if r.get(key) is not None and by_seed.get(r["seed"])]
    return mean_sd(ratios)


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

