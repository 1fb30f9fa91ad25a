"""GRPO advantages and losses against numbers worked out by hand (see the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from swarmrl.config import GRPOConfig
from swarmrl.kernels.grpo_loss import kl_penalty
from swarmrl.training.grpo import group_advantages, grpo_loss
from swarmrl.training.logprobs import selective_logprobs


def cfg(**kw) -> GRPOConfig:
    return GRPOConfig(**kw)


# --- advantages ---------------------------------------------------------------------------------
def test_group_advantages_by_hand() -> None:
    # rewards 1 0 0 1: mean 0.5; unbiased std = sqrt(4 * 0.25 / 3) = 0.577350;
    # (±0.5) / (0.577350 + 1e-4) = ±0.865875
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), "group")
    assert torch.allclose(adv, torch.tensor([1, -1, -1, 1]) * 0.865875, atol=1e-6)
    # Dr. GRPO: mean only -> ±0.5
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), "none")
    assert torch.allclose(adv, torch.tensor([0.5, -0.5, -0.5, 0.5]))
    # rewards 3 1 2: mean 2, std 1 -> (1, -1, 0) / 1.0001
    adv = group_advantages(torch.tensor([3.0, 1.0, 2.0]))
    assert torch.allclose(adv, torch.tensor([1.0, -1.0, 0.0]) / 1.0001)


def test_group_advantages_no_signal() -> None:
    assert torch.equal(group_advantages(torch.tensor([1.0, 1.0, 1.0])), torch.zeros(3))
    assert torch.equal(group_advantages(torch.tensor([0.7])), torch.zeros(1))
    assert torch.equal(group_advantages(torch.tensor([0.7]), "none"), torch.zeros(1))
    # batched [N, G]
    adv = group_advantages(torch.tensor([[1.0, 0.0], [2.0, 2.0]]), "none")
    assert torch.allclose(adv, torch.tensor([[0.5, -0.5], [0.0, 0.0]]))


# --- one pass (ratio == 1): the loss is -A per token, aggregated three ways ----------------------
LOGP = torch.log(torch.tensor([[0.5, 0.25, 0.1], [0.3, 0.9, 0.9]]))
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])  # row 1 has one real token
ADV = torch.tensor([1.0, -2.0])
# per-token loss: row 0 -> -1, -1, -1 ; row 1 -> +2 (padding ignored)


@pytest.mark.parametrize(
    ("loss_type", "max_tokens", "expected", "grad"),
    [
        # grpo: row means (-1, +2) -> mean 0.5; d/dlogp = -A / (len * B): row0 -1/6, row1 +1
        ("grpo", None, 0.5, [[-1 / 6] * 3, [1.0, 0, 0]]),
        # dapo: (-3 + 2) / 4 tokens = -0.25; d/dlogp = -A / 4
        ("dapo", None, -0.25, [[-0.25] * 3, [0.5, 0, 0]]),
        # dr_grpo: (-3 + 2) / (2 sequences * 4 max tokens) = -0.125; d/dlogp = -A / 8
        ("dr_grpo", 4, -0.125, [[-0.125] * 3, [0.25, 0, 0]]),
        # dr_grpo without max_tokens uses L = 3: -1 / 6
        ("dr_grpo", None, -1 / 6, [[-1 / 6] * 3, [1 / 3, 0, 0]]),
    ],
)
def test_loss_types_one_pass(loss_type, max_tokens, expected, grad) -> None:
    logp = LOGP.clone().requires_grad_(True)
    loss, stats = grpo_loss(logp, None, ADV, MASK, cfg(loss_type=loss_type), max_tokens=max_tokens)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    loss.backward()
    assert torch.allclose(logp.grad, torch.tensor(grad), atol=1e-6)
    assert stats["clip_frac"] == 0.0 and stats["ratio_mean"] == pytest.approx(1.0)
    assert stats["tokens"] == 4


def test_padding_values_do_not_leak() -> None:
    # Garbage (even -inf) at masked positions changes nothing.
    logp = LOGP.clone()
    logp[1, 1:] = float("-inf")
    loss, _ = grpo_loss(logp, logp.clone(), ADV, MASK, cfg(loss_type="dapo"))
    assert loss.item() == pytest.approx(-0.25)


# --- clipping ------------------------------------------------------------------------------------
def test_asymmetric_clip_by_hand() -> None:
    # Four one-token sequences, old log-prob 0, new ratios 1.5, 0.5, 1.1, 0.7, A = 1, 1, -1, -1,
    # eps_low 0.2 / eps_high 0.28 (clip range [0.8, 1.28]):
    #   r=1.5, A=+1: min(1.5, 1.28) = 1.28 -> loss -1.28, clipped high, no gradient
    #   r=0.5, A=+1: min(0.5, 0.8)  = 0.5  -> loss -0.5,  gradient -r = -0.5
    #   r=1.1, A=-1: min(-1.1,-1.1) = -1.1 -> loss +1.1,  gradient +r = +1.1
    #   r=0.7, A=-1: min(-0.7,-0.8) = -0.8 -> loss +0.8,  clipped low, no gradient
    # dapo: (-1.28 - 0.5 + 1.1 + 0.8) / 4 = 0.03; gradients / 4.
    ratios = torch.tensor([[1.5], [0.5], [1.1], [0.7]])
    logp = ratios.log().requires_grad_(True)
    old = torch.zeros(4, 1)
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    loss, stats = grpo_loss(logp, old, adv, torch.ones(4, 1), cfg(loss_type="dapo"))
    assert loss.item() == pytest.approx(0.03, abs=1e-6)
    loss.backward()
    assert torch.allclose(logp.grad.squeeze(), torch.tensor([0.0, -0.125, 0.275, 0.0]), atol=1e-6)
    assert stats["clip_frac"] == 0.5
    assert stats["clip_low_frac"] == 0.25 and stats["clip_high_frac"] == 0.25
    assert stats["ratio_mean"] == pytest.approx((1.5 + 0.5 + 1.1 + 0.7) / 4)


def test_symmetric_clip_changes_the_high_side() -> None:
    # eps_high 0.2: r=1.25 with A=+1 is now clipped at 1.2 (under 0.28 it was not).
    logp = torch.tensor([[math.log(1.25)]])
    loss_asym, s1 = grpo_loss(logp, torch.zeros(1, 1), torch.ones(1), torch.ones(1, 1), cfg())
    loss_sym, s2 = grpo_loss(logp, torch.zeros(1, 1), torch.ones(1), torch.ones(1, 1),
                             cfg(epsilon_high=0.2))
    assert loss_asym.item() == pytest.approx(-1.25) and s1["clip_frac"] == 0
    assert loss_sym.item() == pytest.approx(-1.2) and s2["clip_frac"] == 1


# --- KL ------------------------------------------------------------------------------------------
def test_kl_estimators_by_hand() -> None:
    # p = 0.5 under the policy, 0.25 under the reference:
    #   k1 = log 0.5 - log 0.25 = log 2 = 0.693147
    #   k3 = exp(ref - logp) - (ref - logp) - 1 = 0.5 + log 2 - 1 = 0.193147
    logp, ref = torch.tensor([[math.log(0.5)]]), torch.tensor([[math.log(0.25)]])
    assert kl_penalty(logp, ref, "k1").item() == pytest.approx(0.693147, abs=1e-6)
    assert kl_penalty(logp, ref, "k3").item() == pytest.approx(0.193147, abs=1e-6)
    # With A = 0 the loss is beta * KL: 0.1 * 0.693147 and 0.1 * 0.193147.
    for est, expected in (("k1", 0.0693147), ("k3", 0.0193147)):
        loss, stats = grpo_loss(logp, None, torch.zeros(1), torch.ones(1, 1),
                                cfg(beta=0.1, kl_estimator=est), ref_logprobs=ref)
        assert loss.item() == pytest.approx(expected, abs=1e-6)
        assert stats["kl"] == pytest.approx(expected * 10, abs=1e-5)
    # k3 gradient wrt logp: -exp(ref - logp) + 1 = 0.5, times beta 0.1 -> 0.05
    lp = logp.clone().requires_grad_(True)
    loss, _ = grpo_loss(lp, None, torch.zeros(1), torch.ones(1, 1), cfg(beta=0.1), ref_logprobs=ref)
    loss.backward()
    assert lp.grad.item() == pytest.approx(0.05, abs=1e-6)


def test_kl_needs_reference() -> None:
    with pytest.raises(ValueError):
        grpo_loss(LOGP, None, ADV, MASK, cfg(beta=0.1))


# --- the hot path --------------------------------------------------------------------------------
def test_selective_logprobs_matches_log_softmax() -> None:
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, 3, 8, generator=g)
    weight = torch.randn(11, 8, generator=g)
    ids = torch.randint(0, 11, (2, 3), generator=g)
    full = torch.log_softmax(hidden @ weight.T, dim=-1).gather(-1, ids[..., None]).squeeze(-1)
    assert torch.allclose(selective_logprobs(hidden, ids, weight), full, atol=1e-5)
    assert torch.allclose(selective_logprobs(hidden @ weight.T, ids), full, atol=1e-5)
