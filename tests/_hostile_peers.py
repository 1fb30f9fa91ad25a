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

from swarmrl.protocol import Identity
from swarmrl.protocol.libp2p_wire import HELLO_PROTOCOL, request_protocol

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
