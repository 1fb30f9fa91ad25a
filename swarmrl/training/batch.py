"""The batch as the learner sees it: a row per completion, passes of whole groups, and the
parts whose gradients are taken apart (the node's own rows and the swarm's: PCGrad under
``sapo.align``; two halves of its own and the swarm's: the swarm's value under ``sapo.adaptive``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

OWN_A, OWN_B, SWARM = 0, 1, 2  # the parts of a batch whose gradients sapo.adaptive compares


@dataclass
class Row:
    """One completion to train on."""

    prompt: list[int]
    completion: list[int]
    advantage: float
    keep: float  # 0 masks it out (a truncated completion under mask_truncated)
    taught: tuple[list[float], float, float] | None  # a teacher's log-probs, coefficient, clip
    sampled: list[float] | None  # our sampler's raw log-probs (TIS)
    sender: list[float] | float | None  # a peer's claimed log-probs (per token, or a sum)
    local: bool = True  # sampled by this node (vs. taken from the swarm)
    group: int = 0  # index of its group in the step's batch
    part: int = 0  # measuring the swarm's value: OWN_A / OWN_B (own groups alternately) / SWARM


@dataclass
class Pass:
    """One forward/backward pass of an update: whole groups' rows and what the pass keeps."""

    rows: list[Row]
    prompts: list[list[int]]
    comps: list[list[int]]
    adv: torch.Tensor  # [b] per sequence
    keep: torch.Tensor  # [b]
    tokens: int  # completion tokens that count in the loss
    seq_len: int = 0
    share: float = 1.0  # of the batch's loss normaliser
    old: torch.Tensor | None = None
    ref: torch.Tensor | None = None
    weights: torch.Tensor | None = None  # importance weights, fixed at the first iteration
    logp: torch.Tensor | None = None  # this iteration's
    mask: torch.Tensor | None = None
    token_adv: torch.Tensor | None = None


def micro_batches(rows: list[Row], groups_per_pass: int) -> list[list[Row]]:
    """The rows in passes of ``groups_per_pass`` whole groups (0: one pass)."""
    if groups_per_pass <= 0:
        return [rows]
    passes: list[list[Row]] = []
    seen: list[int] = []
    for r in rows:
        if not seen or r.group != seen[-1]:
            seen.append(r.group)
            if (len(seen) - 1) % groups_per_pass == 0:
                passes.append([])
        passes[-1].append(r)
    return passes


def assign_parts(rows: list[Row]) -> list[int]:
    """Mark each row OWN_A, OWN_B (this node's groups, alternately) or SWARM; returns how many
    rows that count in the loss each part has."""
    own = sorted({r.group for r in rows if r.local})
    half = {g: i % 2 for i, g in enumerate(own)}
    counts = [0, 0, 0]
    for r in rows:
        r.part = half[r.group] if r.local else SWARM
        counts[r.part] += r.keep > 0 and bool(r.completion)
    return counts


def swarm_value(
    params: list[torch.Tensor], grads: list[list[torch.Tensor]], counts: list[int], align: bool
) -> dict[str, float]:
    """What the swarm's rows are worth to this node's own objective, beside what its own are
    worth, to first order: a step along a gradient g changes the own loss by -lr <G, g>, G the
    own loss's true gradient, and an independent sample of own rows estimates G without bias.
    So <ours, swarm> estimates the swarm's part, and <half A, half B> (own rows, disjoint
    groups) an own part's; each over its pairs of rows, so the two are per row and comparable.
    Sets the parameters' gradients (the sum, or PCGrad's when ``align``)."""
    a, b, swarm = grads
    ours = [x + y for x, y in zip(a, b, strict=True)]
    dots = torch.stack([
        torch.stack([(x * y).sum(), (o * s).sum()])
        for x, y, o, s in zip(a, b, ours, swarm, strict=True)
    ]).sum(0).tolist()
    n_a, n_b, n_swarm = counts
    value = {"value_own": dots[0] / (n_a * n_b), "value_swarm": dots[1] / ((n_a + n_b) * n_swarm)}
    if align:
        value["align_cos"] = pcgrad(params, ours, swarm)
    else:
        for p, o, s in zip(params, ours, swarm, strict=True):
            p.grad = o + s
    return value


def pcgrad(
    params: list[torch.Tensor], ours: list[torch.Tensor], swarm: list[torch.Tensor]
) -> float:
    """Where the swarm's gradient conflicts with the node's own, it loses its component along
    ours (PCGrad, Yu et al. 2020), so to first order the swarm's groups never undo what the
    node's own teach. Sets the parameters' gradients; returns the two gradients' cosine."""
    dot, n_ours, n_swarm = torch.stack([  # one device sync for the three
        torch.stack([(a * b).sum(), (a * a).sum(), (b * b).sum()])
        for a, b in zip(ours, swarm, strict=True)
    ]).sum(0).tolist()
    if dot < 0 and n_ours > 0:
        swarm = [b - (dot / n_ours) * a for a, b in zip(ours, swarm, strict=True)]
    for p, a, b in zip(params, ours, swarm, strict=True):
        p.grad = a + b
    return dot / max(1e-12, (n_ours * n_swarm) ** 0.5)


def group_weights(
    weights: torch.Tensor | None, mask: torch.Tensor, rows: list[Row], n_groups: int
) -> list[float | None]:
    """Each group's mean token weight in this step's loss (1 without importance weights)."""
    real = (mask > 0).float()
    per_row = torch.stack([real.sum(-1), (real if weights is None else weights * real).sum(-1)])
    index = torch.tensor([r.group for r in rows], device=mask.device)
    counts, sums = torch.zeros(2, n_groups, device=mask.device).index_add_(1, index, per_row)
    return [s / c if c else None for s, c in zip(sums.tolist(), counts.tolist(), strict=True)]


def part_grads(loss: torch.Tensor, params: list[torch.Tensor], retain: bool) -> list[torch.Tensor]:
    out = torch.autograd.grad(loss, params, retain_graph=retain, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(out, params, strict=True)]
