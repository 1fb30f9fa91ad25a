"""The node loop over a real in-memory network: trains alone or together, shrugs off attacks."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from _node_helpers import (
    FixedRuntime,
    OfflineTransport,
    ident,
    node_config,
    run_virtual,
    stub_node,
)

from swarmrl.brain.stub import StubBrain
from swarmrl.net import LinkSpec, MemoryNetwork, topic_name
from swarmrl.node.loop import Node
from swarmrl.node.metrics import read_metrics
from swarmrl.node.runtime import SimRuntime
from swarmrl.protocol import PeerCard, encode, seal

ROW_KEYS = {
    "step",
    "reward",
    "loss",
    "tokens",
    "seconds",
    "groups_local",
    "groups_external",
    "groups_with_signal",
    "policy_version",
    "pool",
    "peers",
    "time",
}


def test_a_node_without_peers_trains_alone(tmp_path: Path) -> None:
    cfg = node_config(steps=5, checkpoint={"every": 2, "keep": 2})

    async def main() -> Node:
        async with MemoryNetwork(seed=0) as net:
            me = ident(1)
            node = stub_node(cfg, net.endpoint(me.peer_id), me, SimRuntime(), tmp_path)
            with trio.fail_after(3600):
                await node.run()
            node.metrics.close()
            return node

    node = run_virtual(main)
    assert node.step == 5
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(set(r) >= ROW_KEYS for r in rows)
    assert all(r["groups_external"] == 0 and r["groups_local"] == 2 for r in rows)
    assert all(0.0 <= r["reward"] <= 1.0 and r["seconds"] > 0 for r in rows)
    assert node.brain.policy_version >= 1
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step-00000002", "step-00000004"]
    assert node.metrics.counters["published:rollouts"] == 10


def test_two_nodes_share_rollouts_while_an_attacker_floods_junk() -> None:
    """Garbage, replays, other-swarm cards and forged rewards: counted, never fatal."""
    a_id, b_id, evil = ident(1), ident(2), ident(66)
    steps = 6

    async def attack(net: MemoryNetwork, swarm: str) -> None:
        ep = net.endpoint(evil.peer_id)
        captured = ep.subscribe(topic_name(swarm, "rollouts"))
        seq = 10**9
        while True:
            await trio.sleep(0.03)
            await ep.publish(topic_name(swarm, "rollouts"), b"\x93garbage")
            while len(captured):
                _, data = captured.receive_nowait()
                await ep.publish(topic_name(swarm, "rollouts"), data)  # replay
            seq += 1
            card = PeerCard(peer_id=evil.peer_id, swarm_id="elsewhere")
            env = seal(card, evil, seq=seq, timestamp=trio.current_time() + 1.8e9)
            await ep.publish(topic_name(swarm, "peers"), encode(env))

    async def main() -> tuple[Node, Node]:
        link = LinkSpec(latency_s=0.02, jitter_s=0.01)
        async with MemoryNetwork(seed=3, default_link=link) as net:
            cfg_a = node_config(name="a", seed=1, steps=steps)
            cfg_b = node_config(name="b", seed=2, steps=steps)
            a = stub_node(cfg_a, net.endpoint(a_id.peer_id), a_id, SimRuntime())
            b = stub_node(cfg_b, net.endpoint(b_id.peer_id), b_id, SimRuntime())
            with trio.fail_after(3600):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(attack, net, cfg_a.swarm_id)
                    async with trio.open_nursery() as nodes:
                        nodes.start_soon(a.run)
                        nodes.start_soon(b.run)
                    nursery.cancel_scope.cancel()
            return a, b

    a, b = run_virtual(main)
    for node, other in ((a, b), (b, a)):
        assert node.step == steps
        c = node.metrics.counters
        assert c["dropped:malformed"] > 0
        assert c["dropped:replay"] > 0
        assert c["dropped:other_swarm"] > 0
        assert c["admitted:rollout_group"] > 0
        assert node.peers.get(other.peer_id).admitted > 0
        assert sum(r["groups_external"] for r in node.metrics.history) > 0
        assert node.peers.get(ident(66).peer_id).admitted == 0
    # the attacker's replays of a's own messages reach a as a's own messages
    assert a.metrics.counters["dropped:own_message"] > 0


def test_a_peer_card_names_a_local_model_by_its_folder_only(tmp_path: Path) -> None:
    from swarmrl.node.announce import public_model_id

    folder = tmp_path / "models" / "smollm2-135m"
    folder.mkdir(parents=True)
    assert public_model_id(str(folder)) == "smollm2-135m"
    assert public_model_id("~/models/my-model") == "my-model"
    assert public_model_id("./my-model") == "my-model"
    assert public_model_id("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    assert public_model_id("tiny-4m") == "tiny-4m"
    brain = StubBrain(seed=0)
    brain.model_id = str(folder)
    node = Node(node_config(), brain, OfflineTransport(), ident(1), FixedRuntime())
    assert node.card().model_id == "smollm2-135m"  # what the swarm is told


def test_a_node_that_learns_nothing_says_so_once_with_what_to_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A random tiny model on 3-digit sums never solves one: every group's rewards are 0, so
    GRPO has no signal. After NO_SIGNAL_STEPS such steps the node says so, once."""
    from _node_helpers import lm_config

    from swarmrl.brain.lm import LMBrain
    from swarmrl.net import MemoryNetwork
    from swarmrl.node.signal_watch import NO_SIGNAL_STEPS

    cfg = lm_config(name="lost", steps=NO_SIGNAL_STEPS + 5, tasks={
        "families": {"arith": 1.0},
        "family_params": {"arith": {"min_digits": 3, "max_digits": 3}},
    })

    async def main() -> Node:
        async with MemoryNetwork(seed=0) as net:
            me = ident(1)
            node = Node(cfg, LMBrain.from_config(cfg, progress=False),
                        net.endpoint(me.peer_id), me, SimRuntime())
            await node.run()
            return node

    with caplog.at_level("WARNING", logger="swarmrl.node"):
        node = run_virtual(main)
    assert all(r["groups_with_signal"] == 0 for r in node.metrics.history)
    said = [r.getMessage() for r in caplog.records if "no learning signal" in r.getMessage()]
    assert len(said) == 1, said
    assert f"for {NO_SIGNAL_STEPS} steps" in said[0] and "prompt_style = 'instruct'" in said[0]
    assert node.metrics.counters["no_signal_warnings"] == 1


