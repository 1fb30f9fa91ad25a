"""On-policy distillation, the torch-free half: the coefficient schedule and a teacher's signal.

A teacher peer returns log p_teacher(y_t) for every token y_t the student sampled; the student's
per-token advantage is then ``-(log p_student(y_t) - log p_teacher(y_t))`` (reverse KL on its
own samples, no discount), weighted by a coefficient that may follow a schedule (KDRL). The
tensor math lives in :mod:`swarmrl.training.distill_loss`; this module is plain data so the node
loop and the simulator's stub learner stay free of torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarmrl.config import DistillConfig


@dataclass
class TeacherSignal:
    """What a teacher said about one group's completions, and how much it weighs this step."""

    logprobs: list[list[float]]  # per completion, log p_teacher of each sampled token
    coef: float  # weight of the reverse-KL advantage
    grpo_weight: float = 1.0  # weight of the group's GRPO advantage (0 = pure distillation)
    clip: float = 5.0  # |reverse-KL advantage| per token is clipped to this
    teacher: str = ""  # peer id of the teacher, for the records


def schedule_coef(cfg: DistillConfig, step: int) -> float:
    """The reverse-KL coefficient at ``step`` (0-based: the step being trained)."""
    if cfg.mode == "off":
        return 0.0
    if cfg.schedule == "linear":
        frac = min(1.0, max(0, step) / cfg.schedule_steps)
        return cfg.coef + (cfg.final_coef - cfg.coef) * frac
    if cfg.schedule == "warmup":  # step 0 already gets 1/schedule_steps of coef
        return cfg.coef * min(1.0, (max(0, step) + 1) / cfg.schedule_steps)
    return cfg.coef


def grpo_weight(cfg: DistillConfig) -> float:
    """Weight of the GRPO advantage in groups a teacher scored: 0 in pure distillation."""
    return 0.0 if cfg.mode == "distill" else 1.0
