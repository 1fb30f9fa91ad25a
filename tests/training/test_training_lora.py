"""LoRA through peft (``model.lora``): only the adapters train, checkpoints hold only them and
their optimizer state, they load back exactly, and everything that reads the policy (sampling's
lean step, the reference model, vLLM's weights) sees the adapted model."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from _training_helpers import PROMPTS

from swarmrl.config import ConfigError, GenerationConfig, GRPOConfig, LoRAConfig, ModelConfig
from swarmrl.training.checkpoint import load_checkpoint, save_checkpoint
from swarmrl.training.learner import Learner, TokenGroup
from swarmrl.training.lora import merged_state_dict
from swarmrl.training.policy import Policy, load_policy

pytest.importorskip("peft")


def lora_policy(seed: int = 0, **lora: object) -> Policy:
    cfg = ModelConfig(name="tiny-0.5m", warm_start=False, device="cpu", init_seed=seed,
                      lora=LoRAConfig(enabled=True, **lora))
    return load_policy(cfg, seed=seed)


def plain_policy(seed: int = 0) -> Policy:
    return load_policy(ModelConfig(name="tiny-0.5m", warm_start=False, device="cpu",
                                   init_seed=seed), seed=seed)


def batch(pol: Policy) -> list[TokenGroup]:
    prompt = pol.encode(PROMPTS[0])
    return [TokenGroup(prompt, [[50, 51, pol.eos_id], [52, 53]], [1.0, 0.0]),
            TokenGroup(pol.encode(PROMPTS[1]), [[54, pol.eos_id], [55, 56, 57]], [0.0, 1.0])]


def logprobs(pol: Policy) -> torch.Tensor:
    with torch.no_grad():
        return pol.token_logprobs([pol.encode(p) for p in PROMPTS],
                                  [[40, 41, 42]] * len(PROMPTS))[0]


def step(pol: Policy, n: int = 2, **grpo: object) -> Learner:
    learner = Learner(pol, GRPOConfig(**{"learning_rate": 5e-2, "autocast": "off", **grpo}))
    for _ in range(n):
        learner.train_step(batch(pol))
    return learner


def test_only_the_adapters_train_and_they_start_as_the_base_model() -> None:
    pol, base = lora_policy(), plain_policy()
    # B = 0: the same model until trained (peft's forward rounds differently in the last bit)
    assert torch.allclose(logprobs(pol), logprobs(base), atol=1e-6, rtol=0)
    frozen = {k: v.clone() for k, v in pol.model.get_base_model().state_dict().items()
              if "lora_" not in k}
    learner = step(pol)
    trained = [p for p in pol.model.parameters() if p.requires_grad]
    assert learner.params == trained and 0 < sum(p.numel() for p in trained) < 200_000
    assert all(".lora_" in n for n, p in pol.model.named_parameters() if p.requires_grad)
    after = pol.model.get_base_model().state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen.items())  # base weights untouched
    assert not torch.equal(logprobs(pol), logprobs(base))  # but the policy moved
    held = {id(p) for p in learner.optimizer.state}
    assert held == {id(p) for p in trained}


def test_checkpoints_hold_the_adapters_and_load_back_exactly(tmp_path: Path) -> None:
    pol = lora_policy()
    learner = step(pol)
    path = save_checkpoint(tmp_path, pol, learner.optimizer, step=2)
    files = {f.name for f in (path / "model").iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json"} <= files
    assert not any(f.startswith("model") and f.endswith(".safetensors") for f in files)
    full = save_checkpoint(tmp_path / "full", plain_policy(), None, step=1)
    adapter_bytes = (path / "model" / "adapter_model.safetensors").stat().st_size
    assert adapter_bytes * 5 < (full / "model" / "model.safetensors").stat().st_size

    fresh = lora_policy(seed=0)
    fresh_learner = Learner(fresh, GRPOConfig(learning_rate=5e-2, autocast="off"))
    state = load_checkpoint(path, fresh, fresh_learner.optimizer)
    assert state.step == 2 and fresh.version == pol.version
    assert torch.equal(logprobs(fresh), logprobs(pol))
    saved = learner.optimizer.state_dict()["state"]
    loaded = fresh_learner.optimizer.state_dict()["state"]
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k]["exp_avg"], loaded[k]["exp_avg"]) for k in saved)
    # one more step from either is the same step
    learner.train_step(batch(pol))
    fresh_learner.train_step(batch(fresh))
    assert torch.allclose(logprobs(fresh), logprobs(pol), atol=1e-6)


def test_a_checkpoint_of_the_other_kind_is_refused_with_what_to_do(tmp_path: Path) -> None:
    lora_ckpt = save_checkpoint(tmp_path / "a", lora_policy(), None, step=1)
    full_ckpt = save_checkpoint(tmp_path / "b", plain_policy(), None, step=1)
    with pytest.raises(ValueError, match="holds LoRA adapters.*set model.lora.enabled"):
        load_checkpoint(lora_ckpt, plain_policy())
    with pytest.raises(ValueError, match="holds full model weights"):
        load_checkpoint(full_ckpt, lora_policy())
    with pytest.raises(ValueError, match="adapters do not fit"):
        load_checkpoint(lora_ckpt, lora_policy(r=4))


def test_lean_decode_samples_the_adapted_model() -> None:
    pol = lora_policy()
    step(pol, n=3)
    cfg = dict(max_new_tokens=12)

    def sample(decode: str, **kw: object) -> list[tuple]:
        pol.seed(5)
        out = pol.generate(PROMPTS, 4, GenerationConfig(decode=decode, **{**cfg, **kw}))
        return [(s.completion_ids, s.logprobs) for g in out for s in g]

    for kw in ({}, {"temperature": 0}):
        lean, ref = sample("lean", **kw), sample("model", **kw)
        assert [t for t, _ in lean] == [t for t, _ in ref]
        for (_, a), (_, b) in zip(lean, ref, strict=True):
            # merged W + BA vs. the forward's x W + (x A) B: equal up to float rounding
            assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-4, rtol=0)


def test_merged_weights_are_the_base_models_names_with_the_adapters_in() -> None:
    pol = lora_policy()
    step(pol)
    merged = merged_state_dict(pol.model)
    reference = copy.deepcopy(pol.model).merge_and_unload().state_dict()
    assert merged.keys() == reference.keys()
    assert all(torch.allclose(merged[k], reference[k], atol=1e-6) for k in merged)
    assert merged.keys() == plain_policy().model.state_dict().keys()


def test_the_reference_of_a_lora_policy_is_its_base_model() -> None:
    pol = lora_policy()
    learner = step(pol, n=3, beta=0.1)
    assert learner.ref_model is None  # no full copy of the weights
    st = learner.train_step(batch(pol))
    assert st.kl > 0  # the adapters moved the policy away from the base model


def test_bad_lora_config_is_one_line_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"model\.lora\.target_modules"):
        lora_policy(target_modules=["no_such_proj"])
