"""What every generation backend shares: :class:`Sample`, the :class:`GenerationBackend`
interface, and :class:`BackendBase` (tokenizer ids, the EOS cut, seeds for engines with their own
RNG).

Its own module so that generation.py, which loads the vLLM backend only when asked, and
vllm_backend.py, which subclasses BackendBase, do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from swarmrl.config import GenerationConfig


@dataclass
class Sample:
    """One sampled completion.

    ``completion_ids`` ends with EOS when the model stopped by itself (``truncated`` False) and is
    cut at ``max_new_tokens`` otherwise. ``text`` is the completion decoded without special tokens.
    ``logprobs`` are the sampler's log-probs of each completion token under the distribution it
    actually sampled from (after temperature and top-p; the raw model for greedy).
    ``raw_logprobs`` are the same tokens' log-probs under the sampling engine's unprocessed model
    distribution (temperature 1, no top-p): the quantity the trainer computes with its own
    kernels, so the gap between the two is the sampler/trainer mismatch that truncated
    importance sampling corrects (``grpo.tis_cap``). None where the engine gives none.
    """

    prompt_ids: list[int]
    completion_ids: list[int]
    text: str
    truncated: bool
    logprobs: list[float] | None = None
    raw_logprobs: list[float] | None = None


class GenerationBackend(Protocol):
    def generate(
        self, prompts: list[str], n: int, cfg: GenerationConfig
    ) -> list[list[Sample]]:
        """``n`` samples for each prompt, grouped per prompt in prompt order."""
        ...

    def release(self) -> None:
        """Free what the backend keeps between calls and can rebuild (a copy of the weights)."""
        ...


def _cut(tokens: list[int], eos_id: int) -> tuple[list[int], bool]:
    """Keep tokens up to and including the first EOS; truncated = no EOS was produced."""
    if eos_id in tokens:
        return tokens[: tokens.index(eos_id) + 1], False
    return tokens, True


class BackendBase:
    """The shared part of the backends (FastBackend, HFBackend, VLLMBackend)."""

    def __init__(self, model: Any, tokenizer: Any, generator: torch.Generator | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.generator = generator
        self.eos_id: int = tokenizer.eos_token_id
        pad = tokenizer.pad_token_id
        self.pad_id: int = pad if pad is not None else self.eos_id

    def release(self) -> None:
        """Nothing kept between calls (see GenerationBackend.release)."""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _encode(self, prompts: list[str]) -> list[list[int]]:
        ids = [self.tokenizer.encode(p, add_special_tokens=False) for p in prompts]
        if any(not s for s in ids):
            raise ValueError("empty prompt: at least one prompt token is needed")
        return ids

    def _draw_seed(self, high: int) -> int:
        """A seed for an engine with its own RNG, drawn from ours (so runs stay reproducible)."""
        device = self.generator.device if self.generator is not None else "cpu"
        return int(torch.randint(0, high, (1,), generator=self.generator, device=device))

    def _sample(
        self, prompt_ids: list[int], tokens: list[int], logprobs: list[float] | None,
        raw_logprobs: list[float] | None = None,
    ) -> Sample:
        ids, truncated = _cut(tokens, self.eos_id)
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        lps, raws = (None if x is None else x[: len(ids)] for x in (logprobs, raw_logprobs))
        return Sample(prompt_ids, ids, text, truncated, lps, raws)
