"""Chunked fused linear -> log-probs vs hidden @ W.T + the float64 reference, in the interpreter.

Run by test_kernels_interpreter.py in a subprocess with TRITON_INTERPRET=1; skips elsewhere.
Chunks that do not divide N and vocabularies that are not a multiple of BLOCK_V on purpose.
"""

from __future__ import annotations

from _kernels_helpers import close, leaf64, require_interpreter

require_interpreter()

import pytest  # noqa: E402
import torch  # noqa: E402

from swarmrl.kernels import fused_linear_logprobs, use_triton  # noqa: E402
from swarmrl.kernels.fused_linear import (  # noqa: E402
    reference_fused_linear_logprobs,
    triton_fused_linear_logprobs,
)
from swarmrl.kernels.logprobs import reference_token_logprobs  # noqa: E402

torch.set_num_threads(1)
H = 16


def _inputs(N: int, V: int, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(N, H, generator=g).to(dtype).requires_grad_(True)
    weight = (torch.randn(V, H, generator=g) * 0.5).to(dtype).requires_grad_(True)
    ids = torch.randint(0, V, (N,), generator=g)
    return hidden, weight, ids


@pytest.mark.parametrize(("N", "V", "chunk"), [(5, 37, 2), (8, 300, 3), (7, 100, None),
                                               (6, 65, 6)])
@pytest.mark.parametrize("with_entropy", [False, True])
def test_matches_float64_reference_with_grads(N, V, chunk, with_entropy):
    hidden, weight, ids = _inputs(N, V, seed=N + V)
    logp, entropy = triton_fused_linear_logprobs(hidden, weight, ids, with_entropy,
                                                 chunk_size=chunk, block_v=32)
    h64, w64 = leaf64(hidden), leaf64(weight)
    ref_logp, ref_entropy = reference_fused_linear_logprobs(h64, w64, ids, with_entropy)
    close(logp, ref_logp)
    g = torch.randn(N, dtype=torch.float64)
    loss, ref_loss = (logp.double() * g).sum(), (ref_logp * g).sum()
    if with_entropy:
        close(entropy, ref_entropy)
        g_h = torch.randn(N, dtype=torch.float64)
        loss = loss + (entropy.double() * g_h).sum()
        ref_loss = ref_loss + (ref_entropy * g_h).sum()
    loss.backward()
    ref_loss.backward()
    close(hidden.grad, h64.grad)
    close(weight.grad, w64.grad)


def test_policy_shapes_sliced_hidden_frozen_head():
    # [B, T, H] decoder output sliced to the completion positions, as sequence_logprobs does;
    # a frozen head (reference model) needs no weight gradient.
    g = torch.Generator().manual_seed(7)
    states = torch.randn(2, 6, H, generator=g).requires_grad_(True)
    weight = torch.randn(45, H, generator=g) * 0.5
    hidden = states[:, 1:5]
    ids = torch.randint(0, 45, (2, 4), generator=g)
    logp, _ = triton_fused_linear_logprobs(hidden, weight, ids, chunk_size=3, block_v=16)
    assert logp.shape == (2, 4)
    logp.sum().backward()
    s64 = leaf64(states)
    ref, _ = reference_fused_linear_logprobs(s64[:, 1:5], weight.double(), ids, False)
    close(logp, ref)
    ref.sum().backward()
    close(states.grad, s64.grad)
    assert weight.grad is None


def test_bfloat16_weight_gradient_is_summed_in_float32():
    hidden, weight, ids = _inputs(9, 70, seed=11, dtype=torch.bfloat16)
    logp, entropy = triton_fused_linear_logprobs(hidden, weight, ids, True, chunk_size=2,
                                                 block_v=32)
    (logp.sum() + entropy.sum()).backward()
    assert hidden.grad.dtype == weight.grad.dtype == torch.bfloat16
    # Reference on the same bfloat16 logits (the matmul rounds to bfloat16 in both paths).
    h64, w64 = leaf64(hidden), leaf64(weight)
    logits = (hidden.detach() @ weight.detach().T).double().requires_grad_(True)
    ref_logp, ref_entropy = reference_token_logprobs(logits, ids)
    close(logp, ref_logp)
    close(entropy, ref_entropy)
    (ref_logp.sum() + ref_entropy.sum()).backward()
    close(hidden.grad, logits.grad @ w64.detach(), atol=3e-2, rtol=3e-2)
    close(weight.grad, logits.grad.T @ h64.detach(), atol=3e-2, rtol=3e-2)


def test_dispatch_and_entropy_only():
    hidden, weight, ids = _inputs(4, 40, seed=5)
    assert use_triton(hidden, weight, ids)
    logp, entropy = fused_linear_logprobs(hidden, weight, ids, with_entropy=True, chunk_size=3)
    assert "TritonFusedLinearLogprobs" in type(logp.grad_fn).__name__
    entropy.sum().backward()  # logp unused: only the entropy's gradient flows
    h64, w64 = leaf64(hidden), leaf64(weight)
    reference_fused_linear_logprobs(h64, w64, ids)[1].sum().backward()
    close(hidden.grad, h64.grad)
    close(weight.grad, w64.grad)
