"""The vLLM backend's CPU-checkable parts: the fallback, when weights are refreshed, and how an
engine's completion becomes a Sample. The engine itself runs in test_training_vllm_gpu.py."""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace

import pytest
from _training_helpers import PROMPTS, random_policy

from swarmrl.config import GenerationConfig
from swarmrl.training.generation import HFBackend, make_backend
from swarmrl.training.vllm_backend import (
    VLLMBackend,
    needs_sync,
    sample_from_output,
    vllm_unavailable,
)


def test_falls_back_to_hf_with_one_log_line(caplog) -> None:
    policy = random_policy()
    with caplog.at_level(logging.WARNING, logger="swarmrl.training.generation"):
        backend = make_backend("vllm", policy.model, policy.tokenizer, policy.generator)
    assert isinstance(backend, HFBackend)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "'vllm' cannot run here" in lines[0] and "'hf'" in lines[0]
    assert vllm_unavailable(policy.device) in lines[0]


def test_a_node_asking_for_vllm_still_samples() -> None:
    policy = random_policy()
    out = policy.generate(PROMPTS[:2], 3, GenerationConfig(backend="vllm", max_new_tokens=4))
    assert [len(g) for g in out] == [3, 3]
    assert all(s.raw_logprobs is not None for g in out for s in g)


def test_unknown_backend_is_a_clear_error() -> None:
    policy = random_policy()
    with pytest.raises(ValueError, match="unknown generation backend 'tgi'"):
        make_backend("tgi", policy.model, policy.tokenizer)


@pytest.mark.parametrize(
    "engine_version,version,max_lag,same_tensors,expected",
    [
        (None, 0, 0, True, True),  # no weights in the engine yet
        (3, 3, 0, True, False),  # up to date
        (3, 4, 0, False, True),  # one update behind, no lag allowed
        (3, 4, 1, False, False),  # within the allowed lag
        (3, 5, 1, False, True),  # past it
        (5, 2, 4, False, True),  # policy went back: a checkpoint was loaded
        (3, 3, 4, False, True),  # same version, tensors edited in place: a load
    ],
)
def test_when_weights_are_refreshed(engine_version, version, max_lag, same_tensors,
                                    expected) -> None:
    key = ((1, 0),)
    synced = key if same_tensors else ((1, 7),)
    assert needs_sync(engine_version, version, max_lag, synced, key) is expected


def _completion(tokens, logprobs, finish_reason):
    rows = [{t: SimpleNamespace(logprob=lp)} for t, lp in zip(tokens, logprobs, strict=True)]
    return SimpleNamespace(token_ids=tokens, logprobs=rows, finish_reason=finish_reason)


def test_engine_output_to_sample() -> None:
    policy = random_policy()
    backend = VLLMBackend(policy.model, policy.tokenizer)
    eos, a, b = policy.eos_id, *policy.encode("ab")
    prompt = policy.encode(PROMPTS[0])

    stopped = sample_from_output(backend, prompt, _completion([a, b, eos], [-1, -2, -0.5], "stop"))
    assert stopped.completion_ids == [a, b, eos] and not stopped.truncated
    assert stopped.text == "ab" and stopped.raw_logprobs == [-1, -2, -0.5]
    assert stopped.logprobs is None  # vLLM's are the raw model's, not the sampled distribution's

    cut = sample_from_output(backend, prompt, _completion([a, b], [-1, -2], "length"))
    assert cut.completion_ids == [a, b] and cut.truncated

    # An engine that strips the stop token: EOS goes back, with an unknown log-prob.
    stripped = sample_from_output(backend, prompt, _completion([a], [-1], "stop"))
    assert stripped.completion_ids == [a, eos] and not stripped.truncated
    assert stripped.raw_logprobs[0] == -1 and math.isnan(stripped.raw_logprobs[1])

    # A log-prob entry without the sampled token reads as unknown, never as an error.
    odd = SimpleNamespace(token_ids=[a, eos], logprobs=[{b: SimpleNamespace(logprob=-3)}],
                          finish_reason="stop")
    assert all(math.isnan(x) for x in sample_from_output(backend, prompt, odd).raw_logprobs)
