"""One node's GRPO update: scored groups of token ids in, one optimizer step (or a few) out.

    groups -> advantages per group -> drop groups without signal -> passes of whole groups
           -> [old log-probs] -> num_iterations x (per pass: log-probs -> clipped loss ->
              backward, gradients accumulated; then clip -> AdamW) -> policy.version += 1

One pass by default; ``grpo.micro_batch_groups`` splits the batch into passes of that many
groups, each loss scaled to its share of the batch's normaliser: the same gradient (to float
rounding) in the activation memory of one pass.

The forward/backward runs under bf16 autocast when ``grpo.autocast`` says so (fp32 master
weights, optimizer state and loss); AdamW is the fused kernel wherever torch has one.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from swarmrl.config import GRPOConfig, NodeConfig
from swarmrl.training.batch import (
    OWN_A,
    OWN_B,
    SWARM,
    Pass,
    Row,
    assign_parts,
    group_weights,
    micro_batches,
    part_grads,
    pcgrad,
    swarm_value,
)
from swarmrl.training.checkpoint import (
    CheckpointState,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from swarmrl.training.distill import TeacherSignal
from swarmrl.training.distill_loss import distill_advantages
from swarmrl.training.grpo import (
    group_advantages,
    grpo_loss,
    sender_logprob_table,
    truncated_importance_weights,
)
from swarmrl.training.logprobs import sequence_logprobs
from swarmrl.training.lora import is_lora, trainable
from swarmrl.training.policy import Policy
from swarmrl.training.precision import autocast, use_autocast

SIGNAL_EPS = 1e-6  # an advantage smaller than this carries no gradient worth a forward pass


@dataclass
class TokenGroup:
    """One task's G completions as this policy's token ids, with this node's own rewards."""

    prompt_ids: list[int]
    completion_ids: list[list[int]]
    rewards: list[float]
    truncated: list[bool] | None = None  # cut by max_new_tokens (None = none were)
    teacher: TeacherSignal | None = None  # a teacher's log-probs: per-token distillation
    # The sampling engine's raw log-probs of each completion's ids (None where it gave none,
    # e.g. swarm text): truncated importance sampling's denominators.
    sampler_logprobs: list[list[float] | None] | None = None
    # Swarm text: the sender's claimed sampling log-probs, per token of our ids or one sum
    # over the text (None where it gave none): importance weights capped at sender_cap.
    sender_logprobs: list[list[float] | float | None] | None = None
    local: bool = True  # this node's own samples (vs. the swarm's): what sapo.align protects


@dataclass
class _Figures:
    """Statistics of a step's passes: token-weighted means, and counts (``*_tokens``) summed."""

    sums: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    grads: list[list[torch.Tensor]] = field(default_factory=list)  # per part, when split

    def add(self, key: str, value: float, weight: float) -> None:
        count = key.endswith("_tokens")  # a count: summed, not averaged
        self.sums[key] = self.sums.get(key, 0.0) + (value if count else value * weight)
        self.weights[key] = 1.0 if count else self.weights.get(key, 0.0) + weight

    def mean(self, key: str) -> float:
        w = self.weights.get(key, 0.0)
        return self.sums[key] / w if w else 0.0

    def means(self, prefix: str) -> dict[str, float]:
        return {k[len(prefix):]: self.mean(k) for k in self.sums if k.startswith(prefix)}


@dataclass
class StepStats:
    loss: float = 0.0  # first pass (its value does not depend on num_iterations)
    reward_mean: float = 0.0  # over every group given, kept or dropped
    groups: int = 0
    groups_with_signal: int = 0
    groups_trained: int = 0
    sequences: int = 0
    tokens: int = 0
    clip_frac: float = 0.0  # mean over passes (always 0 on the first, where ratio == 1)
    kl: float = 0.0
    grad_norm: float = 0.0  # before clipping, last pass
    seconds: float = 0.0
    policy_version: int = 0
    skipped: bool = False  # nothing to learn from: no update, version unchanged
    distill: dict[str, float] = field(default_factory=dict)  # distill_kl, distill_share, ...
    tis: dict[str, float] = field(default_factory=dict)  # tis_weight_mean, mismatch_kl, ...
    # per group of the batch: the mean importance weight of its tokens (None: not trained)
    group_weights: list[float | None] = field(default_factory=list)


