"""The guard's last check: is an external completion text this node's own policy could write?

A peer can publish right answers wrapped in junk, or behind corrupted reasoning. Their rewards
are honest, so re-scoring cannot catch them; training on them teaches the junk. The published
defence for homogeneous swarms scores each external completion under the local policy and
compares it with the node's own samples. We score its *excess surprise*
(``training/surprise.py``): the sum over its tokens of -log p(token) minus the policy's entropy
there, which is about 0 for the node's own samples and for honest text where the policy is
merely unsure, and large for junk where the policy is sure. (The plain mean token log-prob
separates junk from honest answers poorly on tiny models: docs/benchmarks.md.)

What is normal depends on who wrote the text. A peer with another model, another tokenizer
or other skills writes honest text this policy finds surprising (a node that never learned
subtraction is surprised by right answers to it), so one threshold for every sender silenced
honest peers. The threshold is per sender (its peer id with the model id and tokenizer
fingerprint its group claims): the ``plausibility_quantile`` (0.99) of that sender's last
``plausibility_window`` scores plus ``plausibility_margin_nats``, never below this node's own
threshold (its own samples' running mean plus ``plausibility_sigmas`` deviations, at least
``plausibility_excess_nats``) and never above ``plausibility_max_nats``, so no sender, whatever
model it claims, can make junk of more surprise than that plausible. A quantile, not mean +
k deviations: honest samples at temperature 1 have a heavier tail than that assumes, and a
window of hundreds of scores, not an exponential average of ~20, knows the tail (three honest
daemons over 30 minutes dropped 2.3% of each other's groups under mean + 4 sd). A group
with at least ``plausibility_group_share`` implausible completions is dropped. The node's own
reference completions are scored in the same pass as the external ones; a sender's first
group starts its baseline, so in effect only the ceiling judges it. Brains without a language
model (the simulator's stub) have no ``plausibility`` method: the check is then skipped.

A dropped group costs its sender reputation only when most of what that peer sends is
implausible (``Plausibility.persistent``) or when the group is implausible by the ceiling itself
(``blatant``: as many of its completions past the ceiling as make a group implausible) and the
peer has no plausible record to set against it (``Plausibility.charged``): an honest peer's odd
group is dropped, not held against it; a peer that sends junk is ignored as fast as before.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from swarmrl.brain.base import ScoredGroup
from swarmrl.config import GuardConfig

T = TypeVar("T")


@dataclass
class _Running:
    """Exponentially weighted mean and variance of scores (or of 0/1 outcomes)."""

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


class _Window:
    """A sender's last ``size`` finite scores (a ring buffer, 4 bytes a score)."""

    def __init__(self, size: int) -> None:
        self.scores = np.empty(size, dtype=np.float32)
        self.n = 0  # scores seen

    def update(self, xs: list[float]) -> None:
        for x in xs:
            if math.isfinite(x):
                self.scores[self.n % len(self.scores)] = x
                self.n += 1

    def quantile(self, q: float) -> float:
        return float(np.quantile(self.scores[: min(self.n, len(self.scores))], q))


MAX_SENDERS = 4096
"""Senders with a baseline (least recently judged forgotten first): peer ids are free to mint."""
MAX_PEERS = 4096


