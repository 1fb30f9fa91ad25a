"""The guard's last check: is an external completion text this node's own policy could write?

A peer can publish right answers wrapped in junk, or behind corrupted reasoning. Their rewards
are honest, so re-scoring cannot catch them; training on them teaches the junk. The published
defence for homogeneous swarms scores each external completion under the local policy and
compares it with the node's own samples. We score its *excess surprise*
(``training/surprise.py``): the sum over its tokens of -log p(token) minus the policy's entropy
there, which is about 0 for the node's own samples and for honest text where the policy is
merely unsure, and large for junk where the policy is sure. (The plain mean token log-prob
separates junk from honest answers poorly on tiny models: docs/benchmarks.md.)

A completion is implausible when its excess surprise exceeds both ``plausibility_excess_nats``
and the running mean of the node's own completions' scores plus ``plausibility_sigmas``
standard deviations; a group with at least ``plausibility_group_share`` implausible
completions is dropped. The node's own reference completions are scored in the same pass as
the external ones. Brains without a language model (the simulator's stub) have no
``plausibility`` method: the check is then skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from swarmrl.config import GuardConfig
from swarmrl.training.brain import ScoredGroup


@dataclass
class _Running:
    """Exponentially weighted mean and variance of the node's own completion scores."""

    mean: float = 0.0
    var: float = 0.0
    n: int = 0

    def update(self, xs: list[float], decay: float = 0.95) -> None:
        for x in xs:
            if not math.isfinite(x):
                continue
            if self.n == 0:
                self.mean, self.var = x, 0.0
            else:
                d = x - self.mean
                self.mean += (1 - decay) * d
                self.var = decay * (self.var + (1 - decay) * d * d)
            self.n += 1


class Plausibility:
    def __init__(self, cfg: GuardConfig) -> None:
        self.cfg = cfg
        self.own = _Running()

    def enabled(self, brain: object) -> bool:
        return self.cfg.enabled and self.cfg.plausibility and hasattr(brain, "plausibility")

    def threshold(self) -> float | None:
        """Highest plausible excess surprise (nats), or None before enough own samples."""
        if self.own.n < self.cfg.plausibility_min_samples:
            return None
        own = self.own.mean + self.cfg.plausibility_sigmas * math.sqrt(self.own.var)
        return max(self.cfg.plausibility_excess_nats, own)

    def judge(self, own: list[list[float]], external: list[list[float]]) -> list[bool]:
        """Learn from this step's own scores, then say which external groups are plausible."""
        self.own.update([x for group in own for x in group])
        high = self.threshold()
        if high is None:
            return [True] * len(external)
        share = self.cfg.plausibility_group_share
        verdicts = []
        for group in external:
            bad = sum(not (math.isfinite(x) and x <= high) for x in group)
            verdicts.append(bad < share * len(group))
        return verdicts

    @staticmethod
    def reference(local: list[ScoredGroup], k: int = 1) -> list[ScoredGroup]:
        """A few of the node's own groups to score beside the external ones."""
        return [g for g in local if g.local][:k]
