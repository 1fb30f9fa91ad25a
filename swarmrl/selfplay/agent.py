"""A node's self-play: what the node loop and admission call, in one place.

Roles decide what runs. A **solver** (role 'solver' and ``selfplay.creator_ratio > 0``) queues
the proposals it receives and fills that fraction of its local task slots with them, publishing
its rollouts as usual. A **creator** (role 'creator') proposes tasks every step on the tasks
topic and learns each proposal's solve rate from the rollout groups the swarm publishes on it,
re-scored by itself; a creator that also solves takes its own proposals too, and (by default)
counts its own attempts. Nothing here blocks or raises on swarm input: admission drops and
counts what it refuses.

Hooks (see ``node/loop.py``): ``propose`` at the start of a step, ``tasks_for_step`` and
``observe_local`` around local rollouts, ``trainable`` / ``trainable_task`` to keep unverified
free-form tasks out of the update, ``creator_groups`` for the LM creator's own GRPO groups,
``metrics`` for the step row; admission calls ``admit_proposal`` and ``observe_rollouts``.
"""

from __future__ import annotations

import logging
import random
import statistics
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

import trio

from swarmrl.brain.base import Brain, Completion, RolloutRequest, ScoredGroup
from swarmrl.config import NodeConfig
from swarmrl.protocol.messages import (
    FreeFormTask,
    RolloutGroup,
    TaskProposal,
    TaskSpec,
    content_id,
    task_key,
)
from swarmrl.selfplay.creator import Creator, Turn
from swarmrl.selfplay.freeform import FreeFormCheck
from swarmrl.selfplay.learnability import max_learnability, near_duplicate_fraction
from swarmrl.selfplay.lm_creator import LMCreator
from swarmrl.selfplay.parametric import ParametricCreator, build_arms
from swarmrl.selfplay.queue import OwnTaskFilter, ProposalQueue
from swarmrl.selfplay.tracker import Proposal, ProposalTracker
from swarmrl.tasks import TaskSampler, derive_seed, materialize, verify
from swarmrl.tasks.sandbox import CheckFailed, InProcessChecker

log = logging.getLogger("swarmrl.selfplay")

Task = TaskSpec | FreeFormTask
RECENT = 64
"""Recent proposals remembered: near-duplicate checks and the metrics' running figures."""

T = TypeVar("T")


class _Runtime(Protocol):
    async def run(self, fn: Callable[[], T], work_tokens: Callable[[T], int]) -> T: ...


class _Counters(Protocol):
    def count(self, name: str, n: int = 1) -> None: ...


class _TaskSpaceCheck(Protocol):
    def outside(self, task: Task) -> tuple[str, str] | None: ...


@runtime_checkable
class SelfPlayNode(Protocol):
    """What self-play uses of the node it serves (``node/loop.py:Node``, the one implementation).

    node/ sits above selfplay/ in the layers, so the node is described here, not imported (the
    layers contract in pyproject.toml counts type-only imports too).
    """

    cfg: NodeConfig
    brain: Brain
    runtime: _Runtime
    metrics: _Counters
    guard: _TaskSpaceCheck
    checker: InProcessChecker
    step: int

    @property
    def peer_id(self) -> str: ...

    async def publish(self, name: str, msg: Any) -> None: ...


