"""Checkpoints that survive a kill at any instant.

A checkpoint is a directory ``step-00000123/`` holding

- ``model/``: ``save_pretrained`` of the model (safetensors) and its tokenizer; with LoRA
  (``model.lora``) the adapters only (peft's adapter_model.safetensors and adapter_config.json),
- ``optimizer.pt``: the optimizer state (with LoRA, of the adapters only),
- ``rng.pt``: python, numpy and torch RNG states and the policy's sampling generator,
- ``state.json``: step, policy version, model id, tokenizer fingerprint,
- ``extra.pt``: the caller's extra dict (plain data: dicts, lists, tuples, numbers, strings,
  tensors; it is reloaded with ``weights_only=True``),
- ``manifest.json``: a sha256 of every other file, written last.

It is written into a temporary sibling directory, every file and the directory are fsynced, then
the directory is renamed into place, so a checkpoint is either all there or not there.
``latest_checkpoint`` still checks the manifest's hashes and skips any checkpoint that fails.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from transformers.utils import logging as hf_logging

from swarmrl.training.checkpoint_files import (  # noqa: F401 - re-exported
    fsync_tree,
    latest_checkpoint,
    list_checkpoints,
    verify_checkpoint,
    write_step_dir,
)
from swarmrl.training.lora import ADAPTER_CONFIG, is_lora, load_adapters

FORMAT = 1


@dataclass
class CheckpointState:
    """What ``load_checkpoint`` restored besides weights, optimizer and RNGs."""

    path: Path
    step: int
    policy_version: int
    extra: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


# --- files ---------------------------------------------------------------------------------------
def load_model_weights(model: torch.nn.Module, directory: str | Path) -> None:
    """Load ``save_pretrained`` safetensors into ``model`` in place (keeps optimizer references).

    Tied parameters (a tied LM head) are absent from the files; any other missing or unexpected
    key is an error. A LoRA model (``model.lora``) loads only its adapters.
    """
    if is_lora(model):
        load_adapters(model, directory)
        return
    if (Path(directory) / ADAPTER_CONFIG).is_file():
        raise ValueError(f"{directory}: holds LoRA adapters, not model weights "
                         "(set model.lora.enabled, with the rank and targets it was trained with)")
    state: dict[str, torch.Tensor] = {}
    files = sorted(Path(directory).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{directory}: no safetensors weights")
    for f in files:
        state.update(load_file(f))
    missing, unexpected = model.load_state_dict(state, strict=False)
    params = dict(model.named_parameters(remove_duplicate=False))
    loaded_ptrs = {params[k].data_ptr() for k in state if k in params}
    untied = [k for k in missing if k not in params or params[k].data_ptr() not in loaded_ptrs]
    if untied or unexpected:
        raise ValueError(f"{directory}: weights do not fit the model "
                         f"(missing {untied[:5]}, unexpected {unexpected[:5]})")


@contextmanager
def quiet_progress() -> Iterator[None]:
    """Silence transformers' per-save/per-load progress bars (noise in a training log)."""
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


# --- RNG -----------------------------------------------------------------------------------------
def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        # numpy's state holds an ndarray; stored as a list so weights_only loading accepts it.
        "numpy": (np_state[0], np_state[1].tolist(), *np_state[2:]),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


# --- save ----------------------------------------------------------------------------------------
def save_checkpoint(
    root: str | Path, policy: Any, optimizer: torch.optim.Optimizer | None, step: int,
    extra: dict[str, Any] | None = None, keep: int = 2,
) -> Path:
    """Write ``root/step-<step>`` atomically, then keep only the ``keep`` newest checkpoints."""
    return write_step_dir(
        root, step, lambda d: _write_contents(d, policy, optimizer, step, extra or {}), keep
    )


def _write_contents(
    d: Path, policy: Any, optimizer: torch.optim.Optimizer | None, step: int, extra: dict
) -> None:
    with quiet_progress():
        policy.model.save_pretrained(d / "model")
        policy.tokenizer.save_pretrained(d / "model")
    if optimizer is not None:
        torch.save(optimizer.state_dict(), d / "optimizer.pt")
    torch.save(rng_state(policy.generator), d / "rng.pt")
    torch.save(extra, d / "extra.pt")
    meta = {"format": FORMAT, "step": step, "policy_version": policy.version,
            "model_id": policy.model_id, "tokenizer_fingerprint": policy.fingerprint}
    (d / "state.json").write_text(json.dumps(meta, indent=2))


# --- load ----------------------------------------------------------------------------------------
def load_checkpoint(
    path: str | Path, policy: Any, optimizer: torch.optim.Optimizer | None = None,
    restore_rng: bool = True,
) -> CheckpointState:
    """Restore weights (in place), optimizer state, RNG states and policy version from ``path``."""
    path = Path(path)
    meta = json.loads((path / "state.json").read_text())
    load_model_weights(policy.model, path / "model")
    if optimizer is not None and (path / "optimizer.pt").is_file():
        state = torch.load(path / "optimizer.pt", map_location=policy.device, weights_only=True)
        optimizer.load_state_dict(state)
    if restore_rng:
        set_rng_state(torch.load(path / "rng.pt", weights_only=True), policy.generator)
    policy.version = int(meta["policy_version"])
    extra = torch.load(path / "extra.pt", weights_only=True)
    return CheckpointState(path, int(meta["step"]), policy.version, extra, meta)
