"""``selfplay``: the same solvers with and without a parametric creator, same compute.

Every seed runs the base scenario (``scenarios/selfplay.toml``) twice. *Solvers only*: the
creator node is removed and solvers train on their own task stream. *With creator*: a
creator-only node proposes tasks by a bandit over arith's difficulty knobs and solvers fill
``creator_ratio`` of their I task slots with them. Solvers sample and train on the same number
of tasks and completions per step in both arms; the parametric creator does no model work.

At the end each solver is evaluated on fixed held-out sets (arith, two operands of exactly d
digits, d = 1..5). The plot puts the creator's chosen difficulty beside the solvers' skill over
virtual time: for stub solvers the skill logit, whose units are the difficulty's own
(p = sigmoid(skill - difficulty)), so a creator that tracks p = 1/2 follows the skill curve.
"""

from __future__ import annotations

import copy
import statistics
from pathlib import Path
from typing import Any

from rich.console import Console

from swarmrl.brain.base import Brain, with_prompt_style
from swarmrl.brain.stub import StubBrain, text_difficulty
from swarmrl.config import NodeConfig
from swarmrl.protocol.atomic_file import write_json_atomic
from swarmrl.selfplay.evaluate import evaluate as evaluate_brain
from swarmrl.selfplay.evaluate import heldout_sets
from swarmrl.selfplay.parametric import build_arms
from swarmrl.simulator.report import finish_figure, mean_sd, node_rows
from swarmrl.simulator.runner import SimResult, make_brain, run_scenario
from swarmrl.simulator.scenario import NodeSpec, Scenario, load_scenario
from swarmrl.tasks import format_prompt, get_family, materialize

ARMS = ("solvers only", "with creator")
STUB_LR = 0.1
"""Stub solvers' learning rate: slow enough that 100 steps cross the whole difficulty range."""
KNOB_SCALE = 1.0
HELDOUT_SIZE = 48
HELDOUT_SAMPLES = 8


def selfplay_scenario_path() -> Path:
    return Path(__file__).parent / "scenarios" / "selfplay.toml"


def selfplay_brain(spec: NodeSpec, cfg: NodeConfig) -> Brain:
    """Stub nodes whose difficulty follows the question's digits and terms; LM nodes as usual."""
    if spec.brain == "stub":
        return StubBrain(skills=spec.stub_skills, seed=cfg.seed, lr=STUB_LR,
                         knob_scale=KNOB_SCALE)
    return make_brain(spec, cfg)


def _is_creator(node: dict[str, Any], defaults: dict[str, Any]) -> bool:
    roles = node["config"].get("roles", defaults.get("roles", ["solver"]))
    return "creator" in roles


def arm_scenario(base: Scenario, seed: int, with_creator: bool) -> Scenario:
    data = copy.deepcopy(base.model_dump())
    data["seed"] = seed
    if not with_creator:
        data["nodes"] = [n for n in data["nodes"] if not _is_creator(n, data["defaults"])]
        for n in data["nodes"]:
            n["config"].setdefault("selfplay", {})["creator_ratio"] = 0.0
    return load_scenario(data=data)


def arm_difficulties(cfg: NodeConfig, probes: int = 64) -> dict[str, float]:
    """Each arm's mean difficulty (stub units: ``text_difficulty`` x KNOB_SCALE) over probes."""
    out = {}
    style = with_prompt_style(cfg, None).tasks.prompt_style  # the stub's, as its nodes use
    for arm in build_arms(cfg.selfplay.search_space, cfg.tasks.family_params):
        fam = get_family(arm.family)
        qs = [materialize(fam.make_spec(arm.params, seed=99, index=i)) for i in range(probes)]
        out[arm.label] = KNOB_SCALE * statistics.fmean(
            text_difficulty(format_prompt(p, style)) for p in qs
        )
    return out


def _run_arm(sc: Scenario) -> dict[str, Any]:
    res: SimResult = run_scenario(sc, None, brain_factory=selfplay_brain)
    rows = node_rows(res)
    sets = heldout_sets(size=HELDOUT_SIZE)
    solvers = [sn for sn in res.nodes if "solver" in sn.cfg.roles]
    creators = [sn for sn in res.nodes if "creator" in sn.cfg.roles]
    acc = [
        evaluate_brain(sn.node.brain, sets, sn.node.cfg.tasks.prompt_style, HELDOUT_SAMPLES)
        for sn in solvers
    ]
    levels = list(sets)
    out: dict[str, Any] = {
        "heldout": {lv: statistics.fmean(a[lv] for a in acc) for lv in levels},
        "reward": statistics.fmean(
            statistics.fmean(r["reward"] for r in rows[sn.cfg.name]) for sn in solvers
        ),
        "signal": statistics.fmean(
            r["groups_with_signal"] for sn in solvers for r in rows[sn.cfg.name]
        ),
        "creator_tasks": sum(
            r.get("selfplay_creator_tasks", 0) for sn in solvers for r in rows[sn.cfg.name]
        ),
        "skill": [
            [(r["time"], r["skill_arith"]) for r in rows[sn.cfg.name] if "skill_arith" in r]
            for sn in solvers
        ],
        "solver_reward": [[(r["time"], r["reward"]) for r in rows[sn.cfg.name]] for sn in solvers],
    }
    out["heldout_mean"] = statistics.fmean(out["heldout"].values())
    if creators:
        c = creators[0]
        diff = arm_difficulties(c.cfg)
        out["chosen"] = [
            (r["time"], diff[r["selfplay_arm"]]) for r in rows[c.cfg.name] if r.get("selfplay_arm")
        ]
        out["creator_state"] = c.node.selfplay.state()["creator"]
        out["creator_p"] = [r.get("selfplay_p") for r in rows[c.cfg.name]][-1]
    return out


