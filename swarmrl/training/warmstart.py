"""The tiny models' warm start: a short supervised run on easy arithmetic, cached on disk.

A randomly initialised tiny model never writes ``36</answer>`` by chance, so GRPO would see only
zero rewards and no gradient. A few hundred supervised steps (loss on the answer only) leave it
with a low but non-zero sampled accuracy, the regime where RL has signal to work with.

The result is cached under ``ModelConfig.cache_dir`` keyed by its whole recipe, built once (with a
progress bar) and reused. Building takes a file lock, so concurrent nodes build it once, and lands
by an atomic directory rename, so a crash never leaves a half-written warm start behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from swarmrl.config import GenerationConfig, ModelConfig
from swarmrl.protocol.messages import TaskSpec
from swarmrl.tasks import format_prompt, format_target, get_family, materialize, verify
from swarmrl.training.checkpoint import fsync_tree, load_model_weights, quiet_progress
from swarmrl.training.generation import FastBackend
from swarmrl.training.logprobs import sequence_logprobs
from swarmrl.training.tiny import build_tiny_model, build_tiny_tokenizer

WARMSTART_VERSION = 1  # bump when the recipe's code changes, so stale caches are not reused

# Peak learning rate per model, measured here (600 steps, batch 64, warmup + cosine): tiny-0.5m at
# 2e-3 -> ~18% sampled reward (T=1) on +/- with 1-2 digit operands (4e-3 stalls at ~4%); tiny-4m
# at 1e-3 -> ~31% (2e-3 without a schedule stalled at ~4%). Building: ~1 min and ~5-7 min on CPU.
WARM_START_LR = {"tiny-0.5m": 2e-3, "tiny-4m": 1e-3}


@dataclass(frozen=True)
class WarmStartRecipe:
    """Everything that determines the warm-started weights (hashed into the cache key)."""

    model: str
    steps: int
    seed: int = 0
    batch_size: int = 64
    learning_rate: float = 2e-3  # peak; linear warmup, then cosine down to final_lr_frac
    warmup_steps: int = 30
    final_lr_frac: float = 0.1
    weight_decay: float = 0.01
    ops: str = "+-"
    min_digits: int = 1
    max_digits: int = 2
    arith_version: str = get_family("arith").version  # the data generator's version
    version: int = WARMSTART_VERSION

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return f"{self.model}-{self.steps}-" + hashlib.blake2b(blob, digest_size=6).hexdigest()


# --- data ----------------------------------------------------------------------------------------
def arith_spec(recipe: WarmStartRecipe, seed: int, index: int) -> TaskSpec:
    """A task of the built-in arith family (the same generator, prompts and verifier as RL)."""
    params = {"ops": recipe.ops, "min_digits": recipe.min_digits, "max_digits": recipe.max_digits}
    family = get_family("arith")
    return TaskSpec(family="arith", family_version=family.version, params=params, seed=seed,
                    index=index)


def _batch(recipe: WarmStartRecipe, step: int, tokenizer: Any) -> tuple[list, list]:
    """Prompt ``Q: 68 - 32 =\nA: <answer>`` -> target ``36</answer>`` + EOS."""
    prompts, targets = [], []
    for i in range(recipe.batch_size):
        problem = materialize(arith_spec(recipe, recipe.seed, step * recipe.batch_size + i))
        prompts.append(tokenizer.encode(format_prompt(problem, "short"), add_special_tokens=False))
        target = tokenizer.encode(format_target(problem, "short"), add_special_tokens=False)
        targets.append(target + [tokenizer.eos_token_id])
    return prompts, targets


# --- training ------------------------------------------------------------------------------------
def lr_factor(recipe: WarmStartRecipe, step: int) -> float:
    """Linear warmup, then cosine from 1 to final_lr_frac (a constant 2e-3 learns ~2x slower)."""
    warm = min(1.0, (step + 1) / max(1, recipe.warmup_steps))
    progress = min(step, recipe.steps) / max(1, recipe.steps)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return warm * (recipe.final_lr_frac + (1 - recipe.final_lr_frac) * cosine)


def train_warm_start(recipe: WarmStartRecipe, progress: bool = True) -> torch.nn.Module:
    """Run the supervised recipe from scratch (CPU, fp32) and return the model."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    tokenizer = build_tiny_tokenizer(recipe.model)
    model = build_tiny_model(recipe.model, seed=recipe.seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate,
                            weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(recipe, s))
    columns = (TextColumn("warm start {task.description}"), BarColumn(),
               TextColumn("{task.completed}/{task.total} loss {task.fields[loss]:.3f}"),
               TimeRemainingColumn())
    with Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task(recipe.model, total=recipe.steps, loss=float("nan"))
        for step in range(recipe.steps):
            prompts, targets = _batch(recipe, step, tokenizer)
            logp, mask = sequence_logprobs(model, prompts, targets, tokenizer.pad_token_id)
            loss = -(logp * mask).sum() / mask.sum()  # answer tokens only
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(task, advance=1, loss=loss.item())
    model.eval()
    return model


