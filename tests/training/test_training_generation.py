"""Generation backends: shapes, EOS, left padding, greedy agreement, sampling rule, determinism."""

from __future__ import annotations

import pytest
import torch
from _training_helpers import PROMPTS, random_policy

from swarmrl.config import GenerationConfig
from swarmrl.training.generation import top_p_filter

BACKENDS = ["fast", "hf"]


def gen(backend: str, **kw) -> GenerationConfig:
    return GenerationConfig(backend=backend, **kw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_shapes_and_eos(trained_policy, backend) -> None:
    pol = trained_policy
    out = pol.generate(PROMPTS, 5, gen(backend, max_new_tokens=12))
    assert len(out) == len(PROMPTS) and all(len(g) == 5 for g in out)
    lengths = set()
    for prompt, group in zip(PROMPTS, out, strict=True):
        for s in group:
            assert s.prompt_ids == pol.encode(prompt)
            assert 1 <= len(s.completion_ids) <= 12
            lengths.add(len(s.completion_ids))
            eos_at = [i for i, t in enumerate(s.completion_ids) if t == pol.eos_id]
            assert s.completion_ids.count(pol.pad_id) == 0
            if s.truncated:
                assert not eos_at and len(s.completion_ids) == 12
            else:  # stopped on EOS, which is kept as the last token
                assert eos_at == [len(s.completion_ids) - 1]
            assert s.text == pol.decode(s.completion_ids)
            assert len(s.logprobs) == len(s.completion_ids)
            assert all(lp <= 0 for lp in s.logprobs)
    assert len(lengths) > 1  # rows finished at different steps (the fast loop drops them)


def test_no_eos_means_truncated() -> None:
    pol = random_policy()
    out = pol.generate(PROMPTS[:1], 3, gen("fast", max_new_tokens=4, temperature=0))
    assert all(s.truncated and len(s.completion_ids) == 4 for s in out[0])


def test_greedy_backends_agree(trained_policy) -> None:
    cfg = dict(max_new_tokens=12, temperature=0)
    fast = trained_policy.generate(PROMPTS, 2, gen("fast", **cfg))
    hf = trained_policy.generate(PROMPTS, 2, gen("hf", **cfg))
    for gf, gh in zip(fast, hf, strict=True):
        for a, b in zip(gf, gh, strict=True):
            assert a.completion_ids == b.completion_ids and a.truncated == b.truncated
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_left_padding_does_not_change_outputs(trained_policy, backend) -> None:
    # Prompts of different lengths: batched, the short ones are left-padded.
    prompts = ["Q: 1 + 1 =\nA: <answer>", "Q: 68 - 32 =\nA: <answer>", "A: <answer>"]
    cfg = gen(backend, max_new_tokens=10, temperature=0)
    batched = trained_policy.generate(prompts, 1, cfg)
    for p, group in zip(prompts, batched, strict=True):
        alone = trained_policy.generate([p], 1, cfg)[0][0]
        assert group[0].completion_ids == alone.completion_ids


@pytest.mark.parametrize("backend", BACKENDS)
def test_sampling_is_seeded(trained_policy, backend) -> None:
    cfg = gen(backend, max_new_tokens=8)
    trained_policy.seed(7)
    a = trained_policy.generate(PROMPTS, 4, cfg)
    trained_policy.seed(7)
    b = trained_policy.generate(PROMPTS, 4, cfg)
    c = trained_policy.generate(PROMPTS, 4, cfg)
    ids = [[s.completion_ids for s in g] for g in a]
    assert ids == [[s.completion_ids for s in g] for g in b]
    assert ids != [[s.completion_ids for s in g] for g in c]


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_hidden_top_k(backend) -> None:
    # A random model is near-uniform over 258 tokens: 400 first tokens cover far more than the 50
    # that HF's default top_k=50 would allow.
    pol = random_policy()
    out = pol.generate(PROMPTS[:1], 400, gen(backend, max_new_tokens=1))
    assert len({s.completion_ids[0] for s in out[0]}) > 100


def test_sampler_logprobs_match_policy(trained_policy) -> None:
    # At temperature 1, top_p 1 the sampler's log-probs are the policy's own.
    out = trained_policy.generate(PROMPTS[:2], 3, gen("fast", max_new_tokens=10))
    samples = [s for g in out for s in g]
    logp, mask = trained_policy.token_logprobs([s.prompt_ids for s in samples],
                                               [s.completion_ids for s in samples])
    for i, s in enumerate(samples):
        n = len(s.completion_ids)
        assert torch.allclose(logp[i, :n], torch.tensor(s.logprobs), atol=1e-4)


def test_top_p_filter_like_hf() -> None:
    # probs 0.5, 0.3, 0.15, 0.05: top_p 0.7 keeps the smallest set reaching 0.7 -> {0.5, 0.3}.
    logits = torch.log(torch.tensor([[0.15, 0.5, 0.05, 0.3]]))
    kept = torch.isfinite(top_p_filter(logits, 0.7))
    assert kept.tolist() == [[False, True, False, True]]
    assert torch.isfinite(top_p_filter(logits, 0.01)).sum() == 1  # always keeps the top token
    assert torch.equal(top_p_filter(logits, 1.0), logits)
