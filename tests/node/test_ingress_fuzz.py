"""Faults: the libp2p ingress fuzzed with random and mutated envelopes, on real hosts.

An attacker host publishes a stream of hostile inputs on the swarm's topics (random bytes,
mutations of a valid envelope, validly signed envelopes carrying random payloads, replays,
impersonations) and writes junk on every stream protocol the node serves. Two nodes receive
it: one behind the daemon's gossip validator and its guard, one with neither, so every input
also reaches the node's own decoder. Both keep training, count what they drop, and still admit
an honest message afterwards.
"""

from __future__ import annotations

import random

import msgpack
import pytest
import trio
from _node_helpers import group

from swarmrl.brain.stub import StubBrain
from swarmrl.config import NetworkConfig, NodeConfig
from swarmrl.daemon.validator import make_validator
from swarmrl.net.libp2p_transport import Libp2pTransport
from swarmrl.net.libp2p_wire import HELLO_PROTOCOL, request_protocol
from swarmrl.node.loop import Node
from swarmrl.node.runtime import RealRuntime
from swarmrl.protocol import Identity, encode, seal
from swarmrl.protocol.codec import _signing_bytes

pytestmark = [pytest.mark.network, pytest.mark.slow]

SWARM = "fuzz"
LOOPBACK = "/ip4/127.0.0.1/tcp/0"
INPUTS = 1200
KINDS = ["rollout_group", "task_proposal", "peer_card", "teacher_request", "teacher_reply", "x"]


def _net(**kw) -> NetworkConfig:
    kw.setdefault("listen", [LOOPBACK])
    # Decoding is under test, not budgets: every fuzzer key is a newcomer, and the newcomer
    # share would stop most of the fuzz before it reached admission (tests/net/*budget*).
    return NetworkConfig(publish_per_second=2000.0, queue_size=4096,
                         messages_per_topic_per_second=100_000.0, newcomer_messages_per_s=0.0,
                         **kw)


def _random_obj(rng: random.Random, depth: int = 0):
    pick = rng.randrange(8 if depth < 3 else 5)
    if pick == 0:
        return rng.randrange(-2**63, 2**63)
    if pick == 1:
        return rng.random() * 10 ** rng.randrange(-5, 300)
    if pick == 2:
        return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(40)))
    if pick == 3:
        return rng.randbytes(rng.randrange(64))
    if pick == 4:
        return rng.choice([None, True, False, float("nan"), float("inf")])
    if pick == 5:
        return [_random_obj(rng, depth + 1) for _ in range(rng.randrange(6))]
    keys = ["task", "completions", "peer_id", "roles", "family", "seed", "index", "params"]
    return {rng.choice(keys): _random_obj(rng, depth + 1) for _ in range(rng.randrange(6))}


