"""Held-out evaluation: is the node's model getting better at its tasks, on problems it never
trains on?

Training reward answers a narrower question: how the policy does on the problems it was just
given, sampled at its training temperature. Users ask whether it solves new problems, as TRL's
``eval_steps`` and verl's validation runs answer. The held-out set is fixed: the node's own task
families and params, drawn with ``eval.seed`` (a seed no node's task stream uses), so every node
of a swarm with the same tasks is measured on the same problems. In a task space as small as
1-2 digit arithmetic a few held-out problems may also come up in training by chance; none is
ever drawn on purpose.

Scores are the verifier's (format reward off): a greedy completion per problem, and
``eval.samples`` completions at the generation temperature.
"""

from __future__ import annotations

from typing import Protocol

from swarmrl.config import NodeConfig
from swarmrl.tasks import TaskSampler, format_prompt, materialize, verify
from swarmrl.tasks.problem import Problem


class Evaluable(Protocol):
    """A brain that can sample for evaluation (LMBrain; the simulator's StubBrain)."""

    def sample_texts(self, prompts: list[str], n: int, temperature: float) -> list[list[str]]:
        """``n`` completion texts per prompt at ``temperature`` (0 = greedy)."""
        ...


class HeldOut:
    """The node's fixed held-out problems and how to score a brain on them."""

    def __init__(self, cfg: NodeConfig) -> None:
        tasks = cfg.tasks.model_copy(update={"pool_size": 0, "seed": cfg.eval.seed})
        specs = TaskSampler(tasks, node_seed=0).sample(cfg.eval.problems)
        self.problems: list[Problem] = [materialize(s) for s in specs]
        self.style = cfg.tasks.prompt_style
        self.samples = cfg.eval.samples
        self.temperature = cfg.generation.temperature

    def score(self, brain: Evaluable) -> dict[str, float]:
        """``heldout_greedy`` and (with samples) ``heldout_sampled``: mean verifier reward."""
        prompts = [format_prompt(p, self.style) for p in self.problems]
        out = {"heldout_greedy": self._mean(brain.sample_texts(prompts, 1, 0.0))}
        if self.samples:
            texts = brain.sample_texts(prompts, self.samples, self.temperature)
            out["heldout_sampled"] = self._mean(texts)
        return out

    def _mean(self, texts: list[list[str]]) -> float:
        rewards = [
            verify(p, t, self.style, 0.0).reward
            for p, group in zip(self.problems, texts, strict=True)
            for t in group
        ]
        return round(sum(rewards) / max(1, len(rewards)), 4)
