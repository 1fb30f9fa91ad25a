"""Token log-probs (and entropy) straight from logits, with an online log-sum-exp.

``logits`` [N, V], ``ids`` [N] -> ``logp`` [N] = logits[n, ids[n]] - logsumexp(logits[n]) and,
on request, the entropy of each row's softmax, both float32.

The Triton kernel (after Liger-Kernel's selective log-softmax) runs one program per row and walks
the vocabulary in blocks of ``BLOCK_V``, keeping a running max ``m``, a running sum
``d = sum exp(x - m)`` and, for the entropy, ``s = sum exp(x - m) * (x - m)``, each rescaled when
the max moves. Nothing of size [N, V] is written in the forward: the log-sum-exp (and entropy) per
row is all the backward needs besides the logits themselves, from which it recomputes the softmax
block by block:

    d logp / d x   = onehot(id) - p
    d H    / d x   = -p * (log p + H)

:func:`reference_token_logprobs` is the PyTorch definition the kernel is tested against;
``swarmrl.kernels.token_logprobs`` picks between them.
"""

from __future__ import annotations

import torch

try:  # optional dependency: without it every caller gets the PyTorch reference
    import triton
    import triton.language as tl
except Exception:  # noqa: BLE001 - a broken triton install must not break a CPU user
    triton = None
    tl = None

HAS_TRITON = triton is not None
MAX_BLOCK_V = 4096  # vocabulary block per loop step on a GPU (a power of two)
# Launch options pinned rather than left to the Triton version's default (FMA contraction is on
# by default in Triton <= 3.9, which warns that 3.10 turns it off).
LAUNCH_OPTIONS = {"enable_fp_fusion": True}


