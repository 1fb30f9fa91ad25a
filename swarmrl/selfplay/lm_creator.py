"""The LM creator: the node's own policy writes new problems and their answers.

Each step it samples G completions of a creator prompt that shows one example problem of a family
in the solvers' short format and opens the next one::

    Q: 68 - 32 =
    A: 36
    Q: <the policy writes>  41 + 7 =\\nA: 48

A completion is parsed strictly (one question line, ``A: `` and a one-line answer the verifier
can read, ended by a newline or the end of sampling, never cut by the token limit); anything
else earns 0. Each parsed problem is proposed to the swarm as a :class:`FreeFormTask`. When all
of a group's proposals have closed (see ``ProposalTracker``), the group becomes a ScoredGroup
whose rewards are the proposals' learnability, and the creator trains on it with GRPO in the
same update as its solver groups. Rewards arrive a few steps after sampling; the learner
recomputes old log-probs at train time, so the update stays a valid policy gradient step.
It implements ``creator.Creator`` for the node's self-play.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from swarmrl.brain.base import Completion, RolloutRequest, ScoredGroup
from swarmrl.protocol.messages import MAX_ANSWER_CHARS, FreeFormTask, task_key
from swarmrl.selfplay.creator import Count, Draft, Turn
from swarmrl.selfplay.learnability import Kind, near_duplicate_fraction, proposal_reward
from swarmrl.selfplay.tracker import Proposal
from swarmrl.tasks import derive_seed, get_family, materialize
from swarmrl.tasks.verifiers import parse_number

MAX_QUESTION_CHARS = 256
MAX_REFERENCE_CHARS = min(64, MAX_ANSWER_CHARS)
_FORMAT = re.compile(
    rf"(?P<q>[^\n]{{1,{MAX_QUESTION_CHARS}}})\nA: (?P<a>[^\n]{{1,{MAX_REFERENCE_CHARS}}})"
)
CREATOR_FAMILY = "creator"
"""``ScoredGroup.family`` of the creator's own generation groups."""


def creator_prompt(question: str, answer: str) -> str:
    return f"Q: {question}\nA: {answer}\nQ: "


def parse_problem(completion: Completion, verifier: str) -> tuple[str, str] | None:
    """(question, reference answer) if the completion is exactly one well-formed problem."""
    text = completion.text
    end = text.find("\n", text.find("\nA: ") + 4) if "\nA: " in text else -1
    if end >= 0:
        text = text[:end]  # what follows the answer line (e.g. another "Q:") is not read
    elif completion.truncated:
        return None  # the answer may have been cut by the token limit
    m = _FORMAT.fullmatch(text)
    if m is None:
        return None
    question, answer = m.group("q").strip(), m.group("a").strip()
    if not question or not answer or "<" in answer:
        return None
    if verifier == "numeric" and parse_number(answer) is None:
        return None
    return question, answer


@dataclass
class PendingGroup:
    """A creator generation group waiting for its proposals' learnability."""

    prompt: str
    completions: list[Completion]
    keys: list[str | None]  # proposal key per completion (None: unparsable)
    duplicates: list[float]
    step: int
    rewards: dict[str, Proposal] = field(default_factory=dict)  # key -> closed proposal

    @property
    def ready(self) -> bool:
        return all(k is None or k in self.rewards for k in self.keys)


