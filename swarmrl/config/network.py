"""``[network]``: the real network (libp2p); net/libp2p_settings.py describes what it
reads of it (NetworkSettings)."""

from __future__ import annotations

from pydantic import Field, model_validator

from swarmrl.config.base import _Section


class NetworkConfig(_Section):
    """The real network (libp2p): where to listen, whom to dial, limits and NAT traversal.

    Used by the daemon (`swarmrl node run`) and by `swarmrl sim --transport libp2p`; the
    in-memory simulator ignores it.
    """

    key_file: str = Field(
        default="node.key",
        description="The node's ed25519 key (mode 0600); relative paths are relative to the "
        "config file. Its libp2p peer id is the node's peer id.",
    )
    genesis: str = Field(
        default="",
        description="The swarm's genesis file (TOML); empty = a private swarm named by swarm_id. "
        "Peers on another genesis or protocol version are refused.",
    )
    listen: list[str] = Field(
        default_factory=lambda: ["/ip4/0.0.0.0/tcp/0"],
        max_length=16,
        description="Multiaddrs to listen on (tcp/0 = any free port; give a bootstrap node a "
        "fixed port).",
    )
    announce: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Public multiaddrs to advertise in peer cards instead of the listen ones "
        "(behind NAT or port forwarding).",
    )
    bootstrap: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Multiaddrs with /p2p/<peer-id> to dial at start and redial with backoff.",
    )
    target_peers: int = Field(
        default=8, ge=0, le=1024, description="Dial peers learned from peer cards up to this many."
    )
    max_peers: int = Field(
        default=64, ge=1, le=4096, description="Refuse connections beyond this many peers."
    )
    reconnect_min_s: float = Field(
        default=1.0, gt=0.0, description="First redial delay for a lost bootstrap peer."
    )
    reconnect_max_s: float = Field(
        default=60.0, gt=0.0, description="Redial delay cap (the delay doubles up to it)."
    )
    max_message_bytes: int = Field(
        default=1024 * 1024 - 4096,
        ge=1024,
        le=1024 * 1024,
        description="Largest message published or accepted; gossipsub's RPC limit is 1 MiB, "
        "so larger ones are refused and counted.",
    )
    messages_per_topic_per_second: float = Field(
        default=100.0,
        gt=0.0,
        description="Per peer and topic rate allowed by gossipsub before it drops (its default, "
        "10, silently drops honest bursts).",
    )
    publish_per_second: float = Field(
        default=20.0, gt=0.0, description="This node's own publishing pace per topic."
    )
    messages_per_connection_per_s: float = Field(
        default=200.0,
        ge=0.0,
        description="Gossip messages per second one connection may forward to us, whatever keys "
        "sign them, checked before any signature or decoding (0 = unlimited); more is dropped "
        "and not relayed ('dropped_connection_budget').",
    )
    connection_burst: float = Field(
        default=400.0, ge=1.0, description="Messages one connection may forward at once."
    )
    ban_after: int = Field(
        default=1000,
        ge=0,
        description="Hang up on a connection once this many of its messages stand dropped over "
        "its budgets (connection or newcomer), and refuse that peer for ban_s (0 = never): past "
        "it a flood costs nothing.",
    )
    ban_forgive_per_s: float = Field(
        default=20.0,
        ge=0.0,
        description="Drops forgiven per second toward ban_after, so an honest relay forwarding "
        "a new fast peer's groups until it is trusted (~20/s for a tiny model, over "
        "trust_after_s) is not hung up on; a flood is, within seconds, however slowly this node "
        "reads it.",
    )
    ban_s: float = Field(
        default=600.0, gt=0.0, description="How long a peer hung up on for flooding is refused."
    )
    newcomer_messages_per_s: float = Field(
        default=1.0,
        ge=0.0,
        description="Messages per second one connection may forward from authors this node does "
        "not trust yet, shared by all of them (0 = unlimited): a thousand fresh keys get what "
        "one new peer gets ('dropped_newcomer_budget'). 1/s is about what a node with a real "
        "model publishes; a fast tiny-model node starts slower until it is trusted.",
    )
    newcomer_burst: float = Field(
        default=16.0, ge=1.0, description="Newcomers' messages one connection may forward at once."
    )
    trust_after: int = Field(
        default=5,
        ge=0,
        description="An author is trusted (out of the newcomer share) once this many of its "
        "groups entered this node's pool (0 = everyone is trusted)...",
    )
    trust_after_s: float = Field(
        default=30.0,
        ge=0.0,
        description="...over at least this many seconds since the first one.",
    )
    queue_size: int = Field(
        default=1024, ge=1, description="Messages held per subscription before the oldest drops."
    )
    request_timeout_s: float = Field(
        default=10.0, gt=0.0, description="Request/response (teacher queries) timeout."
    )
    relay: bool = Field(
        default=False,
        description="Circuit relay v2: reach and be reached through relays (behind NAT).",
    )
    relay_hop: bool = Field(
        default=False, description="Act as a relay for others (bootstrap nodes on public IPs)."
    )
    autonat: bool = Field(default=False, description="AutoNAT: ask peers whether we are reachable.")
    hole_punching: bool = Field(
        default=False, description="DCUtR hole punching through a relayed connection."
    )

    @model_validator(mode="after")
    def _check(self) -> NetworkConfig:
        for field in ("listen", "announce", "bootstrap"):
            for addr in getattr(self, field):
                if not addr.startswith("/"):
                    raise ValueError(f"{field}: {addr!r} is not a multiaddr (starts with '/')")
        for addr in self.bootstrap:
            if "/p2p/" not in addr:
                raise ValueError(f"bootstrap: {addr!r} needs /p2p/<peer-id> at its end")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self