class SelfPlay:
    def __init__(self, node: SelfPlayNode) -> None:
        self.node = node
        cfg = self.cfg = node.cfg.selfplay
        roles = node.cfg.roles
        self.solving = "solver" in roles and cfg.creator_ratio > 0
        self.creating = "creator" in roles
        self.rng = random.Random(derive_seed("selfplay", node.cfg.seed))
        self.queue = ProposalQueue(
            cfg.queue_size, cfg.per_creator, cfg.max_attempts, cfg.proposal_ttl_steps,
            cfg.curriculum,
        )
        self.own_filter = OwnTaskFilter(cfg.curriculum_memory_steps) if cfg.curriculum_own else None
        self.freeform = FreeFormCheck(cfg.free_form_min_answers)
        self.tracker = ProposalTracker(
            cfg.settle_completions, cfg.proposal_ttl_steps, cfg.learnability,
            cfg.diversity_penalty,
        )
        self.creator: Creator | None = self._build_creator() if self.creating else None
        self.recent_questions: deque[str] = deque(maxlen=RECENT)
        self.recent_closed: deque[Proposal] = deque(maxlen=RECENT)
        self._credit = 0.0
        self._step: dict[str, int] = {}

    def _build_creator(self) -> Creator:
        cfg, node_cfg = self.cfg, self.node.cfg
        seed = derive_seed("creator", node_cfg.seed, self.node.peer_id)
        if cfg.creator == "parametric":
            arms = build_arms(cfg.search_space, node_cfg.tasks.family_params)
            return ParametricCreator(arms, seed, cfg.bandit_c, cfg.bandit_discount,
                                     max_learnability(cfg.learnability))
        return LMCreator(
            seed, cfg.lm_family, node_cfg.tasks.family_params.get(cfg.lm_family, {}),
            cfg.lm_verifier, cfg.learnability, cfg.diversity_penalty, cfg.duplicate_similarity,
        )

    @property
    def active(self) -> bool:
        return self.solving or self.creating

    def _count(self, name: str, n: int = 1) -> None:
        self.node.metrics.count(f"selfplay:{name}", n)
        self._step[name] = self._step.get(name, 0) + n

    # --- creator ------------------------------------------------------------------------
    async def propose(self) -> None:
        """Creators: publish this step's proposals (the LM creator samples them first)."""
        self._step = {}
        if self.creator is None or self.cfg.proposals_per_step == 0:
            return
        await self._wait_for_solvers()
        step = self.node.step
        turn = Turn(step, self.cfg.proposals_per_step, self.node.peer_id, self.recent_questions,
                    self._sample, self._count)
        for draft in await self.creator.proposals(turn):
            question = draft.question
            # A draft without a duplicate fraction is measured now, so the recent questions it
            # is measured against include this step's drafts published before it.
            dup = self._duplicates(question) if draft.duplicate is None else draft.duplicate
            prop = self.tracker.add(draft.task, question, step, draft.arm, dup)
            if not draft.publish:
                continue
            if prop is None and not self.creator.already_open(draft):
                continue
            await self._send(draft.task, question)

    async def _wait_for_solvers(self) -> None:
        """Backpressure: with max_open proposals still unsettled, wait (at most wait_s) for the
        swarm to attempt them. Without it a creator with no training work of its own would
        propose in a tight loop, far faster than any solver can attempt."""
        deadline = trio.current_time() + self.cfg.wait_s
        while self._unsettled() >= self.cfg.max_open and trio.current_time() < deadline:
            await trio.sleep(min(0.25, max(0.01, self.cfg.wait_s / 20)))
        if self._unsettled() >= self.cfg.max_open:
            self._count("waited_out")

    def _unsettled(self) -> int:
        return sum(p.attempts < self.cfg.settle_completions for p in self.tracker.open.values())

    async def _sample(self, req: RolloutRequest) -> list[Completion]:
        """A creator's sampler (``Turn.sample``): one group of the node's policy on ``req``."""
        node = self.node
        G = node.cfg.generation.group_size
        samples = await node.runtime.run(
            lambda: node.brain.rollout([req], G),
            lambda out: sum(c.num_tokens for group in out for c in group),
        )
        return samples[0]

    def _duplicates(self, question: str) -> float:
        return near_duplicate_fraction(
            question, self.recent_questions, self.cfg.duplicate_similarity
        )

    async def _send(self, task: Task, question: str) -> None:
        self.recent_questions.append(question)
        await self.node.publish("tasks", TaskProposal(task=task, creator_round=self.node.step))
        self._count("proposed")
        if self.solving:  # our own proposals never come back through gossip
            self.queue.offer(task, self.node.peer_id, self.node.step)

    def observe_rollouts(self, group: RolloutGroup) -> None:
        """Admission: a swarm rollout group on one of our open proposals counts toward its p."""
        if not self.creating or not self.tracker.open:
            return
        key = task_key(group.task)
        if key not in self.tracker:
            return
        problem = materialize(group.task)  # ours: it materialized when we proposed it
        # Scored by us, against our own key: a solver's claimed rewards are never read.
        correct = [verify(problem, t, "instruct", 0.0).correct for t in group.completions]
        if self.tracker.observe(key, correct, group.content_id()):
            self._count("observed_groups")

    def creator_groups(self) -> list[ScoredGroup]:
        """Close the proposals that settled or expired (crediting their creator); returns the LM
        creator's generation groups that are now fully scored, to train on this step."""
        for prop in self.tracker.close_due(self.node.step):
            attempted = prop.attempts > 0
            self._count(prop.closed_by if attempted else "unattempted")
            if attempted:
                self.recent_closed.append(prop)
            if self.creator is not None:
                self.creator.closed(prop)
        return self.creator.ready_groups(self._count) if self.creator is not None else []

    # --- solver -------------------------------------------------------------------------
    async def admit_proposal(self, msg: TaskProposal, sender: str, step: int) -> str | None:
        """Admission: queue a proposal from ``sender``; returns the drop reason, or None."""
        if not self.solving:
            return "unexpected_kind"  # this node does not take creator tasks
        task = msg.task
        if isinstance(task, FreeFormTask) and task.creator not in (None, sender):
            return "proposal_not_own"
        outside = self.node.guard.outside(task)
        if outside is not None:
            return outside[0]  # before any generator runs, as for rollout groups
        try:  # a task this node cannot reproduce (in budget) is of no use to it
            await self.node.checker.check(task)
        except CheckFailed as e:
            log.debug("proposal from %s does not materialize: %s", sender[:16], e)
            return e.reason if e.reason in ("over_budget", "sandbox_down") else "proposal_invalid"
        return self.queue.offer(task, sender, step)

    def tasks_for_step(self, sampler: TaskSampler, n: int) -> list[Task]:
        """This step's ``n`` local tasks: creator tasks at the configured ratio, then own ones."""
        taken: list[Task] = []
        if self.solving and n > 0:
            # Fractional slots carry over, so a ratio of 0.3 with I = 4 averages 1.2 per step.
            self._credit += n * self.cfg.creator_ratio
            k = int(self._credit + 1e-9)
            self._credit -= k
            taken = [q.task for q in self.queue.take(k, self.node.step, self.rng)]
            self._count("creator_tasks", len(taken))
        return taken + self._own_tasks(sampler, n - len(taken))

    def _own_tasks(self, sampler: TaskSampler, m: int) -> list[Task]:
        if self.own_filter is None or m <= 0:
            return list(sampler.sample(m))
        kept: list[Task] = []
        skipped: list[Task] = []
        for _ in range(4 * m):
            spec = sampler.next()
            useful = self.own_filter.useful(task_key(spec), self.node.step)
            (kept if useful else skipped).append(spec)
            if len(kept) == m:
                break
        self._count("own_skipped", len(skipped))
        return kept + skipped[: m - len(kept)]

    def observe_local(self, groups: list[ScoredGroup]) -> None:
        """After local rollouts: curriculum, free-form verification, our own proposals' p."""
        if not (self.active or self.own_filter):
            return
        for g in groups:
            if g.task is None or not g.rewards:
                continue
            p = sum(g.rewards) / len(g.rewards)
            if g.task_key in self.queue.entries:
                self.queue.record(g.task_key, p)
            elif self.own_filter is not None and isinstance(g.task, TaskSpec):
                self.own_filter.record(g.task_key, p, self.node.step)
            free = isinstance(g.task, FreeFormTask)
            mine = self.creating and self.cfg.count_own_rollouts and g.task_key in self.tracker
            if not (free or mine):
                continue
            problem = materialize(g.task)
            scores = [
                verify(problem, c.text, self.node.cfg.tasks.prompt_style, 0.0)
                for c in g.completions
            ]
            if free:
                self.freeform.add(g.task_key, [(s.answer, s.correct >= 0.5) for s in scores])
            if mine:
                cid = "local:" + content_id(g.task, [c.text for c in g.completions])
                self.tracker.observe(g.task_key, [s.correct for s in scores], cid)

    def trainable(self, groups: list[ScoredGroup]) -> list[ScoredGroup]:
        """Local groups minus free-form tasks our own solvers have not verified yet."""
        keep = [g for g in groups if g.task is None or self.trainable_task(g.task)]
        self._count("unverified_skipped", len(groups) - len(keep))
        return keep

    def trainable_task(self, task: Task) -> bool:
        return not isinstance(task, FreeFormTask) or self.freeform.is_verified(task_key(task))

    # --- what the node shows --------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        """``selfplay_*`` figures for the step's metrics row (none when self-play is off)."""
        if not self.active:
            return {}
        row: dict[str, Any] = {
            "selfplay_creator_tasks": self._step.get("creator_tasks", 0),
        }
        if self.solving:
            row["selfplay_queue"] = len(self.queue)
        if self.creating:
            closed = list(self.recent_closed)
            row.update(
                selfplay_proposed=self._step.get("proposed", 0),
                selfplay_open=len(self.tracker.open),
                selfplay_p=_mean([c.p for c in closed]),
                selfplay_reward=_mean([c.reward or 0.0 for c in closed]),
            )
            if self.creator is not None:
                row.update(self.creator.metrics())
        return row

    def state(self) -> dict[str, Any]:
        """Everything inspect may want: roles in effect, queue, open proposals, the creator."""
        return {
            "solving": self.solving,
            "creating": self.creating,
            "queue": len(self.queue),
            "queue_stats": dict(self.queue.stats),
            "open_proposals": len(self.tracker.open),
            "recent_closed": [
                {"key": c.key, "p": round(c.p, 4), "attempts": c.attempts,
                 "reward": round(c.reward or 0.0, 4), "closed_by": c.closed_by}
                for c in list(self.recent_closed)[-8:]
            ],
            "creator": self.creator.state() if self.creator else None,
        }

    def state_dict(self) -> dict[str, Any]:
        """Checkpointed: the creator's own state under its kind, if it keeps any (the parametric
        creator's arm evidence; open proposals are not kept)."""
        if self.creator is None:
            return {}
        own = self.creator.state_dict()
        return {self.creator.kind: own} if own else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.creator is not None and self.creator.kind in state:
            self.creator.load_state_dict(state[self.creator.kind])


def _mean(xs: list[float]) -> float | None:
    return round(statistics.fmean(xs), 4) if xs else None