def run_selfplay(
    out: Path,
    seeds: int = 3,
    steps: int | None = None,
    scenario: Path | None = None,
    console: Console | None = None,
) -> str:
    """Run both arms over ``seeds`` seeds; write results.json, table.md and difficulty.png."""
    base = load_scenario(scenario or selfplay_scenario_path())
    if steps is not None:
        base.steps = steps
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict[str, Any]]] = {a: [] for a in ARMS}
    for seed in range(seeds):
        for arm in ARMS:
            if console:
                console.print(f"[bold]selfplay[/] {arm} seed {seed} ...")
            res = _run_arm(arm_scenario(base, seed, arm == "with creator"))
            results[arm].append({"seed": seed, **res})
            write_json_atomic(out / "results.json", results)
    table = selfplay_table(results, base)
    (out / "table.md").write_text(table + "\n")
    plot_selfplay(results, out / "difficulty.png")
    return table


def selfplay_table(results: dict[str, list[dict[str, Any]]], base: Scenario) -> str:
    runs = next(iter(results.values()))
    levels = list(runs[0]["heldout"]) if runs else []
    n_solvers = sum(n.count for n in base.nodes if "creator" not in n.config.get("roles", []))
    lines = [
        f"Self-play experiment: {n_solvers} solvers, {base.steps} steps, {len(runs)} seeds "
        f"(scenario {base.name}); held-out accuracy per level (mean ± sd over seeds)",
        "",
        "| arm | " + " | ".join(f"held-out {lv}" for lv in levels)
        + " | held-out mean | final skill | reward (train) | groups with signal / step "
        "| creator tasks |",
        "|---|" + "---|" * (len(levels) + 5),
    ]
    for arm, rs in results.items():
        skills = [statistics.fmean(s[-1][1] for s in r["skill"]) for r in rs if all(r["skill"])]
        lines.append(
            f"| {arm} | "
            + " | ".join(mean_sd([r["heldout"][lv] for r in rs]) for lv in levels)
            + f" | {mean_sd([r['heldout_mean'] for r in rs])} | "
            + mean_sd(skills)
            + f" | {mean_sd([r['reward'] for r in rs])} | {mean_sd([r['signal'] for r in rs])} | "
            + f"{statistics.fmean(r['creator_tasks'] for r in rs):.0f} |"
        )
    return "\n".join(lines)


def plot_selfplay(results: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """The creator's chosen difficulty against the solvers' skill over virtual time (seed 0),
    beside held-out accuracy per level for both arms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from swarmrl.simulator.report import smooth

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {"solvers only": "tab:gray", "with creator": "tab:blue"}
    first = next(iter(results.values()))[0]
    stub = all(first["skill"])  # LM solvers have no skill logit: show their reward instead
    ax_s = ax1 if stub else ax1.twinx()
    for arm, rs in results.items():
        r = rs[0]
        for i, s in enumerate(r["skill"] if stub else r["solver_reward"]):
            values = [v for _, v in s] if stub else smooth([v for _, v in s], 10)
            what = "skill" if stub else "train reward, avg 10"
            ax_s.plot([t for t, _ in s], values, color=colors.get(arm), lw=1, alpha=0.7,
                      label=f"solver {what} ({arm})" if i == 0 else None)
    if not stub:
        ax_s.set_ylabel("solver reward")
        ax_s.legend(fontsize=8, loc="lower right")
    with_creator = results.get("with creator", [{}])[0]
    end = max((t for s in with_creator.get("solver_reward", []) for t, _ in s), default=0.0)
    # A creator outlives its solvers (it waits for them, then proposes to nobody): clip it.
    chosen = [(t, d) for t, d in with_creator.get("chosen") or [] if t <= end]
    if chosen:
        ax1.plot([t for t, _ in chosen], smooth([d for _, d in chosen], 8), color="tab:red",
                 lw=2, label="creator's chosen difficulty (avg 8)")
    ax1.set(xlabel="virtual seconds", ylabel="difficulty (stub logit units)",
            title="Creator's chosen difficulty vs solvers")
    levels = list(next(iter(results.values()))[0]["heldout"])
    width = 0.8 / max(1, len(results))
    for k, (arm, rs) in enumerate(results.items()):
        means = [statistics.fmean(r["heldout"][lv] for r in rs) for lv in levels]
        xs = [i + k * width for i in range(len(levels))]
        ax2.bar(xs, means, width, label=arm, color=colors.get(arm))
    ax2.set_xticks([i + width * (len(results) - 1) / 2 for i in range(len(levels))], levels)
    ax2.set(xlabel="held-out level (digits per operand)", ylabel="accuracy",
            title="Held-out accuracy at the end")
    finish_figure(fig, (ax1, ax2), path)

