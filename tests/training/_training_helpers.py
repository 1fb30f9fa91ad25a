"""Helpers shared by the training tests."""

from __future__ import annotations

from swarmrl.config import ModelConfig
from swarmrl.training.policy import Policy, load_policy

PROMPTS = ["Q: 68 - 32 =\nA: <answer>", "Q: 5 + 7 =\nA: <answer>", "Q: 1 + 1 =\nA: <answer>",
           "Q: 99 + 99 =\nA: <answer>"]


def random_policy(seed: int = 0) -> Policy:
    """A freshly initialised tiny-0.5m on CPU (no warm start)."""
    return load_policy(ModelConfig(name="tiny-0.5m", warm_start=False, device="cpu",
                                   init_seed=seed), seed=seed)