def reference_token_logprobs(
    logits: torch.Tensor, ids: torch.Tensor, with_entropy: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(logp, entropy)`` of ``ids`` under ``logits`` [..., V]; entropy None unless asked for.

    Computed in float32 (float64 stays float64), like ``swarmrl.training.logprobs``.
    """
    if logits.dtype != torch.float64:
        logits = logits.float()
    lse = torch.logsumexp(logits, dim=-1)
    logp = logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1) - lse
    if not with_entropy:
        return logp, None
    logp_all = logits - lse.unsqueeze(-1)
    p = logp_all.exp()
    # p * log p is 0 where p is 0 (a -inf logit), not NaN.
    entropy = -torch.where(p > 0, p * logp_all, torch.zeros_like(p)).sum(-1)
    return logp, entropy


def block_size(V: int, block_v: int | None = None) -> int:
    """The vocabulary block: ``block_v`` if given, else the smallest power of two >= V, capped."""
    if block_v is not None:
        if block_v < 16 or block_v & (block_v - 1):
            raise ValueError(f"block_v must be a power of two >= 16, got {block_v}")
        return block_v
    return max(16, min(MAX_BLOCK_V, 1 << (max(V, 1) - 1).bit_length()))


def _num_warps(block: int) -> int:
    return 8 if block >= 2048 else 4


if HAS_TRITON:

    @triton.jit
    def _token_logprobs_fwd_kernel(
        logits_ptr, row_stride, ids_ptr, logp_ptr, lse_ptr, entropy_ptr, V,
        BLOCK_V: tl.constexpr, WITH_ENTROPY: tl.constexpr,
    ):
        row = tl.program_id(0).to(tl.int64)
        row_ptr = logits_ptr + row * row_stride
        m = float("-inf")  # running max
        d = 0.0  # running sum of exp(x - m)
        s = 0.0  # running sum of exp(x - m) * (x - m), for the entropy
        for start in range(0, V, BLOCK_V):
            cols = start + tl.arange(0, BLOCK_V)
            x = tl.load(row_ptr + cols, mask=cols < V, other=float("-inf")).to(tl.float32)
            m_new = tl.maximum(m, tl.max(x, axis=0))
            alpha = tl.exp(m - m_new)
            e = tl.exp(x - m_new)
            if WITH_ENTROPY:
                # sum e'(x - m') over the old terms = alpha * (s + (m - m') * d); 0 before any.
                # (where before multiply: no 0 * inf from masked lanes or the first block)
                carried = alpha * (s + tl.where(d > 0.0, m - m_new, 0.0) * d)
                s = carried + tl.sum(e * tl.where(e > 0.0, x - m_new, 0.0), axis=0)
            d = d * alpha + tl.sum(e, axis=0)
            m = m_new
        log_d = tl.log(d)
        lse = m + log_d
        idx = tl.load(ids_ptr + row)
        chosen = tl.load(row_ptr + idx).to(tl.float32)
        tl.store(logp_ptr + row, chosen - lse)
        tl.store(lse_ptr + row, lse)
        if WITH_ENTROPY:
            # H = lse - E[x] = log d - s / d (both taken relative to the final max)
            tl.store(entropy_ptr + row, log_d - s / d)

    @triton.jit
    def _token_logprobs_bwd_kernel(
        logits_ptr, row_stride, grad_ptr, grad_row_stride, ids_ptr, lse_ptr, entropy_ptr,
        g_logp_ptr, g_entropy_ptr, V,
        BLOCK_V: tl.constexpr, HAS_G_ENTROPY: tl.constexpr,
    ):
        row = tl.program_id(0).to(tl.int64)
        row_ptr = logits_ptr + row * row_stride
        grad_row = grad_ptr + row * grad_row_stride
        lse = tl.load(lse_ptr + row)
        idx = tl.load(ids_ptr + row)
        g_lp = tl.load(g_logp_ptr + row)
        if HAS_G_ENTROPY:
            g_h = tl.load(g_entropy_ptr + row)
            h = tl.load(entropy_ptr + row)
        for start in range(0, V, BLOCK_V):
            cols = start + tl.arange(0, BLOCK_V)
            valid = cols < V
            # Read before write, element by element: grad_ptr may alias logits_ptr.
            x = tl.load(row_ptr + cols, mask=valid, other=0.0).to(tl.float32)
            logp_all = x - lse
            p = tl.exp(logp_all)
            grad = tl.where(cols == idx, g_lp - g_lp * p, -g_lp * p)
            if HAS_G_ENTROPY:
                grad -= g_h * p * tl.where(p > 0.0, logp_all + h, 0.0)
            tl.store(grad_row + cols, grad.to(grad_ptr.dtype.element_ty), mask=valid)


def _rows(logits: torch.Tensor) -> torch.Tensor:
    """[..., V] as [N, V] with unit stride along V (a view where possible)."""
    flat = logits.reshape(-1, logits.shape[-1])
    return flat if flat.stride(-1) == 1 else flat.contiguous()


def launch_forward(
    logits: torch.Tensor, ids: torch.Tensor, logp: torch.Tensor, lse: torch.Tensor,
    entropy: torch.Tensor | None, block_v: int | None = None,
) -> None:
    """Fill ``logp``, ``lse`` (and ``entropy``), each [N] float32, from ``logits`` [N, V]."""
    N, V = logits.shape
    if N == 0:
        return
    block = block_size(V, block_v)
    _token_logprobs_fwd_kernel[(N,)](
        logits, logits.stride(0), ids, logp, lse, lse if entropy is None else entropy, V,
        BLOCK_V=block, WITH_ENTROPY=entropy is not None, num_warps=_num_warps(block),
        **LAUNCH_OPTIONS,
    )


def launch_backward(
    logits: torch.Tensor, ids: torch.Tensor, lse: torch.Tensor, entropy: torch.Tensor | None,
    g_logp: torch.Tensor | None, g_entropy: torch.Tensor | None, out: torch.Tensor,
    block_v: int | None = None,
) -> None:
    """Write d(loss)/d(logits) [N, V] into ``out`` (which may be ``logits`` itself)."""
    N, V = logits.shape
    if N == 0:
        return
    if g_logp is None:
        g_logp = torch.zeros_like(lse)
    has_g_entropy = g_entropy is not None and entropy is not None
    block = block_size(V, block_v)
    _token_logprobs_bwd_kernel[(N,)](
        logits, logits.stride(0), out, out.stride(0), ids, lse,
        entropy if has_g_entropy else lse,
        g_logp.float().contiguous(),
        g_entropy.float().contiguous() if has_g_entropy else lse, V,
        BLOCK_V=block, HAS_G_ENTROPY=has_g_entropy, num_warps=_num_warps(block),
        **LAUNCH_OPTIONS,
    )


class TritonTokenLogprobs(torch.autograd.Function):
    """Autograd wrapper of the two kernels; keeps the logits and [N] statistics, nothing [N, V]."""

    @staticmethod
    def forward(ctx, logits, ids, with_entropy, block_v):
        rows = _rows(logits)
        flat_ids = ids.reshape(-1).contiguous()
        N = rows.shape[0]
        logp = torch.empty(N, dtype=torch.float32, device=logits.device)
        lse = torch.empty_like(logp)
        entropy = torch.empty_like(logp) if with_entropy else None
        launch_forward(rows, flat_ids, logp, lse, entropy, block_v)
        ctx.save_for_backward(rows, flat_ids, lse, entropy)
        ctx.block_v = block_v
        ctx.logits_shape = logits.shape
        ctx.set_materialize_grads(False)
        shape = ids.shape
        if entropy is None:
            return logp.view(shape), logp.new_empty(0)
        return logp.view(shape), entropy.view(shape)

    @staticmethod
    def backward(ctx, g_logp, g_entropy):
        rows, flat_ids, lse, entropy = ctx.saved_tensors
        if g_logp is None and (g_entropy is None or entropy is None):
            return None, None, None, None
        grad = torch.empty_like(rows, memory_format=torch.contiguous_format)
        launch_backward(
            rows, flat_ids, lse, entropy,
            None if g_logp is None else g_logp.reshape(-1),
            None if g_entropy is None or entropy is None else g_entropy.reshape(-1),
            grad, ctx.block_v,
        )
        return grad.view(ctx.logits_shape), None, None, None


def triton_token_logprobs(
    logits: torch.Tensor, ids: torch.Tensor, with_entropy: bool = False,
    block_v: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The Triton path of :func:`swarmrl.kernels.token_logprobs` (``logits`` [..., V])."""
    if not HAS_TRITON:
        raise RuntimeError("triton is not installed")
    logp, entropy = TritonTokenLogprobs.apply(logits, ids, with_entropy, block_v)
    return logp, (entropy if with_entropy else None)
