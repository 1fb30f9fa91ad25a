"""What the node loop needs from a learner: sample completions, learn from scored groups.

The node loop talks to a ``Brain`` and nothing else, so the same loop drives a transformers
policy (``brain.lm.LMBrain``) and the simulator's cheap stub learner. This module is
plain data and a Protocol: no torch, so the loop and the simulator stay light.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from swarmrl.config import NodeConfig
from swarmrl.protocol.messages import FreeFormTask, TaskSpec
from swarmrl.training.distill import TeacherSignal


@dataclass
class Completion:
    """One sampled completion as text, with what the trainer may reuse."""

    text: str
    truncated: bool = False
    token_ids: list[int] | None = None  # this brain's own ids (None for foreign text)
    num_tokens: int = 0
    # The sampling engine's raw log-prob of each of token_ids (truncated importance sampling
    # weighs by them); never published: peers' text is re-scored, not trusted.
    sampler_logprobs: list[float] | None = None
    # Swarm text only: the sender's claimed sampling log-probs, per token of our own ids (when
    # its tokenizer is ours) or summed over the whole text; weighed by, never trusted beyond 1.
    sender_logprobs: list[float] | None = None
    sender_logprob_sum: float | None = None


@dataclass
class ScoredGroup:
    """A task's completions with this node's own rewards, ready for a GRPO update."""

    prompt: str
    completions: list[Completion]
    rewards: list[float]
    local: bool = True  # sampled by this node (vs. taken from the swarm)
    task_key: str = ""
    family: str = ""
    answer: str = ""
    task: TaskSpec | FreeFormTask | None = None  # what is published for local groups
    teacher: TeacherSignal | None = None  # a teacher peer's log-probs of these completions

    @property
    def has_signal(self) -> bool:
        """True when rewards differ within the group, so GRPO advantages are not all zero."""
        return len(self.rewards) > 1 and max(self.rewards) - min(self.rewards) > 1e-9


@dataclass
class TrainStats:
    """What one update did; every number lands in metrics.jsonl."""

    loss: float = 0.0
    groups: int = 0
    groups_with_signal: int = 0
    tokens: int = 0
    skipped: bool = False
    extra: dict[str, float] = field(default_factory=dict)
    # per group given to train: the mean importance weight its tokens had in the loss (how much
    # of it this node could learn from); None where it was not trained on
    group_weights: list[float | None] = field(default_factory=list)


@dataclass
class RolloutRequest:
    """A prompt to sample for, and the answer key (only the stub learner may look at it)."""

    prompt: str
    family: str = ""
    task_key: str = ""
    answer: str = ""


@runtime_checkable
class Brain(Protocol):
    """A node's learner. Implementations: LMBrain (transformers) and the simulator's StubBrain."""

    model_id: str
    tokenizer_fingerprint: str

    @property
    def policy_version(self) -> int: ...

    def rollout(self, requests: list[RolloutRequest], group_size: int) -> list[list[Completion]]:
        """Sample ``group_size`` completions for each request."""
        ...

    def train(self, groups: list[ScoredGroup]) -> TrainStats:
        """One GRPO update on local and external groups; foreign text is re-tokenized here."""
        ...

    def save(self, root: Path, step: int, extra: dict[str, Any], keep: int) -> Path:
        """Write ``root/step-<step>`` atomically, ``extra`` beside the weights; keep ``keep``."""
        ...

    def load(self, path: Path) -> dict[str, Any]:
        """Restore a checkpoint written by ``save``; returns its ``extra`` state."""
        ...


def with_prompt_style(cfg: NodeConfig, brain: Brain | None) -> NodeConfig:
    """``cfg`` with ``tasks.prompt_style`` resolved (never 'auto'): the brain says what suits
    its model (:meth:`LMBrain.prompt_style`); no brain, or one without a tokenizer (the
    simulator's stub), reads the tiny models' 'short'."""
    requested = cfg.tasks.prompt_style
    resolve = getattr(brain, "prompt_style", None)
    if resolve is not None:
        style = resolve(requested)
    else:
        style = "short" if requested == "auto" else requested
    if style == requested:
        return cfg
    return cfg.model_copy(update={"tasks": cfg.tasks.model_copy(update={"prompt_style": style})})
