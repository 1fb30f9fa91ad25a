"""The vLLM backend on a real GPU (skipped without CUDA and vLLM: ``pip install 'swarmrl[gpu]'``).

One engine for the module (vLLM takes tens of seconds to start). Checks what the CPU tests
cannot: the engine samples with the policy's weights (its raw log-probs are the trainer's, up to
bf16 kernels), an update reaches it without a restart, and a lag is respected.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from _training_helpers import PROMPTS
from transformers import Qwen2Config, Qwen2ForCausalLM

from swarmrl.config import GenerationConfig, GRPOConfig
from swarmrl.training.learner import Learner, TokenGroup
from swarmrl.training.policy import Policy
from swarmrl.training.tiny import BYTE_VOCAB, TINY_VOCAB_SIZE, build_tiny_tokenizer
from swarmrl.training.vllm_backend import VLLMBackend

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs vLLM"),
]

GEN = GenerationConfig(backend="vllm", max_new_tokens=16, temperature=1.0,
                       vllm_gpu_memory_utilization=0.2, vllm_enforce_eager=True)


@pytest.fixture(scope="module")
def policy() -> Policy:
    # A small Qwen2 with a head size every vLLM attention backend takes (64).
    config = Qwen2Config(vocab_size=TINY_VOCAB_SIZE, hidden_size=256, intermediate_size=512,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, tie_word_embeddings=True,
                         eos_token_id=BYTE_VOCAB, pad_token_id=BYTE_VOCAB + 1)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to("cuda", torch.bfloat16)
    return Policy(model, build_tiny_tokenizer(), model_id="qwen2-test", seed=0)


def _gap(policy: Policy, samples: list) -> float:
    """Mean |engine raw log-prob - trainer log-prob| over the samples' tokens."""
    with torch.no_grad():
        logp, mask = policy.token_logprobs([s.prompt_ids for s in samples],
                                           [s.completion_ids for s in samples])
    raw = torch.zeros_like(logp)
    for i, s in enumerate(samples):
        raw[i, : len(s.raw_logprobs)] = torch.tensor(s.raw_logprobs, device=logp.device)
    return float(((raw - logp).abs() * mask).sum() / mask.sum())


def test_engine_follows_the_policy(policy) -> None:
    backend = VLLMBackend(policy.model, policy.tokenizer, policy.generator,
                          lambda: policy.version)
    policy._backends["vllm"] = backend
    groups = policy.generate(PROMPTS, 4, GEN)
    samples = [s for g in groups for s in g]
    assert len(samples) == 4 * len(PROMPTS) and backend.syncs == 1
    assert all(len(s.raw_logprobs) == len(s.completion_ids) for s in samples)
    assert _gap(policy, samples) < 0.05  # same weights, different bf16 kernels

    # A large update: the engine must sample from the new weights, not the old.
    learner = Learner(policy, GRPOConfig(learning_rate=5e-3, autocast="off"))
    for _ in range(3):
        stats = learner.train_step([
            TokenGroup(g[0].prompt_ids, [x.completion_ids for x in g],
                  [float(i % 2) for i in range(len(g))])
            for g in groups
        ])
        assert not stats.skipped
    after = [s for g in policy.generate(PROMPTS, 4, GEN) for s in g]
    assert backend.syncs == 2 and backend.engine_version == policy.version == 3
    assert _gap(policy, after) < 0.05

    # With a lag of 1 the next version is sampled from the engine's current weights.
    learner.train_step([TokenGroup(after[0].prompt_ids, [s.completion_ids for s in after[:4]],
                              [1.0, 0.0, 1.0, 0.0])])
    policy.generate(PROMPTS[:1], 2, GEN.model_copy(update={"vllm_max_lag": 1}))
    assert backend.syncs == 2 and backend.engine_version == 3 and policy.version == 4
    policy.generate(PROMPTS[:1], 2, GEN)
    assert backend.syncs == 3 and backend.engine_version == 4

    # Greedy: one request per prompt, repeated (one engine per process: the same one).
    out = backend.generate(PROMPTS[:2], 3, GEN.model_copy(update={"temperature": 0.0}))
    assert all(len({tuple(s.completion_ids) for s in g}) == 1 and len(g) == 3 for g in out)
    backend.close()
