"""``distill``: tiny students with and without a stronger teacher peer, at equal student compute.

Arms, on the same seeds, student configs and task streams: ``grpo`` (students alone, no teacher
node), ``grpo+kl`` (GRPO advantage + the teacher's per-token reverse-KL advantage, KDRL) and
``distill`` (the reverse-KL advantage alone on groups the teacher scored). Every student samples
and trains on the same number of groups per step in every arm; only the advantages differ.
Figures: each student's reward on its own fresh rollouts per step (the curve), and at the end a
held-out score on a fixed set of arithmetic problems none of the pools contains (a seed no node
draws from), sampled (T = 1, 4 samples per problem) and greedy.
"""

from __future__ import annotations

import copy
import statistics
from pathlib import Path
from typing import Any

from rich.console import Console

from swarmrl.protocol.atomic_file import write_json_atomic
from swarmrl.simulator.report import finish_figure, node_rows, runs_mean_sd, smooth
from swarmrl.simulator.runner import SimResult, run_scenario
from swarmrl.simulator.scenario import Scenario, load_scenario

ARMS: list[tuple[str, str]] = [("grpo", "off"), ("grpo+kl", "grpo+kl"), ("distill", "distill")]
HELDOUT_SEED = 987_654_321  # task seeds of nodes are small; this one is nobody's pool
HELDOUT_PROBLEMS = 128
TEACHER = "teacher"


def distill_scenario_path() -> Path:
    return Path(__file__).parent / "scenarios" / "distill.toml"


def _arm(base: Scenario, seed: int, mode: str) -> Scenario:
    data = copy.deepcopy(base.model_dump())
    data["seed"] = seed
    nodes = [n for n in data["nodes"] if mode != "off" or n["name"] != TEACHER]
    for n in nodes:  # students come first, so node seeds and keys match across arms
        if n["name"] != TEACHER:
            n["config"].setdefault("distill", {})["mode"] = mode
    data["nodes"] = nodes
    return load_scenario(data=data)


def heldout_scores(policy: Any) -> dict[str, float]:
    """Sampled and greedy reward of a transformers policy on the fixed held-out problems."""
    from swarmrl.training.policy import eval_mode
    from swarmrl.training.warmstart import WarmStartRecipe, arith_reward

    recipe = WarmStartRecipe(model=policy.model_id, steps=0)  # arith +/-, 1-2 digit operands
    with eval_mode(policy.model):
        sampled = arith_reward(policy.model, policy.tokenizer, recipe, HELDOUT_PROBLEMS, 4,
                               seed=HELDOUT_SEED, max_new_tokens=8)
        greedy = arith_reward(policy.model, policy.tokenizer, recipe, HELDOUT_PROBLEMS, 1,
                              seed=HELDOUT_SEED, temperature=0.0, max_new_tokens=8)
    return {"heldout_sampled": sampled, "heldout_greedy": greedy}


def _summarize(res: SimResult, seed: int) -> dict[str, Any]:
    rows = node_rows(res)
    students = [sn for sn in res.nodes if not sn.cfg.name.startswith(TEACHER)]
    curves = [[r["reward"] for r in rows[sn.cfg.name]] for sn in students]
    n = min(map(len, curves))
    scores = [heldout_scores(sn.node.brain.policy) for sn in students]
    student_rows = [r for sn in students for r in rows[sn.cfg.name]]
    teacher = next((sn for sn in res.nodes if sn.cfg.name.startswith(TEACHER)), None)
    out: dict[str, Any] = {
        "seed": seed,
        "curve": [statistics.fmean(c[i] for c in curves) for i in range(n)],
        "kl_curve": [
            _mean_or_none([rows[sn.cfg.name][i].get("distill_kl") for sn in students])
            for i in range(n)
        ],
        "cumulative": statistics.fmean(sum(c) for c in curves),
        "last20": statistics.fmean(statistics.fmean(c[-20:]) for c in curves),
        "heldout_sampled": statistics.fmean(s["heldout_sampled"] for s in scores),
        "heldout_greedy": statistics.fmean(s["heldout_greedy"] for s in scores),
        "fallback": _mean_or_none([r.get("distill_fallback") for r in student_rows]),
        "share": _mean_or_none([r.get("distill_share") for r in student_rows]),
        "virtual_s": round(res.virtual_seconds, 1),
    }
    if teacher is not None:
        out["teacher"] = {
            **heldout_scores(teacher.node.brain.policy),
            "last20": statistics.fmean(r["reward"] for r in rows[teacher.cfg.name][-20:]),
            "served": teacher.node.metrics.counters["teacher:served"],
        }
    return out


