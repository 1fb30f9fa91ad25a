"""How far the sampler's distribution is from the trainer's, as truncated importance sampling
sees it (``grpo.tis_cap``): one JSON line per (model, sampler decode step, trainer precision).

Each configuration trains a fresh brain for ``--steps`` steps on its own samples (4 prompts x
G = 8, <= 32 new tokens, alternating rewards so every group trains) and reports the means of
what the learner logs: ``mismatch_kl`` (k3 estimate of KL(sampler || trainer) per token),
``tis_weight_mean`` and ``tis_capped_frac``. On CPU the samplers are our own loop in fp32
('lean') or bf16 ('lean-bf16'), the trainer fp32 or bf16 autocast; on a GPU, measure
the vLLM backend (``--backend vllm --device cuda``; decode then does not apply).

    .venv/bin/python benchmarks/sampler_mismatch.py
    .venv/bin/python benchmarks/sampler_mismatch.py --models tiny-4m --steps 20
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from swarmrl.brain.base import RolloutRequest, ScoredGroup
from swarmrl.brain.lm import LMBrain
from swarmrl.config import NodeConfig
from swarmrl.training.precision import machine_meta

PROMPTS = ["Q: 68 - 32 =\nA: <answer>", "Q: 5 + 7 =\nA: <answer>", "Q: 1 + 1 =\nA: <answer>",
           "Q: 99 + 99 =\nA: <answer>"]
KEYS = ("mismatch_kl", "tis_weight_mean", "tis_capped_frac")
# (generation.decode, grpo.autocast): the sampler's precision against the trainer's
CASES = (("lean", "off"), ("lean-bf16", "off"), ("lean", "bf16"))


def measure(model: str, backend: str, decode: str, autocast: str, steps: int,
            device: str) -> dict:
    cfg = NodeConfig.model_validate({
        "model": {"name": model, "warm_start": False, "device": device},
        "generation": {"backend": backend, "decode": decode, "max_new_tokens": 32,
                       "group_size": 8},
        "grpo": {"autocast": autocast, "drop_zero_advantage": False},
    })
    brain = LMBrain.from_config(cfg, progress=False)
    rows = []
    for _ in range(steps):
        comps = brain.rollout([RolloutRequest(prompt=p) for p in PROMPTS], 8)
        groups = [ScoredGroup(p, c, [float(j % 2) for j in range(8)])
                  for p, c in zip(PROMPTS, comps, strict=True)]
        rows.append(brain.train(groups).extra)
    for b in brain.policy._backends.values():  # a vLLM engine: free it for the next case
        if hasattr(b, "close"):
            b.close()
    means = {k: float(f"{statistics.fmean(r[k] for r in rows):.3g}") for k in KEYS}
    return {"bench": "sampler_mismatch", "model": model, "backend": backend, "decode": decode,
            "trainer": "bf16 autocast" if autocast == "bf16" else "fp32", "steps": steps,
            **means}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["tiny-0.5m", "tiny-4m"])
    p.add_argument("--backend", default="fast", choices=["fast", "hf", "vllm"])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(json.dumps({"bench": "sampler_mismatch", "meta": True, **machine_meta()}), flush=True)
    for model in a.models:
        cases = CASES if a.backend == "fast" else (("auto", "off"), ("auto", "bf16"))
        for decode, autocast in cases:
            print(json.dumps(measure(model, a.backend, decode, autocast, a.steps, a.device)),
                  flush=True)


if __name__ == "__main__":
    main()
