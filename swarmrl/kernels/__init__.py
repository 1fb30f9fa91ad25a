"""The GPU path for the loss: Triton kernels beside their PyTorch references, one dispatch.

Modelled on Liger-Kernel. Three entry points, each choosing Triton or its reference per call:

- :func:`token_logprobs`: logits [..., V] -> per-token log-probs (and entropy), online
  log-sum-exp over vocabulary blocks (:mod:`swarmrl.kernels.logprobs`);
- :func:`fused_linear_logprobs`: last hidden state [..., H] and LM head [V, H] -> the same,
  chunked so the full logits never exist (:mod:`swarmrl.kernels.fused_linear`);
- :func:`grpo_token_loss`: GRPO's clipped per-token loss (:mod:`swarmrl.kernels.grpo_loss`).

Dispatch (``SWARMRL_KERNELS``):

- unset / ``auto``: Triton when every tensor is on CUDA and triton imports, else the reference;
- ``torch``: always the reference;
- ``triton``: Triton on CUDA, and on CPU too when ``TRITON_INTERPRET=1`` (the interpreter, for
  tests); an error if triton is not installed.

triton is optional: it is imported once, guarded, and never needed on a CPU-only install. This
package imports nothing from ``swarmrl.training`` (training calls kernels, not the reverse).
"""

from __future__ import annotations

import os

import torch

from swarmrl.kernels.fused_linear import (
    reference_fused_linear_logprobs,
    triton_fused_linear_logprobs,
)
from swarmrl.kernels.grpo_loss import reference_grpo_token_loss, triton_grpo_token_loss
from swarmrl.kernels.logprobs import (
    HAS_TRITON,
    reference_token_logprobs,
    triton_token_logprobs,
)

__all__ = [
    "HAS_TRITON",
    "fused_linear_logprobs",
    "grpo_token_loss",
    "reference_fused_linear_logprobs",
    "reference_grpo_token_loss",
    "reference_token_logprobs",
    "token_logprobs",
    "use_triton",
]

ENV = "SWARMRL_KERNELS"


def use_triton(*tensors: torch.Tensor | None) -> bool:
    """Whether the kernels run in Triton for these tensors (see the module docstring)."""
    mode = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if mode not in ("auto", "torch", "triton"):
        raise ValueError(f"{ENV}={mode!r}: expected auto, torch or triton")
    if mode == "torch":
        return False
    if mode == "triton" and not HAS_TRITON:
        raise RuntimeError(f"{ENV}=triton but triton is not installed (pip install triton)")
    if not HAS_TRITON:
        return False
    if all(t.is_cuda for t in tensors if t is not None):
        return True
    return mode == "triton" and os.environ.get("TRITON_INTERPRET") == "1"


def token_logprobs(
    logits: torch.Tensor, ids: torch.Tensor, *, with_entropy: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(logp, entropy)``: log p(ids) [...] float32 from ``logits`` [..., V]; entropy [...] of
    each softmax when ``with_entropy`` (else None). Differentiable w.r.t. ``logits``."""
    if use_triton(logits, ids):
        return triton_token_logprobs(logits, ids, with_entropy)
    return reference_token_logprobs(logits, ids, with_entropy)


def fused_linear_logprobs(
    hidden: torch.Tensor, weight: torch.Tensor, ids: torch.Tensor, *,
    with_entropy: bool = False, chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`token_logprobs` of ``hidden`` [..., H] @ ``weight`` [V, H].T, never holding the
    whole logits on the Triton path (``chunk_size`` rows at a time; default ~2^27 logits).
    Differentiable w.r.t. ``hidden`` and ``weight``."""
    if use_triton(hidden, weight, ids):
        return triton_fused_linear_logprobs(hidden, weight, ids, with_entropy, chunk_size)
    return reference_fused_linear_logprobs(hidden, weight, ids, with_entropy)


def grpo_token_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    epsilon_low: float,
    epsilon_high: float,
    beta: float = 0.0,
    ref_logprobs: torch.Tensor | None = None,
    kl_estimator: str = "k3",
) -> torch.Tensor:
    """GRPO's per-token loss [B, L], 0 off ``mask``: -min(r A, clip(r, 1-eps_low, 1+eps_high) A)
    (+ beta KL to ``ref_logprobs``), r = exp(logprobs - old). ``old_logprobs`` None: one pass on
    fresh samples (r = 1). ``advantages`` [B] or [B, L]. Differentiable w.r.t. ``logprobs``."""
    args = (logprobs, old_logprobs, advantages, mask, epsilon_low, epsilon_high, beta,
            ref_logprobs, kl_estimator)
    if use_triton(logprobs, old_logprobs, advantages, mask, ref_logprobs):
        return triton_grpo_token_loss(*args)
    return reference_grpo_token_loss(*args)
