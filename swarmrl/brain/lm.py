"""The Brain of a real node: a transformers policy, its GRPO learner and its checkpoints."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from swarmrl.brain.base import Completion, RolloutRequest, ScoredGroup, TrainStats
from swarmrl.config import ConfigError, NodeConfig
from swarmrl.training.distill_loss import score_tokens
from swarmrl.training.learner import Learner, TokenGroup, seed_everything
from swarmrl.training.policy import Policy, load_policy
from swarmrl.training.surprise import excess_surprise
from swarmrl.training.tiny import is_tiny

LOST_BYTES = "\ufffd"
"""The replacement character: what decoding leaves where sampled bytes were not UTF-8."""

F = TypeVar("F", bound=Callable[..., Any])


def _locked(method: F) -> F:
    """One model, one user at a time: a teacher scores peers' tokens in a worker thread while
    the node's own step may be sampling or updating the same weights in another."""

    @functools.wraps(method)
    def wrapper(self: LMBrain, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class LMBrain:
    def __init__(self, policy: Policy, learner: Learner, cfg: NodeConfig) -> None:
        self.lock = threading.RLock()
        self.policy = policy
        self.learner = learner
        self.cfg = cfg
        self.model_id = cfg.model.name
        self.tokenizer_fingerprint = policy.fingerprint

    @classmethod
    def from_config(cls, cfg: NodeConfig, progress: bool = True) -> LMBrain:
        policy = load_policy(cfg.model, seed=cfg.seed, progress=progress)
        seed_everything(cfg.seed, policy)
        return cls(policy, Learner(policy, cfg), cfg)

    @property
    def policy_version(self) -> int:
        return self.policy.version

    @_locked
    def rollout(self, requests: list[RolloutRequest], group_size: int) -> list[list[Completion]]:
        samples = self.policy.generate(
            [r.prompt for r in requests], group_size, self.cfg.generation
        )
        return [
            [
                Completion(s.text, s.truncated, s.completion_ids, len(s.completion_ids),
                           s.raw_logprobs)
                for s in group
            ]
            for group in samples
        ]

    @_locked
    def sample_texts(self, prompts: list[str], n: int, temperature: float) -> list[list[str]]:
        """``n`` completions per prompt at ``temperature`` (0 = greedy), for held-out
        evaluation (node/evaluation.py). The sampler's random state is put back afterwards, so
        a run samples the same training completions with evaluation on or off."""
        cfg = self.cfg.generation.model_copy(update={"temperature": temperature})
        state = self.policy.generator.get_state()
        try:
            return [[s.text for s in group] for group in self.policy.generate(prompts, n, cfg)]
        finally:
            self.policy.generator.set_state(state)

    @_locked
    def train(self, groups: list[ScoredGroup]) -> TrainStats:
        batch = [self._to_ids(g) for g in groups]
        st = self.learner.train_step(batch)
        return TrainStats(
            loss=st.loss,
            groups=st.groups,
            groups_with_signal=st.groups_with_signal,
            tokens=st.tokens,
            skipped=st.skipped,
            group_weights=st.group_weights,
            extra={
                "clip_frac": st.clip_frac,
                "grad_norm": st.grad_norm,
                "kl": st.kl,
                "groups_trained": st.groups_trained,
                "train_seconds": st.seconds,
                **st.distill,
                **st.tis,
            },
        )

    def _completion_ids(self, c: Completion) -> list[int]:
        """Our own sample's ids, or swarm text re-tokenized (EOS only if it ended by itself)."""
        if c.token_ids is not None:
            return c.token_ids
        return self.policy.retokenize(c.text, ended=not c.truncated)

    def _scored_ids(self, c: Completion) -> list[int]:
        """What the plausibility check scores. A sampled byte that was not UTF-8 reaches peers
        as U+FFFD, whose three bytes no model writes: the lost bytes are left out (and with them
        any an adversary adds to hide junk), the text around them is scored."""
        if c.token_ids is not None or LOST_BYTES not in c.text:
            return self._completion_ids(c)
        return self.policy.retokenize(c.text.replace(LOST_BYTES, ""), ended=not c.truncated)

    def _to_ids(self, g: ScoredGroup) -> TokenGroup:
        """Local completions keep their sampled ids; swarm text is re-tokenized with ours."""
        comps = [self._completion_ids(c) for c in g.completions]
        return TokenGroup(
            self.policy.encode_prompt(g.prompt),
            comps,
            list(g.rewards),
            [c.truncated for c in g.completions],
            g.teacher,
            _sampler_logprobs(g),
            _sender_logprobs(g),
            g.local,
        )

    def prompt_style(self, requested: str) -> str:
        """The prompt style this model is put to: ``requested``, or for 'auto' 'chat' when the
        tokenizer has a chat template, 'short' for the built-in tiny models, 'instruct' else.
        Turns on the policy's chat rendering for 'chat'."""
        policy = self.policy
        style = requested
        if requested == "auto":
            if policy.has_chat_template:
                style = "chat"
            else:
                style = "short" if is_tiny(self.cfg.model.name) else "instruct"
        if style == "chat" and not policy.has_chat_template:
            raise ConfigError(
                f"tasks.prompt_style: 'chat' needs a tokenizer with a chat template and "
                f"{self.cfg.model.name!r} has none (use 'instruct', or 'auto')"
            )
        policy.chat = style == "chat"
        return style

    # --- distillation: what a student sends and what a teacher computes ---------------------
    def encode_prompt(self, prompt: str) -> list[int]:
        """The prompt's ids exactly as ``train`` will see them (a teacher scores these)."""
        return self.policy.encode_prompt(prompt)

    @property
    def vocab_size(self) -> int:
        return int(self.policy.model.get_input_embeddings().num_embeddings)

    @_locked
    def plausibility(self, groups: list[ScoredGroup]) -> list[list[float]]:
        """The guard's check: each completion's excess surprise under this policy (nats;
        training/surprise.py)."""
        rows = []
        for g in groups:
            prompt = self.policy.encode_prompt(g.prompt)
            rows += [(prompt, self._scored_ids(c) or [self.policy.eos_id])
                     for c in g.completions]
        scores = excess_surprise(self.policy, rows, self.learner.autocast)
        out, i = [], 0
        for g in groups:
            out.append(scores[i : i + len(g.completions)])
            i += len(g.completions)
        return out

    @_locked
    def score_tokens(self, rows: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        """As a teacher: log p(token) of each (prompt ids, completion ids) row, one batch."""
        return score_tokens(self.policy, rows)

    def save(self, root: Path, step: int, extra: dict[str, Any], keep: int) -> Path:
        return self.learner.save(root, step, extra, keep)

    def load(self, path: Path) -> dict[str, Any]:
        # Through the learner, as save is: it keeps this machine's AdamW kernel flags.
        return self.learner.load(path).extra


def _sender_logprobs(g: ScoredGroup) -> list[list[float] | float | None] | None:
    """Each swarm completion's sender log-probs: per token when they came that way, else the
    sum over its text (the learner checks per-token rows against our own ids)."""
    rows: list[list[float] | float | None] = [
        c.sender_logprobs if c.sender_logprobs is not None else c.sender_logprob_sum
        for c in g.completions
    ]
    return rows if any(r is not None for r in rows) else None


def _sampler_logprobs(g: ScoredGroup) -> list[list[float] | None] | None:
    """Each completion's sampler log-probs (only this node's own samples carry them)."""
    rows = [c.sampler_logprobs for c in g.completions]
    return rows if any(r is not None for r in rows) else None