def _signed_random(rng: random.Random, attacker: Identity, seq: int) -> bytes:
    """A validly signed envelope whose payload is anything at all."""
    kind = rng.choice(KINDS)
    body = msgpack.packb(_random_obj(rng), use_bin_type=True)
    ts = 1.7e9 + rng.random() * 1e8
    sig = attacker.sign(_signing_bytes(kind, 1, attacker.peer_id, ts, seq, body))
    return msgpack.packb([kind, 1, attacker.peer_id, ts, seq, body, sig], use_bin_type=True)


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randrange(1, 6)):
        op = rng.randrange(4)
        i = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(i, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            del b[i:]
        elif op == 2:
            b[i:i] = rng.randbytes(rng.randrange(1, 16))
        else:
            b[i:i] = b[: rng.randrange(1, 64)]
    return bytes(b)


def hostile_inputs(rng: random.Random, attacker: Identity, victim: Identity, n: int):
    """(topic name, bytes) pairs: the fuzz corpus, generated fresh from a seed."""
    valid = encode(seal(group(1), attacker, seq=10))
    other = encode(seal(group(2), victim, seq=11))  # a victim's message, to impersonate
    for i in range(n):
        kind = i % 6
        if kind == 0:
            data = rng.randbytes(rng.randrange(0, 2048))
        elif kind == 1:
            data = _mutate(rng, valid)
        elif kind == 2:
            data = _signed_random(rng, attacker, seq=1000 + i)
        elif kind == 3:
            data = valid  # replayed over and over
        elif kind == 4:  # the victim's message re-signed... by the attacker's key
            parts = msgpack.unpackb(other, raw=False)
            parts[6] = attacker.sign(_signing_bytes(*parts[:6]))
            data = msgpack.packb(parts, use_bin_type=True)
        else:
            data = _mutate(rng, other)
        yield rng.choice(["rollouts", "peers", "tasks"]), data


def _processed(node: Node) -> int:
    c = node.metrics.counters
    return sum(v for k, v in c.items() if k.startswith(("dropped:", "admitted:")))


async def _caught_up(node: Node, heard: int, timeout: float = 20.0) -> None:
    """Wait until the node's admission has seen (nearly) everything sent on its topics."""
    with trio.move_on_after(timeout):
        while _processed(node) < heard * 0.95:
            await trio.sleep(0.05)


def _node(name: str, transport: Libp2pTransport, ident: Identity, guard: bool = True) -> Node:
    cfg = NodeConfig(name=name, swarm_id=SWARM, steps=0, peer_card_every_s=0.5,
                     guard={"enabled": guard})
    return Node(cfg, StubBrain(seed=1), transport, ident, RealRuntime())


async def _junk_streams(attacker: Libp2pTransport, target: str, rng: random.Random) -> int:
    """Open every protocol the target serves and write junk into it; count streams opened."""
    from libp2p.peer.id import ID

    opened = 0
    host = attacker._host
    for proto in [HELLO_PROTOCOL, request_protocol("teacher"), "/meshsub/1.1.0", "/meshsub/1.0.0"]:
        for _ in range(5):
            try:
                with trio.fail_after(3):
                    stream = await host.new_stream(ID.from_base58(target), [proto])
                    await stream.write(rng.randbytes(rng.randrange(1, 4096)))
                    await stream.close()
                opened += 1
            except Exception:  # a refusal is fine: the test is that the target survives
                pass
    return opened


def test_fuzzed_ingress_never_crashes_a_node() -> None:
    trio.run(_fuzz)


async def _fuzz() -> None:
    rng = random.Random(1234)
    a_id, b_id, atk_id, honest_id = (Identity.generate() for _ in range(4))
    strict = make_validator(1 << 20, SWARM)
    async with (
        Libp2pTransport.open(a_id, _net(), swarm_id=SWARM, validator=strict) as ta,
        Libp2pTransport.open(b_id, _net(bootstrap=[f"{ta.listen_addrs()[0]}"]), swarm_id=SWARM,
                             validator=None) as tb,
        Libp2pTransport.open(atk_id, _net(bootstrap=[ta.listen_addrs()[0], tb.listen_addrs()[0]]),
                             swarm_id=SWARM, validator=None) as tatk,
        Libp2pTransport.open(honest_id, _net(bootstrap=[ta.listen_addrs()[0]]), swarm_id=SWARM,
                             validator=strict) as thon,
    ):
        # The open node runs without its guard, so every input reaches its decoder (with the
        # guard the attacker is ignored after a few failures and the rest is never decoded).
        na, nb = _node("strict", ta, a_id), _node("open", tb, b_id, guard=False)
        attacker = _node("attacker", tatk, atk_id)  # only for its topic names
        async with trio.open_nursery() as nursery:
            nursery.start_soon(na.run, 0)
            nursery.start_soon(nb.run, 0)
            rollouts = attacker.topics["rollouts"]
            with trio.fail_after(20):
                while len(tatk.topic_peers(rollouts)) < 2 or not thon.topic_peers(rollouts):
                    await trio.sleep(0.05)
            steps_before = (na.step, nb.step)
            sent = heard = 0
            for name, data in hostile_inputs(rng, atk_id, honest_id, INPUTS):
                try:
                    await tatk.publish(attacker.topics[name], data)
                    sent += 1
                    heard += name != "tasks"  # the nodes subscribe to rollouts and peers
                except Exception:  # the attacker's own size check may refuse an input
                    pass
                if sent % 100 == 0:  # py-libp2p's 1024-deep queues: let the nodes keep up
                    await _caught_up(nb, heard)
            await _caught_up(nb, heard)
            opened = await _junk_streams(tatk, ta.peer_id, rng)
            opened += await _junk_streams(tatk, tb.peer_id, rng)
            # Honest traffic still flows: a fresh valid group from another peer is admitted.
            good = encode(seal(group(3), honest_id, seq=5))
            with trio.fail_after(30):
                while nb.metrics.counters["admitted:rollout_group"] < 1 or (
                    na.metrics.counters["admitted:rollout_group"] < 1
                ):
                    await thon.publish(attacker.topics["rollouts"], good)
                    await trio.sleep(0.5)
            await trio.sleep(1.0)
            nursery.cancel_scope.cancel()
    assert sent >= INPUTS * 0.9 and opened > 0
    # Both kept training while the fuzz ran.
    assert na.step > steps_before[0] and nb.step > steps_before[1]
    # The open node's admission saw the corpus and dropped it by reason; the strict node's
    # gossip validator refused it before it could be forwarded.
    dropped_b = {k: v for k, v in nb.metrics.counters.items() if k.startswith("dropped:")}
    assert _processed(nb) >= heard * 0.95, (heard, nb.metrics.counters)
    assert dropped_b.get("dropped:malformed", 0) > heard * 0.5, dropped_b
    assert dropped_b.get("dropped:replay", 0) > 0, dropped_b
    assert ta.stats["dropped_invalid"] > heard * 0.5, ta.stats
    # Nothing the attacker sent under another peer's name got into either pool.
    for n in (na, nb):
        assert {e.sender for e in n.pool.entries.values()} <= {atk_id.peer_id, honest_id.peer_id}
