"""The one node loop, shared by the daemon, `swarmrl train` and the simulator.

Per step: sample tasks -> generate G completions -> verify locally -> publish the rollout groups
-> take J external groups from the swarm pool (re-scored locally) -> one GRPO update -> metrics
-> checkpoint every k steps. Receiving runs concurrently and never blocks training: a node with
no peers simply trains on its own groups (silo).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from swarmrl.brain.base import Brain, RolloutRequest, ScoredGroup, TrainStats, with_prompt_style
from swarmrl.config import NodeConfig
from swarmrl.distill.student import DistillClient
from swarmrl.distill.teacher import TeacherService
from swarmrl.net import Transport, topic_name
from swarmrl.node.announce import peer_card, public_model_id, sampled_logprobs, sampler_info
from swarmrl.node.evaluation import HeldOut
from swarmrl.node.inbox import ControlInbox
from swarmrl.node.metrics import Metrics
from swarmrl.node.runtime import Runtime
from swarmrl.node.signal_watch import SignalWatch
from swarmrl.protocol import Identity, SeqCounter, encode, seal
from swarmrl.protocol.messages import (
    PeerCard,
    RolloutGroup,
    task_key,
)
from swarmrl.selfplay.agent import SelfPlay
from swarmrl.swarm.admission import Admission
from swarmrl.swarm.guard import Guard
from swarmrl.swarm.peers import PeerTable
from swarmrl.swarm.plausibility import Plausibility, sender_key
from swarmrl.swarm.sapo import (
    PoolEntry,
    Rescorer,
    SharingSplit,
    SkillTracker,
    SwarmPool,
    select_external,
    to_wire,
)
from swarmrl.tasks import TaskSampler, format_prompt, materialize, verify
from swarmrl.tasks.bounds import TaskSpace
from swarmrl.tasks.problem import Problem
from swarmrl.tasks.sandbox import InProcessChecker, default_checker
from swarmrl.training.checkpoint_files import load_newest, tuplify

log = logging.getLogger("swarmrl.node")


@dataclass
class StepResult:
    step: int
    reward: float
    stats: TrainStats
    local_groups: list[ScoredGroup]
    external_groups: list[ScoredGroup] = field(default_factory=list)
    external_senders: list[str] = field(default_factory=list)  # peer id of each external group


class Node:
    """A swarm peer: its brain, its tasks, its pool, its transport and its metrics."""

    def __init__(
        self,
        cfg: NodeConfig,
        brain: Brain,
        transport: Transport,
        identity: Identity,
        runtime: Runtime,
        out_dir: Path | None = None,
        checker: InProcessChecker | None = None,
    ) -> None:
        cfg = with_prompt_style(cfg, brain)
        self.cfg = cfg
        self.brain = brain
        self.transport = transport
        self.identity = identity
        self.runtime = runtime
        self.out_dir = out_dir
        self.sampler = TaskSampler(cfg.tasks, node_seed=cfg.seed)
        self.pool = SwarmPool(cfg.sapo)
        self.rescorer = Rescorer(cfg.tasks.prompt_style, cfg.tasks.format_reward,
                                 fingerprint=brain.tokenizer_fingerprint)
        self.skills = SkillTracker()
        self.sender_value: dict[str, float] = {}  # 'valued' sampling (see _value_senders)
        self.split = SharingSplit(cfg.sapo)  # this step's I and J (sapo.adaptive moves them)
        self.peers = PeerTable()
        self.metrics = Metrics(out_dir / "metrics.jsonl" if out_dir else None)
        t = cfg.tasks  # its params were checked against these bounds when the config loaded
        self.task_space = TaskSpace.build(set(t.families), t.family_params, t.bounds)
        self.guard = Guard(cfg.guard, task_space=self.task_space)
        # Peers' tasks are generated and their answers scored here: in a worker with a time
        # and memory budget (tasks/sandbox.py) unless this node's peers are our own code.
        self.checker = checker or default_checker(cfg.guard)
        self.plausibility = Plausibility(cfg.guard)
        self.admission = Admission(self)
        self.rng = random.Random(cfg.seed * 7919 + 17)
        self.step = 0
        # Sequence numbers start from the clock, so they keep rising across restarts and
        # peers' replay windows never mistake a resumed node for a replayer.
        self.seq = SeqCounter(int(runtime.now() * 1_000_000))
        # The one pause flag is the user's, control.paused (control API threads set it); this
        # one is the daemon's own: it is stopping, so no new step starts and none resumes.
        self.stopping = False
        self.control = ControlInbox()  # a user's pause and submitted tasks (control API threads)
        self.started_at = runtime.now()
        self.recent: list[StepResult] = []
        self.public_model_id = public_model_id(brain.model_id)[:256]  # said in cards, groups
        self.signal_watch = SignalWatch(cfg.name, self.metrics)  # says so when nothing teaches
        self.topics = {n: topic_name(cfg.swarm_id, n) for n in ("rollouts", "tasks", "peers")}
        self.selfplay = SelfPlay(self)  # creator / solver roles (swarmrl/selfplay/agent.py)
        # Free-form tasks from peers enter the pool once our own solvers verified them.
        self.guard.is_verified = self.selfplay.freeform.is_verified
        # On-policy distillation (issue 8): serving as a teacher, asking one as a student.
        self.teacher = TeacherService(self) if "teacher" in cfg.roles else None
        self.distill = DistillClient(self) if cfg.distill.mode != "off" else None
        evaluates = (cfg.eval.every or cfg.eval.on_start) and hasattr(brain, "sample_texts")
        self.heldout = HeldOut(cfg) if evaluates else None

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    # --- the loop ------------------------------------------------------------------------
    async def run(self, steps: int | None = None) -> None:
        """Train until ``steps`` total steps are done (config default; 0 = until cancelled)."""
        target = self.cfg.steps if steps is None else steps
        async with trio.open_nursery() as nursery:
            # The sandbox's worker starts (and imports the generators) now, not in the middle
            # of training when the first peer's task arrives.
            nursery.start_soon(self.checker.warm_up)
            nursery.start_soon(self.receive, self.topics["rollouts"])
            nursery.start_soon(self.receive, self.topics["peers"])
            if self.selfplay.solving:  # only solvers take proposals
                nursery.start_soon(self.receive, self.topics["tasks"])
            nursery.start_soon(self.announce_loop)
            if self.teacher is not None:
                nursery.start_soon(self.teacher.serve)
            while target == 0 or self.step < target:
                if self.stopping or self.control.paused:
                    await trio.sleep(0.5)
                    continue
                await self.train_one_step()
            nursery.cancel_scope.cancel()

    async def train_one_step(self) -> StepResult:
        t0 = self.runtime.now()
        await self.selfplay.propose()
        local = await self._rollout_local()
        if self.distill is not None:
            await self.distill.annotate(local, self.step)
        await self._publish_groups(local)
        self.pool.expire(self.step)
        chosen = select_external(self.pool, self.rescorer, self.skills, self.cfg.sapo, self.rng,
                                 self._peer_weight, count=self.split.external)
        chosen = [e for e in chosen if self.selfplay.trainable_task(e.group.task)]
        external = [self.rescorer.rescore(e) for e in chosen]
        chosen, external = await self._plausible(local, chosen, external)
        own = self.selfplay.trainable(local)
        batch = own + external + self.selfplay.creator_groups()
        start = await self._evaluate() if self.step == 0 and self.cfg.eval.on_start else {}
        stats = await self.runtime.run(
            lambda: self.brain.train(batch), lambda s: s.tokens
        )
        stats.extra.update({f"{k}_start": v for k, v in start.items()})
        if self.distill is not None:
            stats.extra.update(self.distill.figures)
        self.pool.mark_used(chosen)
        self.split.observe(stats.extra)
        self._value_senders(chosen, stats.group_weights[len(own) : len(own) + len(external)])
        for e in chosen:
            info = self.peers.get(e.sender)
            if info is not None:
                info.trained += 1
        self.step += 1
        if self.cfg.eval.every and self.step % self.cfg.eval.every == 0:
            stats.extra.update(await self._evaluate())
        result = StepResult(self.step, _mean_reward(local), stats, local, external)
        result.external_senders = [e.sender for e in chosen]
        self._record(result, self.runtime.now() - t0)
        if self.cfg.checkpoint.every and self.step % self.cfg.checkpoint.every == 0:
            self.save_checkpoint()
        return result

    async def _rollout_local(self) -> list[ScoredGroup]:
        n = self.split.local
        if n == 0:
            return []
        specs = self.control.take(n)  # submitted tasks go first
        specs += self.selfplay.tasks_for_step(self.sampler, n - len(specs))
        style = self.cfg.tasks.prompt_style
        G = self.cfg.generation.group_size

        def generate_and_roll_out() -> tuple[list[Problem], list[RolloutRequest], list]:
            # Generation is in the worker thread with the model: some families take 0.1-3 s
            # for one item (futoshiki at its defaults), and on the loop that is as long
            # without reading the network or answering the control API.
            problems = [materialize(s) for s in specs]
            requests = [
                RolloutRequest(format_prompt(p, style), p.family, task_key(s), p.answer)
                for s, p in zip(specs, problems, strict=True)
            ]
            return problems, requests, self.brain.rollout(requests, G)

        problems, requests, samples = await self.runtime.run(
            generate_and_roll_out,
            lambda out: sum(c.num_tokens for group in out[2] for c in group),
        )
        groups = []
        for spec, prob, req, comps in zip(specs, problems, requests, samples, strict=True):
            rewards = [
                verify(prob, c.text, style, self.cfg.tasks.format_reward).reward for c in comps
            ]
            self.skills.update(prob.family, sum(rewards) / len(rewards))
            groups.append(ScoredGroup(
                prompt=req.prompt, completions=comps, rewards=rewards, local=True,
                task_key=req.task_key, family=prob.family, answer=prob.answer, task=spec,
            ))
        self.selfplay.observe_local(groups)
        return groups

    async def _plausible(
        self, local: list[ScoredGroup], chosen: list[PoolEntry], external: list[ScoredGroup]
    ) -> tuple[list[PoolEntry], list[ScoredGroup]]:
        """The guard's plausibility check of the chosen external groups (swarm/plausibility.py)."""
        if not external or not self.plausibility.enabled(self.brain):
            return chosen, external
        own = Plausibility.reference(local)
        brain: Any = self.brain
        scores = await self.runtime.run(
            lambda: brain.plausibility(own + external),
            # a forward pass over the completions: about one token per byte of text
            lambda out: sum(len(c.text) for g in own + external for c in g.completions),
        )
        senders = [sender_key(e.sender, e.group.sampler.model_id,
                              e.group.sampler.tokenizer_fingerprint) for e in chosen]
        verdicts = self.plausibility.judge(scores[: len(own)], scores[len(own):], senders)
        kept: list[tuple[PoolEntry, ScoredGroup]] = []
        blatant = self.plausibility.blatant
        for entry, group, ok, past in zip(chosen, external, verdicts, blatant, strict=True):
            charge = self.plausibility.charged(entry.sender, not ok, past)
            if ok:
                kept.append((entry, group))
            else:
                # An honest peer's odd group is dropped for free; junk past the ceiling, or a
                # peer whose groups are mostly implausible, pays (swarm/plausibility.py).
                self.admission.drop_later(entry.sender, "implausible", charge=charge)
                self.pool.discard(entry, "implausible")
        return [e for e, _ in kept], [g for _, g in kept]

    async def _evaluate(self) -> dict[str, float]:
        """Held-out scores of the policy now (node/evaluation.py); {} for brains without one."""
        heldout = self.heldout
        if heldout is None:
            return {}
        brain: Any = self.brain
        # A measurement, not the node's work: a simulation does not charge it to its clock.
        return await self.runtime.run(lambda: heldout.score(brain), lambda _: 0)

    def _peer_weight(self, sender: str) -> float:
        weight = self.guard.weight(sender, self.runtime.now())
        if self.cfg.sapo.sampling == "valued":
            weight *= self.sender_value.get(sender, 1.0)
        return weight

    def _value_senders(self, chosen: list[PoolEntry], weights: list[float | None]) -> None:
        """What each chosen group counted in this update (its tokens' mean importance weight),
        into its sender's running value: 'valued' sampling spends J on senders whose text this
        node can learn from."""
        for entry, w in zip(chosen, weights, strict=False):
            if w is None:  # not trained on (no signal): says nothing of the sender
                continue
            old = self.sender_value.get(entry.sender, 1.0)
            self.sender_value[entry.sender] = 0.8 * old + 0.2 * w
            while len(self.sender_value) > self.guard.max_peers:  # ids are free to mint
                self.sender_value.pop(next(iter(self.sender_value)))

    # --- gossip --------------------------------------------------------------------------
    async def _publish_groups(self, groups: list[ScoredGroup]) -> None:
        if not self.cfg.sapo.publish:
            return
        sampler = sampler_info(self.cfg, self.brain, self.public_model_id)
        for g in groups:
            msg = RolloutGroup(
                task=g.task,
                completions=[to_wire(g.prompt, c.text) for c in g.completions],
                sampler=sampler,
                claimed_rewards=g.rewards,
                round=self.step,
                logprobs=sampled_logprobs(g),
            )
            await self.publish("rollouts", msg)

    async def publish(self, name: str, msg: Any) -> None:
        now = self.runtime.now()
        try:
            data = encode(seal(msg, self.identity, seq=self.seq.next(), timestamp=now))
        except Exception as e:  # an oversized group is our problem, never the loop's
            self.metrics.count(f"publish_failed:{type(e).__name__}")
            log.debug("not publishing %s: %s", name, e)
            return
        await self.transport.publish(self.topics[name], data)
        self.metrics.count(f"published:{name}")

    async def receive(self, topic_name: str) -> None:
        async for sender, data in self.transport.subscribe(topic_name):
            await self.admission.admit(sender, data)

    def card(self) -> PeerCard:
        addrs = self.cfg.network.announce or self.transport.listen_addrs()
        return peer_card(self.cfg, self.brain, self.peer_id, self.public_model_id, addrs)

    async def announce_loop(self) -> None:
        while True:
            await self.publish("peers", self.card())
            await trio.sleep(self.cfg.peer_card_every_s)

    # --- records -------------------------------------------------------------------------
    def _record(self, r: StepResult, seconds: float) -> None:
        ext_rewards = [x for g in r.external_groups for x in g.rewards]
        row = {
            "step": r.step,
            "time": round(self.runtime.now() - self.started_at, 4),
            "reward": r.reward,
            "external_reward": sum(ext_rewards) / len(ext_rewards) if ext_rewards else None,
            "loss": r.stats.loss,
            "tokens": r.stats.tokens,
            "completion_tokens": sum(c.num_tokens for g in r.local_groups for c in g.completions),
            "seconds": round(seconds, 4),
            "groups_local": len(r.local_groups),
            "groups_external": len(r.external_groups),
            "groups_with_signal": r.stats.groups_with_signal,
            "policy_version": self.brain.policy_version,
            "pool": len(self.pool),
            "peers": len(self.peers),
        }
        row.update({k: v for k, v in r.stats.extra.items() if k not in row})
        row.update(self.selfplay.metrics())
        self.metrics.log_step(row)
        self.recent = (self.recent + [r])[-32:]
        self.signal_watch.observe(r.reward, r.stats.groups_with_signal)

    def checkpoint_root(self) -> Path | None:
        return self.out_dir / "checkpoints" if self.out_dir else None

    def save_checkpoint(self) -> Path | None:
        root = self.checkpoint_root()
        if root is None:
            return None
        extra = {
            "step": self.step,
            "sampler": self.sampler.state_dict(),
            "rng": self.rng.getstate(),
            "selfplay": self.selfplay.state_dict(),
            "sharing": self.split.state_dict(),
        }
        return self.brain.save(root, self.step, extra, self.cfg.checkpoint.keep)

    def resume(self) -> bool:
        """Load the newest checkpoint under out_dir that loads; returns whether one did.

        A checkpoint whose files verify can still hold what this node cannot load (another
        model's weights, a bad state file): it is skipped with a warning for the one before it.
        If none loads, ConfigError says so and nothing is deleted."""
        root = self.checkpoint_root()
        path = None if root is None else load_newest(root, self._load_checkpoint, self.cfg.name)
        if path is None:
            return False
        log.info("resumed %s from %s at step %d", self.cfg.name, path, self.step)
        return True

    def _load_checkpoint(self, path: Path) -> None:
        extra = self.brain.load(path)
        step = int(extra["step"])
        self.sampler.load_state_dict(extra["sampler"])
        self.rng.setstate(tuplify(extra["rng"]))
        self.selfplay.load_state_dict(extra.get("selfplay", {}))
        self.split.load_state_dict(extra.get("sharing", {}))
        self.step = step


def _mean_reward(groups: list[ScoredGroup]) -> float:
    rewards = [x for g in groups for x in g.rewards]
    return sum(rewards) / len(rewards) if rewards else float("nan")
