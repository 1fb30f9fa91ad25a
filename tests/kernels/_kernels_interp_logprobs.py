"""Triton token log-prob / entropy kernel vs its float64 reference, in the Triton interpreter.

Run by test_kernels_interpreter.py in a subprocess with TRITON_INTERPRET=1 (set before triton is
imported); skips by itself anywhere else. Shapes are tiny and BLOCK_V small so the online
log-sum-exp walks several blocks, the last one partial.
"""

from __future__ import annotations

from _kernels_helpers import close, leaf64, require_interpreter

require_interpreter()

import pytest  # noqa: E402
import torch  # noqa: E402

from swarmrl.kernels import token_logprobs, use_triton  # noqa: E402
from swarmrl.kernels.logprobs import (  # noqa: E402
    reference_token_logprobs,
    triton_token_logprobs,
)

torch.set_num_threads(1)


def _logits(N: int, V: int, scale: float = 3.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(N, V, generator=g) * scale).requires_grad_(True)


@pytest.mark.parametrize(("N", "V", "block_v"), [(5, 37, 32), (8, 300, 32), (6, 64, 16),
                                                 (7, 129, 64)])
@pytest.mark.parametrize("with_entropy", [False, True])
def test_matches_float64_reference_with_grads(N, V, block_v, with_entropy):
    logits = _logits(N, V, seed=N * V)
    ids = torch.randint(0, V, (N,), generator=torch.Generator().manual_seed(V))
    ids[0] = V - 1  # a token in the last, partial block
    logp, entropy = triton_token_logprobs(logits, ids, with_entropy, block_v=block_v)
    ref64 = leaf64(logits)
    ref_logp, ref_entropy = reference_token_logprobs(ref64, ids, with_entropy)
    assert logp.dtype == torch.float32
    close(logp, ref_logp)
    g_logp = torch.randn(N, dtype=torch.float64)
    loss, ref_loss = (logp.double() * g_logp).sum(), (ref_logp * g_logp).sum()
    if with_entropy:
        close(entropy, ref_entropy)
        g_entropy = torch.randn(N, dtype=torch.float64)
        loss = loss + (entropy.double() * g_entropy).sum()
        ref_loss = ref_loss + (ref_entropy * g_entropy).sum()
    else:
        assert entropy is None
    loss.backward()
    ref_loss.backward()
    close(logits.grad, ref64.grad)


def test_entropy_gradient_alone():
    logits = _logits(5, 77)
    ids = torch.zeros(5, dtype=torch.long)
    _, entropy = triton_token_logprobs(logits, ids, True, block_v=16)
    entropy.sum().backward()
    ref64 = leaf64(logits)
    reference_token_logprobs(ref64, ids)[1].sum().backward()
    close(logits.grad, ref64.grad)


def test_leading_dims_non_contiguous_and_bf16():
    # [B, L + 1, V] logits sliced to [B, L, V], as logprobs.sequence_logprobs does.
    full = torch.randn(2, 4, 50, generator=torch.Generator().manual_seed(3)) * 2
    full = full.to(torch.bfloat16).requires_grad_(True)
    logits = full[:, :-1]
    ids = torch.randint(0, 50, (2, 3), generator=torch.Generator().manual_seed(4))
    logp, entropy = triton_token_logprobs(logits, ids, True, block_v=16)
    assert logp.shape == entropy.shape == (2, 3) and logp.dtype == torch.float32
    (logp.sum() + entropy.sum()).backward()
    ref64 = leaf64(full)
    ref_logp, ref_entropy = reference_token_logprobs(ref64[:, :-1], ids)
    close(logp, ref_logp)
    close(entropy, ref_entropy)
    (ref_logp.sum() + ref_entropy.sum()).backward()
    assert full.grad.dtype == torch.bfloat16
    close(full.grad, ref64.grad, atol=1e-2, rtol=1e-2)  # the gradient is rounded to bfloat16
    assert torch.all(full.grad[:, -1] == 0)


def test_extreme_logits_stay_finite():
    logits = _logits(4, 100, scale=60.0)
    with torch.no_grad():
        logits[0, :50] = -1e4  # a run of (almost) impossible tokens, a whole block of them
        logits[1, 7] = 500.0  # one token with all the mass
    ids = torch.tensor([60, 7, 3, 99])
    logp, entropy = triton_token_logprobs(logits, ids, True, block_v=16)
    (logp.sum() + entropy.sum()).backward()
    assert torch.isfinite(logp).all() and torch.isfinite(entropy).all()
    assert torch.isfinite(logits.grad).all()
    ref64 = leaf64(logits)
    ref_logp, ref_entropy = reference_token_logprobs(ref64, ids)
    close(logp, ref_logp, atol=1e-4)
    close(entropy, ref_entropy, atol=1e-4)
    (ref_logp.sum() + ref_entropy.sum()).backward()
    close(logits.grad, ref64.grad, atol=1e-4)


def test_dispatch_picks_triton_under_the_interpreter():
    logits = _logits(3, 40)
    ids = torch.tensor([1, 2, 3])
    assert use_triton(logits, ids)
    logp, entropy = token_logprobs(logits, ids)
    assert entropy is None
    assert "TritonTokenLogprobs" in type(logp.grad_fn).__name__
    close(logp, reference_token_logprobs(logits.double(), ids, False)[0])


def test_no_grad_and_empty_rows():
    with torch.no_grad():
        logp, entropy = triton_token_logprobs(torch.randn(0, 33), torch.zeros(0, dtype=torch.long),
                                              True)
        assert logp.shape == entropy.shape == (0,)
        logits = torch.randn(3, 33)
        logp, _ = triton_token_logprobs(logits, torch.tensor([0, 5, 32]), block_v=16)
    assert logp.grad_fn is None
    close(logp, reference_token_logprobs(logits.double(), torch.tensor([0, 5, 32]), False)[0])
