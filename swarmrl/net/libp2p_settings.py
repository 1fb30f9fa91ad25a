"""What the libp2p transport reads of a node's network settings.

``swarmrl.config.NetworkConfig`` (the ``[network]`` section of a node config: defaults, bounds,
validation, documentation) is the one implementation. config/ sits above net/ in the layers
(its validators check task families and bounds against tasks/, which sits beside net/), so net/
describes the settings it reads here instead of importing them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class NetworkSettings(Protocol):
    # Where to listen and whom to dial.
    listen: list[str]
    announce: list[str]
    bootstrap: list[str]
    target_peers: int
    max_peers: int
    reconnect_min_s: float
    reconnect_max_s: float
    # Limits: message size, gossipsub's rate, own pacing, per-connection budgets, bans, queues.
    max_message_bytes: int
    messages_per_topic_per_second: float
    publish_per_second: float
    messages_per_connection_per_s: float
    connection_burst: float
    ban_after: int
    ban_forgive_per_s: float
    ban_s: float
    newcomer_messages_per_s: float
    newcomer_burst: float
    trust_after: int
    trust_after_s: float
    queue_size: int
    request_timeout_s: float
    # NAT traversal (libp2p_nat.py).
    relay: bool
    relay_hop: bool
    autonat: bool
    hole_punching: bool
