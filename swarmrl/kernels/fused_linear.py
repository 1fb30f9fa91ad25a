"""Last hidden state -> LM head -> per-token log-probs, without the full [N, V] logits.

After Liger-Kernel's fused linear cross-entropy: the N rows go through the head ``chunk_size`` at
a time (a torch matmul per chunk, then the Triton log-prob kernel of
:mod:`swarmrl.kernels.logprobs`), so only one chunk of logits exists at once. The forward keeps the
hidden states, the weight and an [N] log-sum-exp; the backward recomputes each chunk's logits,
overwrites them in place with d(loss)/d(logits) and turns that into the chunk's rows of
grad_hidden and its share of grad_weight (accumulated in float32 for a 16-bit weight).

The trade: one extra [chunk, H] x [H, V] matmul per chunk in the backward, for a peak that no
longer grows with N x V. At Qwen2.5-0.5B shapes (V = 151936, 8 x 1024 tokens) eager holds
N x V float32 logits (~5 GB) plus their gradient; this path holds one chunk.
"""

from __future__ import annotations

import torch

from swarmrl.kernels.logprobs import (
    HAS_TRITON,
    launch_backward,
    launch_forward,
    reference_token_logprobs,
)

CHUNK_ELEMENTS = 1 << 27  # default chunk: about this many logits (256 MiB in bfloat16)


def reference_fused_linear_logprobs(
    hidden: torch.Tensor, weight: torch.Tensor, ids: torch.Tensor, with_entropy: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``hidden @ weight.T`` then :func:`reference_token_logprobs` (full logits, eager).

    One 2-D matmul over the rows: torch's CPU matmul of a 3-D strided view (the completion
    positions sliced out of a batch) expands the weight per row, up to 300x slower in bf16."""
    flat = hidden.reshape(-1, hidden.shape[-1])
    logits = (flat @ weight.T).view(*hidden.shape[:-1], weight.shape[0])
    return reference_token_logprobs(logits, ids, with_entropy)


def chunk_rows(N: int, V: int, chunk_size: int | None = None) -> int:
    """Rows per chunk: ``chunk_size`` if given, else a power of two near CHUNK_ELEMENTS / V."""
    if chunk_size is not None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        return min(chunk_size, max(N, 1))
    rows = 1 << max(0, (CHUNK_ELEMENTS // max(V, 1)).bit_length() - 1)
    return max(1, min(rows, N))


class TritonFusedLinearLogprobs(torch.autograd.Function):
    """hidden [N, H], weight [V, H], ids [N] -> (logp [N], entropy [N] or empty), chunked."""

    @staticmethod
    def forward(ctx, hidden, weight, ids, with_entropy, chunk_size, block_v):
        H = hidden.shape[-1]
        rows = hidden.reshape(-1, H)
        flat_ids = ids.reshape(-1).contiguous()
        N, V = rows.shape[0], weight.shape[0]
        logp = torch.empty(N, dtype=torch.float32, device=hidden.device)
        lse = torch.empty_like(logp)
        entropy = torch.empty_like(logp) if with_entropy else None
        step = chunk_rows(N, V, chunk_size)
        for s in range(0, N, step):
            e = min(s + step, N)
            logits = rows[s:e] @ weight.T  # [c, V], contiguous, the only [., V] tensor alive
            launch_forward(logits, flat_ids[s:e], logp[s:e], lse[s:e],
                           None if entropy is None else entropy[s:e], block_v)
            del logits
        ctx.save_for_backward(rows, weight, flat_ids, lse, entropy)
        ctx.step, ctx.block_v, ctx.hidden_shape = step, block_v, hidden.shape
        ctx.set_materialize_grads(False)
        shape = ids.shape
        if entropy is None:
            return logp.view(shape), logp.new_empty(0)
        return logp.view(shape), entropy.view(shape)

    @staticmethod
    def backward(ctx, g_logp, g_entropy):
        rows, weight, flat_ids, lse, entropy = ctx.saved_tensors
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if g_entropy is None or entropy is None:
            g_entropy = None
        if (g_logp is None and g_entropy is None) or not (need_h or need_w):
            return None, None, None, None, None, None
        g_logp = None if g_logp is None else g_logp.reshape(-1)
        g_entropy = None if g_entropy is None else g_entropy.reshape(-1)
        N = rows.shape[0]
        grad_h = torch.empty_like(rows, memory_format=torch.contiguous_format) if need_h else None
        # A 16-bit weight's gradient is summed over the chunks in float32, rounded once at the end.
        acc_dtype = torch.float32 if weight.element_size() < 4 else weight.dtype
        grad_w = (torch.zeros(weight.shape, dtype=acc_dtype, device=weight.device)
                  if need_w else None)
        step = ctx.step
        for s in range(0, N, step):
            e = min(s + step, N)
            h = rows[s:e]
            logits = h @ weight.T
            launch_backward(
                logits, flat_ids[s:e], lse[s:e], None if entropy is None else entropy[s:e],
                None if g_logp is None else g_logp[s:e],
                None if g_entropy is None else g_entropy[s:e],
                logits, ctx.block_v,
            )  # logits now hold d(loss)/d(logits) for the chunk
            if grad_h is not None:
                torch.mm(logits, weight, out=grad_h[s:e])
            if grad_w is not None:
                if acc_dtype == logits.dtype:
                    grad_w.addmm_(logits.T, h)
                else:
                    grad_w += logits.T @ h
            del logits
        if grad_w is not None and grad_w.dtype != weight.dtype:
            grad_w = grad_w.to(weight.dtype)
        grad_hidden = None if grad_h is None else grad_h.view(ctx.hidden_shape)
        return grad_hidden, grad_w, None, None, None, None


def triton_fused_linear_logprobs(
    hidden: torch.Tensor, weight: torch.Tensor, ids: torch.Tensor, with_entropy: bool = False,
    chunk_size: int | None = None, block_v: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The Triton path of :func:`swarmrl.kernels.fused_linear_logprobs` (``hidden`` [..., H])."""
    if not HAS_TRITON:
        raise RuntimeError("triton is not installed")
    if hidden.dtype != weight.dtype:
        raise TypeError(f"hidden is {hidden.dtype} but the weight is {weight.dtype}")
    logp, entropy = TritonFusedLinearLogprobs.apply(
        hidden, weight, ids, with_entropy, chunk_size, block_v
    )
    return logp, (entropy if with_entropy else None)