def seed_everything(seed: int, policy: Policy | None = None) -> None:
    """Seed python, numpy, torch and the policy's sampler: a run is a function of its seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if policy is not None:
        policy.seed(seed)


class Learner:
    """Holds the optimizer (and a frozen reference model when beta > 0) for one policy."""

    def __init__(
        self, policy: Policy, cfg: GRPOConfig | NodeConfig, max_new_tokens: int | None = None,
        sender_cap: float = 0.0, align: bool = False, measure: bool = False,
    ) -> None:
        if isinstance(cfg, NodeConfig):
            max_new_tokens = max_new_tokens or cfg.generation.max_new_tokens
            sender_cap, align = cfg.sapo.importance_cap, cfg.sapo.align
            measure = cfg.sapo.adaptive and cfg.sapo.external > 0 and cfg.sapo.local > 0
            cfg = cfg.grpo
        self.policy = policy
        self.cfg = cfg
        self.max_new_tokens = max_new_tokens
        self.sender_cap = sender_cap
        self.align = align
        self.measure = measure  # the swarm's value to this node's own gradient (sapo.adaptive)
        self.params = trainable(policy.model)  # with LoRA, the adapters only
        self.optimizer = make_adamw(self.params, cfg)
        p = next(policy.model.parameters())
        self.autocast = use_autocast(cfg.autocast, p.device, p.dtype)
        self.ref_model = None
        if cfg.beta > 0 and not is_lora(policy.model):
            # only then: a reference model costs a full copy of the weights (with LoRA the
            # reference is the model with its adapters switched off)
            self.ref_model = copy.deepcopy(policy.model).eval().requires_grad_(False)

    # --- the step --------------------------------------------------------------------------------
    def train_step(self, groups: list[TokenGroup]) -> StepStats:
        t0 = time.perf_counter()
        stats = StepStats(groups=len(groups), policy_version=self.policy.version)
        if groups:
            stats.reward_mean = float(np.mean([r for g in groups for r in g.rewards]))
        rows = self._rows(groups, stats)
        if not any(r.completion and r.keep for r in rows):  # no token would carry a gradient
            stats.skipped = True
            stats.seconds = time.perf_counter() - t0
            return stats
        # The sampler's copy of the weights is stale after this step: its memory is the update's.
        self.policy.release_generation_memory()
        # Micro-batches of whole groups (a group's rows share one prompt pass); each pass's loss
        # is scaled to its share of the batch's normaliser, so the accumulated gradient is the
        # one-pass gradient.
        passes = [p for p in map(self._prepare, micro_batches(rows, self.cfg.micro_batch_groups))
                  if p.tokens]
        n_tokens = sum(p.tokens for p in passes)
        dapo = self.cfg.loss_type == "dapo"
        for p in passes:
            p.share = p.tokens / n_tokens if dapo else len(p.rows) / len(rows)
        max_tokens = max(self.max_new_tokens or 0, max(len(r.completion) for r in rows))
        counts = assign_parts(rows)
        aligned = self.align and counts[SWARM] > 0 and counts[OWN_A] > 0
        measured = self.measure and min(counts) > 0
        stats.group_weights = [None] * len(groups)
        clip_fracs = []
        for it in range(self.cfg.num_iterations):
            self.optimizer.zero_grad(set_to_none=True)
            split = 3 if measured and it == 0 else 2 if aligned else 0
            figures = self._accumulate_grads(passes, it, max_tokens, split, stats)
            if split == 3:
                stats.tis.update(swarm_value(self.params, figures.grads, counts, aligned))
            elif split == 2:
                stats.tis["align_cos"] = pcgrad(self.params, *figures.grads)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm)
            self.optimizer.step()
            if it == 0:
                stats.loss, stats.tokens = figures.sums["loss"], n_tokens
                stats.distill = figures.means("distill_")
                stats.tis = {**figures.means("tis_"), **stats.tis}
            clip_fracs.append(figures.mean("clip_frac"))
            stats.kl = figures.mean("kl")
        self.policy.version += 1
        stats.grad_norm = float(grad_norm)
        stats.clip_frac = float(np.mean(clip_fracs))
        stats.sequences = len(rows)
        stats.policy_version = self.policy.version
        stats.seconds = time.perf_counter() - t0
        return stats

    def _accumulate_grads(
        self, passes: list[Pass], it: int, max_tokens: int, split: int, stats: StepStats
    ) -> _Figures:
        """Forward and backward every pass of one iteration into the parameters' gradients,
        or, with ``split`` parts (2: ours and the swarm's; 3: our two halves and the swarm's),
        into ``figures.grads``, one gradient per part summed over passes."""
        figures = _Figures()
        for p in passes:
            loss, st = self._pass_loss(p, it, max_tokens, stats, figures)
            if split:
                parts = self._split_grads(p, max_tokens, split)
                figures.grads = parts if not figures.grads else [
                    [a + b for a, b in zip(acc, new, strict=True)]
                    for acc, new in zip(figures.grads, parts, strict=True)
                ]
            else:
                (loss * p.share).backward()
            figures.add("loss", float(loss.detach()) * p.share, 1.0)
            figures.add("clip_frac", st["clip_frac"], st["tokens"])
            if "kl" in st:
                figures.add("kl", st["kl"], st["tokens"])
        return figures

    def _prepare(self, rows: list[Row]) -> Pass:
        """One pass's inputs, and its old and reference log-probs (before any update)."""
        device = self.policy.device
        p = Pass(
            rows=rows,
            prompts=[r.prompt for r in rows],
            comps=[r.completion for r in rows],
            adv=torch.tensor([r.advantage for r in rows], dtype=torch.float32, device=device),
            keep=torch.tensor([r.keep for r in rows], dtype=torch.float32, device=device),
            tokens=sum(len(r.completion) for r in rows if r.keep > 0),
        )
        p.seq_len = max(len(x) for x in p.prompts) + max(len(c) for c in p.comps)
        if p.tokens:
            # Old and new log-probs in one precision, or the first pass's ratio would not be 1.
            with autocast(self.autocast, device, p.seq_len):
                p.old, p.ref = self._reference_logprobs(p.prompts, p.comps)
        return p

    def _pass_loss(
        self, p: Pass, it: int, max_tokens: int, stats: StepStats, figures: _Figures
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Forward one pass: its loss normalised within the pass (the caller scales it)."""
        with autocast(self.autocast, self.policy.device, p.seq_len):  # the loss stays fp32
            p.logp, mask = self.policy.token_logprobs(p.prompts, p.comps)
        p.mask = mask * p.keep[:, None]
        # Distillation makes advantages per token, against the log-probs the ratio uses.
        fixed = p.old if p.old is not None else p.logp
        p.token_adv, distill = distill_advantages(p.adv, fixed, [r.taught for r in p.rows], p.mask)
        if it == 0:  # against the step's fixed old log-probs, so once
            p.weights, tis = self._importance_weights(fixed, p.rows, p.mask)
            weights = group_weights(p.weights, p.mask, p.rows, len(stats.group_weights))
            stats.group_weights = [a if a is not None else b
                                   for a, b in zip(weights, stats.group_weights, strict=True)]
            tokens = float(p.mask.sum())
            for k, v in distill.items():
                figures.add(f"distill_{k}", v, tokens)
            for k, v in tis.items():
                figures.add(f"tis_{k}", v, tokens)
        return grpo_loss(p.logp, p.old, p.token_adv, p.mask, self.cfg, p.ref, max_tokens,
                         token_weights=p.weights)

    def _rows(self, groups: list[TokenGroup], stats: StepStats) -> list[Row]:
        """A row per sequence of the groups worth training on; a group a teacher scored is
        worth it even when its rewards are all equal."""
        rows = []
        for gi, g in enumerate(groups):
            adv = group_advantages(torch.tensor(g.rewards), self.cfg.scale_rewards)
            signal = bool((adv.abs() > SIGNAL_EPS).any())
            stats.groups_with_signal += signal
            taught = g.teacher is not None and g.teacher.coef > 0
            if not signal and not taught and self.cfg.drop_zero_advantage:
                continue
            stats.groups_trained += 1
            truncated = g.truncated or [False] * len(g.completion_ids)
            weight = g.teacher.grpo_weight if g.teacher is not None else 1.0
            n = len(g.completion_ids)
            sampled = g.sampler_logprobs or [None] * n
            senders = g.sender_logprobs or [None] * n
            for i, (comp, a, cut, lp, sender) in enumerate(
                zip(g.completion_ids, adv.tolist(), truncated, sampled, senders, strict=True)
            ):
                keep = 0.0 if (cut and self.cfg.mask_truncated) else 1.0
                row = _teacher_row(g.teacher, i) if taught else None
                lp = lp if lp is not None and len(lp) == len(comp) else None
                if isinstance(sender, list) and len(sender) != len(comp):
                    sender = None  # our ids of the text differ from the sender's: no per-token
                rows.append(Row(prompt=g.prompt_ids, completion=comp, advantage=a * weight,
                                keep=keep, taught=row, sampled=lp, sender=sender,
                                local=g.local, group=gi))
        return rows

    def _importance_weights(
        self, trainer_logprobs: torch.Tensor, rows: list[Row], mask: torch.Tensor
    ) -> tuple[torch.Tensor | None, dict[str, float]]:
        """Per-token weights (None = all 1): truncated importance sampling of our own samples
        against our sampler (cap tis_cap), and of swarm samples against their sender's claimed
        log-probs (cap sender_cap <= 1, so a forged claim only lowers its own weight)."""
        weights, stats = None, {}
        trainer = trainer_logprobs.detach()
        if self.cfg.tis_cap > 0 and any(r.sampled is not None for r in rows):
            table = torch.full_like(trainer, float("nan"), dtype=torch.float32)
            for i, r in enumerate(rows):
                if r.sampled is not None:
                    table[i, : len(r.sampled)] = torch.tensor(r.sampled, dtype=torch.float32)
            weights, stats = truncated_importance_weights(trainer, table, mask, self.cfg.tis_cap)
        if self.sender_cap > 0 and any(r.sender is not None for r in rows):
            table = sender_logprob_table(trainer, [r.sender for r in rows], mask)
            sender_w, sender_stats = truncated_importance_weights(
                trainer, table, mask, self.sender_cap
            )
            weights = sender_w if weights is None else weights * sender_w
            stats.update({f"sender_{k}": v for k, v in sender_stats.items()})
        return weights, stats

    def _split_grads(self, p: Pass, max_tokens: int, split: int) -> list[list[torch.Tensor]]:
        """The gradients of one pass's parts apart (2: own rows and swarm rows; 3: the own
        rows' two halves and the swarm's), each scaled to the pass's share of the batch, so
        over the whole batch they sum to the one-pass gradient."""
        which = torch.tensor([r.part for r in p.rows], device=p.mask.device)
        selectors = [which != SWARM, which == SWARM] if split == 2 else [
            which == k for k in (OWN_A, OWN_B, SWARM)]
        total = p.mask.sum().clamp(min=1)
        parts = []
        for sel in selectors:
            m = p.mask * sel.float()[:, None]
            part, _ = grpo_loss(p.logp, p.old, p.token_adv, m, self.cfg, p.ref, max_tokens,
                                token_weights=p.weights)
            if self.cfg.loss_type == "dapo":  # a token mean: each part over the pass's tokens
                part = part * (m.sum() / total)
            parts.append(part * p.share)
        return [part_grads(x, self.params, retain=i < len(parts) - 1) for i, x in enumerate(parts)]

    @torch.no_grad()
    def _reference_logprobs(self, prompts: list, comps: list) -> tuple:
        """Old log-probs (only when several passes need a fixed ratio denominator) and ref's."""
        old = ref = None
        if self.cfg.num_iterations > 1:
            old, _ = self.policy.token_logprobs(prompts, comps)
        if self.ref_model is not None:
            ref, _ = sequence_logprobs(self.ref_model, prompts, comps, self.policy.pad_id)
        elif self.cfg.beta > 0:  # LoRA: the base model is the reference
            with self.policy.model.disable_adapter():
                ref, _ = self.policy.token_logprobs(prompts, comps)
        return old, ref

    # --- checkpoints -----------------------------------------------------------------------------
    def save(self, root: str | Path, step: int, extra: dict | None = None, keep: int = 2) -> Path:
        return save_checkpoint(root, self.policy, self.optimizer, step, extra, keep)

    def resume(self, root: str | Path) -> CheckpointState | None:
        """Restore the newest valid checkpoint under ``root``; None when there is none."""
        path = latest_checkpoint(root)
        return None if path is None else self.load(path)

    def load(self, path: str | Path) -> CheckpointState:
        """Restore the checkpoint at ``path`` (weights, optimizer state, RNGs, version): the one
        resume path, for :meth:`resume` and the node's (``LMBrain.load``) alike."""
        # load_state_dict takes the saved param groups' flags too; keep this machine's kernel
        # choice (a checkpoint from a machine without fused AdamW must not turn it off here).
        flags = [(g["fused"], g["foreach"]) for g in self.optimizer.param_groups]
        state = load_checkpoint(path, self.policy, self.optimizer)
        for g, (fused, foreach) in zip(self.optimizer.param_groups, flags, strict=True):
            g["fused"], g["foreach"] = fused, foreach
        return state


def _teacher_row(t: TeacherSignal | None, i: int) -> tuple[list[float], float, float] | None:
    if t is None or i >= len(t.logprobs):
        return None
    return (t.logprobs[i], t.coef, t.clip)


def make_adamw(params: Any, cfg: GRPOConfig) -> torch.optim.AdamW:
    """AdamW with the fused kernel where torch has one for the device (CPU and CUDA do): one
    kernel over all parameters instead of a Python loop of small ops, 3x less time in the step."""
    params = list(params)
    kw = {"lr": cfg.learning_rate, "betas": cfg.adam_betas, "weight_decay": cfg.weight_decay}
    try:
        return torch.optim.AdamW(params, fused=True, **kw)
    except (RuntimeError, ValueError):  # a device (or dtype) without the fused kernel
        return torch.optim.AdamW(params, **kw)
