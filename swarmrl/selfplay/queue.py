"""A solver's bounded queue of creator tasks, and its online difficulty filter (curriculum).

Proposals arrive from the swarm (already checked by admission: signature, replay, and that the
task materializes on this node). The queue is bounded overall and per creator (a creator's
oldest proposals make room for its newest), forgets proposals after a number of steps, and
attempts each at most ``max_attempts`` times. With the curriculum on, a proposal this node
solved always or never on its last attempt leaves the queue (no GRPO signal for it here), and
those it solved sometimes are preferred over untried ones.
"""

from __future__ import annotations

import random
from collections import Counter, OrderedDict
from dataclasses import dataclass

from swarmrl.protocol.messages import FreeFormTask, TaskSpec, task_key

PREFER_LEARNABLE = 3.0
"""Draw weight of a proposal solved sometimes on its last attempt (untried ones weigh 1)."""


@dataclass
class Queued:
    task: TaskSpec | FreeFormTask
    key: str
    creator: str
    received_step: int
    attempts: int = 0
    last_p: float | None = None


class ProposalQueue:
    def __init__(
        self,
        capacity: int,
        per_creator: int,
        max_attempts: int,
        ttl_steps: int,
        curriculum: bool = True,
    ) -> None:
        self.capacity = capacity
        self.per_creator = per_creator
        self.max_attempts = max_attempts
        self.ttl = ttl_steps
        self.curriculum = curriculum
        self.entries: OrderedDict[str, Queued] = OrderedDict()
        self._done: OrderedDict[str, None] = OrderedDict()  # keys already worked through
        self.stats: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self.entries)

    def offer(self, task: TaskSpec | FreeFormTask, creator: str, step: int) -> str | None:
        """Queue a proposal; returns None when queued, else why not."""
        key = task_key(task)
        if key in self.entries or key in self._done:
            return "proposal_duplicate"
        mine = [k for k, q in self.entries.items() if q.creator == creator]
        while len(mine) >= self.per_creator:
            self._retire(mine.pop(0), "evicted_creator_share")
        while len(self.entries) >= self.capacity:
            self._retire(next(iter(self.entries)), "evicted_capacity")
        self.entries[key] = Queued(task, key, creator, step)
        self.stats["queued"] += 1
        return None

    def take(self, n: int, step: int, rng: random.Random) -> list[Queued]:
        """Up to ``n`` distinct proposals to attempt this step (each attempt is counted)."""
        for key, q in list(self.entries.items()):
            if step - q.received_step > self.ttl:
                self._retire(key, "expired")
            elif q.attempts >= self.max_attempts:  # used up, its last result never recorded
                self._retire(key, "done")
        if n <= 0 or not self.entries:
            return []
        items = list(self.entries.values())
        weights = [self._weight(q) for q in items]
        keyed = sorted(
            zip(items, weights, strict=True),
            key=lambda iw: rng.random() ** (1.0 / iw[1]),
            reverse=True,
        )
        chosen = [q for q, _ in keyed[:n]]
        for q in chosen:
            q.attempts += 1
        return chosen

    def _weight(self, q: Queued) -> float:
        if self.curriculum and q.last_p is not None and 0.0 < q.last_p < 1.0:
            return PREFER_LEARNABLE
        return 1.0

    def record(self, key: str, p: float) -> None:
        """This node's solve rate on its attempt of ``key``; retires it when it is used up."""
        q = self.entries.get(key)
        if q is None:
            return
        q.last_p = p
        if self.curriculum and p >= 1.0:
            self._retire(key, "filtered_always_solved")
        elif self.curriculum and p <= 0.0:
            self._retire(key, "filtered_never_solved")
        elif q.attempts >= self.max_attempts:
            self._retire(key, "done")

    def _retire(self, key: str, why: str) -> None:
        self.entries.pop(key, None)
        self._done[key] = None
        while len(self._done) > 8 * self.capacity + 256:
            self._done.popitem(last=False)
        self.stats[why] += 1


class OwnTaskFilter:
    """The node's own recurring tasks it always or never solved recently: skipped for a while."""

    def __init__(self, memory_steps: int) -> None:
        self.memory = memory_steps
        self.last: dict[str, tuple[float, int]] = {}

    def record(self, key: str, p: float, step: int) -> None:
        self.last[key] = (p, step)
        if len(self.last) > 65_536:  # fresh-task streams never recur: keep the map bounded
            cutoff = step - self.memory
            self.last = {k: v for k, v in self.last.items() if v[1] >= cutoff}

    def useful(self, key: str, step: int) -> bool:
        seen = self.last.get(key)
        if seen is None or step - seen[1] > self.memory:
            return True
        return 0.0 < seen[0] < 1.0
