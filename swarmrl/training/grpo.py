"""GRPO as pure functions: group advantages and the clipped policy-gradient loss.

No model and no optimizer here, so every variant can be checked against numbers worked out by
hand (tests/training/test_training_grpo.py). Names follow TRL where they overlap.
"""

from __future__ import annotations

import torch

from swarmrl.config import GRPOConfig
from swarmrl.kernels import grpo_token_loss
from swarmrl.kernels.grpo_loss import kl_penalty

ADV_EPS = 1e-4  # TRL's: keeps (r - mean) / std finite when every reward in a group is equal


def group_advantages(
    rewards: torch.Tensor, scale: str = "group", eps: float = ADV_EPS
) -> torch.Tensor:
    """Advantages of one group's rewards [G] (or many equal-size groups [N, G], along the last dim).

    'group': (r - mean) / (std + eps), std unbiased as in TRL. 'none': r - mean (Dr. GRPO: the
    std division over-weights groups that are nearly all right or all wrong).
    """
    rewards = rewards.float()
    centered = rewards - rewards.mean(dim=-1, keepdim=True)
    if scale == "none":
        return centered
    if scale != "group":
        raise ValueError(f"unknown advantage scaling {scale!r}")
    if rewards.shape[-1] < 2:
        return torch.zeros_like(rewards)
    return centered / (rewards.std(dim=-1, keepdim=True) + eps)


def aggregate(
    per_token: torch.Tensor, mask: torch.Tensor, loss_type: str, max_tokens: int
) -> torch.Tensor:
    """Reduce a [B, L] per-token loss to a scalar.

    'grpo': mean over each sequence's tokens, then over sequences (short sequences weigh more per
    token). 'dr_grpo': sum / (B * max_tokens), a constant normaliser with no length bias.
    'dapo': sum / number of real tokens in the batch (token-level mean).
    """
    masked = torch.where(mask > 0, per_token, torch.zeros_like(per_token))
    if loss_type == "grpo":
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1)).mean()
    if loss_type == "dr_grpo":
        return masked.sum() / (per_token.shape[0] * max_tokens)
    if loss_type == "dapo":
        return masked.sum() / mask.sum().clamp(min=1)
    raise ValueError(f"unknown loss_type {loss_type!r}")


def grpo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cfg: GRPOConfig,
    ref_logprobs: torch.Tensor | None = None,
    max_tokens: int | None = None,
    token_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped GRPO objective, negated (a loss to minimise), and its statistics.

    logprobs, old_logprobs, ref_logprobs, mask: [B, L]; advantages: [B] (one per sequence) or
    [B, L] (one per token: distillation).
    ``old_logprobs`` None means one pass on fresh samples: old = logprobs detached, ratio 1.
    ``max_tokens`` is dr_grpo's length normaliser (default L).
    ``token_weights`` [B, L] (constants, e.g. truncated importance weights) scale each token's
    loss before aggregation.

    per token: -min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A) + beta * KL.
    """
    mask = mask.to(logprobs.dtype)
    # The per-token loss is the kernels' (Triton on CUDA, the PyTorch reference elsewhere).
    per_token = grpo_token_loss(
        logprobs, old_logprobs, advantages, mask,
        epsilon_low=cfg.epsilon_low, epsilon_high=cfg.epsilon_high, beta=cfg.beta,
        ref_logprobs=ref_logprobs, kl_estimator=cfg.kl_estimator,
    )
    if token_weights is not None:
        per_token = per_token * token_weights.detach().to(per_token.dtype)
    loss = aggregate(per_token, mask, cfg.loss_type, max_tokens or logprobs.shape[-1])
    with torch.no_grad():  # statistics only: ratio and KL again, cheap elementwise
        old = logprobs if old_logprobs is None else old_logprobs
        ratio = torch.exp(logprobs - old)
        adv = advantages.to(logprobs.dtype)
        adv = adv.unsqueeze(-1) if adv.dim() < logprobs.dim() else adv  # [B] or per token [B, L]
        kl = kl_penalty(logprobs, ref_logprobs, cfg.kl_estimator) if cfg.beta > 0 else None
    return loss, _stats(ratio, adv, mask, kl, cfg)


@torch.no_grad()
def _stats(
    ratio: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, kl: torch.Tensor | None,
    cfg: GRPOConfig,
) -> dict[str, float]:
    n = mask.sum().clamp(min=1)

    def frac(x: torch.Tensor) -> float:
        return float((x.to(mask.dtype) * mask).sum() / n)

    # A token is clipped when the clip removes its gradient: ratio past the bound the advantage
    # pushes toward.
    low = (ratio < 1 - cfg.epsilon_low) & (adv < 0)
    high = (ratio > 1 + cfg.epsilon_high) & (adv > 0)
    stats = {
        "clip_frac": frac(low | high),
        "clip_low_frac": frac(low),
        "clip_high_frac": frac(high),
        "ratio_mean": float((ratio * mask).sum() / n),
        "tokens": float(mask.sum()),
    }
    if kl is not None:
        stats["kl"] = float((kl * mask).sum() / n)
    return stats


@torch.no_grad()
def truncated_importance_weights(
    trainer_logprobs: torch.Tensor, sampler_logprobs: torch.Tensor, mask: torch.Tensor, cap: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-token min(pi_trainer / pi_sampler, cap) and what they say about the mismatch.

    ``sampler_logprobs`` [B, L] is NaN where the sampler gave none: weight 1 there. The weights
    are constants of the step (no gradient), as in Yao et al. 2025 and verl's rollout IS.
    Statistics over the tokens that have sampler log-probs: ``tis_weight_mean``,
    ``tis_capped_frac`` (weights the cap cut) and ``mismatch_kl``, the k3 estimate of
    KL(sampler || trainer) on the sampler's own tokens (0 when they agree exactly).
    """
    have = ~torch.isnan(sampler_logprobs) & (mask > 0)
    delta = torch.where(have, trainer_logprobs.float() - sampler_logprobs.float(), 0.0)
    ratio = torch.exp(delta)
    weights = torch.where(have, ratio.clamp(max=cap), torch.ones_like(ratio))
    n = have.sum()
    if int(n) == 0:
        return weights, {}
    k3 = ratio - 1 - delta  # E_sampler[r - 1 - log r] = KL(sampler || trainer), r = p_t / p_s
    return weights, {
        "tis_weight_mean": float(weights[have].mean()),
        "tis_capped_frac": float((ratio[have] > cap).float().mean()),
        "mismatch_kl": float(k3[have].mean()),
    }


def sender_logprob_table(
    trainer: torch.Tensor, senders: list[list[float] | float | None], mask: torch.Tensor
) -> torch.Tensor:
    """[B, L] sender log-probs aligned with our tokens, NaN where there are none. A sum over a
    text another tokenizer cut is spread so every token of the row gets the sequence's
    length-normalised ratio (GSPO's): exp((our log-prob of the text - theirs) / our tokens)."""
    table = torch.full_like(trainer, float("nan"), dtype=torch.float32)
    real = mask > 0
    ours = torch.where(real, trainer.float(), 0.0).sum(-1)  # our log-prob of each whole text
    n = real.sum(-1).clamp(min=1)
    for i, sender in enumerate(senders):
        if isinstance(sender, list):
            table[i, : len(sender)] = torch.tensor(sender, dtype=torch.float32)
        elif sender is not None:
            per_token = (ours[i] - sender) / n[i]
            table[i] = torch.where(real[i], trainer[i].float() - per_token, table[i])
    return table