class LMCreator:
    kind = "lm"

    def __init__(
        self,
        seed: int,
        family: str,
        family_params: dict[str, Any],
        verifier: str,
        learnability: Kind,
        penalty: float,
        threshold: float,
    ) -> None:
        self.seed = seed
        self.family = get_family(family)
        self.params = self.family.check_params(family_params)
        self.verifier = verifier
        self.kind_reward = learnability
        self.penalty = penalty
        self.threshold = threshold
        self.pending: list[PendingGroup] = []
        self.by_key: dict[str, list[PendingGroup]] = {}
        self.parsed = 0
        self.unparsed = 0
        self.last_rewards: list[float] = []

    def request(self, step: int) -> RolloutRequest:
        """The creator prompt of this step (a fresh example problem each step)."""
        spec = self.family.make_spec(
            self.params, seed=derive_seed("lm-creator", self.seed), index=step
        )
        example = materialize(spec)
        return RolloutRequest(creator_prompt(example.question, example.answer), CREATOR_FAMILY,
                              f"creator:{step}", "")

    def accept(
        self,
        prompt: str,
        completions: list[Completion],
        step: int,
        creator_id: str,
        recent: list[str],
    ) -> list[tuple[FreeFormTask, str, float]]:
        """Parse a sampled group; returns the tasks to propose: (task, question, duplicate)."""
        parsed = [parse_problem(c, self.verifier) for c in completions]
        questions = [p[0] if p else None for p in parsed]
        keys: list[str | None] = []
        dups: list[float] = []
        out = []
        for i, pq in enumerate(parsed):
            if pq is None:
                self.unparsed += 1
                keys.append(None)
                dups.append(0.0)
                continue
            self.parsed += 1
            others = recent + [q for j, q in enumerate(questions) if j != i and q is not None]
            dup = near_duplicate_fraction(pq[0], others, self.threshold)
            task = FreeFormTask(prompt=pq[0], reference_answer=pq[1], verifier=self.verifier,
                                creator=creator_id, created_round=min(step, 2**31))
            keys.append(task_key(task))
            dups.append(dup)
            out.append((task, pq[0], dup))
        group = PendingGroup(prompt, completions, keys, dups, step)
        self.pending.append(group)
        for k in {k for k in keys if k is not None}:
            self.by_key.setdefault(k, []).append(group)
        return out

    def feedback(self, prop: Proposal) -> None:
        """A proposal closed: every pending group that wrote it learns its solve rate."""
        for group in self.by_key.pop(prop.key, []):
            group.rewards[prop.key] = prop

    def ready_groups(self, count: Count | None = None) -> list[ScoredGroup]:
        """Groups whose proposals have all closed, scored by learnability, oldest first."""
        out, keep = [], []
        for g in self.pending:
            if not g.ready:
                keep.append(g)
                continue
            rewards = [
                0.0 if k is None else proposal_reward(
                    g.rewards[k].p, g.rewards[k].attempts, dup, self.kind_reward, self.penalty
                )
                for k, dup in zip(g.keys, g.duplicates, strict=True)
            ]
            self.last_rewards = rewards
            out.append(ScoredGroup(prompt=g.prompt, completions=g.completions, rewards=rewards,
                                   local=True, task_key=f"creator:{g.step}",
                                   family=CREATOR_FAMILY, answer=""))
        self.pending = keep
        if count is not None:
            count("lm_groups_trained", len(out))
        return out

    # --- creator.Creator (with ready_groups above and state below) ------------------------
    async def proposals(self, turn: Turn) -> list[Draft]:
        """Samples this step's creator prompt with the node's policy and parses the group: the
        first ``turn.quota`` problems parsed go out, each with its near-duplicate fraction."""
        req = self.request(turn.step)
        completions = await turn.sample(req)
        accepted = self.accept(req.prompt, completions, turn.step, turn.creator_id,
                               list(turn.recent))
        turn.count("lm_unparsed", len(completions) - len(accepted))
        drafts = [Draft(task, question, duplicate=dup)
                  for task, question, dup in accepted[: turn.quota]]
        # Parsed but over this step's quota: never proposed, so it earns nothing. Opened all the
        # same, so it closes (unattempted) and its completion's group becomes ready.
        drafts += [Draft(task, "", duplicate=0.0, publish=False)
                   for task, _, _ in accepted[turn.quota:]]
        return drafts

    def already_open(self, draft: Draft) -> bool:
        """Happens only for a problem two completions of this step's group both wrote (a task
        names its step, so earlier steps' never match): it stays one proposal, whose reward both
        completions get, and is published once per completion that wrote it."""
        return True

    def closed(self, prop: Proposal) -> None:
        self.feedback(prop)

    def metrics(self) -> dict[str, Any]:
        return {"selfplay_parse_rate": self.state()["parse_rate"]}

    def state_dict(self) -> dict[str, Any]:
        return {}  # what it learns is in the policy, which the node checkpoints

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def state(self) -> dict[str, Any]:
        total = self.parsed + self.unparsed
        return {
            "creator": self.kind,
            "parsed": self.parsed,
            "unparsed": self.unparsed,
            "parse_rate": round(self.parsed / total, 4) if total else None,
            "pending_groups": len(self.pending),
            "last_rewards": [round(r, 4) for r in self.last_rewards],
        }