@torch.no_grad()
def arith_reward(
    model: Any, tokenizer: Any, recipe: WarmStartRecipe, problems: int = 128, samples: int = 4,
    seed: int = 12345, temperature: float = 1.0, max_new_tokens: int = 16,
) -> float:
    """Mean verifier reward of sampled completions on held-out-seed problems of the recipe."""
    items = [materialize(arith_spec(recipe, seed, i)) for i in range(problems)]
    backend = FastBackend(model, tokenizer, torch.Generator().manual_seed(seed))
    cfg = GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature)
    outs = backend.generate([format_prompt(p, "short") for p in items], samples, cfg)
    rewards = [verify(p, s.text, "short").reward
               for p, group in zip(items, outs, strict=True) for s in group]
    return sum(rewards) / len(rewards)


# --- cache ---------------------------------------------------------------------------------------
def warm_start_dir(cfg: ModelConfig) -> Path:
    return Path(cfg.cache_dir).expanduser() / "warmstart"


def recipe_for(cfg: ModelConfig) -> WarmStartRecipe:
    ops = "".join(c for c in "+-*" if c in cfg.warm_start_ops)  # canonical: one cache per mix
    return WarmStartRecipe(model=cfg.name, steps=cfg.warm_start_steps, seed=cfg.init_seed,
                           learning_rate=WARM_START_LR.get(cfg.name, 2e-3), ops=ops)


def ensure_warm_start(cfg: ModelConfig, progress: bool = True) -> Path:
    """The cache folder of the warm start ``cfg`` describes, built first if it is not there."""
    recipe = recipe_for(cfg)
    root = warm_start_dir(cfg)
    final = root / recipe.key()
    if not (final / "recipe.json").is_file():
        root.mkdir(parents=True, exist_ok=True)
        # One builder at a time per recipe; the others wait and then find it cached.
        with open(root / f"{recipe.key()}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (final / "recipe.json").is_file():
                _build_into(final, recipe, progress)
    return final


def warm_start_model(cfg: ModelConfig, progress: bool = True) -> torch.nn.Module:
    """The warm-started tiny model ``cfg`` describes: from the cache, or built and cached."""
    final = ensure_warm_start(cfg, progress)
    recipe = recipe_for(cfg)
    model = build_tiny_model(recipe.model, seed=recipe.seed)
    load_model_weights(model, final)
    return model


def _build_into(final: Path, recipe: WarmStartRecipe, progress: bool) -> None:
    model = train_warm_start(recipe, progress=progress)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is meant to be shared
    try:
        with quiet_progress():
            model.save_pretrained(tmp)
            build_tiny_tokenizer(recipe.model).save_pretrained(tmp)
        # recipe.json is written last: its presence marks a complete warm start.
        (tmp / "recipe.json").write_text(json.dumps(asdict(recipe), indent=2))
        for f in tmp.rglob("*"):  # readable by all even when built under a daemon's umask 077
            f.chmod(0o755 if f.is_dir() else 0o644)
        fsync_tree(tmp)
        if final.exists():  # a stale, incomplete directory from an older crash
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
