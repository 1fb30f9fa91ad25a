"""What a node knows about the peers it hears from: their cards and how their traffic fared."""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from swarmrl.protocol.messages import PeerCard


@dataclass
class PeerInfo:
    peer_id: str
    card: PeerCard | None = None
    first_seen: float = 0.0
    last_seen: float = 0.0
    admitted: int = 0
    trained: int = 0  # of their groups, how many this node has trained on
    dropped: Counter[str] = field(default_factory=Counter)
    distill_served: int = 0  # teacher requests we answered for this peer
    distill_received: int = 0  # groups this peer, as our teacher, scored for us


class PeerTable:
    """Bounded table of peers, least recently heard from evicted first."""

    def __init__(self, max_peers: int = 4096) -> None:
        self.max_peers = max_peers
        self._peers: OrderedDict[str, PeerInfo] = OrderedDict()

    def touch(self, peer_id: str, now: float) -> PeerInfo:
        info = self._peers.get(peer_id)
        if info is None:
            info = PeerInfo(peer_id, first_seen=now)
            self._peers[peer_id] = info
            while len(self._peers) > self.max_peers:
                self._peers.popitem(last=False)
        self._peers.move_to_end(peer_id)
        info.last_seen = now
        return info

    def get(self, peer_id: str) -> PeerInfo | None:
        return self._peers.get(peer_id)

    def __iter__(self):
        return iter(list(self._peers.values()))

    def __len__(self) -> int:
        return len(self._peers)
