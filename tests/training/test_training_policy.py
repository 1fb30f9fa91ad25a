"""Policy: token log-probs against a manual full forward, retokenization, loading."""

from __future__ import annotations

import pytest
import torch

from swarmrl.config import ModelConfig
from swarmrl.training import logprobs as logprobs_mod
from swarmrl.training.policy import load_policy, resolve_device, resolve_dtype


def manual_logprobs(model, prompt: list[int], completion: list[int]) -> torch.Tensor:
    """One unpadded sequence, full logits, log_softmax: the definition, no shortcuts."""
    ids = torch.tensor([prompt + completion])
    logits = model(input_ids=ids).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    P = len(prompt)
    return torch.stack([logp[P - 1 + i, t] for i, t in enumerate(completion)])


PROMPT_IDS = [[81, 58, 32, 49, 10, 65, 58], [65, 58], [81, 58, 32, 54, 56, 32, 45, 10, 65]]
COMPLETION_IDS = [[51, 54, 256], [52, 53, 54, 55, 56, 57], [48]]


@pytest.mark.parametrize("plain_head", [True, False])
def test_token_logprobs_match_full_forward(trained_policy, monkeypatch, plain_head) -> None:
    if not plain_head:  # the generic path: full forward with logits_to_keep
        monkeypatch.setattr(logprobs_mod, "_PLAIN_HEAD_TYPES", set())
    pol = trained_policy
    logp, mask = pol.token_logprobs(PROMPT_IDS, COMPLETION_IDS)
    assert logp.shape == mask.shape == (3, 6)
    assert mask.tolist() == [[1, 1, 1, 0, 0, 0], [1] * 6, [1, 0, 0, 0, 0, 0]]
    with torch.no_grad():
        for i, (p, c) in enumerate(zip(PROMPT_IDS, COMPLETION_IDS, strict=True)):
            assert torch.allclose(logp[i, : len(c)], manual_logprobs(pol.model, p, c), atol=1e-5)
    assert torch.all(logp[mask == 0] == 0)


def test_shared_prompt_path_matches_full_forward(trained_policy, monkeypatch) -> None:
    """Rows in runs of one prompt (a group's G completions) run the prompt once; same numbers."""
    pol = trained_policy
    prompts = [PROMPT_IDS[0]] * 3 + [PROMPT_IDS[1]] * 2 + [PROMPT_IDS[0]]
    comps = [[51, 54, 256], [52], [53, 54, 55, 56, 57, 58], [48, 256], [], [50, 50]]
    logp, mask = pol.token_logprobs(prompts, comps)
    assert mask.sum(-1).tolist() == [len(c) for c in comps]
    for i, (p, c) in enumerate(zip(prompts, comps, strict=True)):
        if c:
            with torch.no_grad():
                expected = manual_logprobs(pol.model, p, c)
            assert torch.allclose(logp[i, : len(c)], expected, atol=1e-5)
    # Gradients agree with the one-pass path too.
    (logp * mask).sum().backward()
    shared = [p.grad.clone() for p in pol.model.parameters()]
    pol.model.zero_grad()
    monkeypatch.setattr(logprobs_mod, "_runs", lambda ps: (ps, list(range(len(ps)))))
    full, full_mask = pol.token_logprobs(prompts, comps)
    assert torch.allclose(full, logp, atol=1e-5)
    (full * full_mask).sum().backward()
    for a, p in zip(shared, pol.model.parameters(), strict=True):
        assert torch.allclose(a, p.grad, atol=1e-5, rtol=1e-4)
    pol.model.zero_grad()


def test_token_logprobs_gradient_is_finite(policy) -> None:
    logp, mask = policy.token_logprobs(PROMPT_IDS, COMPLETION_IDS)
    (logp * mask).sum().backward()
    grads = [p.grad for p in policy.model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_token_logprobs_rejects_bad_input(policy) -> None:
    with pytest.raises(ValueError):
        policy.token_logprobs([[]], [[1]])
    with pytest.raises(ValueError):
        policy.token_logprobs([[1], [2]], [[1]])


def test_retokenize(policy) -> None:
    ids = policy.retokenize("36</answer>")
    assert ids[-1] == policy.eos_id and policy.decode(ids) == "36</answer>"
    assert policy.retokenize("36</ans", ended=False) == list(b"36</ans")
    # Text from another model, with unicode: bytes in, same text out.
    assert policy.decode(policy.retokenize("é 日本 🎉")) == "é 日本 🎉"


def test_fingerprint_and_version(policy, tokenizer) -> None:
    from swarmrl.training.tiny import tokenizer_fingerprint

    assert policy.fingerprint == tokenizer_fingerprint(tokenizer)
    assert policy.version == 0 and policy.model_id == "tiny-0.5m"


def test_resolve_device_and_dtype() -> None:
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("bfloat16", cpu) == torch.bfloat16
    assert resolve_device("cpu") == cpu
    if not torch.cuda.is_available():
        assert resolve_device("auto") == cpu


def test_load_policy_dtype() -> None:
    pol = load_policy(ModelConfig(name="tiny-0.5m", warm_start=False, device="cpu",
                                  dtype="bfloat16"))
    assert next(pol.model.parameters()).dtype == torch.bfloat16
    logp, _ = pol.token_logprobs(PROMPT_IDS, COMPLETION_IDS)
    assert logp.dtype == torch.float32  # log-probs are always computed in fp32


def test_the_lm_head_gets_a_contiguous_input(policy) -> None:
    """transformers slices the positions to score (logits_to_keep) out of the hidden states;
    torch's CPU linear of that strided view is up to 300x slower in bf16: load_policy makes
    the head's input contiguous first, same logits."""
    head = policy.model.get_output_embeddings()
    seen: list[bool] = []
    hook = head.register_forward_pre_hook(lambda _m, args: seen.append(args[0].is_contiguous()))
    ids = torch.tensor([[81, 58, 32, 49, 10, 65], [81, 58, 32, 50, 10, 65]])
    with torch.no_grad():
        kept = policy.model(input_ids=ids, logits_to_keep=2).logits
        full = policy.model(input_ids=ids).logits
    hook.remove()
    assert seen == [True, True]
    assert torch.allclose(kept, full[:, -2:], atol=1e-6)
