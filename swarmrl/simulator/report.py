"""What a simulation leaves behind: summary.json, reward plots (PNG) and a short report.md."""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from swarmrl.protocol.atomic_file import write_json_atomic
from swarmrl.simulator.runner import SimResult


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return sum(xs) / len(xs) if xs else float("nan")


def mean_sd(xs: Sequence[float], digits: int = 3) -> str:
    """``mean ± sd`` as the experiment tables print a figure over seeds (sd 0 for one seed,
    "-" for none)."""
    if not xs:
        return "-"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.fmean(xs):.{digits}f} ± {sd:.{digits}f}"


def runs_mean_sd(runs: list[dict[str, Any]], key: str, digits: int = 3) -> str:
    """:func:`mean_sd` of ``key`` over the runs (seeds) that report it."""
    return mean_sd([r[key] for r in runs if key in r], digits)


def smooth(xs: list[float], window: int) -> list[float]:
    """Trailing moving average: round-to-round reward is dominated by which tasks were drawn."""
    out, acc = [], []
    for x in xs:
        acc.append(x)
        if len(acc) > window:
            acc.pop(0)
        out.append(_mean(acc))
    return out


def node_rows(result: SimResult) -> dict[str, list[dict[str, Any]]]:
    return {sn.cfg.name: list(sn.node.metrics.history) for sn in result.nodes}


def summarize(result: SimResult, wall_seconds: float) -> dict[str, Any]:
    rows = node_rows(result)
    nodes = []
    for sn in result.nodes:
        r = rows[sn.cfg.name]
        rewards = [x["reward"] for x in r]
        k = max(1, min(10, len(rewards) // 4))
        counters = sn.node.metrics.counters
        nodes.append(
            {
                "name": sn.cfg.name,
                "peer_id": sn.node.peer_id,
                "brain": sn.spec.brain,
                "model": sn.cfg.model.name if sn.spec.brain == "lm" else "stub",
                "speed": sn.spec.speed,
                "local": sn.cfg.sapo.local,
                "external": sn.cfg.sapo.external,
                # neither takes from the swarm nor gives to it: the silo a report compares with
                "alone": sn.cfg.sapo.external == 0 and not sn.cfg.sapo.publish,
                "heldout_greedy": _last(r, "heldout_greedy"),
                "steps": len(r),
                "reward_first": _mean(rewards[:k]),
                "reward_last": _mean(rewards[-k:]),
                "cumulative_reward": sum(x for x in rewards if x == x),
                "own_tokens": sum(x.get("completion_tokens", 0) for x in r),
                "groups_with_signal": _mean([x["groups_with_signal"] for x in r]),
                "external_groups_used": sum(x["groups_external"] for x in r),
                "admitted": {k2[9:]: v for k2, v in counters.items() if k2.startswith("admitted:")},
                "dropped": {k2[8:]: v for k2, v in counters.items() if k2.startswith("dropped:")},
            }
        )
    return {
        "scenario": result.scenario.name,
        "seed": result.scenario.seed,
        "nodes": nodes,
        "swarm": {
            "nodes": len(nodes),
            "reward_first": _mean([n["reward_first"] for n in nodes]),
            "reward_last": _mean([n["reward_last"] for n in nodes]),
            "cumulative_reward": _mean([n["cumulative_reward"] for n in nodes]),
            "groups_with_signal": _mean([n["groups_with_signal"] for n in nodes]),
            "virtual_seconds": round(result.virtual_seconds, 3),
            "wall_seconds": round(wall_seconds, 3),
        },
        "events": result.events,
    }


def _last(rows: list[dict[str, Any]], key: str) -> float | None:
    return next((r[key] for r in reversed(rows) if key in r), None)


def sharing_line(nodes: list[dict[str, Any]]) -> str | None:
    """What sharing bought in this run: the members beside the nodes that train alone, or
    None when the scenario has no node alone (or no member)."""
    alone = [n for n in nodes if n["alone"]]
    members = [n for n in nodes if not n["alone"] and n["external"] > 0]
    if not alone or not members:
        return None

    def fig(ns: list[dict[str, Any]]) -> str:
        text = (f"reward {_mean([n['reward_first'] for n in ns]):.3f} -> "
                f"{_mean([n['reward_last'] for n in ns]):.3f}, cumulative "
                f"{_mean([n['cumulative_reward'] for n in ns]):.2f}")
        held = [n["heldout_greedy"] for n in ns if n["heldout_greedy"] is not None]
        return text + (f", held-out greedy {_mean(held):.3f}" if held else "")

    def per_token(ns: list[dict[str, Any]]) -> float:
        return _mean([n["cumulative_reward"] / max(1, n["own_tokens"]) for n in ns])

    ratio = _mean([n["cumulative_reward"] for n in members]) / max(
        1e-9, _mean([n["cumulative_reward"] for n in alone]))
    return (f"What sharing bought: the {len(members)} nodes that share ({fig(members)}) beside "
            f"{len(alone)} training alone on the same kind of tasks ({fig(alone)}): "
            f"cumulative reward {ratio:.2f}x, per token a node generated itself "
            f"{per_token(members) / max(1e-12, per_token(alone)):.2f}x.")


def plot_rewards(result: SimResult, out_dir: Path, window: int = 5) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = node_rows(result)
    paths = []
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, r in rows.items():
        ax.plot(
            [x["step"] for x in r], smooth([x["reward"] for x in r], window), label=name, lw=1.2
        )
    ax.set(xlabel="step", ylabel=f"mean reward (moving avg {window})", title="Reward per node")
    if len(rows) <= 12:
        ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    paths.append(_save(fig, out_dir / "reward_per_node.png"))

    steps = max((len(r) for r in rows.values()), default=0)
    swarm = [_mean([r[i]["reward"] for r in rows.values() if i < len(r)]) for i in range(steps)]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(range(1, steps + 1), swarm, alpha=0.35, label="swarm mean")
    ax.plot(range(1, steps + 1), smooth(swarm, window), lw=2, label=f"moving avg {window}")
    ax.set(xlabel="step", ylabel="mean reward", title="Swarm reward")
    ax.legend()
    ax.grid(alpha=0.3)
    paths.append(_save(fig, out_dir / "reward_swarm.png"))
    plt.close("all")
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)
    return path


def finish_figure(fig: Any, axes: Any, path: Path) -> Path:
    """The experiments' plots: grid and legend on every axis, saved atomically, closed."""
    import matplotlib.pyplot as plt

    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)
    return path


