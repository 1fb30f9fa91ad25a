"""How surprising a text is to a policy, beyond what the policy itself expects.

For each completion token: its surprisal under the policy, -log p(token), minus the entropy of
the policy's distribution at that position (the surprisal the policy expects of its own
samples there). The sum over a completion's tokens is its *excess surprise*: about 0 for text
the policy could have sampled itself (exactly 0 in expectation, for temperature-1 samples),
about 0 too for honest text where the policy is merely unsure (an answer to a problem it cannot
solve: high surprisal, but high entropy too), and large for junk, which is surprising where the
policy is sure (after ``</answer>`` a trained policy expects the end of text, not more).

The plain mean token log-prob does not tell these apart on tiny models: honest answers to a
peer's problems (which the policy is unsure of) score as low as junk (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any

import torch

from swarmrl.kernels import token_logprobs
from swarmrl.training.logprobs import _pack
from swarmrl.training.policy import eval_mode
from swarmrl.training.precision import autocast


@torch.no_grad()
def excess_surprise(
    policy: Any, rows: list[tuple[list[int], list[int]]], bf16: bool = False
) -> list[float]:
    """Sum over each (prompt ids, completion ids) row's tokens of -log p(token) - H(position).

    A sum, not a mean: a few junk tokens where the policy is sure cost as much however long the
    honest part around them is."""
    if not rows:
        return []
    with eval_mode(policy.model) as model:
        device = next(model.parameters()).device
        ids, mask, P = _pack([p for p, _ in rows], [c for _, c in rows], policy.pad_id, device)
        L = ids.shape[1] - P
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with autocast(bf16, device, ids.shape[1]):  # as the learner runs (grpo.autocast)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos,
                           use_cache=False, logits_to_keep=L + 1).logits
        logp, entropy = token_logprobs(logits[:, :-1].float(), ids[:, P:], with_entropy=True)
    comp = mask[:, P:].float()
    return ((-logp - entropy) * comp).sum(-1).cpu().tolist()

