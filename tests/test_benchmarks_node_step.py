"""benchmarks/node_step.py runs on CPU (tiny preset) and prints the JSON lines it promises."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "node_step.py"


@pytest.fixture(scope="module")
def node_step():
    spec = importlib.util.spec_from_file_location("bench_node_step", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_cpu_tiny_fast_and_hf(node_step, capsys, tmp_path):
    out = tmp_path / "node_step.jsonl"
    rc = node_step.main(["--device", "cpu", "--preset", "tiny", "--threads", "1",
                         "--backends", "fast", "hf", "vllm", "--warmup", "1", "--steps", "1",
                         "--rounds", "2", "--prompts", "2", "--group-size", "4",
                         "--max-new-tokens", "8", "--out", str(out)])
    assert rc == 0
    lines = _lines(capsys.readouterr().out)
    assert lines == [json.loads(x) for x in out.read_text().splitlines()]
    assert all(r["bench"] == "node_step" and r["device"].startswith("cpu") for r in lines)
    meta = lines[0]
    assert meta["meta"] and meta["torch"] and meta["transformers"]
    assert meta["preset"] == "tiny" and meta["backends"] == ["fast", "hf"]
    skipped = [r for r in lines if r.get("skipped")]
    assert [r["backend"] for r in skipped] == ["vllm"]  # no CUDA here
    results = {r["backend"]: r for r in lines if "impl" in r}
    assert set(results) == {"fast", "hf"}
    assert results["fast"]["impl"] == "FastBackend" and results["hf"]["impl"] == "HFBackend"
    for r in results.values():
        assert r["steps"] == 2  # 1 measured step x 2 rounds
        for k in ("step_s", "generate_s", "verify_s", "train_s"):
            assert r[f"{k}_median"] > 0 and r[f"{k}_mean"] > 0
        assert r["step_s_median"] >= r["generate_s_median"]
        assert 0 < r["tokens_per_step"] <= 2 * 4 * 8
        assert r["tokens_per_s"] > 0 and r["generate_tokens_per_s"] > r["tokens_per_s"]
        assert r["train_tokens_per_step"] > 0 and len(r["round_tokens_per_s"]) == 2
    [ratio] = [r for r in lines if "ratio" in r]
    assert ratio["ratio"] == "hf/fast"
    assert all(ratio[k] > 0 for k in ("step_x", "generate_x", "train_x", "tokens_per_s_x"))


def test_vllm_line_when_forced(node_step, capsys, monkeypatch):
    """Forced on a machine without vLLM, the backend falls back to HF generate and the line
    says so (impl and the warning); the other backends' runs are unaffected."""
    monkeypatch.setattr(node_step, "vllm_unavailable", lambda device: None)
    rc = node_step.main(["--device", "cpu", "--threads", "1", "--backends", "fast", "vllm",
                         "--warmup", "0", "--steps", "1", "--prompts", "1",
                         "--group-size", "2", "--max-new-tokens", "4"])
    assert rc == 0
    lines = _lines(capsys.readouterr().out)
    [vllm] = [r for r in lines if r.get("backend") == "vllm"]
    assert vllm["impl"] == "HFBackend" and vllm["tokens_per_s"] > 0
    assert any("'vllm' cannot run here" in w for w in vllm["warnings"])
    assert any(r.get("backend") == "fast" and r["tokens_per_s"] > 0 for r in lines)


def test_padded_tokenizer_encodes_like_bytes_and_decodes_every_id(node_step):
    from swarmrl.training.tiny import build_tiny_tokenizer

    base, padded = build_tiny_tokenizer(), node_step.padded_byte_tokenizer(1000)
    assert len(padded) == 1000
    text = "Q: 12 + <300> é =\nA: <answer>"
    assert padded.encode(text) == base.encode(text)  # fillers never match input
    assert padded.decode([81, 300, 999, 256], skip_special_tokens=True) == "Q<300><999>"
    # the plain byte tokenizer skips ids it does not have (no crash)
    assert base.decode([81, 300, 999], skip_special_tokens=True) == "Q"
