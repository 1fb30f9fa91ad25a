"""Triton GRPO per-token loss vs its float64 reference and training.grpo.grpo_loss, interpreted.

Run by test_kernels_interpreter.py in a subprocess with TRITON_INTERPRET=1; skips elsewhere.
Ratios are placed on both sides of both clip bounds, with advantages of both signs.
"""

from __future__ import annotations

from _kernels_helpers import close, leaf64, require_interpreter

require_interpreter()

import math  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from swarmrl.config import GRPOConfig  # noqa: E402
from swarmrl.kernels import grpo_token_loss, use_triton  # noqa: E402
from swarmrl.kernels.grpo_loss import (  # noqa: E402
    reference_grpo_token_loss,
    triton_grpo_token_loss,
)
from swarmrl.training.grpo import aggregate, grpo_loss  # noqa: E402

torch.set_num_threads(1)
EPS_LOW, EPS_HIGH = 0.2, 0.28
RATIOS = [0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.35, 2.0]  # below, inside and above [0.8, 1.28]


def _batch(B: int = 4, L: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logp = (-torch.rand(B, L, generator=g) * 3).requires_grad_(True)
    ratios = torch.tensor(RATIOS)[torch.randint(0, len(RATIOS), (B, L), generator=g)]
    old = logp.detach() - ratios.log()
    adv = torch.tensor([1.5, -0.7, 0.0, -2.0])[:B]
    mask = (torch.rand(B, L, generator=g) > 0.25).float()
    mask[:, 0] = 1
    ref = logp.detach() + torch.randn(B, L, generator=g) * 0.2
    return logp, old, adv, mask, ref


@pytest.mark.parametrize(("beta", "kl"), [(0.0, "k3"), (0.04, "k3"), (0.1, "k1")])
@pytest.mark.parametrize("fresh", [False, True])
def test_matches_float64_reference_with_grads(beta, kl, fresh):
    logp, old, adv, mask, ref = _batch(seed=int(beta * 100) + fresh)
    old_arg = None if fresh else old
    loss = triton_grpo_token_loss(logp, old_arg, adv, mask, EPS_LOW, EPS_HIGH, beta, ref, kl,
                                  block=16)
    l64 = leaf64(logp)
    ref_loss = reference_grpo_token_loss(l64, None if fresh else old.double(), adv.double(),
                                         mask, EPS_LOW, EPS_HIGH, beta, ref.double(), kl)
    close(loss, ref_loss)
    assert torch.all(loss[mask == 0] == 0)
    g = torch.randn(logp.shape, dtype=torch.float64)
    (loss.double() * g).sum().backward()
    (ref_loss * g).sum().backward()
    close(logp.grad, l64.grad)


def test_per_token_advantages_and_odd_sizes():
    g = torch.Generator().manual_seed(3)
    logp = (-torch.rand(3, 7, generator=g) * 2).requires_grad_(True)
    old = logp.detach() + torch.randn(3, 7, generator=g) * 0.3
    adv = torch.randn(3, 7, generator=g)
    mask = torch.ones(3, 7)
    loss = triton_grpo_token_loss(logp, old, adv, mask, 0.1, 0.5, block=16)  # 21 = 16 + 5
    loss.sum().backward()
    l64 = leaf64(logp)
    ref = reference_grpo_token_loss(l64, old.double(), adv.double(), mask, 0.1, 0.5)
    close(loss, ref)
    ref.sum().backward()
    close(logp.grad, l64.grad)


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
@pytest.mark.parametrize("beta", [0.0, 0.05])
def test_agrees_with_training_grpo_loss(loss_type, beta):
    logp, old, adv, mask, ref = _batch(seed=5)
    cfg = GRPOConfig(epsilon_low=EPS_LOW, epsilon_high=EPS_HIGH, loss_type=loss_type, beta=beta)
    per_token = grpo_token_loss(logp, old, adv, mask, epsilon_low=cfg.epsilon_low,
                                epsilon_high=cfg.epsilon_high, beta=cfg.beta, ref_logprobs=ref,
                                kl_estimator=cfg.kl_estimator)
    assert "TritonGRPOTokenLoss" in type(per_token.grad_fn).__name__
    ours = aggregate(per_token, mask, loss_type, logp.shape[-1])
    ours.backward()
    ours_grad = logp.grad.clone()
    logp.grad = None
    theirs, _ = grpo_loss(logp, old, adv, mask, cfg, ref_logprobs=ref)
    theirs.backward()
    assert math.isclose(ours.detach().item(), theirs.detach().item(), rel_tol=1e-5, abs_tol=1e-6)
    close(ours_grad, logp.grad, atol=1e-6, rtol=1e-5)


def test_padding_nan_does_not_leak():
    logp, old, adv, mask, _ = _batch(seed=9)
    with torch.no_grad():
        logp[mask == 0] = float("nan")
    assert use_triton(logp, old, adv, mask)
    loss = grpo_token_loss(logp, old, adv, mask, epsilon_low=EPS_LOW, epsilon_high=EPS_HIGH)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(logp.grad).all()
    assert torch.all(logp.grad[mask == 0] == 0)


def test_distillation_advantages_through_grpo_loss():
    """Per-token advantages from distill_advantages take the Triton path of grpo_loss and give
    the reference's loss and gradient (statistics included)."""
    from swarmrl.training.distill_loss import distill_advantages

    logp, old, adv, mask, ref = _batch(seed=7)
    teacher_rows = [(ref[i, :5].tolist(), 0.5, 2.0) if i % 2 == 0 else None for i in range(4)]
    token_adv, fig = distill_advantages(adv, old, teacher_rows, mask)
    assert token_adv.shape == logp.shape and fig["distill_tokens"] > 0
    cfg = GRPOConfig(epsilon_low=EPS_LOW, epsilon_high=EPS_HIGH, loss_type="dapo")
    loss, stats = grpo_loss(logp, old, token_adv, mask, cfg)
    loss.backward()
    l64 = leaf64(logp)
    ref_loss = aggregate(reference_grpo_token_loss(l64, old.double(), token_adv.double(), mask,
                                                   EPS_LOW, EPS_HIGH), mask, "dapo", 8)
    ref_loss.backward()
    assert math.isclose(loss.item(), ref_loss.item(), rel_tol=1e-5, abs_tol=1e-6)
    close(logp.grad, l64.grad)
    assert 0.0 <= stats["clip_frac"] <= 1.0
