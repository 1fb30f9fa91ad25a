"""Checkpoints: round trip, pruning, atomic writes, corrupt ones skipped, kill and resume."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _training_helpers import random_policy

from swarmrl.config import GRPOConfig
from swarmrl.training import checkpoint as ckpt_mod
from swarmrl.training.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from swarmrl.training.learner import Learner, TokenGroup

WORKER = Path(__file__).with_name("_training_worker.py")


def one_step(learner: Learner) -> None:
    p = learner.policy.encode("Q: 1 + 1 =\nA: <answer>")
    learner.train_step([TokenGroup(p, [[50, 256], [51, 256], [52, 53]], [1.0, 0.0, 0.0])])


def test_round_trip_restores_everything(tmp_path) -> None:
    pol = random_policy()
    learner = Learner(pol, GRPOConfig(learning_rate=1e-3))
    one_step(learner)
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    pol.seed(5)
    extra = {"sampler": {"cursor": 17, "state": random.getstate()}, "t": torch.arange(3)}
    path = save_checkpoint(tmp_path, pol, learner.optimizer, step=7, extra=extra)
    expected = (random.random(), np.random.rand(), torch.rand(1).item(),
                torch.rand(1, generator=pol.generator).item())
    weights = {k: v.clone() for k, v in pol.model.state_dict().items()}
    opt_state = learner.optimizer.state_dict()["state"]

    fresh = random_policy(seed=1)  # other weights, other RNG
    fresh_learner = Learner(fresh, GRPOConfig(learning_rate=1e-3))
    state = load_checkpoint(path, fresh, fresh_learner.optimizer)
    assert state.step == 7 and state.policy_version == 1 == fresh.version
    assert state.extra["sampler"] == extra["sampler"]
    assert torch.equal(state.extra["t"], extra["t"])
    for k, v in fresh.model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    for i, s in fresh_learner.optimizer.state_dict()["state"].items():
        assert torch.equal(s["exp_avg"], opt_state[i]["exp_avg"])
    assert expected == (random.random(), np.random.rand(), torch.rand(1).item(),
                        torch.rand(1, generator=fresh.generator).item())
    assert state.meta["tokenizer_fingerprint"] == pol.fingerprint


def test_keep_last_k_and_latest(tmp_path) -> None:
    pol = random_policy()
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, pol, None, step=step, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000003", "step-00000004"]
    assert latest_checkpoint(tmp_path).name == "step-00000004"
    assert not list(tmp_path.glob(".tmp-*"))
    # Saving a step again replaces it.
    save_checkpoint(tmp_path, pol, None, step=4, keep=2)
    assert verify_checkpoint(tmp_path / "step-00000004")


def test_corrupt_or_incomplete_checkpoints_are_skipped(tmp_path) -> None:
    pol = random_policy()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, pol, None, step=step, keep=5)
    # step 3: a flipped byte in the weights; step 2: manifest missing (never finished).
    weights = tmp_path / "step-00000003" / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    (tmp_path / "step-00000002" / "manifest.json").unlink()
    assert latest_checkpoint(tmp_path).name == "step-00000001"
    # An extra file nobody vouched for also fails verification.
    (tmp_path / "step-00000001" / "stray.bin").write_bytes(b"x")
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "nowhere") is None


def test_crash_mid_write_leaves_nothing_visible(tmp_path, monkeypatch) -> None:
    pol = random_policy()
    save_checkpoint(tmp_path, pol, None, step=1)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod, "rng_state", boom)  # fails after the weights are written
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, pol, None, step=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000001"]
    assert not list(tmp_path.glob(".tmp-*"))
    # A temp dir left by a dead writer (SIGKILL) is removed by the next save.
    stale = tmp_path / ".tmp-999999999-abc"
    stale.mkdir()
    monkeypatch.undo()
    save_checkpoint(tmp_path, pol, None, step=3)
    assert not stale.exists()


def test_resume_in_process_is_exact(tmp_path) -> None:
    """Save after 2 steps, continue 2 more; a fresh learner resumed from step 2 matches."""

    def steps(learner: Learner, n: int) -> list[float]:
        losses = []
        for _ in range(n):
            out = learner.policy.generate(["Q: 3 + 4 =\nA: <answer>"], 4, gen)
            g = out[0]
            rewards = [float(len(s.completion_ids) % 2) + 0.1 * i for i, s in enumerate(g)]
            losses.append(learner.train_step(
                [TokenGroup(g[0].prompt_ids, [s.completion_ids for s in g], rewards)]).loss)
        return losses

    from swarmrl.config import GenerationConfig

    gen = GenerationConfig(max_new_tokens=5)
    cfg = GRPOConfig(learning_rate=1e-3, num_iterations=2)
    a = Learner(random_policy(), cfg)
    steps(a, 2)
    a.save(tmp_path, step=2)
    tail = steps(a, 2)
    b = Learner(random_policy(seed=9), cfg)
    assert b.resume(tmp_path).step == 2
    assert steps(b, 2) == tail


def _run_worker(ckpt: Path, steps: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    return subprocess.Popen([sys.executable, str(WORKER), str(ckpt), str(steps), str(log)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _losses(log: Path) -> dict[int, float]:
    if not log.exists():
        return {}
    return {r["step"]: r["loss"] for r in map(json.loads, log.read_text().splitlines())}


@pytest.mark.slow
def test_sigkill_and_resume_matches_uninterrupted_run(tmp_path) -> None:
    steps = 8
    ref_log, log = tmp_path / "ref.log", tmp_path / "run.log"
    ref = _run_worker(tmp_path / "ref", steps, ref_log)
    victim = _run_worker(tmp_path / "run", steps, log)
    deadline = time.monotonic() + 120
    while len(_losses(log)) < 3 and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)  # somewhere in step 4: sampling, update or checkpoint
    victim.wait()
    killed_at = len(_losses(log))
    assert 3 <= killed_at < steps, "the run was not killed mid-way"
    resumed = _run_worker(tmp_path / "run", steps, log)
    assert resumed.wait(timeout=120) == 0, resumed.stderr.read().decode()[-2000:]
    assert ref.wait(timeout=120) == 0, ref.stderr.read().decode()[-2000:]
    expected, got = _losses(ref_log), _losses(log)
    assert sorted(got) == list(range(1, steps + 1))
    assert got == expected  # bitwise: same samples, same updates, same losses
