"""The lean decode step: the same samples as the model's own forward (fp32, bit for bit), fresh
weights after every update, and a clean fallback for architectures it does not cover."""

from __future__ import annotations

import pytest
import torch
from _training_helpers import PROMPTS, random_policy
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from swarmrl.config import GenerationConfig, GRPOConfig
from swarmrl.training.generation import FastBackend, resolve_decode
from swarmrl.training.learner import Learner, TokenGroup
from swarmrl.training.policy import Policy
from swarmrl.training.tiny import build_tiny_tokenizer


def eos_prone_policy(seed: int = 0) -> Policy:
    """A random tiny-0.5m whose EOS logit is raised (no warm start needed): rows stop at
    varied steps, so the loop's row dropping is exercised."""
    pol = random_policy(seed)
    model = pol.model
    with torch.no_grad():
        ids = torch.tensor([pol.encode(p) for p in PROMPTS[:1]])
        h = model.get_decoder()(input_ids=ids).last_hidden_state.mean(dim=(0, 1))
        # Tied embeddings: the EOS logit is h . E[eos]; point E[eos] along the typical h.
        model.get_output_embeddings().weight[pol.eos_id] = 2.5 * h / h.norm() ** 2
    return pol


def samples(pol: Policy, decode: str, seed: int = 3, **kw) -> list[tuple]:
    pol.seed(seed)
    cfg = GenerationConfig(decode=decode, **{"max_new_tokens": 20, **kw})
    out = pol.generate(PROMPTS, 6, cfg)
    return [(s.completion_ids, s.truncated, s.logprobs) for g in out for s in g]


@pytest.mark.parametrize("sampling", [
    {}, {"temperature": 0.7, "top_p": 0.9}, {"temperature": 0}, {"temperature": 1.5},
])
def test_lean_equals_model_forward_bit_for_bit(sampling) -> None:
    pol = eos_prone_policy()
    lean = samples(pol, "lean", **sampling)
    assert lean == samples(pol, "model", **sampling)  # tokens, stops and float log-probs
    lengths = {len(ids) for ids, _, _ in lean}
    if sampling.get("temperature") != 0:  # greedy rows of one prompt all stop together
        assert any(not cut for _, cut, _ in lean) and any(cut for _, cut, _ in lean)
        assert len(lengths) > 2


def test_eos_is_kept_and_ends_the_row() -> None:
    pol = eos_prone_policy()
    for ids, cut, logps in samples(pol, "lean"):
        assert len(logps) == len(ids)
        if cut:
            assert pol.eos_id not in ids and len(ids) == 20
        else:
            assert ids.index(pol.eos_id) == len(ids) - 1


def test_lean_weights_follow_the_policy_version() -> None:
    pol = eos_prone_policy()
    samples(pol, "lean")  # builds the lean weights at version 0
    learner = Learner(pol, GRPOConfig(learning_rate=5e-2, autocast="off"))
    prompt = pol.encode(PROMPTS[0])
    learner.train_step([TokenGroup(prompt, [[50, pol.eos_id], [51, 52]], [1.0, 0.0])])
    assert pol.version == 1
    assert samples(pol, "lean") == samples(pol, "model")


def test_lean_weights_follow_in_place_loads() -> None:
    pol = eos_prone_policy()
    before = samples(pol, "lean")
    other = eos_prone_policy(seed=1)
    pol.model.load_state_dict(other.model.state_dict())  # same version, new weights
    after = samples(pol, "lean")
    assert after != before and after == samples(pol, "model")


def test_bf16_copy_samples_close_to_the_policy() -> None:
    pol = eos_prone_policy()
    lean16 = samples(pol, "lean-bf16", temperature=0)
    fp32 = samples(pol, "lean", temperature=0)
    assert all(p.dtype == torch.float32 for p in pol.model.parameters())  # the policy is untouched
    same = sum(a[0][:3] == b[0][:3] for a, b in zip(lean16, fp32, strict=True))
    assert same >= len(fp32) // 2  # rounding may flip a near-tie, not most rows


def small(kind: str, seed: int = 0) -> Policy:
    """A random two-layer model of another architecture the lean step covers, on the tiny
    byte tokenizer (grouped-query attention; Qwen3 adds its q/k norms, Llama a tied head)."""
    torch.manual_seed(seed)
    common = dict(vocab_size=258, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, eos_token_id=256,
                  pad_token_id=257)
    if kind == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common, tie_word_embeddings=True))
    elif kind == "llama-bias":
        model = LlamaForCausalLM(LlamaConfig(**common, attention_bias=True))
    elif kind == "qwen3":
        model = Qwen3ForCausalLM(Qwen3Config(**common, head_dim=16))
    else:
        model = MistralForCausalLM(MistralConfig(**common, sliding_window=None))
    return Policy(model.train(), build_tiny_tokenizer(), model_id=kind, seed=seed)


@pytest.mark.parametrize("kind", ["llama", "llama-bias", "qwen3", "mistral"])
def test_lean_runs_the_llama_family_bit_for_bit(kind: str) -> None:
    """Same tokens and stops; log-probs equal up to the attention kernel's rounding: with
    grouped heads (and a mask) transformers repeats k/v before SDPA, the lean step lets SDPA
    group them (4x faster at SmolLM2's 9/3 heads), which rounds differently (~1e-6)."""
    pol = small(kind)
    assert resolve_decode("auto", pol.model) == "lean"
    for kw in ({}, {"temperature": 0}, {"temperature": 0.7, "top_p": 0.9}):
        lean, ref = samples(pol, "lean", **kw), samples(pol, "model", **kw)
        assert [x[:2] for x in lean] == [x[:2] for x in ref]
        for (_, _, a), (_, _, b) in zip(lean, ref, strict=True):
            assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-5, rtol=0)


def test_lean_is_bit_for_bit_without_grouped_heads() -> None:
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=258, hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4,
                                         eos_token_id=256, pad_token_id=257))
    pol = Policy(model.train(), build_tiny_tokenizer(), model_id="llama", seed=0)
    assert samples(pol, "lean") == samples(pol, "model")


def test_auto_picks_lean_for_its_family_and_the_model_forward_elsewhere() -> None:
    pol = random_policy()
    assert resolve_decode("auto", pol.model) == "lean"  # tiny-0.5m: below the bf16 size
    tok = build_tiny_tokenizer()
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=258, n_embd=64, n_layer=1, n_head=2,
                                      eos_token_id=256, pad_token_id=257)).eval()
    assert resolve_decode("auto", gpt2) == "model"
    with pytest.raises(ValueError, match="the lean step runs llama"):
        resolve_decode("lean", gpt2)
    out = FastBackend(gpt2, tok, torch.Generator().manual_seed(0)).generate(
        PROMPTS[:2], 3, GenerationConfig(max_new_tokens=5))
    assert all(len(s.completion_ids) == 5 for g in out for s in g)
    windowed = MistralForCausalLM(MistralConfig(vocab_size=258, hidden_size=64,
                                                intermediate_size=128, num_hidden_layers=1,
                                                num_attention_heads=2, sliding_window=16))
    assert resolve_decode("auto", windowed) == "model"
