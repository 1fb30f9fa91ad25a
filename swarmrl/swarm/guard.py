"""The guard: per-peer limits, task regeneration, claim checks and reputation.

Admission (``admission.py``) runs every message from the swarm through here. What the guard
adds to decoding and the replay window:

- **rate**: a token bucket per peer, in messages and in bytes, checked before any decoding, so
  a flood costs us a dictionary lookup per message;
- **task space**: a rollout group's task must be of one of this node's task families (for a
  daemon, its swarm's genesis families) with every param inside the swarm's bounds
  (``tasks/bounds.py``), checked before anything is generated: a peer cannot make the node run
  another generator, or a generator at a cost it chose (reasoning-gym has ones that take
  minutes or gigabytes at peer-chosen, or even default, parameters);
- **regeneration**: a rollout group's task must regenerate on this node (known family and
  version, valid params), within the sandbox's time and memory budget (``tasks/sandbox.py``,
  done by admission before the guard sees the group). A forged answer key cannot survive
  this, and a task we cannot regenerate never reaches training;
- **free-form tasks** carry their creator's reference answer, a claim: they are refused unless
  this node has verified the task itself (``verified_tasks``, filled by self-play);
- **claims**: the rewards a peer claims are re-checked with our own verifier; a peer that claims
  success on wrong answers (or failure on right ones) is caught;
- **reputation**: every failed check adds to a peer's bad score, which decays with a half-life.
  Reputation = 1 / (1 + bad): it down-weights the peer's groups when J are chosen, and below
  ``ignore_below`` the peer is ignored outright until its score decays back.

Every decision is counted by reason (``dropped:<reason>``), per peer in the peer table, and
logged at debug. Nothing here raises on bad input.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from swarmrl.config import GuardConfig
from swarmrl.net.budget import TokenBuckets
from swarmrl.protocol.messages import FreeFormTask, RolloutGroup, TaskSpec, task_key
from swarmrl.tasks.bounds import TaskSpace

PENALTIES: dict[str, float] = {
    "malformed": 0.5,
    "bad_task": 1.0,
    "foreign_family": 0.5,
    "out_of_bounds": 0.5,
    # Inside the bounds, yet over the sandbox's budget: an honest peer's task at its swarm's
    # own (default) params can be (reasoning-gym's futoshiki at size 9 takes 0.1-3 s), so it
    # costs little; the sandbox remembers the spec and never generates it again.
    "over_budget": 0.1,
    "bad_claims": 1.0,
    "claim_mismatch": 1.0,
    "unverified_task": 0.25,
    "implausible": 0.25,  # charged only when most of a peer's groups are (plausibility.py)
    "card_not_own": 1.0,
    "unexpected_kind": 0.5,
    "rate_limited": 0.05,
}
"""Bad score added per failed check. Reasons not listed (duplicates, staleness, pool share)
happen to honest peers too and cost nothing. A replay costs its author nothing either: anyone
can re-send a signed envelope (and gossip relays do, once their seen-cache forgets it), so a
penalty would let a stranger silence an honest peer by replaying its messages."""


@dataclass
class PeerStanding:
    bad: float = 0.0
    at: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)


class Guard:
    """Per-peer state of the checks above; one per node."""

    def __init__(
        self, cfg: GuardConfig, max_peers: int = 4096, task_space: TaskSpace | None = None
    ) -> None:
        self.cfg = cfg
        self.task_space = task_space
        """The families and param bounds this node accepts; None = any (tests of other checks)."""
        self._max_peers = max_peers
        # One token bucket (messages and bytes) per signing key; keys are free to mint, so the
        # transport's per-connection budgets (net/budget.py) come before this one.
        self._rate = TokenBuckets(cfg.messages_per_peer_per_s, cfg.burst, cfg.bytes_per_message,
                                  max_peers)
        self._standing: dict[str, PeerStanding] = {}
        self.verified_tasks: set[str] = set()
        """Task keys of free-form tasks verified by hand (tests, operators)."""
        self.is_verified: Callable[[str], bool] = lambda key: False
        """This node's own verification of free-form tasks (self-play's solvers' majority)."""

    @property
    def max_peers(self) -> int:
        """Most peers any table here holds (oldest out first): ids are free to mint."""
        return self._max_peers

    @max_peers.setter
    def max_peers(self, n: int) -> None:
        self._max_peers = self._rate.max_keys = n

    # --- rate -----------------------------------------------------------------------------
    def allow(self, peer: str, size: int, now: float) -> bool:
        """Take one message of ``size`` bytes from the peer's bucket; False = over its rate."""
        cfg = self.cfg
        if not cfg.enabled or cfg.messages_per_peer_per_s == 0:
            return True
        return self._rate.take(peer, size, now)

    # --- checks of rollout groups ---------------------------------------------------------
    def outside(self, task: TaskSpec | FreeFormTask) -> tuple[str, str] | None:
        """``(reason, detail)`` if ``task`` is outside this node's task space, else None:
        checked before anything is generated, even with the guard off."""
        return None if self.task_space is None else self.task_space.check(task)

    def check_group(self, group: RolloutGroup, rewards: list[float]) -> str | None:
        """None if a group that regenerated may enter the pool, else the reason it may not.

        ``rewards`` are this node's own scores of the group's completions (sandbox.check)."""
        if not self.cfg.enabled:
            return None
        if isinstance(group.task, FreeFormTask) and not self._verified(task_key(group.task)):
            return "unverified_task"
        claims = group.claimed_rewards
        if claims is None or not self.cfg.check_claims:
            return None
        if len(claims) != len(group.completions):
            return "bad_claims"
        tol = self.cfg.claim_tolerance
        for claimed, ours in zip(claims, rewards, strict=True):
            if abs(claimed - ours) > tol:
                return "claim_mismatch"
        return None

    def _verified(self, key: str) -> bool:
        return key in self.verified_tasks or self.is_verified(key)

    # --- reputation -----------------------------------------------------------------------
    def penalize(self, peer: str, reason: str, now: float) -> None:
        weight = PENALTIES.get(reason, 0.0)
        if weight == 0.0 or not self.cfg.enabled:
            return
        s = self._standing_at(peer, now)
        s.bad += weight
        s.failures[reason] = s.failures.get(reason, 0) + 1

    def reputation(self, peer: str, now: float) -> float:
        """1 for a peer with a clean record, falling towards 0 as failed checks pile up."""
        s = self._standing.get(peer)
        if s is None:
            return 1.0
        return 1.0 / (1.0 + self._decayed(s, now))

    def ignored(self, peer: str, now: float) -> bool:
        return self.cfg.enabled and self.reputation(peer, now) < self.cfg.ignore_below

    def weight(self, peer: str, now: float) -> float:
        """How much this peer's groups count when J are chosen (1 when down-weighting is off)."""
        return self.reputation(peer, now) if self.cfg.enabled and self.cfg.downweight else 1.0

    def standing(self, peer: str, now: float) -> dict[str, object]:
        """What inspect shows: reputation, whether ignored, failed checks by reason."""
        s = self._standing.get(peer)
        return {
            "reputation": round(self.reputation(peer, now), 4),
            "ignored": self.ignored(peer, now),
            "failed_checks": dict(s.failures) if s else {},
        }

    def _decayed(self, s: PeerStanding, now: float) -> float:
        dt = max(0.0, now - s.at)
        return s.bad * math.pow(0.5, dt / self.cfg.reputation_half_life_s)

    def _standing_at(self, peer: str, now: float) -> PeerStanding:
        s = self._standing.get(peer)
        if s is None:
            s = self._standing[peer] = PeerStanding(at=now)
            self._bound(self._standing)
        s.bad = self._decayed(s, now)
        s.at = now
        return s

    def _bound(self, table: dict) -> None:
        # Peer ids are free to mint: never hold more than max_peers of them (oldest first out).
        while len(table) > self.max_peers:
            table.pop(next(iter(table)))
