"""SAPO: the bounded swarm pool of external rollout groups and the I local + J external batch.

A node never trusts a peer's rewards: every external group is regenerated from its task,
re-scored by this node's own verifier, and (by default) dropped when all of its local advantages
are zero, as in the SAPO paper. The pool is bounded in size, fair per sending peer, deduplicated
by content id, and evicts entries by age and by how far the sender's policy has moved on.

No torch here: re-tokenization and old log-probs happen inside the Brain's ``train``.
"""

from __future__ import annotations

import random
import statistics
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from swarmrl.brain.base import Completion, ScoredGroup
from swarmrl.config import SAPOConfig
from swarmrl.protocol.messages import RolloutGroup, task_key
from swarmrl.tasks import Problem, format_prompt, materialize, verify

ANSWER_OPEN = "<answer>"


def to_wire(prompt: str, completion: str) -> str:
    """Completion text as it travels: the whole response, including an answer tag the prompt opened.

    Short prompts end with ``<answer>`` so the model writes only ``36</answer>``; on the wire the
    response reads ``<answer>36</answer>`` so peers with other prompt styles can score it.
    """
    return ANSWER_OPEN + completion if prompt.endswith(ANSWER_OPEN) else completion


def from_wire(prompt: str, text: str) -> str:
    """The continuation of this node's own prompt that reproduces a wire response."""
    if prompt.endswith(ANSWER_OPEN) and text.startswith(ANSWER_OPEN):
        return text[len(ANSWER_OPEN) :]
    return text


@dataclass
class PoolEntry:
    group: RolloutGroup
    sender: str
    content_id: str
    received_step: int
    uses: int = 0
    rewards: list[float] | None = None  # our scores of its completions, when admission made them
    scored: ScoredGroup | None = None  # filled lazily by the first re-score


@dataclass
class PoolStats:
    admitted: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    evicted: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class SwarmPool:
    """Bounded, per-peer-fair store of external rollout groups (arrival order kept)."""

    def __init__(self, cfg: SAPOConfig) -> None:
        self.cfg = cfg
        self.entries: OrderedDict[str, PoolEntry] = OrderedDict()
        self.by_peer: dict[str, list[str]] = defaultdict(list)
        self.latest_version: dict[str, int] = {}
        # Remember more ids than we hold, so a group gossiped twice is not admitted twice.
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.stats = PoolStats()

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def per_peer_cap(self) -> int:
        return max(1, int(self.cfg.pool_capacity * self.cfg.per_peer_share))

    def add(
        self, group: RolloutGroup, sender: str, step: int, rewards: list[float] | None = None
    ) -> str | None:
        """Admit a group; returns None when admitted, else the drop reason (also counted).
        ``rewards``: this node's scores of its completions, if already made (admission)."""
        cid = group.content_id()
        if cid in self._seen:
            return self._drop("duplicate")
        self._remember(cid)
        version = group.sampler.policy_version
        newest = max(self.latest_version.get(sender, version), version)
        self.latest_version[sender] = newest
        if newest - version > self.cfg.max_staleness:
            return self._drop("stale")
        while len(self.by_peer[sender]) >= self.per_peer_cap:
            self._evict(self.by_peer[sender][0], "peer_share")
        while len(self.entries) >= self.cfg.pool_capacity:
            busiest = max(self.by_peer, key=lambda p: len(self.by_peer[p]))
            self._evict(self.by_peer[busiest][0], "capacity")
        self.entries[cid] = PoolEntry(group, sender, cid, step, rewards=rewards)
        self.by_peer[sender].append(cid)
        self.stats.admitted += 1
        return None

    def expire(self, step: int) -> None:
        """Evict entries older than max_age_steps, or whose sender has moved on too far."""
        for cid, e in list(self.entries.items()):
            if step - e.received_step > self.cfg.max_age_steps:
                self._evict(cid, "age")
            elif (
                self.latest_version[e.sender] - e.group.sampler.policy_version
                > self.cfg.max_staleness
            ):
                self._evict(cid, "stale")

    def mark_used(self, entries: list[PoolEntry]) -> None:
        for e in entries:
            e.uses += 1
            if e.uses >= self.cfg.max_uses and e.content_id in self.entries:
                self._evict(e.content_id, "used")

    def discard(self, entry: PoolEntry, reason: str) -> None:
        """Take an entry out of the pool before its time (it failed a check when chosen)."""
        if entry.content_id in self.entries:
            self._evict(entry.content_id, reason)

    def peer_counts(self) -> dict[str, int]:
        return {p: len(c) for p, c in self.by_peer.items() if c}

    def _remember(self, cid: str) -> None:
        self._seen[cid] = None
        while len(self._seen) > 8 * self.cfg.pool_capacity + 1024:
            self._seen.popitem(last=False)

    def _drop(self, reason: str) -> str:
        self.stats.dropped[reason] += 1
        return reason

    def _evict(self, cid: str, reason: str) -> None:
        entry = self.entries.pop(cid)
        self.by_peer[entry.sender].remove(cid)
        if not self.by_peer[entry.sender]:
            del self.by_peer[entry.sender]
        self.stats.evicted[reason] += 1


