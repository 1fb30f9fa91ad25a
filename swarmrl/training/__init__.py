"""One node's learning: policy, generation backends, GRPO, learner, checkpoints, tiny models.

Names below are imported lazily: some modules of this package (``brain``, ``sapo``) are torch-free
and are imported by the node loop and the simulator, which must not pay for torch by importing
this package.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Policy": "policy", "load_policy": "policy", "load_tokenizer": "policy",
    "Sample": "backend_base", "GenerationBackend": "backend_base", "FastBackend": "generation",
    "HFBackend": "generation", "make_backend": "generation",
    "selective_logprobs": "logprobs", "sequence_logprobs": "logprobs",
    "group_advantages": "grpo", "grpo_loss": "grpo",
    "Group": "learner", "Learner": "learner", "StepStats": "learner", "seed_everything": "learner",
    "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint",
    "latest_checkpoint": "checkpoint", "CheckpointState": "checkpoint",
    "build_tiny_model": "tiny", "build_tiny_tokenizer": "tiny", "tokenizer_fingerprint": "tiny",
    "warm_start_model": "warmstart",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'swarmrl.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"swarmrl.training.{_EXPORTS[name]}"), name)
