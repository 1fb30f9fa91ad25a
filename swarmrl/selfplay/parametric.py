"""The parametric creator: a bandit over task generators' parameters, paid in learnability.

Every combination of the configured values of a family's generator params is one arm (several
families give arms of each, so the family is searched too). Each proposal is a fresh problem of
the chosen arm. When the swarm's solve rate on it is known, the arm is credited with the
proposal's learnability. Solvers improve, so an arm's worth drifts: evidence is discounted (old
pulls weigh less) and the choice is UCB on the discounted mean, counting proposals still waiting
for feedback as pulls so a batch of proposals spreads over arms.

No torch: it only builds task specs. It implements ``creator.Creator`` for the node's self-play.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from swarmrl.brain.base import ScoredGroup
from swarmrl.protocol.messages import TaskSpec
from swarmrl.selfplay.creator import Count, Draft, Turn
from swarmrl.selfplay.tracker import Proposal
from swarmrl.tasks import TaskError, derive_seed, get_family, materialize

PRIOR = 0.5
"""One pseudo-observation of this normalized reward per arm, so untried arms are not infinite."""


@dataclass
class Arm:
    family: str
    params: dict[str, Any]  # checked, wire form
    label: str
    n: float = 0.0  # discounted feedback count
    total: float = 0.0  # discounted reward sum (normalized to [0, 1])
    pending: int = 0  # proposals out, no feedback yet
    pulls: int = 0  # proposals made (also the next problem index)

    @property
    def value(self) -> float:
        return (self.total + PRIOR) / (self.n + 1.0)


def build_arms(
    space: Mapping[str, Mapping[str, list[Any]]],
    base_params: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Arm]:
    """Every combination of the search space, checked by its family (TaskError names a bad one)."""
    arms = []
    for family_name in sorted(space):
        family = get_family(family_name)
        knobs = space[family_name]
        names = sorted(knobs)
        if any(not isinstance(knobs[n], list) or not knobs[n] for n in names):
            raise TaskError(f"selfplay.search_space.{family_name}: every param needs a "
                            "non-empty list of values")
        base = dict((base_params or {}).get(family_name, {}))
        for values in itertools.product(*(knobs[n] for n in names)):
            chosen = dict(zip(names, values, strict=True))
            try:
                params = family.check_params({**base, **chosen})
            except TaskError as e:
                raise TaskError(f"selfplay.search_space.{family_name} {chosen}: {e}") from None
            label = family_name + "(" + ",".join(f"{k}={v}" for k, v in chosen.items()) + ")"
            arms.append(Arm(family_name, params, label))
    if not arms:
        raise TaskError("selfplay.search_space: no arms (name at least one family)")
    return arms


class ParametricCreator:
    kind = "parametric"

    def __init__(
        self,
        arms: list[Arm],
        seed: int,
        c: float = 0.1,
        discount: float = 0.97,
        scale: float = 0.25,
    ) -> None:
        self.arms = arms
        self.seed = seed
        self.c = c
        self.discount = discount
        self.scale = scale  # the best reward a task can earn; rewards are divided by it
        self.rng = random.Random(derive_seed("parametric-creator", seed))
        self.last: int | None = None
        self.feedbacks = 0

    def propose(self, n: int) -> list[tuple[int, TaskSpec]]:
        """``n`` fresh task specs, each from the arm UCB picks now: [(arm index, spec)]."""
        out = []
        for _ in range(n):
            i = self._choose()
            arm = self.arms[i]
            spec = get_family(arm.family).make_spec(
                arm.params, seed=derive_seed("selfplay", self.seed, arm.label), index=arm.pulls
            )
            arm.pulls += 1
            arm.pending += 1
            self.last = i
            out.append((i, spec))
        return out

    def _choose(self) -> int:
        total = sum(a.n + a.pending for a in self.arms) + 1.0

        def ucb(a: Arm) -> float:
            return a.value + self.c * math.sqrt(2.0 * math.log(total) / (a.n + a.pending + 1.0))

        best = max(ucb(a) for a in self.arms)
        ties = [i for i, a in enumerate(self.arms) if ucb(a) >= best - 1e-12]
        return self.rng.choice(ties)

    def feedback(self, arm: int, reward: float, attempted: bool) -> None:
        """A proposal of ``arm`` closed. Unattempted ones say nothing about the arm."""
        if not 0 <= arm < len(self.arms):
            return
        a = self.arms[arm]
        a.pending = max(0, a.pending - 1)
        if not attempted:
            return
        for other in self.arms:
            other.n *= self.discount
            other.total *= self.discount
        a.n += 1.0
        a.total += min(1.0, max(-1.0, reward / self.scale))
        self.feedbacks += 1

    # --- creator.Creator (with state, state_dict and load_state_dict below) ---------------
    async def proposals(self, turn: Turn) -> list[Draft]:
        """``turn.quota`` specs, all chosen before any is published (pending pulls spread the
        batch). No duplicate fraction: the agent measures it as it publishes them in turn."""
        return [
            Draft(spec, materialize(spec).question, arm=i) for i, spec in self.propose(turn.quota)
        ]

    def already_open(self, draft: Draft) -> bool:
        """The same problem is already out: nothing new to learn, so the pull is given back."""
        if draft.arm is not None:
            self.feedback(draft.arm, 0.0, attempted=False)
        return False

    def closed(self, prop: Proposal) -> None:
        if prop.arm is not None:
            self.feedback(prop.arm, prop.reward or 0.0, prop.attempts > 0)

    def ready_groups(self, count: Count | None = None) -> list[ScoredGroup]:
        return []  # it trains nothing of its own

    def metrics(self) -> dict[str, Any]:
        best = self.best()
        return {
            "selfplay_arm": self.arms[self.last].label if self.last is not None else None,
            "selfplay_best_arm": best.label,
            "selfplay_best_value": round(best.value, 4),
        }

    def best(self) -> Arm:
        return max(self.arms, key=lambda a: (a.value, -self.arms.index(a)))

    def state(self) -> dict[str, Any]:
        """What inspect shows: the last choice and every arm's worth."""
        last = self.arms[self.last] if self.last is not None else None
        return {
            "creator": self.kind,
            "chosen": last.label if last else None,
            "chosen_params": dict(last.params) if last else None,
            "best": self.best().label,
            "feedbacks": self.feedbacks,
            "arms": [
                {"arm": a.label, "value": round(a.value, 4), "n": round(a.n, 3),
                 "pending": a.pending, "pulls": a.pulls}
                for a in self.arms
            ],
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "arms": {a.label: [a.n, a.total, a.pulls] for a in self.arms},
            "rng": self.rng.getstate(),
            "feedbacks": self.feedbacks,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore arm evidence by label (arms no longer configured are ignored)."""
        from swarmrl.training.checkpoint_files import tuplify

        saved = state.get("arms", {})
        for a in self.arms:
            if a.label in saved:
                a.n, a.total, a.pulls = float(saved[a.label][0]), float(saved[a.label][1]), int(
                    saved[a.label][2]
                )
        if "rng" in state:
            self.rng.setstate(tuplify(state["rng"]))
        self.feedbacks = int(state.get("feedbacks", 0))
