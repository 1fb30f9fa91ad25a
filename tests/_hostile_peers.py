"""A stranger on libp2p: a bare py-libp2p host (no hello, not a swarm member) that writes
garbage on a node's streams. Shared by the transport's and the daemon's hostile tests."""

from __future__ import annotations

import contextlib
import os

import multiaddr
import trio
from libp2p import new_host
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, PROTOCOL_ID_V12
from libp2p.utils.varint import encode_uvarint

from swarmrl.net import topic_name
from swarmrl.net.libp2p_wire import HELLO_PROTOCOL, request_protocol
from swarmrl.protocol import Identity

NODE_PROTOCOLS = [str(p) for p in (PROTOCOL_ID, PROTOCOL_ID_V11, PROTOCOL_ID_V12)] + [
    HELLO_PROTOCOL, request_protocol("teacher")]
"""Every stream protocol a node serves: GossipSub 1.0-1.2, the hello, the teacher requests."""

# 101 bytes, as reported: a length prefix that claims more than follows, then noise.
GARBAGE = encode_uvarint(0x7F) + bytes.fromhex("0a") + os.urandom(99)
# Valid framing (the length matches) around bytes that are no protobuf RPC: field 1 with
# wire type 7 (no such type), the DecodeError py-libp2p's pubsub reader let escape.
BAD_PROTOBUF = encode_uvarint(100) + bytes([0x0F]) + os.urandom(99)


async def hit(target: str, protocols: list[str], frames: list[bytes]) -> int:
    """A stranger dials ``target``, opens a stream of each protocol per frame (all before the
    node gives up on its hello; one the node does not serve is skipped), then writes each frame
    on its own stream. Returns how many streams it opened."""
    stranger = new_host(key_pair=Identity.generate().to_libp2p_keypair())
    async with stranger.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        info = info_from_p2p_addr(multiaddr.Multiaddr(target))
        await stranger.connect(info)
        streams = []
        for proto in protocols:
            for frame in frames:
                try:
                    streams.append((await stranger.new_stream(info.peer_id, [proto]), frame))
                except Exception:  # noqa: BLE001 - not served here: nothing to hit
                    break
        for stream, frame in streams:
            with contextlib.suppress(Exception):  # the node reset it already: what we want
                await stream.write(frame)
        await trio.sleep(1.0)
    return len(streams)


@contextlib.asynccontextmanager
async def joined_member(me: Identity, net, swarm_id: str, handshake: bytes):
    """A transport that passed the hello and has a peer on the rollouts topic."""
    from swarmrl.net.libp2p_transport import Libp2pTransport

    rollouts = topic_name(swarm_id, "rollouts")
    async with Libp2pTransport.open(me, net, swarm_id=swarm_id, handshake=handshake) as t:
        t.subscribe(rollouts)
        with trio.fail_after(30):
            while not t.topic_peers(rollouts):
                await trio.sleep(0.1)
        yield t


def extreme_specs(families: list[str], seed: int) -> list:
    """For each family: one spec far outside its shipped bounds (every number x1000) and one
    at the top corner of them, with fresh seeds so no node has them cached."""
    from swarmrl.protocol.messages import TaskSpec
    from swarmrl.tasks.bounds import default_bounds
    from swarmrl.tasks.families import get_family

    specs = []
    for name in families:
        family = get_family(name)
        defaults = family.default_params()
        corner, far = {}, {}
        for param, bound in default_bounds(name).items():
            if isinstance(bound, tuple) and not isinstance(defaults.get(param), bool):
                hi = int(bound[1]) if isinstance(defaults.get(param), int) else float(bound[1])
                corner[param], far[param] = hi, hi * 1000 + 1
        for params in (far, corner):
            specs.append(TaskSpec(family=name, family_version=family.version, params=params,
                                  seed=seed, index=len(specs)))
    return specs