class Rescorer:
    """Regenerates tasks and scores completions with this node's own verifier (cached per task)."""

    def __init__(
        self, prompt_style: str, format_weight: float, cache_size: int = 4096,
        fingerprint: str = "",
    ) -> None:
        self.prompt_style = prompt_style
        self.format_weight = format_weight
        self.fingerprint = fingerprint  # this node's tokenizer: per-token log-probs need it
        self._problems: OrderedDict[str, Problem] = OrderedDict()
        self._cache_size = cache_size

    def problem(self, group: RolloutGroup) -> Problem:
        key = task_key(group.task)
        prob = self._problems.get(key)
        if prob is None:
            prob = materialize(group.task)
            self._problems[key] = prob
            if len(self._problems) > self._cache_size:
                self._problems.popitem(last=False)
        return prob

    def score_wire(self, problem: Problem, wire_text: str) -> float:
        # Wire text is a whole response, so it is scored as an instruct-style completion.
        return verify(problem, wire_text, "instruct", self.format_weight).reward

    def rescore(self, entry: PoolEntry) -> ScoredGroup:
        """The entry as a group this node can train on: its own prompt, its own rewards."""
        if entry.scored is None:
            group = entry.group
            problem = self.problem(group)
            prompt = format_prompt(problem, self.prompt_style)
            texts = group.completions
            rewards = entry.rewards
            if rewards is None or len(rewards) != len(texts):
                rewards = [self.score_wire(problem, t) for t in texts]
            limit = group.sampler.max_new_tokens
            comps = [
                Completion(text=c, truncated=_hit_limit(c, limit))
                for c in (from_wire(prompt, t) for t in texts)
            ]
            self._attach_logprobs(group, comps)
            entry.scored = ScoredGroup(
                prompt=prompt,
                completions=comps,
                rewards=rewards,
                local=False,
                task_key=task_key(group.task),
                family=problem.family,
                answer=problem.answer,
            )
        return entry.scored


    def _attach_logprobs(self, group: RolloutGroup, comps: list[Completion]) -> None:
        """The sender's sampling log-probs onto each completion: per token when its tokenizer is
        ours (the trainer checks the count against our ids), else the sum over the text."""
        lp = group.logprobs
        if lp is None:
            return
        same = bool(self.fingerprint) and group.sampler.tokenizer_fingerprint == self.fingerprint
        for i, c in enumerate(comps):
            c.sender_logprob_sum = lp.sums[i]
            if same and lp.tokens is not None:
                c.sender_logprobs = list(lp.tokens[i])


def _hit_limit(text: str, max_new_tokens: int) -> bool:
    """Did the sender's sampler cut this completion at its token limit? The wire carries text,
    not tokens; every token is at least one byte, so text shorter than the limit in bytes
    surely ended by itself. Longer text is taken as cut (no end-of-text is trained after it):
    exact for byte-level tokenizers, cautious for others."""
    return max_new_tokens > 0 and len(text.encode("utf-8")) >= max_new_tokens


