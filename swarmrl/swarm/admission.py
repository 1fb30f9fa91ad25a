"""Everything that enters from the swarm passes here first.

Bad bytes are dropped, counted by reason, logged at debug, and never raised: a peer's claims
are hints, never facts. Checks, in order: an ignored peer (bad reputation) and the per-peer
rate (before any decoding), decode (size, schema, signature), own messages, replay window and
clock skew, then per kind: a rollout group's task must lie in the swarm's task space (family
and param bounds, before anything is generated), must regenerate within the sandbox's budget
(in a worker process: this coroutine waits, the node's loop does not) and its claimed rewards
must match ours (``guard.py``) before the swarm pool deduplicates, bounds each peer's share and
refuses stale groups; peer cards must be the sender's own. Failed checks cost the peer
reputation.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from swarmrl.protocol import ProtocolError, ReplayGuard, decode
from swarmrl.protocol.messages import PROTOCOL_VERSION, PeerCard, RolloutGroup, TaskProposal
from swarmrl.tasks.sandbox import CheckFailed

if TYPE_CHECKING:
    from swarmrl.config import NodeConfig
    from swarmrl.net import Transport
    from swarmrl.swarm.guard import Guard
    from swarmrl.swarm.peers import PeerTable
    from swarmrl.swarm.sapo import Rescorer, SwarmPool
    from swarmrl.tasks.sandbox import InProcessChecker

log = logging.getLogger("swarmrl.node.admission")


class _Clock(Protocol):
    def now(self) -> float: ...


class _Counters(Protocol):
    def count(self, name: str, n: int = 1) -> None: ...


class _ProposalIntake(Protocol):
    """Self-play's two admission hooks (``selfplay/agent.py:SelfPlay``)."""

    def observe_rollouts(self, group: RolloutGroup) -> None: ...

    async def admit_proposal(self, msg: TaskProposal, sender: str, step: int) -> str | None: ...


class AdmissionHost(Protocol):
    """What admission reads of the node it guards (``node/loop.py:Node``, the one
    implementation), read live on each message: the node's identity and step, its config
    (swarm id), clock and counters; the intake parts it owns (guard, peer table, re-scorer,
    sandbox checker, pool, self-play hooks); and its transport (vouch, learn a peer's addresses).

    node/ sits above swarm/ in the layers, so the node is described here, not imported.
    """

    cfg: NodeConfig
    runtime: _Clock
    metrics: _Counters
    guard: Guard
    peers: PeerTable
    rescorer: Rescorer
    checker: InProcessChecker
    pool: SwarmPool
    selfplay: _ProposalIntake
    transport: Transport
    step: int

    @property
    def peer_id(self) -> str: ...


class Admission:
    def __init__(self, node: AdmissionHost) -> None:
        self.node = node
        self.replay = ReplayGuard()

    async def admit(self, via: str, data: bytes) -> str | None:
        """Admit one message; returns None if accepted, else the reason it was dropped."""
        node = self.node
        now = node.runtime.now()
        guard = node.guard
        if guard.ignored(via, now):
            return self._drop(via, "ignored_peer", "")
        if not guard.allow(via, len(data), now):
            return self._drop(via, "rate_limited", "")
        try:
            env = decode(data)
        except ProtocolError as e:
            return self._drop(via, "malformed", str(e))
        if env.sender == node.peer_id:
            return self._drop(env.sender, "own_message", "", count_peer=False)
        try:
            self.replay.check(env, now)
        except ProtocolError as e:
            return self._drop(env.sender, "replay", str(e))
        peer = node.peers.touch(env.sender, now)
        msg = env.payload
        if isinstance(msg, RolloutGroup):
            outside = guard.outside(msg.task)
            if outside is not None:
                return self._drop(env.sender, *outside)
            rescorer = node.rescorer
            try:  # rewards as Rescorer.score_wire gives them: wire text is a whole response
                checked = await node.checker.check(
                    msg.task, list(msg.completions), "instruct", rescorer.format_weight
                )
            except CheckFailed as e:
                return self._drop(env.sender, e.reason, e.detail)
            reason = guard.check_group(msg, checked.rewards)
            if reason in (None, "unverified_task"):
                # A creator learns p from ordinary traffic (its own free-form tasks included).
                node.selfplay.observe_rollouts(msg)
            reason = reason or node.pool.add(msg, env.sender, node.step, checked.rewards)
            if reason is not None:
                return self._drop(env.sender, reason, "")
            # Useful traffic (a group that regenerated, scored as claimed, and is new): the
            # sender's share of its connection's budget grows (net/budget.py).
            node.transport.vouch(env.sender)
        elif isinstance(msg, PeerCard):
            if msg.peer_id != env.sender:
                return self._drop(env.sender, "card_not_own", "")
            if msg.swarm_id != node.cfg.swarm_id:
                return self._drop(env.sender, "other_swarm", msg.swarm_id)
            if msg.protocol_version != PROTOCOL_VERSION:
                return self._drop(env.sender, "protocol_version", str(msg.protocol_version))
            peer.card = msg
            node.transport.learn_peer(env.sender, list(msg.listen_addrs))
        elif isinstance(msg, TaskProposal):
            reason = await node.selfplay.admit_proposal(msg, env.sender, node.step)
            if reason is not None:
                return self._drop(env.sender, reason, "")
            node.transport.vouch(env.sender)  # a task we can use: a creator's useful traffic
        else:
            return self._drop(env.sender, "unexpected_kind", env.kind)
        peer.admitted += 1
        node.metrics.count(f"admitted:{env.kind}")
        return None

    def drop_later(self, peer_id: str, reason: str, charge: bool = True) -> None:
        """A group admitted earlier failed a check made when it was chosen (plausibility):
        counted (and, when ``charge``, charged to its sender) like any drop at the door."""
        self._drop(peer_id, reason, "failed when chosen for training", charge=charge)

    def _drop(
        self, peer_id: str, reason: str, detail: str, count_peer: bool = True,
        charge: bool = True,
    ) -> str:
        node = self.node
        node.metrics.count(f"dropped:{reason}")
        if count_peer:
            if charge:
                node.guard.penalize(peer_id, reason, node.runtime.now())
            info = node.peers.get(peer_id)
            if info is not None:
                info.dropped[reason] += 1
        log.debug("dropped message from %s: %s %s", peer_id[:16], reason, detail[:200])
        return reason
