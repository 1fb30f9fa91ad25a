"""The hot path of every GRPO step: the log-prob of each chosen token.

Everything in training that needs per-token log-probs goes through :func:`selective_logprobs`,
which hands the work to ``swarmrl.kernels`` (Triton on CUDA: an online log-sum-exp over
vocabulary blocks, and from the hidden state a chunked LM head so the full logits never exist;
the PyTorch reference elsewhere). :func:`sequence_logprobs` runs a model over prompts and
completions and returns each completion token's log-prob: the policy's, a frozen reference
model's, and the warm start's (here, not in policy.py, so warmstart.py, which policy.py loads,
does not import policy.py back).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from swarmrl.kernels import fused_linear_logprobs, token_logprobs

# Architectures whose logits are exactly lm_head(final hidden state): for these we apply the head
# only at completion positions. Others (soft-capping, logit scales...) go through the full forward.
_PLAIN_HEAD_TYPES = {"qwen2", "qwen3", "llama", "mistral", "qwen2_moe", "qwen3_moe"}


def selective_logprobs(
    hidden_or_logits: torch.Tensor, ids: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """log p(ids) per position.

    ``hidden_or_logits``: [..., V] logits, or [..., H] hidden states when ``weight`` ([V, H], the
    LM head) is given. ``ids``: [...] token ids. Returns [...] float32 log-probs.
    """
    if weight is None:
        return token_logprobs(hidden_or_logits, ids)[0]
    return fused_linear_logprobs(hidden_or_logits, weight, ids)[0]


def _pack(
    prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """[left-padded prompt | right-padded completion] rows, so completions start at column P."""
    if len(prompt_ids) != len(completion_ids) or not prompt_ids:
        raise ValueError("need one prompt per completion and at least one row")
    if any(not p for p in prompt_ids):
        raise ValueError("empty prompt: at least one prompt token is needed")
    P = max(len(p) for p in prompt_ids)
    L = max(1, max(len(c) for c in completion_ids))
    ids = torch.full((len(prompt_ids), P + L), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, (p, c) in enumerate(zip(prompt_ids, completion_ids, strict=True)):
        ids[i, P - len(p): P + len(c)] = torch.tensor(list(p) + list(c), dtype=torch.long)
        mask[i, P - len(p): P + len(c)] = 1
    return ids.to(device), mask.to(device), P


def sequence_logprobs(
    model: Any, prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """See :meth:`Policy.token_logprobs`; a function so a frozen reference model can use it too."""
    device = next(model.parameters()).device
    ids, mask, P = _pack(prompt_ids, completion_ids, pad_id, device)
    L = ids.shape[1] - P
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    targets = ids[:, P:]
    head = model.get_output_embeddings()
    plain = (model.config.model_type in _PLAIN_HEAD_TYPES and isinstance(head, nn.Linear)
             and head.bias is None)
    unique, index = _runs(prompt_ids)
    if plain and len(unique) < len(prompt_ids):
        hidden = _shared_prompt_hidden(model, unique, index, targets, mask[:, P:], pad_id)
        logp = selective_logprobs(hidden, targets, head.weight)
    elif plain:
        # Hidden states only; the LM head runs on the L completion positions, not the prompt.
        hidden = model.get_decoder()(input_ids=ids, attention_mask=mask, position_ids=pos,
                                     use_cache=False).last_hidden_state
        logp = selective_logprobs(hidden[:, P - 1: P + L - 1], targets, head.weight)
    else:
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False,
                       logits_to_keep=L + 1).logits
        logp = selective_logprobs(logits[:, :-1], targets)
    comp_mask = mask[:, P:].to(logp.dtype)
    # Padding positions can hold any value; zero them (where, not *, so a NaN cannot leak).
    return torch.where(comp_mask > 0, logp, torch.zeros_like(logp)), comp_mask


def _runs(prompt_ids: list[list[int]]) -> tuple[list[list[int]], list[int]]:
    """Distinct prompts of consecutive rows (a group's G rows share one) and each row's index."""
    unique: list[list[int]] = []
    index: list[int] = []
    for p in prompt_ids:
        if not unique or list(unique[-1]) != list(p):
            unique.append(list(p))
        index.append(len(unique) - 1)
    return unique, index


def _shared_prompt_hidden(
    model: Any, unique: list[list[int]], index: list[int], completions: torch.Tensor,
    comp_mask: torch.Tensor, pad_id: int,
) -> torch.Tensor:
    """Final hidden states predicting each completion token, running each prompt only once.

    The prompt is most of a short completion's sequence and every row of a group repeats it, so
    the prompt pass runs once per distinct prompt and its (differentiable) KV cache is indexed
    out to the rows; the completions then run against that cache. Same values as the full
    forward up to float rounding, for a fraction of the compute.
    """
    device = completions.device
    pids, pmask = _left_pad_ids(unique, pad_id, device)
    ppos = (pmask.cumsum(-1) - 1).clamp(min=0)
    decoder = model.get_decoder()
    out = decoder(input_ids=pids, attention_mask=pmask, position_ids=ppos, use_cache=True)
    rows = torch.tensor(index, device=device)
    cache = out.cache
    cache.batch_select_indices(rows)
    L = completions.shape[1]
    cpos = ppos[rows, -1:] + 1 + torch.arange(L, device=device)
    full_mask = torch.cat([pmask[rows], comp_mask.to(pmask.dtype)], dim=1)
    h = decoder(input_ids=completions, attention_mask=full_mask, position_ids=cpos,
                cache=cache, use_cache=True).last_hidden_state
    # Token t of a completion is predicted from position t-1: the prompt's last state first.
    return torch.cat([out.last_hidden_state[rows, -1:], h[:, :-1]], dim=1)


def _left_pad_ids(seqs: list[list[int]], pad_id: int, device: torch.device) -> tuple:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
        mask[i, width - len(s):] = 1
    return ids.to(device), mask.to(device)
