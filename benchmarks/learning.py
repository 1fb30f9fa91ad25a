"""Single-node learning: the warm-started tiny-4m trained alone through the node loop.

`swarmrl.daemon.solo.train_alone` (the same loop `swarmrl train` runs) with a NodeConfig that only
picks the task (built-in arith, + and -, 1-2 digit operands, a recurring pool of 16 problems) and
the step count; everything else is NodeConfig's defaults (GRPO lr 3e-5, 4 tasks x 8 completions
per step, <= 16 new tokens, 'fast' generation, drop zero-advantage groups).

Prints JSON lines (a meta line, then the result):

    {"bench":"learning","model":"tiny-4m","steps":300,"reward_first10":...,"reward_last10":...,
     "s_per_step":...}

and writes a plot of the per-step reward (raw and smoothed) to docs/img/learning_tiny4m.png.

    .venv/bin/python benchmarks/learning.py                 # 300 steps, ~2-4 min on 2 cores
    .venv/bin/python benchmarks/learning.py --steps 200 --out /tmp/learn
    .venv/bin/python benchmarks/learning.py --model tiny-0.5m --steps 2 --no-warm-start \\
        --out /tmp/learn-check --plot /tmp/learn-check/reward.png   # a check, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from swarmrl.config import NodeConfig
from swarmrl.daemon.solo import train_alone
from swarmrl.node.metrics import read_metrics
from swarmrl.training.precision import machine_meta

BENCH = "learning"
ROOT = Path(__file__).resolve().parents[1]


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps({"bench": BENCH, **obj}), flush=True)


def make_config(model: str, steps: int, seed: int, warm_start: bool = True) -> NodeConfig:
    return NodeConfig.model_validate({
        "name": "learning-bench",
        "steps": steps,
        "seed": seed,
        "model": {"name": model, "warm_start": warm_start},
        "tasks": {
            "families": {"arith": 1.0},
            "family_params": {"arith": {"ops": "+-", "min_digits": 1, "max_digits": 2}},
            "pool_size": 16,
        },
    })


def smooth(xs: list[float], window: int) -> list[float]:
    """Trailing moving average (shorter windows at the start)."""
    out, acc = [], 0.0
    for i, x in enumerate(xs):
        acc += x
        if i >= window:
            acc -= xs[i - window]
        out.append(acc / min(i + 1, window))
    return out


def plot(rows: list[dict[str, Any]], path: Path, title: str, window: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    reward = [r["reward"] for r in rows]
    signal = [r.get("groups_with_signal", 0) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=120)
    ax.plot(steps, reward, color="tab:blue", alpha=0.2, lw=0.8, label="reward (per step)")
    ax.plot(steps, smooth(reward, window), color="tab:blue", lw=2,
            label=f"reward ({window}-step moving mean)")
    ax.set_xlabel("step")
    ax.set_ylabel("mean reward of the step's 32 completions")
    ax.set_ylim(0, 1)
    ax2 = ax.twinx()
    ax2.plot(steps, smooth([float(s) for s in signal], window), color="tab:orange", lw=1.2,
             ls="--", label=f"groups with signal of 4 ({window}-step mean)")
    ax2.set_ylabel("groups with signal per step")
    ax2.set_ylim(0, 4)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tiny-4m")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--window", type=int, default=20, help="smoothing window of the plot")
    p.add_argument("--out", default=None, help="run directory (default: a fresh temp dir)")
    p.add_argument("--plot", default=str(ROOT / "docs" / "img" / "learning_tiny4m.png"))
    p.add_argument("--no-warm-start", action="store_true",
                   help="start from random weights (a quick check of the script, not the figure)")
    a = p.parse_args(argv)

    torch.set_num_threads(a.threads)
    cfg = make_config(a.model, a.steps, a.seed, warm_start=not a.no_warm_start)
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="swarmrl-learning-"))
    emit({"meta": True, "date": time.strftime("%Y-%m-%d"), **machine_meta(), "out": str(out),
          "config": {"model": a.model, "warm_start": not a.no_warm_start, "steps": a.steps,
                     "seed": a.seed, "pool_size": 16,
                     "lr": cfg.grpo.learning_rate, "local_groups_per_step": cfg.sapo.local,
                     "group_size": cfg.generation.group_size,
                     "max_new_tokens": cfg.generation.max_new_tokens}})
    summary = train_alone(cfg, out, resume=False, console=None)
    rows = [r for r in read_metrics(out / "metrics.jsonl") if r.get("reward") is not None]
    rewards = [r["reward"] for r in rows]
    secs = [r["seconds"] for r in rows if r.get("seconds") is not None]
    signal = [r.get("groups_with_signal", 0) for r in rows]

    def mean(xs: list[float]) -> float:
        return round(statistics.fmean(xs), 4) if xs else float("nan")

    emit({
        "model": a.model, "steps": summary["steps"],
        "reward_first10": mean(rewards[:10]), "reward_last10": mean(rewards[-10:]),
        "reward_first50": mean(rewards[:50]), "reward_last50": mean(rewards[-50:]),
        "groups_with_signal_first50": mean(signal[:50]),
        "groups_with_signal_last50": mean(signal[-50:]),
        "s_per_step": round(summary["seconds_per_step"], 4),  # wall, incl. checkpoints
        "s_per_step_loop": mean(secs),  # the node loop's own per-step timing
        "plot": os.path.relpath(a.plot, ROOT),
    })
    plot(rows, Path(a.plot),
         f"{a.model} (warm start) alone, arith +/- 1-2 digits, pool 16, "
         f"lr {cfg.grpo.learning_rate:g}, {cfg.sapo.local}x{cfg.generation.group_size}"
         f" per step", a.window)


if __name__ == "__main__":
    main()
