"""One direction of a link on the in-memory network (:mod:`swarmrl.net.memory`): latency,
jitter, loss and bandwidth, the faults a simulation injects per link."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class LinkSpec:
    """One direction of a link between two peers.

    latency_s: fixed one-way delay. jitter_s: extra delay drawn uniformly from [0, jitter_s]
    per message (so messages can overtake each other, as gossip does). loss: probability a
    message is dropped. bandwidth_bps: bits per second; adds size*8/bandwidth to the delay
    (no queueing between messages); None means unlimited.
    """

    latency_s: float = 0.05
    jitter_s: float = 0.0
    loss: float = 0.0
    bandwidth_bps: float | None = None

    def __post_init__(self) -> None:
        if self.latency_s < 0 or self.jitter_s < 0:
            raise ValueError("latency and jitter must be >= 0")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError("loss must be in [0, 1]")
        if self.bandwidth_bps is not None and not self.bandwidth_bps > 0:
            raise ValueError("bandwidth must be > 0 (or None for unlimited)")

    def delay(self, size: int, rng: random.Random) -> float:
        d = self.latency_s
        if self.jitter_s:
            d += rng.random() * self.jitter_s
        if self.bandwidth_bps is not None:
            d += size * 8 / self.bandwidth_bps
        return d
