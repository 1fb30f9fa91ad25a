"""Budgets over real libp2p: fresh keys behind one connection share one newcomer share, and a
connection that keeps flooding is hung up on and refused."""

from __future__ import annotations

import contextlib

import multiaddr
import pytest
import trio
from _hostile_peers import signed_gossip
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.pb import rpc_pb2
from test_libp2p_transport import ROLLOUTS, joined, node, wait_until

from swarmrl.protocol import Identity

pytestmark = pytest.mark.network


async def flood(attacker, victim_id: str, n: int, keys: int) -> int:
    """Write ``n`` messages signed by ``keys`` fresh keys on the attacker's one connection."""
    fresh = [Identity.generate() for _ in range(keys)]
    stream = attacker.pubsub.peers[ID.from_base58(victim_id)]
    written = 0
    for i in range(n):
        msg = signed_gossip(fresh[i % keys], ROLLOUTS, b"x" * 100, i + 1)
        try:
            if not await attacker.pubsub.write_msg(stream, rpc_pb2.RPC(publish=[msg])):
                break
        except Exception:  # noqa: BLE001 - hung up on
            break
        written += 1
        await trio.sleep(0.002)
    return written


def test_fresh_keys_share_one_newcomer_share_and_a_flooding_connection_is_banned() -> None:
    async def main() -> None:
        budget = {"newcomer_messages_per_s": 1.0, "newcomer_burst": 5.0,
                  "messages_per_connection_per_s": 50.0, "connection_burst": 50.0,
                  "ban_after": 100}
        async with node(**budget) as victim, node(bootstrap=victim.listen_addrs()) as attacker:
            sub = victim.subscribe(ROLLOUTS)
            attacker.subscribe(ROLLOUTS)
            await joined(victim, attacker)
            written = await flood(attacker, victim.peer_id, 600, keys=300)
            await wait_until(lambda: victim.stats["banned_flooding"] == 1, timeout=10)
            assert victim.stats["dropped_newcomer_budget"] > 0
            # both budgets' drops are strikes toward the ban (ban_after = 100)
            assert (victim.stats["dropped_connection_budget"]
                    + victim.stats["dropped_newcomer_budget"]) >= 100
            got = 0
            while True:
                try:
                    sub.receive_nowait()
                    got += 1
                except trio.WouldBlock:
                    break
            # 300 keys, yet the newcomer burst (5) plus 1/s for the few seconds of the flood
            assert 1 <= got <= 15, (got, written)
            await wait_until(lambda: attacker.peer_id not in victim.peers(), timeout=10)
            # it dials back: refused while banned
            with contextlib.suppress(Exception):  # it may be hung up on mid-handshake
                await attacker._host.connect(info_from_p2p_addr(
                    multiaddr.Multiaddr(victim.listen_addrs()[0])))
            await wait_until(lambda: victim.stats["refused_banned"] >= 1, timeout=10)
            assert attacker.peer_id not in victim.peers()

    trio.run(main)
