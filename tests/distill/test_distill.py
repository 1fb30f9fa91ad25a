"""Distillation between nodes on the in-memory network: the teacher's handler (batching, limits,
refusals, bad bytes), a student's fallback when no teacher answers, and a teacher and a student
running the real node loop with real tiny models."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from _node_helpers import ident, lm_config, run_virtual, stub_node

from swarmrl.brain.lm import LMBrain
from swarmrl.net import LinkSpec, MemoryNetwork
from swarmrl.node.loop import Node
from swarmrl.node.runtime import SimRuntime
from swarmrl.protocol import (
    PeerCard,
    TeacherReply,
    TeacherRequest,
    decode,
    encode,
    seal,
)
from swarmrl.training.distill_loss import score_tokens

PROMPT = [81, 58, 32, 49, 32, 43, 32, 49, 10, 65, 58]
COMPS = [[50, 256], [51, 52, 256]]
LINK = LinkSpec(latency_s=0.01, jitter_s=0.0)


def lm_node(cfg: Any, net: MemoryNetwork, i: int, speed: float = 1.0) -> Node:
    me = ident(i)
    brain = LMBrain.from_config(cfg, progress=False)
    return Node(cfg, brain, net.endpoint(me.peer_id), me, SimRuntime(speed=speed))


def request(i: int, fp: str, comps: list[list[int]] = COMPS, rid: int = 1, signer: int = 0,
            prompt: list[int] = PROMPT) -> bytes:
    req = TeacherRequest(request_id=rid, tokenizer_fingerprint=fp, prompt_ids=prompt,
                         completion_ids=comps)
    return encode(seal(req, ident(signer or i), seq=rid, timestamp=1.8e9))


def reply_of(data: bytes) -> TeacherReply:
    msg = decode(data).payload
    assert isinstance(msg, TeacherReply)
    return msg


def with_teacher(test: Any, **teacher_cfg: Any) -> Any:
    """Run ``test(net, teacher)`` while a teacher node serves (without its training loop)."""

    async def main() -> Any:
        async with MemoryNetwork(seed=0, default_link=LINK) as net:
            cfg = lm_config(name="t", roles=["solver", "teacher"], teacher=teacher_cfg)
            t = lm_node(cfg, net, 1)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(t.teacher.serve)
                with trio.fail_after(600):
                    out = await test(net, t)
                nursery.cancel_scope.cancel()
            return out

    return run_virtual(main)


def test_teacher_scores_concurrent_requests_in_one_batch() -> None:
    async def test(net: MemoryNetwork, t: Node) -> list[TeacherReply]:
        fp = t.brain.tokenizer_fingerprint
        eps = {i: net.endpoint(ident(i).peer_id) for i in (2, 3)}
        replies: list[Any] = [None] * 3

        async def ask(k: int, i: int, comps: list[list[int]]) -> None:
            data = request(i, fp, comps, rid=k + 1)
            raw = await eps[i].request(t.peer_id, "teacher", data, 5)
            replies[k] = reply_of(raw)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, 0, 2, COMPS)
            nursery.start_soon(ask, 1, 3, COMPS[:1])
            nursery.start_soon(ask, 2, 2, [[60, 61, 62, 63]])
        return replies

    teacher: list[Node] = []

    async def capture(net: MemoryNetwork, t: Node) -> list[TeacherReply]:
        teacher.append(t)
        return await test(net, t)

    replies = with_teacher(capture)
    t = teacher[0]
    assert [r.request_id for r in replies] == [1, 2, 3] and all(r.error is None for r in replies)
    want = score_tokens(t.brain.policy, [(PROMPT, c) for c in COMPS])
    for got, exp in zip(replies[0].logprobs, want, strict=True):
        assert got == pytest.approx(exp, abs=1e-5)
    assert replies[1].logprobs[0] == pytest.approx(want[0], abs=1e-5)
    assert [len(x) for x in replies[2].logprobs] == [4]
    c = t.metrics.counters
    assert c["teacher:served"] == 3 and c["teacher:batches"] == 1
    assert c["teacher:tokens"] == (11 + 2) + (11 + 3) + (11 + 2) + (11 + 4)
    assert t.peers.get(ident(2).peer_id).distill_served == 2
    assert t.peers.get(ident(3).peer_id).distill_served == 1


def test_teacher_refuses_with_reasons_and_survives_bad_bytes() -> None:
    async def test(net: MemoryNetwork, t: Node) -> dict[str, str]:
        fp = t.brain.tokenizer_fingerprint
        a, b = net.endpoint(ident(2).peer_id), net.endpoint(ident(3).peer_id)
        card = encode(seal(PeerCard(peer_id=ident(2).peer_id), ident(2), seq=9))
        cases = {
            "tokenizer": (a, request(2, "another-tokenizer")),
            "too_large": (a, request(2, fp, [[50] * 200])),
            "bad_tokens": (a, request(2, fp, [[50, 10**6]])),
            "bad_request": (a, request(2, fp, prompt=[])),
            "malformed": (a, b"\x93not an envelope"),
            "unexpected_kind": (a, card),
            "sender_mismatch": (a, request(2, fp, signer=3)),  # b's signature, sent by a
            "ok": (a, request(2, fp, [[50] * 80])),  # 91 tokens of a's 150-token bucket
            "rate_limited": (a, request(2, fp, [[50] * 80])),
            "other peer": (b, request(3, fp, [[50] * 80])),  # b has its own bucket
        }
        out = {}
        for name, (ep, data) in cases.items():
            r = reply_of(await ep.request(t.peer_id, "teacher", data, 5))
            out[name] = r.error or "served"
        return out

    nodes: list[Node] = []

    async def capture(net: MemoryNetwork, t: Node) -> dict[str, str]:
        nodes.append(t)
        return await test(net, t)

    out = with_teacher(capture, max_tokens_per_request=150, peer_burst_tokens=150,
                       peer_tokens_per_s=1.0)
    assert out.pop("ok") == "served" and out.pop("other peer") == "served"
    for reason, error in out.items():
        assert error.startswith(reason + ":"), (reason, error)
    assert "tokenizer mismatch" in out["tokenizer"]
    c = nodes[0].metrics.counters
    assert {k: v for k, v in c.items() if k.startswith("teacher:refused:")} == {
        f"teacher:refused:{r}": 1 for r in out
    }
    assert c["teacher:served"] == 2
    assert nodes[0].transport.stats["handler_errors"] == 0


def test_student_falls_back_to_grpo_when_no_teacher_answers() -> None:
    silent, garbled = ident(7), ident(8)

    async def main() -> tuple[Node, Node]:
        async with MemoryNetwork(seed=0, default_link=LINK) as net:
            ep_silent = net.endpoint(silent.peer_id)
            ep_garbled = net.endpoint(garbled.peer_id)

            async def never(sender: str, data: bytes) -> bytes:
                await trio.sleep_forever()
                return b""

            async def garbage(sender: str, data: bytes) -> bytes:
                return b"\x00garbage"

            ep_silent.set_handler("teacher", never)
            ep_garbled.set_handler("teacher", garbage)
            nodes = []
            for i, teacher in ((2, silent), (3, garbled)):
                cfg = lm_config(name=f"s{i}", steps=2, distill={
                    "mode": "grpo+kl", "teachers": [teacher.peer_id], "timeout_s": 0.5,
                    "discover": False})
                nodes.append(lm_node(cfg, net, i))
            with trio.fail_after(600):
                async with trio.open_nursery() as nursery:
                    for n in nodes:
                        nursery.start_soon(n.run)
            return nodes[0], nodes[1]

    slow, bad = run_virtual(main)
    for node, reason in ((slow, "timeout"), (bad, "bad_reply")):
        assert node.step == 2
        rows = list(node.metrics.history)
        assert [r["distill_fallback"] for r in rows] == [1.0, 1.0]
        assert all(r["distill_teacher"] is None and "distill_kl" not in r for r in rows)
        assert node.metrics.counters[f"distill:fallback:{reason}"] == 2
    # waited for the timeout, not forever
    assert 1.0 <= slow.metrics.history[-1]["time"] < 10.0


def test_a_student_distills_from_a_teacher_it_discovers() -> None:
    async def main() -> tuple[Node, Node]:
        async with MemoryNetwork(seed=0, default_link=LINK) as net:
            # fp32 on every CPU: two copies of one model then score every token exactly alike
            # (under bf16 autocast the student's training pass differs from the teacher's fp32
            # scoring by rounding alone, and that noise would count as "taught").
            common = {"peer_card_every_s": 0.05, "sapo": {"local": 2, "external": 0},
                      "grpo": {"learning_rate": 1e-3, "autocast": "off"}}
            # steps = 0: the teacher trains (and teaches) until the student is done
            t = lm_node(lm_config(name="t", seed=1, steps=0, roles=["solver", "teacher"],
                                  **common), net, 1)
            s = lm_node(lm_config(name="s", seed=2, steps=4, distill={"mode": "distill"},
                                  **common), net, 2)
            with trio.fail_after(3600):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(t.run)
                    await s.run()
                    nursery.cancel_scope.cancel()
            return t, s

    t, s = run_virtual(main)
    taught = [r for r in s.metrics.history if r["distill_teacher"] == t.peer_id]
    assert taught, list(s.metrics.history)
    for r in taught:
        assert r["distill_fallback"] == 0.0
        assert r["distill_tokens"] > 0 and r["distill_kl"] is not None
    # Both start from the same weights: until the teacher's first update its log-probs are the
    # student's own (kl exactly 0), and there is nothing to teach. Which step that is depends
    # on which node steps first; from then on the teacher differs, and every such step is pure
    # distillation (the random student's rewards are all 0: only the teacher's signal trains).
    differ = [r for r in taught if r["distill_kl"] != 0.0]
    alike = [r for r in taught if r["distill_kl"] == 0.0]
    assert differ, taught
    assert all(r["distill_share"] == 1.0 for r in differ), differ
    assert all(r["distill_share"] == 0.0 for r in alike), alike
    assert all(a["step"] < differ[0]["step"] for a in alike), taught  # never alike again
    assert all(r["reward"] == 0.0 for r in s.metrics.history)
    assert s.brain.policy_version == len(taught)
    assert t.metrics.counters["teacher:served"] >= 2 * len(taught)
    assert s.peers.get(t.peer_id).distill_received == 2 * len(taught)
    assert t.peers.get(s.peer_id).distill_served == 2 * len(taught)


def test_no_way_to_find_a_teacher_is_a_run_time_warning(caplog: pytest.LogCaptureFixture) -> None:
    cfg = lm_config(distill={"mode": "distill", "discover": False})  # valid config
    with caplog.at_level("WARNING", logger="swarmrl.node.student"):
        node = stub_node(cfg)  # the stub cannot be distilled into: said so
        student = Node(cfg, LMBrain.from_config(cfg, progress=False), node.transport,
                           ident(1), node.runtime)
    assert "cannot be distilled into" in caplog.text
    assert "no teacher can be found" in caplog.text
    assert student.distill is not None and student.teacher is None


def test_teachers_are_found_by_role_and_tokenizer_and_picked_in_turn_or_by_speed() -> None:
    listed = ident(9).peer_id
    cfg = lm_config(distill={"mode": "grpo+kl", "teachers": [listed]})
    node = stub_node(cfg, identity=ident(1))
    fp = node.brain.tokenizer_fingerprint
    cards = {
        2: PeerCard(peer_id=ident(2).peer_id, roles=["solver", "teacher"],
                    tokenizer_fingerprint=fp),
        3: PeerCard(peer_id=ident(3).peer_id, roles=["teacher"], tokenizer_fingerprint=fp),
        4: PeerCard(peer_id=ident(4).peer_id, roles=["solver"], tokenizer_fingerprint=fp),
        5: PeerCard(peer_id=ident(5).peer_id, roles=["teacher"], tokenizer_fingerprint="other"),
        1: PeerCard(peer_id=ident(1).peer_id, roles=["teacher"], tokenizer_fingerprint=fp),
    }
    for card in cards.values():
        node.peers.touch(card.peer_id, 0.0).card = card
    client = node.distill
    found = client.candidates()
    assert found[0] == listed and set(found[1:]) == {ident(2).peer_id, ident(3).peer_id}
    assert [client.pick(found, 0) for _ in range(4)] == found + found[:1]
    client._skip_until[found[0]] = 5  # failed us at step 0: skipped while others answer
    assert found[0] not in {client.pick(found, 1) for _ in range(4)}
    assert client.pick(found, 5) in found
    client.cfg = client.cfg.model_copy(update={"pick": "least_loaded"})
    client._latency = {found[0]: 0.5, found[1]: 0.1}
    assert client.pick(found, 9) == found[2]  # untried first
    client._latency[found[2]] = 0.3
    assert client.pick(found, 9) == found[1]  # then the fastest


def test_inspect_peers_says_who_teaches_whom() -> None:
    """The control API's peer view carries the teaching counts, and the text view says it."""
    from _node_helpers import FixedRuntime, node_config, stub_node
    from rich.console import Console

    from swarmrl.cli.inspect_view import peers_view
    from swarmrl.control import inspection
    from swarmrl.control.client import to_dict
    from swarmrl.swarm.peers import PeerInfo

    t = stub_node(node_config(name="t"), identity=ident(1), runtime=FixedRuntime())
    info = t.peers.touch("12D3KooWStudent", t.started_at)
    assert isinstance(info, PeerInfo)
    info.distill_served = 7
    reply = to_dict(inspection.peers(inspection.ServedNode(t, connected=list), {}))
    (peer,) = reply["peers"]
    assert peer["distill_served"] == 7 and peer.get("distill_received", 0) == 0
    console = Console(width=200, record=True)
    console.print(peers_view(reply))
    text = console.export_text()
    assert "this node teaches 12D3KooW" in text and "7 requests answered" in text