class SharingSplit:
    """How a step's I + J group slots divide between this node's own sampling and the swarm.

    Fixed (the paper) unless ``sapo.adaptive``. Then J starts at 1 and each update says, to
    first order, what a swarm row did for the node's own objective (``value_swarm``) and what
    an own row did (``value_own``): the learner's estimates. Per step they are noise (a step's
    few groups), so J moves only on evidence: one up when, over the last ``WINDOW`` measured
    updates, the swarm's worth minus ``adaptive_price`` times the own's is above zero by more
    than its standard error; one down when it is below by as much; else J holds. Never below
    1, so it keeps being measured; steps that measured nothing (no swarm group, or fewer than
    two own groups with signal) change nothing.
    """

    WINDOW = 20

    def __init__(self, cfg: SAPOConfig) -> None:
        self.adaptive = cfg.adaptive and cfg.external > 0 and cfg.local > 0
        self.budget = cfg.local + cfg.external
        self.max_external = cfg.external
        self.price = cfg.adaptive_price
        self.external = 1 if self.adaptive else cfg.external
        self.margins: deque[float] = deque(maxlen=self.WINDOW)  # swarm - price * own, per step

    @property
    def local(self) -> int:
        return self.budget - self.external

    def observe(self, figures: dict[str, float]) -> None:
        if not self.adaptive or "value_own" not in figures:
            return
        self.margins.append(figures["value_swarm"] - self.price * figures["value_own"])
        if len(self.margins) < 4:
            return
        mean = statistics.fmean(self.margins)
        sem = statistics.stdev(self.margins) / len(self.margins) ** 0.5
        if abs(mean) > sem:
            step = 1 if mean > 0 else -1
            self.external = min(self.max_external, max(1, self.external + step))

    def state_dict(self) -> dict:
        return {"external": self.external, "margins": list(self.margins)}

    def load_state_dict(self, state: dict) -> None:
        if self.adaptive and state:
            self.external = min(self.max_external, max(1, int(state["external"])))
            self.margins.extend(float(m) for m in state["margins"])


class SkillTracker:
    """Running local reward per task family: what this node is bad at (used by 'learnable')."""

    def __init__(self, decay: float = 0.9) -> None:
        self.decay = decay
        self.acc: dict[str, float] = {}

    def update(self, family: str, mean_reward: float) -> None:
        old = self.acc.get(family)
        self.acc[family] = (
            mean_reward if old is None else self.decay * old + (1 - self.decay) * mean_reward
        )

    def weakness(self, family: str) -> float:
        # Unknown families count as weak: the swarm may know something we don't.
        return 1.0 - self.acc.get(family, 0.0)


def _group_variance(g: ScoredGroup) -> float:
    mean = sum(g.rewards) / len(g.rewards)
    return sum((r - mean) ** 2 for r in g.rewards) / len(g.rewards)


def select_external(
    pool: SwarmPool,
    rescorer: Rescorer,
    skills: SkillTracker,
    cfg: SAPOConfig,
    rng: random.Random,
    peer_weight: Callable[[str], float] | None = None,
    count: int | None = None,
) -> list[PoolEntry]:
    """Pick J external groups from the pool by the configured rule.

    'uniform' is the paper: drop zero-advantage groups (if configured), sample uniformly.
    'learnable' (ours): weight each group by its local reward variance times how weak this node
    is on its family, so the node spends its J slots on what it can learn and cannot yet do.
    'valued' (ours): uniform over groups, weighted by their sender's value (what its groups
    counted in this node's updates), which the node folds into ``peer_weight``.
    ``peer_weight(sender)`` (the guard's reputation) scales every rule's weights. ``count``
    is J this step (default ``cfg.external``; ``sapo.adaptive`` moves it).
    """
    count = cfg.external if count is None else count
    if count == 0 or not pool.entries:
        return []
    candidates = list(pool.entries.values())
    if len(candidates) > cfg.candidates:
        candidates = rng.sample(candidates, cfg.candidates)
    if cfg.drop_zero_advantage:
        candidates = [e for e in candidates if rescorer.rescore(e).has_signal]
    if len(candidates) <= count:
        return candidates
    trust = [peer_weight(e.sender) if peer_weight else 1.0 for e in candidates]
    if cfg.sampling in ("uniform", "valued") and all(t == 1.0 for t in trust):
        return rng.sample(candidates, count)
    if cfg.sampling in ("uniform", "valued"):  # 'valued': peer_weight holds the sender's value
        weights = trust
    else:
        weights = [
            (_group_variance(rescorer.rescore(e)) + 1e-3)
            * (skills.weakness(e.scored.family) + 0.05)
            * t
            for e, t in zip(candidates, trust, strict=True)
        ]
    return _weighted_sample(candidates, [max(w, 1e-9) for w in weights], count, rng)


def _weighted_sample(
    items: list[PoolEntry], weights: list[float], k: int, rng: random.Random
) -> list[PoolEntry]:
    """k distinct items, each draw proportional to weight (Efraimidis-Spirakis keys)."""
    keyed = sorted(
        zip(items, weights, strict=True), key=lambda iw: rng.random() ** (1.0 / iw[1]), reverse=True
    )
    return [item for item, _ in keyed[:k]]
