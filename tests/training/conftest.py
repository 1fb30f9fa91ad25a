"""Shared fixtures for the training tests: one thread (the 2 cores are shared), tiny models."""

from __future__ import annotations

import pytest
import torch
from _training_helpers import random_policy

from swarmrl.config import ModelConfig
from swarmrl.training.policy import Policy, load_policy
from swarmrl.training.tiny import build_tiny_tokenizer

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture
def policy() -> Policy:
    return random_policy()


@pytest.fixture(scope="session")
def trained_policy(tmp_path_factory) -> Policy:
    """tiny-0.5m after a few supervised steps: stops with EOS after varied lengths, like a real
    policy (a random model never samples EOS). Built through the warm-start cache."""
    cache = tmp_path_factory.mktemp("cache")
    cfg = ModelConfig(name="tiny-0.5m", warm_start_steps=40, device="cpu", cache_dir=str(cache))
    return load_policy(cfg, progress=False)
