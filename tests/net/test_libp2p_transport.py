"""The libp2p transport on loopback: real hosts, real sockets, one trio process (and one test
with two OS processes). Each test opens its own hosts on 127.0.0.1 with tcp/0 ports."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import trio

from swarmrl.config import NetworkConfig
from swarmrl.net import RequestTimeout, TransportError
from swarmrl.net.libp2p_transport import Libp2pTransport
from swarmrl.net.transport import topic_name
from swarmrl.protocol import Identity

pytestmark = pytest.mark.network

SWARM = "test"
ROLLOUTS = topic_name(SWARM, "rollouts")
LOOPBACK = "/ip4/127.0.0.1/tcp/0"


def node(
    identity: Identity | None = None,
    *,
    handshake: bytes = b"genesis-1",
    validator: Callable[[str, bytes], bool] | None = None,
    swarm_id: str = SWARM,
    **net: Any,
) -> AbstractAsyncContextManager[Libp2pTransport]:
    net.setdefault("listen", [LOOPBACK])
    net.setdefault("publish_per_second", 200.0)
    net.setdefault("reconnect_min_s", 0.1)
    net.setdefault("reconnect_max_s", 0.5)
    # Fresh keys' shared share is tested on its own (test_libp2p_budget.py, the daemon tests):
    # here every peer is new, and the tests are of the transport's mechanics.
    net.setdefault("newcomer_messages_per_s", 0.0)
    return Libp2pTransport.open(
        identity or Identity.generate(),
        NetworkConfig(**net),
        swarm_id=swarm_id,
        handshake=handshake,
        validator=validator,
    )


async def wait_until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.02)


async def joined(*nodes: Libp2pTransport, topic: str = ROLLOUTS, peers: int = 1) -> None:
    """Wait until each node knows at least ``peers`` verified subscribers of ``topic``."""
    await wait_until(lambda: all(len(n.topic_peers(topic)) >= peers for n in nodes))


async def receive_n(sub: Any, n: int, timeout: float = 5.0) -> list[tuple[str, bytes]]:
    got: list[tuple[str, bytes]] = []
    with trio.move_on_after(timeout):
        while len(got) < n:
            got.append(await sub.receive())
    return got


def run(fn: Callable[[], Awaitable[Any]]) -> Any:
    return trio.run(fn)


def test_publish_reaches_peer_but_never_self() -> None:
    async def main() -> None:
        async with node() as a, node(bootstrap=a.listen_addrs()) as b:
            sub_a, sub_b = a.subscribe(ROLLOUTS), b.subscribe(ROLLOUTS)
            await joined(a, b)
            assert a.peers() == [b.peer_id] and b.peers() == [a.peer_id]
            await a.publish(ROLLOUTS, b"from a")
            await b.publish(ROLLOUTS, b"from b")
            assert await receive_n(sub_b, 1) == [(a.peer_id, b"from a")]
            assert await receive_n(sub_a, 1) == [(b.peer_id, b"from b")]
            await trio.sleep(0.2)
            assert len(sub_a) == 0 and len(sub_b) == 0  # nothing of one's own came back
            assert a.stats["dropped_own"] == 1 and b.stats["dropped_own"] == 1
            assert all(addr.endswith(f"/p2p/{a.peer_id}") for addr in a.listen_addrs())

    run(main)


def test_oversize_refused_and_counted() -> None:
    async def main() -> None:
        async with node(max_message_bytes=4096) as a:
            with pytest.raises(TransportError, match="too large"):
                await a.publish(ROLLOUTS, b"x" * 4097)
            assert a.stats["dropped_oversize"] == 1
            with pytest.raises(ValueError, match="namespace"):
                await a.publish("/swarmrl/other/rollouts/1", b"x")

    run(main)


def test_invalid_messages_are_neither_delivered_nor_forwarded() -> None:
    # a - b - c in a line: b's validator refuses b"bad", so c (only reachable via b) never
    # sees it, while good messages flow through b to c.
    def check(topic: str, sender: str, data: bytes) -> bool:
        return data != b"bad"

    async def main() -> None:
        async with (
            node() as a,
            node(bootstrap=a.listen_addrs(), validator=check) as b,
            node(bootstrap=b.listen_addrs(), validator=check) as c,
        ):
            sub_b, sub_c = b.subscribe(ROLLOUTS), c.subscribe(ROLLOUTS)
            a.subscribe(ROLLOUTS)
            await joined(a, c)
            await joined(b, peers=2)
            await a.publish(ROLLOUTS, b"bad")
            await a.publish(ROLLOUTS, b"good")
            assert [d for _, d in await receive_n(sub_b, 1)] == [b"good"]
            assert [d for _, d in await receive_n(sub_c, 1)] == [b"good"]
            await trio.sleep(0.3)
            assert len(sub_b) == 0 and len(sub_c) == 0
            assert b.stats["dropped_invalid"] == 1
            assert c.stats["dropped_invalid"] == 0  # it never even reached c

    run(main)


def test_request_response_roundtrip_errors_and_timeout() -> None:
    async def echo(sender: str, data: bytes) -> bytes:
        return sender.encode() + b":" + data[::-1]

    async def slow(sender: str, data: bytes) -> bytes:
        await trio.sleep(10)
        return b""

    async def broken(sender: str, data: bytes) -> bytes:
        raise RuntimeError("boom")

    async def main() -> None:
        async with node() as a, node(bootstrap=a.listen_addrs()) as b:
            await wait_until(lambda: bool(a.peers() and b.peers()))
            b.set_handler("teacher", echo)
            b.set_handler("slow", slow)
            b.set_handler("broken", broken)
            reply = await a.request(b.peer_id, "teacher", b"abc", timeout=5)
            assert reply == a.peer_id.encode() + b":cba"
            started = time.monotonic()
            with pytest.raises(RequestTimeout):
                await a.request(b.peer_id, "slow", b"", timeout=0.3)
            assert time.monotonic() - started < 2
            with pytest.raises(TransportError, match="remote handler failed"):
                await a.request(b.peer_id, "broken", b"", timeout=5)
            with pytest.raises(TransportError):
                await a.request(b.peer_id, "nobody-serves-this", b"", timeout=5)
            b.set_handler("teacher", None)
            with pytest.raises(TransportError):
                await a.request(b.peer_id, "teacher", b"abc", timeout=5)
            assert a.stats["request_timeouts"] == 1 and b.stats["handler_errors"] == 1

    run(main)


def test_handshake_mismatch_refused_with_reason(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with node(handshake=b"genesis-1") as a:
            async with node(handshake=b"genesis-2", bootstrap=a.listen_addrs()) as b:
                await wait_until(lambda: b.peer_id in a.refused and a.peer_id in b.refused)
                assert "another swarm genesis" in a.refused[b.peer_id]
                assert a.stats["refused_handshake"] >= 1
                await wait_until(lambda: not a.peers() and not b.peers())
            async with node(swarm_id="elsewhere", bootstrap=a.listen_addrs()) as c:
                await wait_until(lambda: c.peer_id in a.refused)
                assert "on swarm 'elsewhere'" in a.refused[c.peer_id]

    run(main)
    assert any("refused" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_learn_peer_joins_a_node_outside_every_bootstrap_list() -> None:
    async def main() -> None:
        async with node() as a, node(bootstrap=a.listen_addrs()) as b, node() as c:
            a.subscribe(ROLLOUTS)
            b.subscribe(ROLLOUTS)
            sub_c = c.subscribe(ROLLOUTS)
            await joined(a, b)
            assert c.peers() == []
            c.learn_peer(b.peer_id, b.listen_addrs())  # as if from b's peer card
            await wait_until(lambda: c.peers() == [b.peer_id])
            await joined(b, peers=2)
            await a.publish(ROLLOUTS, b"via b")
            assert await receive_n(sub_c, 1) == [(a.peer_id, b"via b")]
            await wait_until(lambda: c.stats["learned_peer_connected"] == 1)
            # enough peers: a learned peer is not dialled
            c.learn_peer(a.peer_id, a.listen_addrs())
            assert a.peer_id not in c.peers()

    run(main)


def test_burst_of_50_in_a_second_all_arrive_two_hops() -> None:
    async def main() -> None:
        async with (
            node() as a,
            node(bootstrap=a.listen_addrs()) as b,
            node(bootstrap=b.listen_addrs()) as c,
        ):
            a.subscribe(ROLLOUTS)
            sub_b, sub_c = b.subscribe(ROLLOUTS), c.subscribe(ROLLOUTS)
            await joined(a, c)
            await joined(b, peers=2)
            payload = b"r" * 20_000
            for i in range(50):
                await a.publish(ROLLOUTS, payload + i.to_bytes(2, "big"))
            got_b = await receive_n(sub_b, 50)
            got_c = await receive_n(sub_c, 50)
            assert len(got_b) == 50 and len(got_c) == 50
            for n in (a, b, c):
                drops = {k: v for k, v in n.stats.items() if k.startswith("dropped_")}
                assert set(drops) <= {"dropped_own"}, drops

    run(main)


def test_publish_pacing_is_counted_not_silent() -> None:
    async def main() -> None:
        async with node(publish_per_second=5.0, queue_size=3) as a:
            for i in range(20):
                await a.publish(ROLLOUTS, bytes([i]))
            # a second's burst (5) goes out at once, 3 wait in the outbox, the rest are dropped
            # oldest-first and counted (one more may have been sent while we published)
            assert a.stats["published"] <= 6
            assert a.stats["dropped_publish_queue_full"] >= 20 - 6 - 3

    run(main)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bootstrap_redialled_after_restart() -> None:
    boot_id = Identity.generate()
    port = _free_port()
    listen = [f"/ip4/127.0.0.1/tcp/{port}"]

    async def restart() -> None:
        async with node(bootstrap=[f"{listen[0]}/p2p/{boot_id.peer_id}"]) as b:
            async with node(boot_id, listen=listen):
                await wait_until(lambda: b.peers() == [boot_id.peer_id])
            await wait_until(lambda: b.peers() == [])
            async with node(boot_id, listen=listen):  # same key, same port: back again
                await wait_until(lambda: b.peers() == [boot_id.peer_id], timeout=8)
            assert b.stats["bootstrap_lost"] >= 1

    run(restart)


def test_nat_options_start_and_stop() -> None:
    async def main() -> None:
        opts = {"relay": True, "relay_hop": True, "autonat": True, "hole_punching": True}
        async with node(**opts) as a, node(bootstrap=a.listen_addrs(), **opts) as b:
            await wait_until(lambda: bool(a.peers() and b.peers()))
            assert a.nat_status == {k: "on" for k in opts}, a.nat_status
        async with node() as c:
            assert set(c.nat_status.values()) == {"off"}

    run(main)


_CHILD = textwrap.dedent(
    """
    import sys, trio
    from swarmrl.config import NetworkConfig
    from swarmrl.protocol import Identity
    from swarmrl.net.libp2p_transport import Libp2pTransport
    from swarmrl.net.transport import topic_name

    TOPIC = topic_name("test", "rollouts")

    async def main():
        net = NetworkConfig(listen=["/ip4/127.0.0.1/tcp/0"])
        async with Libp2pTransport.open(
            Identity.generate(), net, swarm_id="test", handshake=b"genesis-1"
        ) as t:
            sub = t.subscribe(TOPIC)
            print(t.listen_addrs()[0], flush=True)
            with trio.fail_after(20):
                sender, data = await sub.receive()
                await t.publish(TOPIC, b"ack:" + data)
                await trio.sleep(1.0)  # let the ack leave before the host stops

    trio.run(main)
    """
)


def test_two_processes_exchange_a_message() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        addr = child.stdout.readline().strip()
        assert "/p2p/" in addr, child.stderr.read() if child.stderr else ""

        async def main() -> None:
            async with node(bootstrap=[addr]) as t:
                sub = t.subscribe(ROLLOUTS)
                await joined(t)
                await t.publish(ROLLOUTS, b"ping")
                got = await receive_n(sub, 1, timeout=10)
                assert [d for _, d in got] == [b"ack:ping"]
                assert got[0][0] == addr.rsplit("/", 1)[1]

        run(main)
        assert child.wait(timeout=10) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_close_inside_the_block_and_errors_pass_through() -> None:
    async def main() -> None:
        async with node() as a:
            sub = a.subscribe(ROLLOUTS)
            await a.close()
            assert a.closed and sub.closed and a.peers() == []
            with pytest.raises(TransportError):  # TransportClosed
                await a.publish(ROLLOUTS, b"x")
            reached_end = True  # close() must not cancel the caller's code
        assert reached_end
        with pytest.raises(KeyError, match="mine"):
            async with node():
                raise KeyError("mine")

    run(main)


def test_py_libp2ps_auto_connector_dials_nobody() -> None:
    """py-libp2p's auto-connector dials whoever is in the peerstore with a routable address,
    every 10 s while the node has under 50 connections (it redialled a peer that had left
    cleanly for 9+ minutes, an ERROR line each time). The transport turns it off: a known
    peer with a public address is not dialled when the connector runs."""
    import multiaddr
    from libp2p.peer.id import ID

    from swarmrl.protocol import Identity

    async def main() -> None:
        async with node() as a:
            swarm = a._host.get_network()
            dialled: list[str] = []

            async def counting_dial(peer_id, *args, **kw):
                dialled.append(peer_id.to_base58())
                raise OSError("not dialling in a test")

            swarm.dial_peer = counting_dial
            sid = ID.from_base58(Identity.generate().peer_id)
            a._host.get_peerstore().add_addrs(sid, [multiaddr.Multiaddr("/ip4/1.2.3.4/tcp/4001")],
                                              600)
            await swarm.auto_connector.maybe_connect()
            await trio.sleep(0.5)
            assert dialled == []

    run(main)