class Plausibility:
    def __init__(self, cfg: GuardConfig) -> None:
        self.cfg = cfg
        self.own = _Running()
        self.baselines: OrderedDict[str, _Window] = OrderedDict()  # per sender_key
        self.share: OrderedDict[str, _Running] = OrderedDict()  # per peer: implausible share
        self.blatant: list[bool] = []  # per group of the last judge(): a score past the ceiling

    def enabled(self, brain: object) -> bool:
        return self.cfg.enabled and self.cfg.plausibility and hasattr(brain, "plausibility")

    def threshold(self, sender: str | None = None) -> float | None:
        """Highest plausible excess surprise (nats) for text of ``sender`` (a sender_key; None:
        this node's own), or None before enough own samples."""
        if self.own.n < self.cfg.plausibility_min_samples:
            return None
        low = max(self.cfg.plausibility_excess_nats, self._high(self.own))
        base = self.baselines.get(sender) if sender is not None else None
        if base is None or base.n < self.cfg.plausibility_min_samples:
            return low
        normal = base.quantile(self.cfg.plausibility_quantile) + self.cfg.plausibility_margin_nats
        return max(low, min(self.cfg.plausibility_max_nats, normal))

    def _high(self, r: _Running) -> float:
        return r.mean + self.cfg.plausibility_sigmas * math.sqrt(r.var)

    def judge(
        self, own: list[list[float]], external: list[list[float]],
        senders: list[str] | None = None,
    ) -> list[bool]:
        """Learn from this step's own scores, then say which external groups are plausible,
        each against its sender's baseline so far, which then learns the group's scores (a new
        sender's baseline starts from its first group). ``senders``: each group's
        :func:`sender_key`. Sets ``blatant``: which groups scored past the ceiling."""
        self.own.update([x for group in own for x in group])
        ceiling = self.cfg.plausibility_max_nats
        # A group implausible by the ceiling alone is nobody's normal: it costs its sender at
        # once. One sample past it is not enough: at temperature 1 an honest peer's sample
        # lands there now and then (3 daemons over 30 minutes: one ignored another for it).
        self.blatant = [not self._plausible(group, ceiling) for group in external]
        verdicts = []
        for key, group in zip(senders or [""] * len(external), external, strict=True):
            base = _bounded_get(self.baselines, key, MAX_SENDERS,
                                lambda: _Window(self.cfg.plausibility_window))
            within = [x for x in group if x <= ceiling]  # the rest never moves a baseline
            new = base.n < self.cfg.plausibility_min_samples
            if new:  # its first group starts it: in effect only the ceiling judges that one
                base.update(within)
            verdicts.append(self._plausible(group, self.threshold(key)))
            if not new:
                base.update(within)
        return verdicts

    def _plausible(self, group: list[float], high: float | None) -> bool:
        if high is None:  # too few own samples yet to know what is surprising
            return True
        bad = sum(not (math.isfinite(x) and x <= high) for x in group)
        return bad < self.cfg.plausibility_group_share * len(group)

    def persistent(self, peer: str, implausible: bool) -> bool:
        """Note one judged group of ``peer``; True when most of its recent judged groups were
        implausible (then the drop costs it reputation)."""
        r = _bounded_get(self.share, peer, MAX_PEERS, _Running)
        r.update([1.0 if implausible else 0.0], decay=0.8)
        return implausible and r.n >= 4 and r.mean > 0.5

    def charged(self, peer: str, implausible: bool, blatant: bool) -> bool:
        """Note one judged group of ``peer``; True when dropping it costs the peer reputation:
        most of its recent groups were implausible, or this one is implausible by the ceiling
        alone and the peer has no plausible record to set against it (fewer than 4 groups
        judged, or more than a quarter of its recent ones implausible). A junk sender pays from
        its first group; an honest peer whose text is far from ours (another tokenizer: its
        99.9th percentile was 146 nats over 30 minutes of daemons) has its rare group past the
        ceiling dropped, not charged."""
        if self.persistent(peer, implausible):
            return True
        r = self.share[peer]
        return implausible and blatant and (r.n < 4 or r.mean > 0.25)

    @staticmethod
    def reference(local: list[ScoredGroup], k: int = 1) -> list[ScoredGroup]:
        """A few of the node's own groups to score beside the external ones."""
        return [g for g in local if g.local][:k]


def _bounded_get(table: OrderedDict[str, T], key: str, cap: int, new: Callable[[], T]) -> T:
    r = table.get(key)
    if r is None:
        r = table[key] = new()
        while len(table) > cap:
            table.popitem(last=False)
    else:
        table.move_to_end(key)
    return r


def sender_key(peer: str, sampler_model: str, fingerprint: str) -> str:
    """Whose normal a group is judged against: its sender, with the model id and tokenizer its
    group claims (peers of one model can differ in skills, so not the model alone; a peer that
    changes models starts a new baseline)."""
    return f"{peer}|{sampler_model}|{fingerprint}"
