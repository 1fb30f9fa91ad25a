"""Checkpoints that survive a kill at any instant.

A checkpoint is a directory ``step-00000123/`` holding

- ``model/``: ``save_pretrained`` of the model (safetensors) and its tokenizer,
- ``optimizer.pt``: the optimizer state,
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

import hashlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from transformers.utils import logging as hf_logging

FORMAT = 1
MANIFEST = "manifest.json"
_PREFIX = "step-"


@dataclass
class CheckpointState:
    """What ``load_checkpoint`` restored besides weights, optimizer and RNGs."""

    path: Path
    step: int
    policy_version: int
    extra: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


# --- files ---------------------------------------------------------------------------------------
def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (and root itself)."""
    for dirpath, _, files in os.walk(root):
        for name in files:
            _fsync_path(Path(dirpath) / name)
        _fsync_path(Path(dirpath))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def load_model_weights(model: torch.nn.Module, directory: str | Path) -> None:
    """Load ``save_pretrained`` safetensors into ``model`` in place (keeps optimizer references).

    Tied parameters (a tied LM head) are absent from the files; any other missing or unexpected
    key is an error.
    """
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
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(root)
    final = root / f"{_PREFIX}{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", dir=root))
    try:
        _write_contents(tmp, policy, optimizer, step, extra or {})
        fsync_tree(tmp)
        if final.exists():  # the same step saved twice: swap the old one out first
            trash = root / f".tmp-{os.getpid()}-old-{final.name}"
            os.rename(final, trash)
            shutil.rmtree(trash)
        os.rename(tmp, final)
        _fsync_path(root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _prune(root, keep)
    return final


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
    # The manifest last: it vouches for everything written before it.
    manifest = {"format": FORMAT, "files": {f: _sha256(d / f) for f in _files(d)}}
    (d / MANIFEST).write_text(json.dumps(manifest, indent=2))


def _remove_stale_tmp(root: Path) -> None:
    """Delete temporary directories left by writers that died (their pid is gone)."""
    for p in root.glob(".tmp-*"):
        try:
            pid = int(p.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prune(root: Path, keep: int) -> None:
    for path in list_checkpoints(root)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


# --- find and load -------------------------------------------------------------------------------
def list_checkpoints(root: str | Path) -> list[Path]:
    """Checkpoint directories under ``root`` (complete or not), oldest step first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        if p.is_dir() and p.name.startswith(_PREFIX) and p.name[len(_PREFIX):].isdigit():
            found.append((int(p.name[len(_PREFIX):]), p))
    return [p for _, p in sorted(found)]


def verify_checkpoint(path: str | Path) -> bool:
    """True when the manifest exists, lists every file, and every hash matches."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        files = manifest["files"]
        if set(files) != set(_files(path)) - {MANIFEST}:
            return False
        return all(_sha256(path / f) == digest for f, digest in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest checkpoint that verifies; incomplete or corrupt ones are skipped."""
    for path in reversed(list_checkpoints(root)):
        if verify_checkpoint(path):
            return path
    return None


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