def _mean_or_none(xs: list[Any]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else None


def run_distill(
    out: Path,
    seeds: int = 2,
    steps: int | None = None,
    scenario: Path | None = None,
    console: Console | None = None,
    arms: list[tuple[str, str]] | None = None,
) -> str:
    """Run every arm over ``seeds`` seeds; write results.json, curves.png and table.md."""
    base = load_scenario(scenario or distill_scenario_path())
    if steps is not None:
        base.steps = steps
    arms = arms or ARMS
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in arms}
    out.mkdir(parents=True, exist_ok=True)
    for seed in range(seeds):
        for name, mode in arms:
            if console:
                console.print(f"[bold]distill[/] {name} seed {seed} ...")
            res = run_scenario(_arm(base, seed, mode), None)
            results[name].append(_summarize(res, seed))
            write_json_atomic(out / "results.json", results)
    table = distill_table(results, base, _before_training(base))
    (out / "table.md").write_text(table + "\n")
    plot_distill(results, out / "curves.png")
    return table


def _before_training(base: Scenario) -> dict[str, float]:
    """Held-out scores of a student as the run starts (its warm start), for reference."""
    from swarmrl.training.policy import load_policy

    cfg = next(c for s, c in base.node_configs() if s.name != TEACHER)
    return heldout_scores(load_policy(cfg.model, seed=cfg.seed, progress=False))


def distill_table(
    results: dict[str, list[dict[str, Any]]], base: Scenario,
    before: dict[str, float] | None = None,
) -> str:
    students = sum(n.count for n in base.nodes if n.name != TEACHER)
    seeds = len(next(iter(results.values())))
    lines = [
        f"Distillation experiment: {students} students, {base.steps} steps, {seeds} seeds "
        f"(scenario {base.name}); mean ± sd over seeds of the students' mean",
        "",
        "| arm | reward, last 20 steps | cumulative reward | held-out sampled | held-out greedy "
        "| distill share | fallback | virtual s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        lines.append(
            f"| {name} | {runs_mean_sd(runs, 'last20')} | {runs_mean_sd(runs, 'cumulative', 2)} | "
            f"{runs_mean_sd(runs, 'heldout_sampled')} | {runs_mean_sd(runs, 'heldout_greedy')} | "
            f"{_opt(runs, 'share')} | {_opt(runs, 'fallback')} | "
            f"{statistics.fmean(r['virtual_s'] for r in runs):.0f} |"
        )
    if before is not None:
        lines.append(f"| (students before training) | | | {before['heldout_sampled']:.3f} | "
                     f"{before['heldout_greedy']:.3f} | | | |")
    teachers = [r["teacher"] for runs in results.values() for r in runs if "teacher" in r]
    if teachers:
        lines += [
            "",
            f"Teacher (end of run, mean over {len(teachers)} runs): held-out sampled "
            f"{statistics.fmean(t['heldout_sampled'] for t in teachers):.3f}, greedy "
            f"{statistics.fmean(t['heldout_greedy'] for t in teachers):.3f}, own-pool reward "
            f"(last 20) {statistics.fmean(t['last20'] for t in teachers):.3f}, "
            f"{statistics.fmean(t['served'] for t in teachers):.0f} requests served per run.",
        ]
    return "\n".join(lines)


def _opt(runs: list[dict[str, Any]], key: str) -> str:
    xs = [r[key] for r in runs if r.get(key) is not None]
    return f"{statistics.fmean(xs):.3f}" if xs else "-"


def plot_distill(results: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Left: students' reward per step per arm; right: reverse KL to the teacher per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for k, (name, runs) in enumerate(results.items()):
        color = f"C{k}"  # one colour per arm in both panels
        n = min(len(r["curve"]) for r in runs)
        curve = [statistics.fmean(r["curve"][i] for r in runs) for i in range(n)]
        ax1.plot(range(1, n + 1), smooth(curve, 10), label=name, color=color)
        kl = [_mean_or_none([r["kl_curve"][i] for r in runs]) for i in range(n)]
        if any(x is not None for x in kl):
            xs = [i + 1 for i, x in enumerate(kl) if x is not None]
            ax2.plot(xs, smooth([x for x in kl if x is not None], 10), label=name, color=color)
    ax1.set(xlabel="step", ylabel="students' mean reward (moving avg 10)",
            title="Reward on own rollouts", ylim=(0, 1))
    ax2.set(xlabel="step", ylabel="log p_student - log p_teacher per token",
            title="Reverse KL to the teacher (on the students' samples)")
    finish_figure(fig, (ax1, ax2), path)
