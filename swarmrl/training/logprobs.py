"""The hot path of every GRPO step: the log-prob of each chosen token.

Everything that needs per-token log-probs goes through :func:`selective_logprobs`, so a fused
kernel (``swarmrl/kernels/``: linear + online log-sum-exp over vocabulary blocks, full logits never
materialised) can replace this reference in one place.
"""

from __future__ import annotations

import torch


def selective_logprobs(
    hidden_or_logits: torch.Tensor, ids: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """log p(ids) per position.

    ``hidden_or_logits``: [..., V] logits, or [..., H] hidden states when ``weight`` ([V, H], the
    LM head) is given. ``ids``: [...] token ids. Returns [...] float32 log-probs.
    """
    logits = hidden_or_logits if weight is None else hidden_or_logits @ weight.T
    logits = logits.float()
    # gather - logsumexp instead of log_softmax: never holds a second [.., V] tensor of log-probs.
    chosen = logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    return chosen - torch.logsumexp(logits, dim=-1)