CHATML = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
          "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
"""A chat template in Jinja, as an instruct model's tokenizer carries one (ChatML-like)."""


def test_prompt_style_auto_follows_the_tokenizer_and_chat_renders_its_template() -> None:
    """'auto': the tiny byte-level models (no chat template) keep 'short'; a tokenizer with a
    chat template gets 'chat', and what generation and training see is the template's
    rendering of the instruct text; 'chat' without a template is a one-line config error."""
    from _node_helpers import lm_config

    from swarmrl.brain.base import RolloutRequest
    from swarmrl.brain.lm import LMBrain
    from swarmrl.config import ConfigError
    from swarmrl.node.loop import with_prompt_style

    cfg = lm_config(name="chatty", steps=2)
    assert cfg.tasks.prompt_style == "auto"
    brain = LMBrain.from_config(cfg, progress=False)
    assert with_prompt_style(cfg, brain).tasks.prompt_style == "short"
    bad = cfg.model_copy(update={"tasks": cfg.tasks.model_copy(update={"prompt_style": "chat"})})
    with pytest.raises(ConfigError, match="tasks.prompt_style: 'chat' needs a tokenizer"):
        with_prompt_style(bad, brain)

    brain.policy.tokenizer.chat_template = CHATML
    resolved = with_prompt_style(cfg, brain)
    assert resolved.tasks.prompt_style == "chat" and brain.policy.chat
    text = "Solve: 2+2"
    rendered = brain.policy.render(text)
    assert rendered == "<|user|>\nSolve: 2+2\n<|assistant|>\n"
    assert brain.encode_prompt(text) == brain.policy.encode(rendered)
    brain.rollout([RolloutRequest(text, "arith", "k", "4")], 2)  # makes the backend
    backend = brain.policy._backends[cfg.generation.backend]
    seen: list[list[str]] = []
    real = backend.generate

    def spy(prompts, n, gen_cfg):
        seen.append(list(prompts))
        return real(prompts, n, gen_cfg)

    backend.generate = spy
    brain.rollout([RolloutRequest(text, "arith", "k", "4")], 2)
    assert seen == [[rendered]]  # the backend got the rendering, not the bare text
