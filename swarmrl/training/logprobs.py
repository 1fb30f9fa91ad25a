"""The hot path of every GRPO step: the log-prob of each chosen token.

Everything in training that needs per-token log-probs goes through :func:`selective_logprobs`,
which hands the work to ``swarmrl.kernels`` (Triton on CUDA: an online log-sum-exp over
vocabulary blocks, and from the hidden state a chunked LM head so the full logits never exist;
the PyTorch reference elsewhere).
"""

from __future__ import annotations

import torch

from swarmrl.kernels import fused_linear_logprobs, token_logprobs


def selective_logprobs(
    hidden_or_logits: torch.Tensor, ids: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """log p(ids) per position.

    ``hidden_or_logits``: [..., V] logits, or [..., H] hidden states when ``weight`` ([V, H], the
    LM head) is given. ``ids``: [...] token ids. Returns [...] float32 log-probs.
    """
    if weight is None:
        return token_logprobs(hidden_or_logits, ids)[0]
    return fused_linear_logprobs(hidden_or_logits, weight, ids)[0]
