"""What enters from the swarm: bad input is dropped and counted by reason, never raised."""

from __future__ import annotations

import pytest
from _node_helpers import NOW, FixedRuntime, admit, group, ident, node_config, stub_node
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmrl.node.loop import Node
from swarmrl.protocol import (
    DEFAULT_MAX_SIZE,
    PROTOCOL_VERSION,
    Identity,
    PeerCard,
    TaskProposal,
    encode,
    seal,
)

ME, PEER, THIRD = ident(1), ident(2), ident(3)


def make_node() -> Node:
    return stub_node(node_config(swarm_id="alpha"), identity=ME, runtime=FixedRuntime())


def wire(msg, who: Identity = PEER, seq: int = 1, ts: float = NOW) -> bytes:
    return encode(seal(msg, who, seq=seq, timestamp=ts))


def dropped(node: Node) -> dict[str, int]:
    return {k[8:]: v for k, v in node.metrics.counters.items() if k.startswith("dropped:")}


def test_a_valid_group_is_admitted_into_the_pool() -> None:
    node = make_node()
    assert admit(node, PEER.peer_id, wire(group(1))) is None
    assert len(node.pool) == 1
    assert node.transport.vouched == [PEER.peer_id]  # useful traffic: its share grows
    assert node.metrics.counters["admitted:rollout_group"] == 1
    info = node.peers.get(PEER.peer_id)
    assert info is not None and info.admitted == 1 and info.last_seen == NOW


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"\xc1", b"not msgpack at all", b"\x97" + b"\xc0" * 7, b"\xff" * 64],
)
def test_malformed_bytes_are_dropped_and_counted(data: bytes) -> None:
    node = make_node()
    assert admit(node, PEER.peer_id, data) == "malformed"
    assert dropped(node) == {"malformed": 1}
    assert len(node.pool) == 0 and len(node.peers) == 0


def test_broken_envelopes_are_malformed() -> None:
    node = make_node()
    good = wire(group(1))
    tampered = bytearray(good)
    tampered[-5] ^= 0xFF  # inside the signature
    body = bytearray(good)
    body[len(body) // 2] ^= 0x01  # inside the payload: the signature no longer matches
    oversized = b"\x00" * (DEFAULT_MAX_SIZE + 1)
    for data in (bytes(tampered), bytes(body), good[:-10], good + b"\x00", oversized):
        assert admit(node, PEER.peer_id, data) == "malformed"
    assert dropped(node) == {"malformed": 5}
    assert admit(node, PEER.peer_id, good) is None  # the honest copy still gets in


def test_own_messages_are_dropped_without_blaming_a_peer() -> None:
    node = make_node()
    assert admit(node, "relay", wire(group(1), who=ME)) == "own_message"
    assert dropped(node) == {"own_message": 1}
    assert len(node.pool) == 0 and len(node.peers) == 0


def test_replays_and_stale_or_future_timestamps_are_dropped() -> None:
    node = make_node()
    first = wire(group(1), seq=10)
    assert admit(node, PEER.peer_id, first) is None
    assert admit(node, PEER.peer_id, first) == "replay"
    assert admit(node, PEER.peer_id, wire(group(2), seq=10)) == "replay"  # seq reused
    assert admit(node, PEER.peer_id, wire(group(3), seq=11, ts=NOW - 3600)) == "replay"
    assert admit(node, PEER.peer_id, wire(group(4), seq=12, ts=NOW + 3600)) == "replay"
    assert dropped(node) == {"replay": 4}
    assert node.peers.get(PEER.peer_id).dropped["replay"] == 4
    # anyone can replay a signed envelope: its author's standing is untouched
    assert node.guard.reputation(PEER.peer_id, NOW) == 1.0
    assert len(node.pool) == 1


def test_peer_cards_from_other_swarms_or_for_others_are_dropped() -> None:
    node = make_node()
    other = PeerCard(peer_id=PEER.peer_id, swarm_id="beta")
    assert admit(node, PEER.peer_id, wire(other, seq=1)) == "other_swarm"
    impostor = PeerCard(peer_id=THIRD.peer_id, swarm_id="alpha")
    assert admit(node, PEER.peer_id, wire(impostor, seq=2)) == "card_not_own"
    assert node.peers.get(PEER.peer_id).card is None
    future = PeerCard(
        peer_id=PEER.peer_id, swarm_id="alpha", protocol_version=PROTOCOL_VERSION + 1
    )
    assert admit(node, PEER.peer_id, wire(future, seq=3)) == "protocol_version"
    addr = f"/ip4/10.0.0.7/tcp/4001/p2p/{PEER.peer_id}"
    mine = PeerCard(peer_id=PEER.peer_id, swarm_id="alpha", model_id="m", listen_addrs=[addr])
    assert admit(node, PEER.peer_id, wire(mine, seq=4)) is None
    assert node.peers.get(PEER.peer_id).card == mine
    assert node.metrics.counters["admitted:peer_card"] == 1
    # its addresses go to the transport, which may dial it (peer exchange)
    assert node.transport.learned == {PEER.peer_id: [addr]}
    assert dropped(node) == {"other_swarm": 1, "card_not_own": 1, "protocol_version": 1}


def test_unexpected_kinds_and_pool_refusals_are_dropped_with_their_reason() -> None:
    node = make_node()
    proposal = TaskProposal(task=group(1).task)
    assert admit(node, PEER.peer_id, wire(proposal, seq=1)) == "unexpected_kind"
    assert admit(node, PEER.peer_id, wire(group(1), seq=2)) is None
    assert admit(node, THIRD.peer_id, wire(group(1), who=THIRD)) == "duplicate"
    assert admit(node, PEER.peer_id, wire(group(2, version=100), seq=3)) is None
    assert admit(node, PEER.peer_id, wire(group(3, version=1), seq=4)) == "stale"
    assert dropped(node) == {"unexpected_kind": 1, "duplicate": 1, "stale": 1}
    assert node.peers.get(THIRD.peer_id).dropped == {"duplicate": 1}


GOOD = wire(group(1), seq=7)


@settings(max_examples=300, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.tuples(st.integers(0, len(GOOD) - 1), st.integers(1, 255)).map(
            lambda t: GOOD[: t[0]] + bytes([GOOD[t[0]] ^ t[1]]) + GOOD[t[0] + 1 :]
        ),
        st.integers(0, len(GOOD)).map(lambda n: GOOD[:n]),
        st.binary(min_size=1, max_size=20).map(lambda b: GOOD + b),
    )
)
def test_any_bytes_are_admitted_or_dropped_never_raised(data: bytes) -> None:
    node = make_node()
    reason = admit(node, PEER.peer_id, data)
    assert reason is None or isinstance(reason, str)
    total = sum(node.metrics.counters.values())
    assert total == 1  # exactly one admitted or dropped count
