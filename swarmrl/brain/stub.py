"""A cheap learner with per-family skill and no language model, for 1000-node simulations.

It plays the Brain role exactly like the transformers policy: it samples completions as text
(right with probability p = sigmoid(skill - difficulty)), and learns from scored groups with the
same GRPO advantages, so the node loop, the pool, the gossip and the re-scoring are all real.
The gradient is that of a Bernoulli policy: d log p(right)/d skill = 1 - p, d log p(wrong) = -p.

With ``knob_scale > 0`` the difficulty also grows with the question itself (digits of its
numbers, multiplications), read from the prompt text, so generator knobs such as arith's
``max_digits`` and ``terms`` matter and a self-play creator has something to search for.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from pathlib import Path
from typing import Any

from swarmrl.brain.base import Completion, RolloutRequest, ScoredGroup, TrainStats
from swarmrl.training.checkpoint_files import tuplify, write_step_dir


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _difficulty(task_key: str, spread: float) -> float:
    """A fixed per-task offset every node agrees on (from the task's key)."""
    h = int.from_bytes(hashlib.blake2b(task_key.encode(), digest_size=4).digest(), "big")
    return spread * (h / 2**32 - 0.5) * 2


_QUESTION = re.compile(r"(?:Q|Problem): ([^\n]*)")
_NUMBER = re.compile(r"[0-9]+")


def text_difficulty(prompt: str) -> float:
    """Difficulty units of a question: digits beyond a 1-digit pair, plus 2 per '*'.

    ``3 + 4`` is 0, ``68 - 32`` is 2, ``123 + 4 - 56`` is 4, ``12 * 3`` is 3. Read from the
    prompt's question line, so local and re-scored swarm groups agree.
    """
    m = _QUESTION.search(prompt)
    question = m.group(1) if m else prompt
    digits = sum(len(x) for x in _NUMBER.findall(question))
    return max(0.0, digits - 2.0) + 2.0 * question.count("*")


class StubBrain:
    model_id = "stub"
    tokenizer_fingerprint = "stub"

    def __init__(
        self,
        skills: dict[str, float] | None = None,
        lr: float = 0.5,
        seed: int = 0,
        difficulty_spread: float = 1.0,
        default_skill: float = -2.0,
        knob_scale: float = 0.0,
    ) -> None:
        self.skill: dict[str, float] = dict(skills or {})
        self.default_skill = default_skill
        self.lr = lr
        self.spread = difficulty_spread
        self.knob_scale = knob_scale  # logits of difficulty per unit of text_difficulty
        self.rng = random.Random(seed)
        self._version = 0

    @property
    def policy_version(self) -> int:
        return self._version

    def p_right(self, family: str, task_key: str, prompt: str = "") -> float:
        knobs = self.knob_scale * text_difficulty(prompt) if self.knob_scale else 0.0
        return _sigmoid(
            self.skill.get(family, self.default_skill) - _difficulty(task_key, self.spread) - knobs
        )

    def rollout(self, requests: list[RolloutRequest], group_size: int) -> list[list[Completion]]:
        out = []
        for req in requests:
            p = self.p_right(req.family, req.task_key, req.prompt)
            group = []
            for _ in range(group_size):
                answer = req.answer if self.rng.random() < p else wrong_answer(req.answer, self.rng)
                text = (
                    f"{answer}</answer>"
                    if req.prompt.endswith("<answer>")
                    else (f"<answer>{answer}</answer>")
                )
                group.append(Completion(text=text, num_tokens=len(text)))
            out.append(group)
        return out

    def train(self, groups: list[ScoredGroup]) -> TrainStats:
        stats = TrainStats(groups=len(groups))
        grads: dict[str, float] = {}
        for g in groups:
            stats.tokens += sum(max(1, len(c.text)) for c in g.completions)
            if not g.has_signal:
                continue
            stats.groups_with_signal += 1
            mean = sum(g.rewards) / len(g.rewards)
            std = math.sqrt(sum((r - mean) ** 2 for r in g.rewards) / len(g.rewards)) + 1e-4
            p = self.p_right(g.family, g.task_key, g.prompt)
            for r in g.rewards:
                adv = (r - mean) / std
                dlogp = (1 - p) if r > 0.5 else -p
                grads[g.family] = grads.get(g.family, 0.0) + adv * dlogp / len(g.rewards)
        n = max(1, stats.groups_with_signal)
        for fam, grad in grads.items():
            self.skill[fam] = self.skill.get(fam, self.default_skill) + self.lr * grad / n
        stats.skipped = not grads
        if grads:
            self._version += 1
        if self.knob_scale:  # skill is what a difficulty-aware run is about: log it
            stats.extra = {f"skill_{f}": round(v, 4) for f, v in sorted(self.skill.items())}
        return stats

    def save(self, root: Path, step: int, extra: dict[str, Any], keep: int) -> Path:
        state = {
            "skill": self.skill,
            "version": self._version,
            "rng": self.rng.getstate(),
            "extra": extra,
        }
        return write_step_dir(
            root, step, lambda d: (d / "stub.json").write_text(json.dumps(state)), keep
        )

    def load(self, path: Path) -> dict[str, Any]:
        state = json.loads((path / "stub.json").read_text())
        self.skill = state["skill"]
        self._version = state["version"]
        self.rng.setstate(tuplify(state["rng"]))
        return state["extra"]


def wrong_answer(answer: str, rng: random.Random) -> str:
    """A plausible wrong answer (a nearby number, or a garbled string)."""
    try:
        return str(int(answer) + rng.choice([-2, -1, 1, 2, 10]))
    except ValueError:
        return answer[::-1] + "x"
