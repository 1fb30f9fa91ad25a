"""The daemon's gossip gate: which message kind each topic carries, checked before the transport
delivers or forwards a message."""

from __future__ import annotations

from collections.abc import Callable

from swarmrl.net import topic_name
from swarmrl.protocol import ProtocolError, decode

# The one message kind each gossip topic carries (teacher requests and replies travel on their
# own request/response streams, never on gossip). Each kind's schema bounds its size.
TOPIC_KINDS = {"rollouts": "rollout_group", "tasks": "task_proposal", "peers": "peer_card"}


def make_validator(max_size: int, swarm_id: str) -> Callable[[str, str, bytes], bool]:
    """The transport's gate, run before a message is delivered or forwarded: only well-formed
    envelopes of the topic's own kind, signed by their libp2p author, pass, so garbage and
    misplaced messages (a 500 KB teacher request on the rollouts topic) die at the first honest
    hop instead of being relayed to the whole swarm."""
    kinds = {topic_name(swarm_id, name): kind for name, kind in TOPIC_KINDS.items()}

    def validate(topic_id: str, sender: str, data: bytes) -> bool:
        kind = kinds.get(topic_id)
        if kind is None:
            return False
        try:
            env = decode(data, max_size=max_size)
        except ProtocolError:
            return False
        return env.sender == sender and env.kind == kind

    return validate
