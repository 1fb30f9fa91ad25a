"""The Triton kernels at Qwen2.5-0.5B shapes on a real GPU (skipped without CUDA).

vocab 151936, hidden 896, 8 x 1024 tokens, bfloat16 like training on a GPU. Compared with the
PyTorch references on the same inputs; the fused path must also use a fraction of eager's memory.
Run: ``pytest tests/kernels -m gpu`` on a machine with CUDA and triton (needs ~40 GB of GPU
memory: the references hold several float32 [8192, 151936] tensors).
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

import swarmrl.kernels as K

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton"),
]

V, H, B, L = 151936, 896, 8, 1024


@pytest.fixture(autouse=True)
def _auto_dispatch(monkeypatch):
    monkeypatch.delenv("SWARMRL_KERNELS", raising=False)
    yield
    torch.cuda.empty_cache()


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return float((a - b).norm() / b.norm().clamp(min=1e-12))


def _inputs(seed: int = 0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    hidden = torch.randn(B, L, H, device="cuda", generator=g).to(torch.bfloat16)
    weight = (torch.randn(V, H, device="cuda", generator=g) * 2 / H**0.5).to(torch.bfloat16)
    ids = torch.randint(0, V, (B, L), device="cuda", generator=g)
    return hidden.requires_grad_(True), weight.requires_grad_(True), ids


def test_token_logprobs_real_shapes():
    hidden, weight, ids = _inputs()
    with torch.no_grad():
        logits = (hidden @ weight.T).requires_grad_(True)
    assert K.use_triton(logits, ids)
    logp, entropy = K.token_logprobs(logits, ids, with_entropy=True)
    assert "Triton" in type(logp.grad_fn).__name__
    g = torch.randn_like(logp)
    (logp * g + entropy).sum().backward()
    ours = logits.grad
    logits.grad = None
    ref_logp, ref_entropy = K.reference_token_logprobs(logits, ids)
    (ref_logp * g + ref_entropy).sum().backward()
    torch.testing.assert_close(logp, ref_logp, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(entropy, ref_entropy, atol=1e-3, rtol=1e-4)
    assert _rel_err(ours, logits.grad) < 1e-2


def test_fused_linear_real_shapes_and_memory():
    hidden, weight, ids = _inputs(1)
    g = torch.randn(B, L, device="cuda")

    def run(fn):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        logp, _ = fn(hidden, weight, ids)
        (logp * g).sum().backward()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        grads = hidden.grad, weight.grad
        hidden.grad = weight.grad = None
        return logp.detach(), grads, peak

    ours, (gh, gw), peak = run(K.fused_linear_logprobs)
    ref, (rgh, rgw), ref_peak = run(lambda h, w, i: K.reference_fused_linear_logprobs(h, w, i,
                                                                                      False))
    torch.testing.assert_close(ours, ref, atol=2e-3, rtol=1e-4)
    assert _rel_err(gh, rgh) < 2e-2 and _rel_err(gw, rgw) < 2e-2
    assert peak < 0.3 * ref_peak, (peak, ref_peak)


def test_grpo_token_loss_real_shapes():
    g = torch.Generator(device="cuda").manual_seed(2)
    logp = (-torch.rand(B, L, device="cuda", generator=g) * 4).requires_grad_(True)
    old = logp.detach() + torch.randn(B, L, device="cuda", generator=g) * 0.3
    ref = logp.detach() + torch.randn(B, L, device="cuda", generator=g) * 0.1
    adv = torch.randn(B, device="cuda", generator=g)
    mask = (torch.rand(B, L, device="cuda", generator=g) > 0.2).float()
    kw = dict(epsilon_low=0.2, epsilon_high=0.28, beta=0.04, ref_logprobs=ref)
    loss = K.grpo_token_loss(logp, old, adv, mask, **kw)
    assert "Triton" in type(loss.grad_fn).__name__
    (ours,) = torch.autograd.grad(loss.sum(), logp)
    expected = K.reference_grpo_token_loss(logp, old, adv, mask, 0.2, 0.28, 0.04, ref)
    (theirs,) = torch.autograd.grad(expected.sum(), logp)
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