async def spec_flood(target: str, swarm_id: str, handshake: bytes, seconds: float,
                     rate: float, families: list[str], on_start=None) -> int:
    """A swarm member (it passes the hello) that gossips rollout groups whose tasks are
    :func:`extreme_specs` of ``families`` on the rollouts topic, ``rate`` per second for
    ``seconds``. Returns how many it published."""
    from swarmrl.config import NetworkConfig
    from swarmrl.protocol import RolloutGroup, encode, seal

    me = Identity.generate()
    net = NetworkConfig(listen=["/ip4/127.0.0.1/tcp/0"], bootstrap=[target],
                        publish_per_second=max(rate * 2, 20.0))
    rollouts = topic_name(swarm_id, "rollouts")
    total = int(seconds * rate)
    specs: list = []
    rounds = 0
    while len(specs) < total:  # made before the flood: the attacker's own CPU stays out of it
        rounds += 1
        specs += extreme_specs(families, seed=rounds)
    payloads = [encode(seal(RolloutGroup(task=spec, completions=["<answer>1</answer>"] * 4),
                            me, seq=i + 1)) for i, spec in enumerate(specs[:total])]
    sent = 0
    async with joined_member(me, net, swarm_id, handshake) as t:
        if on_start is not None:
            on_start()  # connected and joined: the flood itself starts now
        start = trio.current_time()
        for data in payloads:
            await t.publish(rollouts, data)
            sent += 1
            await trio.sleep_until(start + sent / rate)
    return sent


def signed_gossip(who: Identity, topic: str, data: bytes, seqno: int):
    """A GossipSub message authored and signed by ``who`` (any key: keys are free), ready to
    be written by whatever connection carries it."""
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.pubsub.validators import PUBSUB_SIGNING_PREFIX

    keys = who.to_libp2p_keypair()
    msg = rpc_pb2.Message(data=data, topicIDs=[topic], seqno=seqno.to_bytes(8, "big"),
                          from_id=ID.from_pubkey(keys.public_key).to_bytes())
    msg.signature = keys.private_key.sign(PUBSUB_SIGNING_PREFIX.encode()
                                          + msg.SerializeToString())
    return msg


async def key_flood(target: str, swarm_id: str, handshake: bytes, seconds: float, rate: float,
                    keys: int = 3000, on_start=None) -> int:
    """A swarm member that writes, over its connection, valid rollout groups signed by
    ``keys`` fresh keys in turn (each a real arith task with honest claims), ``rate`` per
    second for ``seconds``; all made before the flood starts. Returns how many it wrote."""
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2

    from swarmrl.config import NetworkConfig
    from swarmrl.protocol import RolloutGroup, encode, seal
    from swarmrl.tasks import materialize
    from swarmrl.tasks.families import get_family

    rollouts = topic_name(swarm_id, "rollouts")
    fresh = [Identity.generate() for _ in range(keys)]
    total = int(seconds * rate)
    arith = get_family("arith")
    rpcs = []
    for i in range(total):
        who = fresh[i % keys]
        task = arith.make_spec({}, seed=1000 + i, index=i)
        answer = materialize(task).answer
        group = RolloutGroup(task=task, completions=[f"<answer>{answer}</answer>", "<answer>x"],
                             claimed_rewards=[1.0, 0.0])
        data = encode(seal(group, who, seq=i + 1))
        rpcs.append(rpc_pb2.RPC(publish=[signed_gossip(who, rollouts, data, i + 1)]))
    me = Identity.generate()
    net = NetworkConfig(listen=["/ip4/127.0.0.1/tcp/0"], bootstrap=[target])
    sent, start = 0, trio.current_time()
    if on_start is not None:
        on_start()  # the messages are made: the minute starts now
    # Persistent: hung up on (by the victim's ban, or by py-libp2p dropping a peer it cannot
    # keep up with), it comes back with the same peer id until the victim refuses it or the
    # minute is over. Returns how many it wrote in all.
    while sent < total and trio.current_time() < start + seconds:
        try:
            async with joined_member(me, net, swarm_id, handshake) as t:
                stream = t.pubsub.peers[ID.from_base58(t.topic_peers(rollouts)[0])]
                paced_from, first = trio.current_time(), sent
                while sent < total:
                    if not await t.pubsub.write_msg(stream, rpcs[sent]):
                        break
                    sent += 1
                    await trio.sleep_until(paced_from + (sent - first) / rate)
        except Exception:  # noqa: BLE001 - hung up on, or refused: tried again a second later
            pass
        await trio.sleep(1.0)
    await trio.sleep_until(start + seconds)  # refused: the minute of the attack goes on
    return sent
