"""The GRPO clipped per-token loss, one elementwise Triton kernel each way.

Per token (``swarmrl.training.grpo.grpo_loss`` before its aggregation)::

    ratio = exp(logp - old)
    loss  = -min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A)  [+ beta * KL(logp, ref)]

and 0 where ``mask`` is 0 (``where``, so a NaN in padding cannot leak). The gradient flows to
``logp`` only (old, ref, advantages and mask are constants of the step)::

    d loss / d logp = -A * ratio   where the unclipped term is the min, else 0
                      [+ beta * (1 - exp(ref - logp)) for k3, + beta for k1]

matching autograd through the PyTorch expression (torch.min splits a tie evenly between two equal
gradients, so an in-range ratio gets the whole -A * ratio). After Liger-Kernel's GRPO loss.
"""

from __future__ import annotations

import torch

from swarmrl.kernels.logprobs import HAS_TRITON, LAUNCH_OPTIONS, tl, triton

BLOCK = 1024


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token KL(policy || ref) estimate on the policy's own samples.

    k1 = logp - ref (unbiased, can be negative); k3 = exp(ref - logp) - (ref - logp) - 1
    (unbiased, always >= 0, lower variance; TRL's).
    """
    if estimator == "k1":
        return logprobs - ref_logprobs
    if estimator == "k3":
        delta = ref_logprobs - logprobs
        return torch.exp(delta) - delta - 1
    raise ValueError(f"unknown KL estimator {estimator!r}")


def reference_grpo_token_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    epsilon_low: float,
    epsilon_high: float,
    beta: float = 0.0,
    ref_logprobs: torch.Tensor | None = None,
    kl_estimator: str = "k3",
) -> torch.Tensor:
    """Masked per-token loss [B, L]; ``advantages`` [B] (one per sequence) or [B, L]."""
    old = logprobs.detach() if old_logprobs is None else old_logprobs
    ratio = torch.exp(logprobs - old)
    adv = _broadcast_advantages(advantages, logprobs).to(logprobs.dtype)
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    per_token = -torch.min(ratio * adv, clipped * adv)
    if beta > 0:
        if ref_logprobs is None:
            raise ValueError("beta > 0 needs ref_logprobs")
        per_token = per_token + beta * kl_penalty(logprobs, ref_logprobs, kl_estimator)
    return torch.where(mask > 0, per_token, torch.zeros_like(per_token))


def _broadcast_advantages(advantages: torch.Tensor, logprobs: torch.Tensor) -> torch.Tensor:
    if advantages.dim() == logprobs.dim() - 1:
        advantages = advantages.unsqueeze(-1)
    return advantages.expand_as(logprobs)


if HAS_TRITON:

    @triton.jit
    def _grpo_fwd_kernel(
        logp_ptr, old_ptr, adv_ptr, mask_ptr, ref_ptr, loss_ptr, n, lo, hi, beta,
        HAS_KL: tl.constexpr, K3: tl.constexpr, BLOCK: tl.constexpr,
    ):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        valid = offs < n
        logp = tl.load(logp_ptr + offs, mask=valid, other=0.0).to(tl.float32)
        old = tl.load(old_ptr + offs, mask=valid, other=0.0).to(tl.float32)
        adv = tl.load(adv_ptr + offs, mask=valid, other=0.0).to(tl.float32)
        keep = tl.load(mask_ptr + offs, mask=valid, other=0.0) > 0
        ratio = tl.exp(logp - old)
        unclipped = ratio * adv
        clipped = tl.minimum(tl.maximum(ratio, lo), hi) * adv
        loss = -tl.minimum(unclipped, clipped)
        if HAS_KL:
            ref = tl.load(ref_ptr + offs, mask=valid, other=0.0).to(tl.float32)
            if K3:
                delta = ref - logp
                loss += beta * (tl.exp(delta) - delta - 1.0)
            else:
                loss += beta * (logp - ref)
        loss = tl.where(keep, loss, 0.0)
        tl.store(loss_ptr + offs, loss.to(loss_ptr.dtype.element_ty), mask=valid)

    @triton.jit
    def _grpo_bwd_kernel(
        logp_ptr, old_ptr, adv_ptr, mask_ptr, ref_ptr, g_ptr, grad_ptr, n, lo, hi, beta,
        HAS_KL: tl.constexpr, K3: tl.constexpr, BLOCK: tl.constexpr,
    ):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        valid = offs < n
        logp = tl.load(logp_ptr + offs, mask=valid, other=0.0).to(tl.float32)
        old = tl.load(old_ptr + offs, mask=valid, other=0.0).to(tl.float32)
        adv = tl.load(adv_ptr + offs, mask=valid, other=0.0).to(tl.float32)
        keep = tl.load(mask_ptr + offs, mask=valid, other=0.0) > 0
        g = tl.load(g_ptr + offs, mask=valid, other=0.0).to(tl.float32)
        ratio = tl.exp(logp - old)
        unclipped = ratio * adv
        clipped = tl.minimum(tl.maximum(ratio, lo), hi) * adv
        # The clipped term is the min only when the clip bites, and then it is a constant.
        dlogp = tl.where(clipped < unclipped, 0.0, -unclipped)
        if HAS_KL:
            ref = tl.load(ref_ptr + offs, mask=valid, other=0.0).to(tl.float32)
            if K3:
                dlogp += beta * (1.0 - tl.exp(ref - logp))
            else:
                dlogp += beta
        grad = tl.where(keep, g * dlogp, 0.0)
        tl.store(grad_ptr + offs, grad.to(grad_ptr.dtype.element_ty), mask=valid)


def _flat(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    x = x.reshape(-1) if dtype is None else x.reshape(-1).to(dtype)
    return x.contiguous()


class TritonGRPOTokenLoss(torch.autograd.Function):
    """Elementwise forward/backward over the flattened [B * L] tokens."""

    @staticmethod
    def forward(ctx, logp, old, adv, mask, ref, lo, hi, beta, k3, block):
        flat_logp = _flat(logp)
        flat_old = _flat(old.detach() if old is not None else logp.detach(), logp.dtype)
        flat_adv = _flat(_broadcast_advantages(adv, logp), torch.float32)
        flat_mask = _flat(mask, torch.float32)
        has_kl = ref is not None
        flat_ref = _flat(ref, logp.dtype) if has_kl else flat_logp
        n = flat_logp.numel()
        loss = torch.empty_like(flat_logp)
        grid = (triton.cdiv(max(n, 1), block),)
        if n:
            _grpo_fwd_kernel[grid](
                flat_logp, flat_old, flat_adv, flat_mask, flat_ref, loss, n, lo, hi, beta,
                HAS_KL=has_kl, K3=k3, BLOCK=block, **LAUNCH_OPTIONS,
            )
        ctx.save_for_backward(flat_logp, flat_old, flat_adv, flat_mask, flat_ref)
        ctx.args = (n, lo, hi, beta, has_kl, k3, block, grid, logp.shape)
        return loss.view(logp.shape)

    @staticmethod
    def backward(ctx, g):
        flat_logp, flat_old, flat_adv, flat_mask, flat_ref = ctx.saved_tensors
        n, lo, hi, beta, has_kl, k3, block, grid, shape = ctx.args
        grad = torch.empty_like(flat_logp)
        if n:
            _grpo_bwd_kernel[grid](
                flat_logp, flat_old, flat_adv, flat_mask, flat_ref, _flat(g), grad, n,
                lo, hi, beta, HAS_KL=has_kl, K3=k3, BLOCK=block, **LAUNCH_OPTIONS,
            )
        return grad.view(shape), None, None, None, None, None, None, None, None, None


def triton_grpo_token_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    epsilon_low: float,
    epsilon_high: float,
    beta: float = 0.0,
    ref_logprobs: torch.Tensor | None = None,
    kl_estimator: str = "k3",
    block: int = BLOCK,
) -> torch.Tensor:
    """The Triton path of :func:`swarmrl.kernels.grpo_token_loss`."""
    if not HAS_TRITON:
        raise RuntimeError("triton is not installed")
    if kl_estimator not in ("k1", "k3"):
        raise ValueError(f"unknown KL estimator {kl_estimator!r}")
    use_kl = beta > 0
    if use_kl and ref_logprobs is None:
        raise ValueError("beta > 0 needs ref_logprobs")
    # The bounds are rounded to the tensor's precision once, as torch.clamp rounds its scalars.
    lo, hi = 1 - epsilon_low, 1 + epsilon_high
    return TritonGRPOTokenLoss.apply(
        logprobs, old_logprobs, advantages, mask, ref_logprobs if use_kl else None,
        lo, hi, float(beta), kl_estimator == "k3", block,
    )
