"""On-policy distillation, the tensor half: per-token advantages, and a teacher's scoring pass.

The student's loss stays the GRPO policy-gradient loss (same kernels); only its advantages
change from one number per sequence to one per token::

    A[b, t] = grpo_weight * A_grpo[b] + coef * clip(log p_teacher(y_t) - log p_student(y_t))

With one pass on fresh samples (ratio 1) the gradient of -A[b, t] * log p(y_t) is
``-A[b, t] * d log p(y_t)``: tokens the teacher finds likelier than the student are pushed up,
the others down, which is the policy gradient of -KL(student || teacher) on the student's own
samples (GKD / KDRL with beta = 1, no discount).
"""

from __future__ import annotations

import torch

from swarmrl.training.logprobs import sequence_logprobs
from swarmrl.training.policy import Policy, eval_mode

TeacherRow = tuple[list[float], float, float]
"""Per sequence: (teacher log-probs of its tokens, coef, clip)."""


def distill_advantages(
    seq_adv: torch.Tensor,
    student_logp: torch.Tensor,
    rows: list[TeacherRow | None],
    mask: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-token advantages [B, L] (or ``seq_adv`` [B] unchanged when no row has a teacher).

    ``student_logp`` [B, L] is the student's log-prob of each sampled token (treated as a
    constant: the advantage is a reward, not a path for gradients); ``mask`` [B, L] marks
    the tokens that count. Also returns the step's distillation figures.
    """
    if all(r is None for r in rows):
        return seq_adv, {}
    student = student_logp.detach().float()
    teacher, coef, clip, has = _teacher_tensors(rows, student.shape, student.device)
    has = has * (mask > 0).to(has.dtype)
    gap = teacher - student  # -(log p_student - log p_teacher) per token
    kl_adv = torch.maximum(torch.minimum(gap, clip[:, None]), -clip[:, None])
    kl_adv = torch.where(has > 0, kl_adv * coef[:, None], torch.zeros_like(kl_adv))
    adv = seq_adv.float().unsqueeze(-1).expand_as(student) + kl_adv
    return adv, _figures(seq_adv, kl_adv, gap, has, mask)


def _teacher_tensors(
    rows: list[TeacherRow | None], shape: torch.Size, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    B, L = shape
    teacher = torch.zeros(B, L)
    has = torch.zeros(B, L)
    coef = torch.zeros(B)
    clip = torch.ones(B)
    for i, row in enumerate(rows):
        if row is None:
            continue
        logprobs, c, cl = row
        n = min(len(logprobs), L)  # the client checks lengths; never index past the row
        teacher[i, :n] = torch.tensor(logprobs[:n], dtype=torch.float32)
        has[i, :n] = 1.0
        coef[i], clip[i] = c, cl
    return teacher.to(device), coef.to(device), clip.to(device), has.to(device)


@torch.no_grad()
def _figures(
    seq_adv: torch.Tensor, kl_adv: torch.Tensor, gap: torch.Tensor, has: torch.Tensor,
    mask: torch.Tensor,
) -> dict[str, float]:
    """distill_kl: mean log p_student - log p_teacher over taught tokens (a k1 estimate of the
    reverse KL); distill_share: the distillation part of the summed |advantage| over the
    tokens that count (0 = plain GRPO, 1 = pure distillation)."""
    m = (mask > 0).float()
    n_taught = has.sum()
    kl_mass = (kl_adv.abs() * m).sum()
    grpo_mass = (seq_adv.float().abs().unsqueeze(-1) * m).sum()
    total = kl_mass + grpo_mass
    return {
        "distill_kl": float(-(gap * has).sum() / n_taught.clamp(min=1)),
        "distill_share": float(kl_mass / total) if total > 0 else 0.0,
        "distill_tokens": float(n_taught),
    }


@torch.no_grad()
def score_tokens(policy: Policy, rows: list[tuple[list[int], list[int]]]) -> list[list[float]]:
    """The teacher's side: log p(token) of every completion token given its prompt, in one
    batched forward pass (rows sharing a prompt run it once), eval mode, no gradients."""
    if not rows:
        return []
    with eval_mode(policy.model) as model:
        logp, _ = sequence_logprobs(
            model, [p for p, _ in rows], [c for _, c in rows], policy.pad_id
        )
    logp = logp.float().cpu()
    return [logp[i, : len(c)].tolist() for i, (_, c) in enumerate(rows)]
