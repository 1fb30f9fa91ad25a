"""Node.resume after save_checkpoint: same step, same task stream, same brain, same rng."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from _node_helpers import (
    FixedRuntime,
    ident,
    lm_config,
    node_config,
    run_virtual,
    stub_node,
)
from _oracle import oracle_lm_brain

from swarmrl.brain.stub import StubBrain
from swarmrl.config import ConfigError
from swarmrl.net import MemoryNetwork
from swarmrl.node.loop import Node
from swarmrl.node.metrics import read_metrics
from swarmrl.node.runtime import SimRuntime
from swarmrl.training.checkpoint_files import verify_checkpoint, write_manifest


def run_node(node: Node, steps: int) -> None:
    async def main() -> None:
        async with MemoryNetwork(seed=0) as net:
            node.transport = net.endpoint(node.peer_id)
            node.runtime = SimRuntime()
            await node.run(steps)

    run_virtual(main)


def test_resume_restores_step_sampler_rng_and_brain(tmp_path: Path) -> None:
    cfg = node_config(steps=3, seed=5)
    first = stub_node(cfg, identity=ident(1), out_dir=tmp_path)
    run_node(first, 3)
    first.save_checkpoint()
    first.metrics.close()

    second = stub_node(cfg, identity=ident(1), out_dir=tmp_path)
    assert second.step == 0
    assert second.resume()
    assert second.step == 3
    assert second.sampler.state_dict() == first.sampler.state_dict()
    assert second.sampler.drawn == 6  # 3 steps x 2 local groups
    assert second.rng.getstate() == first.rng.getstate()
    assert isinstance(second.brain, StubBrain) and isinstance(first.brain, StubBrain)
    assert second.brain.skill == first.brain.skill
    assert second.brain.policy_version == first.brain.policy_version
    # the task stream continues exactly where it stopped
    assert second.sampler.sample(4) == first.sampler.sample(4)

    run_node(second, 5)
    second.metrics.close()
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]


def test_resume_restores_the_sharing_split(tmp_path: Path) -> None:
    """sapo.adaptive's J and its evidence survive a restart: a resumed node does not go back
    to measuring the swarm from scratch."""
    cfg = node_config(seed=5, sapo={"local": 2, "external": 2, "adaptive": True})
    first = stub_node(cfg, identity=ident(1), out_dir=tmp_path)
    first.split.external = 2
    first.split.margins.extend([0.5, -0.25])
    first.save_checkpoint()
    first.metrics.close()
    second = stub_node(cfg, identity=ident(1), out_dir=tmp_path)
    assert second.split.state_dict() != first.split.state_dict()
    assert second.resume()
    assert second.split.state_dict() == first.split.state_dict()
    assert (second.split.local, second.split.external) == (2, 2)


def test_resume_without_a_checkpoint_starts_fresh(tmp_path: Path) -> None:
    assert not stub_node(node_config(), out_dir=tmp_path).resume()
    assert not stub_node(node_config(), out_dir=None).resume()
    assert stub_node(node_config(), out_dir=None).save_checkpoint() is None


def test_resume_skips_a_corrupt_newest_checkpoint(tmp_path: Path) -> None:
    cfg = node_config(steps=4, checkpoint={"every": 1, "keep": 3})
    node = stub_node(cfg, out_dir=tmp_path)
    run_node(node, 4)
    node.metrics.close()
    newest = tmp_path / "checkpoints" / "step-00000004"
    (newest / "stub.json").write_text("{}")
    again = stub_node(cfg, out_dir=tmp_path)
    assert again.resume() and again.step == 3
    shutil.rmtree(tmp_path / "checkpoints")
    assert not stub_node(cfg, out_dir=tmp_path).resume()


@pytest.mark.slow
def test_an_lm_node_resumes_its_weights_and_step(tmp_path: Path) -> None:
    cfg = lm_config(steps=2, checkpoint={"every": 2}, sapo={"local": 2, "external": 0})
    first = Node(cfg, oracle_lm_brain(cfg), None, ident(1), FixedRuntime(), tmp_path)
    run_node(first, 2)
    first.metrics.close()
    assert (tmp_path / "checkpoints" / "step-00000002").is_dir()
    assert first.brain.policy_version == 2  # the oracle completion gives every group signal

    second = Node(cfg, oracle_lm_brain(cfg), None, ident(1), FixedRuntime(), tmp_path)
    w1 = first.brain.policy.model.state_dict()

    def same_weights() -> bool:
        w2 = second.brain.policy.model.state_dict()
        return all(torch.equal(w1[k], w2[k]) for k in w1)

    assert not same_weights()
    assert second.resume()
    assert second.step == 2
    assert second.brain.policy_version == 2
    assert same_weights()
    assert second.sampler.state_dict() == first.sampler.state_dict()
    assert second.rng.getstate() == first.rng.getstate()


def test_resume_falls_back_past_checkpoints_that_verify_but_do_not_load(tmp_path: Path) -> None:
    """Files that match their manifest can still be wrong for this node (another model, a bad
    state file): the one before is loaded, with a warning; none loading is one clear error."""
    cfg = node_config(steps=4, checkpoint={"every": 1, "keep": 3})
    node = stub_node(cfg, out_dir=tmp_path)
    run_node(node, 4)
    node.metrics.close()
    root = tmp_path / "checkpoints"
    for step in (4, 3):
        bad = root / f"step-{step:08d}"
        (bad / "stub.json").write_text('{"not": "a stub brain"}')
        revouch(bad)  # the manifest matches the bad content
        assert verify_checkpoint(bad)
    again = stub_node(cfg, out_dir=tmp_path)
    assert again.resume() and again.step == 2
    (root / "step-00000002" / "stub.json").write_text("[]")
    revouch(root / "step-00000002")
    with pytest.raises(ConfigError, match="no checkpoint under .* loads: step-00000004"):
        stub_node(cfg, out_dir=tmp_path).resume()
    assert len(list(root.iterdir())) == 3  # nothing deleted


def revouch(step_dir: Path) -> None:
    (step_dir / "manifest.json").unlink()
    write_manifest(step_dir)


def test_resume_removes_what_a_killed_checkpoint_writer_left(tmp_path: Path) -> None:
    cfg = node_config(steps=2, checkpoint={"every": 1, "keep": 3})
    node = stub_node(cfg, out_dir=tmp_path)
    run_node(node, 2)
    node.metrics.close()
    root = tmp_path / "checkpoints"
    dead = root / ".tmp-999999999-abc"  # a writer pid that cannot exist
    dead.mkdir()
    (dead / "model.safetensors").write_bytes(b"half")
    reused = root / f".tmp-{os.getpid()}-def"  # our pid, but written before we started
    reused.mkdir()
    os.utime(reused, (time.time() - 3600, time.time() - 3600))
    again = stub_node(cfg, out_dir=tmp_path)
    assert again.resume() and again.step == 2
    assert not dead.exists() and not reused.exists()
