"""Bad bytes on any libp2p stream a node serves: the stream is reset and counted, the node goes on.

A stranger (a bare py-libp2p host that never says hello) opens each protocol the node speaks
and writes a garbage frame; then two honest nodes must still gossip through the one attacked."""

from __future__ import annotations

import contextlib

import multiaddr
import pytest
import trio
from _hostile_peers import BAD_PROTOBUF, GARBAGE, NODE_PROTOCOLS, hit
from libp2p import new_host
from libp2p.peer.peerinfo import info_from_p2p_addr
from test_libp2p_transport import ROLLOUTS, joined, node, receive_n, wait_until

from swarmrl.net.libp2p_wire import decode_reply, read_frame, request_protocol, write_frame
from swarmrl.protocol import Identity

pytestmark = pytest.mark.network


def test_a_garbage_frame_on_any_protocol_leaves_the_node_gossiping() -> None:
    async def main() -> None:
        async with node() as a, node(bootstrap=a.listen_addrs()) as b:
            a.set_handler("teacher", lambda peer, data: trio.sleep(0, data))  # type: ignore
            sub_b = b.subscribe(ROLLOUTS)
            a.subscribe(ROLLOUTS)
            await joined(a, b)
            with trio.fail_after(60):
                opened = await hit(a.listen_addrs()[0], NODE_PROTOCOLS, [GARBAGE, BAD_PROTOBUF])
            assert opened == 2 * len(NODE_PROTOCOLS)
            assert not a.closed
            await a.publish(ROLLOUTS, b"still here")
            got = await receive_n(sub_b, 1)
            assert [d for _, d in got] == [b"still here"]
            assert a.stats["bad_stream"] >= 2, dict(a.stats)

    trio.run(main)


def test_a_relay_sends_a_newcomer_big_messages_in_frames_it_can_parse() -> None:
    """Big gossip messages, then a newcomer: GossipSub writes to a peer's stream from several
    tasks (its send queue, the recent messages a new peer is sent, pending flushes). A 500 KB
    frame waits for yamux window updates mid-write, and another task's frame used to slip in
    between its halves: the newcomer read a frame whose inner length did not match, and died."""

    async def main() -> None:
        async with node() as a, node(bootstrap=a.listen_addrs()) as relay:
            a.subscribe(ROLLOUTS)
            relay.subscribe(ROLLOUTS)
            await joined(a, relay)
            big = [bytes([i]) * 500_000 for i in range(12)]
            for data in big:
                await a.publish(ROLLOUTS, data)
            with trio.fail_after(30):
                while relay.stats["received"] < len(big):
                    await trio.sleep(0.05)
            async with node(bootstrap=relay.listen_addrs()) as newcomer:
                sub = newcomer.subscribe(ROLLOUTS)
                await joined(newcomer, peers=1)
                await trio.sleep(3)  # the relay's recent messages and gossip reach it
                await a.publish(ROLLOUTS, b"after")
                got = await receive_n(sub, 1, timeout=10)
                while got and got[-1][1] != b"after":
                    got += await receive_n(sub, 1, timeout=10)
                assert newcomer.stats["bad_stream"] == 0, dict(newcomer.stats)
                assert relay.stats["bad_stream"] == 0, dict(relay.stats)
                assert got and got[-1][1] == b"after"

    trio.run(main)


def test_requests_are_served_only_after_a_matching_hello() -> None:
    """A stranger that never says hello gets a refusal, and the handler never runs."""

    async def main() -> None:
        calls: list[str] = []

        async def handler(peer: str, data: bytes) -> bytes:
            calls.append(peer)
            return b"ok:" + data

        async with node() as a, node(bootstrap=a.listen_addrs()) as member:
            a.set_handler("teacher", handler)
            await wait_until(lambda: member.peer_id in a.peers())
            assert await member.request(a.peer_id, "teacher", b"hi", 5) == b"ok:hi"
            stranger = new_host(key_pair=Identity.generate().to_libp2p_keypair())
            async with stranger.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
                info = info_from_p2p_addr(multiaddr.Multiaddr(a.listen_addrs()[0]))
                await stranger.connect(info)
                stream = await stranger.new_stream(info.peer_id, [request_protocol("teacher")])
                await write_frame(stream, b"hello?")
                reply: tuple[bool, bytes] | None = None
                with trio.fail_after(30), contextlib.suppress(Exception):
                    reply = decode_reply(await read_frame(stream, 1 << 16))
            # Refused with a reason, or cut off with its connection once its hello failed:
            # either way the handler never ran for it.
            assert reply is None or (not reply[0] and b"unverified" in reply[1]), reply
            await wait_until(lambda: a.stats["refused_unverified_request"] == 1, timeout=15)
            assert calls == [member.peer_id]

    trio.run(main)
