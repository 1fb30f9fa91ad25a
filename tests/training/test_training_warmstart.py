"""Warm start: cached by recipe, built once (even by concurrent builders), reused after."""

from __future__ import annotations

import threading

import pytest
import torch

from swarmrl.config import ModelConfig
from swarmrl.training import warmstart
from swarmrl.training.policy import load_policy
from swarmrl.training.warmstart import (
    WarmStartRecipe,
    _batch,
    lr_factor,
    recipe_for,
    warm_start_dir,
    warm_start_model,
)


def cfg(tmp_path, **kw) -> ModelConfig:
    return ModelConfig(name="tiny-0.5m", warm_start_steps=3, device="cpu",
                       cache_dir=str(tmp_path), **kw)


def count_builds(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = warmstart.train_warm_start

    def counting(recipe, progress=True):
        calls.append(recipe.steps)
        return real(recipe, progress=False)

    monkeypatch.setattr(warmstart, "train_warm_start", counting)
    return calls


def test_built_once_then_reused(tmp_path, monkeypatch) -> None:
    calls = count_builds(monkeypatch)
    a = warm_start_model(cfg(tmp_path), progress=False)
    b = warm_start_model(cfg(tmp_path), progress=False)
    assert calls == [3]
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    entries = sorted(p.name for p in warm_start_dir(cfg(tmp_path)).iterdir())
    key = recipe_for(cfg(tmp_path)).key()
    assert entries == [key, f"{key}.lock"]  # no temporary directory left behind
    assert (warm_start_dir(cfg(tmp_path)) / key / "model.safetensors").is_file()
    # It differs from the untrained model, and load_policy goes through the cache.
    pol = load_policy(cfg(tmp_path), progress=False)
    assert calls == [3]
    fresh = load_policy(cfg(tmp_path, warm_start=False))
    emb = pol.model.model.embed_tokens.weight
    assert not torch.equal(emb, fresh.model.model.embed_tokens.weight)


def test_concurrent_builders_build_once(tmp_path, monkeypatch) -> None:
    calls = count_builds(monkeypatch)
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        warm_start_model(cfg(tmp_path), progress=False))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [3] and len(results) == 2


def test_key_covers_the_recipe() -> None:
    base = WarmStartRecipe(model="tiny-0.5m", steps=600)
    keys = {base.key(), WarmStartRecipe(model="tiny-4m", steps=600).key(),
            WarmStartRecipe(model="tiny-0.5m", steps=601).key(),
            WarmStartRecipe(model="tiny-0.5m", steps=600, seed=1).key(),
            WarmStartRecipe(model="tiny-0.5m", steps=600, max_digits=3).key(),
            WarmStartRecipe(model="tiny-0.5m", steps=600, version=99).key()}
    assert len(keys) == 6
    assert base.key() == WarmStartRecipe(model="tiny-0.5m", steps=600).key()


def test_lr_schedule() -> None:
    r = WarmStartRecipe(model="tiny-0.5m", steps=100, warmup_steps=10, final_lr_frac=0.1)
    assert lr_factor(r, 0) == pytest.approx(0.1 * (0.1 + 0.9 * (1 + 1) / 2))
    assert lr_factor(r, 9) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(
        0.09 * torch.pi)).item()))
    assert lr_factor(r, 100) == pytest.approx(0.1)


def test_data_is_the_arith_family_in_short_style(tokenizer) -> None:
    recipe = WarmStartRecipe(model="tiny-0.5m", steps=2, batch_size=50)
    prompts, targets = _batch(recipe, 1, tokenizer)
    for p, t in zip(prompts, targets, strict=True):
        q = tokenizer.decode(p)
        assert q.startswith("Q: ") and q.endswith(" =\nA: <answer>")
        x, op, y = q[3:-len(" =\nA: <answer>")].split(" ")
        assert op in "+-" and 0 <= int(x) <= 99 and 0 <= int(y) <= 99
        assert t[-1] == tokenizer.eos_token_id
        answer = tokenizer.decode(t[:-1])
        assert answer == f"{int(x) + int(y) if op == '+' else int(x) - int(y)}</answer>"
    assert _batch(recipe, 1, tokenizer) == (prompts, targets)  # a function of (seed, step)
    assert _batch(recipe, 0, tokenizer) != (prompts, targets)
