"""Adversarial peers for simulations: the same node loop, publishing poison instead of rollouts.

A scenario marks a kind of node with ``adversary = "<kind>"``. The node trains like any other
(so it stays a plausible, live peer), but what it publishes is one of:

- ``liar``: wrong answers, each claimed to earn reward 1;
- ``forger``: free-form copies of real tasks with a forged reference answer, and completions
  that match the forgery (a node that trusted the key would learn the wrong answer);
- ``junk``: correct answers with junk appended;
- ``corrupt``: correct-looking answers behind corrupted reasoning (garbage before the tag);
- ``flood``: many times its share of groups, plus oversized, malformed and replayed messages;
- ``impersonator``: its groups re-signed in the name of another (honest) peer.

Every group an adversary publishes is poison; ``poison_ids`` collects their content ids so an
experiment can count how many reached an honest node's training.
"""

from __future__ import annotations

import random
from typing import Any

import msgpack

from swarmrl.brain.base import ScoredGroup
from swarmrl.brain.stub import wrong_answer
from swarmrl.node.loop import Node
from swarmrl.protocol import encode, seal
from swarmrl.protocol.codec import _signing_bytes
from swarmrl.protocol.messages import FreeFormTask, RolloutGroup, SamplerInfo

KINDS = ("liar", "forger", "junk", "corrupt", "flood", "impersonator")

POISON_IDS: set[str] = set()
"""Content ids of every poisoned group published in this process (simulations only)."""


def _junk(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("qzxj#@%&~^ ") for _ in range(n))


class AdversaryNode(Node):
    """A node whose published groups are poison of one ``kind``."""

    kind = "liar"

    def __init__(self, *args: Any, victim: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.victim = victim  # the peer id an impersonator signs as
        self.poison_rng = random.Random(self.cfg.seed * 31 + 7)

    def poison(self, g: ScoredGroup) -> RolloutGroup:
        rng, ans, n = self.poison_rng, g.answer, len(g.completions)
        task: Any = g.task
        if self.kind == "forger":
            forged = wrong_answer(ans, rng)
            task = FreeFormTask(prompt=g.prompt[-1000:], reference_answer=forged)
            texts = [f"<answer>{forged}</answer>"] * (n - 1) + [f"<answer>{ans}</answer>"]
        elif self.kind == "junk":
            texts = [f"<answer>{ans}</answer> {_junk(rng, 40)}" for _ in range(n // 2)]
            texts += [f"<answer>{wrong_answer(ans, rng)}</answer>" for _ in range(n - n // 2)]
        elif self.kind == "corrupt":
            texts = [f"{_junk(rng, 60)} so <answer>{ans}</answer>" for _ in range(n // 2)]
            texts += [f"<answer>{wrong_answer(ans, rng)}</answer>" for _ in range(n - n // 2)]
        else:  # liar, flood, impersonator: wrong answers claimed right
            texts = [f"<answer>{wrong_answer(ans, rng)}</answer>" for _ in range(n)]
        # Junk and corruption ride on right answers: their claims are the truth, so only a
        # check of the text itself (plausibility) can catch them.
        honest_claims = self.kind in ("junk", "corrupt")
        claims = [float(f"<answer>{ans}</answer>" in t) if honest_claims else 1.0 for t in texts]
        msg = RolloutGroup(
            task=task,
            completions=texts,
            sampler=SamplerInfo(policy_version=self.brain.policy_version),
            claimed_rewards=claims,
            round=self.step,
        )
        POISON_IDS.add(msg.content_id())
        return msg

    async def _publish_groups(self, groups: list[ScoredGroup]) -> None:
        copies = 8 if self.kind == "flood" else 1
        for g in groups:
            for _ in range(copies):
                msg = self.poison(g)
                if self.kind == "impersonator" and self.victim:
                    await self.transport.publish(self.topics["rollouts"], self._forged(msg))
                else:
                    await self.publish("rollouts", msg)
        if self.kind == "flood":
            await self._flood_junk()

    def _forged(self, msg: RolloutGroup) -> bytes:
        """The message as if the victim had sent it, signed with our own key."""
        data = encode(seal(msg, self.identity, seq=self.seq.next(), timestamp=self.runtime.now()))
        parts = msgpack.unpackb(data, raw=False)
        parts[2] = self.victim
        parts[6] = self.identity.sign(_signing_bytes(*parts[:6]))
        return msgpack.packb(parts, use_bin_type=True)

    async def _flood_junk(self) -> None:
        rng, topic = self.poison_rng, self.topics["rollouts"]
        last = None
        for i in range(8):
            if i % 3 == 0:
                data = rng.randbytes(rng.randrange(10, 4000))
            elif i % 3 == 1 and last is not None:
                data = last  # a replay
            else:
                data = b"\x97" + rng.randbytes(2000)
            await self.transport.publish(topic, data)
            last = data


def adversary_node(kind: str) -> type[Node]:
    if kind not in KINDS:
        raise ValueError(f"unknown adversary {kind!r}; known: {', '.join(KINDS)}")
    return type(f"{kind.title()}Node", (AdversaryNode,), {"kind": kind})
