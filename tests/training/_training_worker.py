"""A tiny GRPO training run that checkpoints every step, for the kill-and-resume test.

usage: _training_worker.py CKPT_DIR STEPS LOG_FILE
Appends one JSON line per step ({"step", "loss", "reward"}) to LOG_FILE, after the checkpoint.
On start it resumes from the newest valid checkpoint in CKPT_DIR, if any.
"""

from __future__ import annotations

import json
import random
import sys

import torch

from swarmrl.config import GenerationConfig, GRPOConfig, ModelConfig
from swarmrl.training.learner import Learner, TokenGroup, seed_everything
from swarmrl.training.policy import load_policy

torch.set_num_threads(1)


def reward(text: str) -> float:
    """Graded so groups carry signal even for a random model: share of digit characters."""
    return sum(ch.isdigit() for ch in text) / max(1, len(text))


def run(ckpt: str, steps: int, log: str) -> None:
    policy = load_policy(ModelConfig(name="tiny-0.5m", warm_start=False, device="cpu"))
    learner = Learner(policy, GRPOConfig(learning_rate=1e-3, num_iterations=2), max_new_tokens=6)
    seed_everything(0, policy)
    state = learner.resume(ckpt)
    start = state.step if state else 0
    gen = GenerationConfig(max_new_tokens=6, group_size=4)
    for step in range(start + 1, steps + 1):
        # The global python RNG picks the prompts: its state must survive the restart too.
        prompts = [f"Q: {random.randint(0, 99)} + {random.randint(0, 99)} =\nA: <answer>"
                   for _ in range(2)]
        out = policy.generate(prompts, gen.group_size, gen)
        groups = [TokenGroup(g[0].prompt_ids, [s.completion_ids for s in g],
                        [reward(s.text) for s in g], [s.truncated for s in g]) for g in out]
        stats = learner.train_step(groups)
        learner.save(ckpt, step, extra={"step": step, "note": ("resumable", 1)}, keep=2)
        with open(log, "a") as f:
            f.write(json.dumps({"step": step, "loss": stats.loss,
                                "reward": stats.reward_mean}) + "\n")


if __name__ == "__main__":
    run(sys.argv[1], int(sys.argv[2]), sys.argv[3])