def write_report(result: SimResult, out_dir: Path, wall_seconds: float) -> dict[str, Any]:
    """summary.json, the plots and report.md in out_dir; returns the summary."""
    summary = summarize(result, wall_seconds)
    write_json_atomic(out_dir / "summary.json", summary)
    plot_rewards(result, out_dir)
    sw = summary["swarm"]
    lines = [
        f"# Simulation report: {summary['scenario']}",
        "",
        f"{sw['nodes']} nodes, seed {summary['seed']}, {sw['virtual_seconds']:.0f} virtual s "
        f"in {sw['wall_seconds']:.0f} wall s.",
        "",
        f"Swarm mean reward: **{sw['reward_first']:.3f} -> {sw['reward_last']:.3f}** "
        f"(first vs last steps); cumulative reward per node {sw['cumulative_reward']:.2f}; "
        f"groups with signal per step {sw['groups_with_signal']:.2f}.",
        "",
        *([line, ""] if (line := sharing_line(summary["nodes"])) else []),
        "![swarm reward](reward_swarm.png)",
        "",
        "![reward per node](reward_per_node.png)",
        "",
        "| node | brain | I/J | speed | steps | reward first | reward last | cumulative | "
        "external used | dropped |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in summary["nodes"]:
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(n["dropped"].items())) or "-"
        lines.append(
            f"| {n['name']} | {n['model']} | {n['local']}/{n['external']} | {n['speed']:g} | "
            f"{n['steps']} | {n['reward_first']:.3f} | {n['reward_last']:.3f} | "
            f"{n['cumulative_reward']:.2f} | {n['external_groups_used']} | {dropped} |"
        )
    if summary["events"]:
        lines += ["", "Events:", ""] + [f"- {e}" for e in summary["events"]]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
    return summary
