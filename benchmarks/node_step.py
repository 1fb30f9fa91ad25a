"""Node step: one node's local step (rollout -> verify -> GRPO update) with each generation backend.

A "node step" is what a node does locally each step through its Brain, with no networking
(``swarmrl/node/loop.py``, ``_rollout_local`` and the update): draw ``--prompts`` task specs
from a ``TaskSampler`` (built-in ``arith`` family), materialize them and put them to the model
with ``format_prompt`` -> ``LMBrain.rollout(requests, group_size)`` -> score every completion
with the task's verifier (``swarmrl.tasks.verify``) -> ``LMBrain.train(scored groups)`` (one
GRPO update). The brain is built by ``LMBrain.from_config`` from a ``NodeConfig`` whose
``generation.backend`` is the backend under test:

- ``fast``: swarmrl's own KV-cached sampling loop (``generation.decode`` "auto");
- ``hf``: transformers ``generate``;
- ``vllm``: the vLLM backend. Run only when ``vllm`` is importable and CUDA is available;
  otherwise a ``skipped`` line says why. ``make_backend`` may fall back to HF with a warning:
  the ``impl`` field names the backend class that actually sampled, ``warnings`` what it said.

Each phase is timed on its own (``generate_s``, ``verify_s``, ``train_s``; ``step_s`` is the
whole step, task preparation included), with ``torch.cuda.synchronize()`` at each boundary on
CUDA. Tokens are the completion tokens generated (EOS included). ``tokens_per_s`` = tokens /
step seconds, ``generate_tokens_per_s`` = tokens / generation seconds. On CUDA ``peak_mib`` is
``torch.cuda.max_memory_allocated`` of this process, reset before each brain is built (so it
covers weights, optimizer state, sampling and the update), and ``device_used_mib`` the most GPU
memory in use on the whole device (``mem_get_info``) seen at a phase boundary: vLLM's engine may
run in a separate process whose memory only the second figure sees.

Comparable runs: the model is written ONCE to a temp directory (``save_pretrained``, model and
tokenizer) and every backend gets a FRESH brain loaded from it through the real load path
(``load_policy`` on a local path), with the same seed and the same task stream. ``--rounds R``
repeats the whole comparison R times (the backend order rotates each round; each round a fresh
brain per backend, with its own warmup) so machine noise falls on every backend alike; between
brains everything is freed (del, gc, ``torch.cuda.empty_cache()``). ``--warmup`` steps per brain
are discarded, then ``--steps`` are measured; medians and means are over all measured steps.

The update trains on every group (``grpo.drop_zero_advantage = false``): an untrained model
scores 0 on nearly every completion, and a node that skipped those groups would time no update.

Models (``--preset``):

- ``qwen2.5-0.5b`` (default on CUDA): a ``Qwen2ForCausalLM`` with Qwen2.5-0.5B's shapes (vocab
  151936, hidden 896, MLP 4864, 24 layers, 14 heads / 2 KV heads, tied embeddings, rope theta
  1e6, 32768 positions; 494M parameters), randomly initialised in code (the GPU machine has no
  internet), bfloat16 on CUDA (``--dtype``).
- ``qwen-vocab-small``: the same vocabulary, tokenizer and load path with a toy body (hidden 64,
  2 layers): the 0.5B preset's code path at a CPU-sized cost.
- ``tiny`` (default on CPU): swarmrl's ``tiny-0.5m`` (byte tokenizer, no warm start).
- ``--model PATH_OR_HUB_ID``: a real model and its own tokenizer instead of a preset.

The presets use swarmrl's byte-level tokenizer (``training/tiny.py``). A random 151936-token
model samples almost only ids that 258-token tokenizer does not have: transformers' fast
tokenizer skips such ids silently when decoding (checked: no crash), but vLLM's detokenizers have
treated ids beyond the tokenizer as errors in some versions, and the completions would decode to
nearly empty text. So by default (``--tokenizer padded``) the byte tokenizer's vocabulary is
padded with filler tokens ``<258>`` ... ``<151935>`` up to the model's: encoding is unchanged
(every byte is still its own token, fillers never match input), every sampled id decodes to
text, and the tokenizer has exactly the model's vocabulary. ``--tokenizer bytes`` keeps the
plain 258-token tokenizer.

Random-init models rarely emit EOS, so nearly every completion runs to ``--max-new-tokens``
(``truncated_share`` says how many): the work per step is then fixed and stable, which is what a
throughput comparison wants, and rewards are ~0 (the figures are speeds, not learning).

Defaults: on CUDA 8 prompts x group size 8, 256 new tokens, 2 warmup + 5 measured steps, 1
round; on CPU 4 x 4, 16 new tokens, 1 warmup + 5 steps (tiny: a few seconds).

Prints a header line, one JSON line per backend, then one ratio line per pair of backends
(``step_x`` > 1: the second backend's median step is faster; ``memory_x`` > 1: less peak)::

    {"bench": "node_step", "meta": true, "device": "NVIDIA H100 80GB HBM3", "torch": ..., ...}
    {"bench": "node_step", "backend": "fast", "impl": "FastBackend", "step_s_median": ..., ...}
    {"bench": "node_step", "ratio": "hf/vllm", "step_x": ..., "generate_x": ..., ...}

Usage (``--out FILE`` also appends the JSON lines to FILE; vLLM may log to stdout)::

    python benchmarks/node_step.py                           # CUDA: Qwen2.5-0.5B shapes
    python benchmarks/node_step.py --rounds 3 --out runs/node_step.jsonl
    python benchmarks/node_step.py --model Qwen/Qwen2.5-0.5B-Instruct   # a real model
    python benchmarks/node_step.py --device cpu              # tiny, a few seconds
    python benchmarks/node_step.py --device cpu --preset qwen-vocab-small
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from swarmrl.brain.base import RolloutRequest, ScoredGroup  # noqa: E402
from swarmrl.brain.lm import LMBrain  # noqa: E402
from swarmrl.config import NodeConfig  # noqa: E402
from swarmrl.protocol.messages import task_key  # noqa: E402
from swarmrl.tasks import TaskSampler, format_prompt, materialize, verify  # noqa: E402
from swarmrl.training.checkpoint import quiet_progress  # noqa: E402
from swarmrl.training.generation import resolve_decode  # noqa: E402
from swarmrl.training.policy import resolve_dtype  # noqa: E402
from swarmrl.training.precision import machine_meta  # noqa: E402
from swarmrl.training.tiny import (  # noqa: E402
    BYTE_VOCAB,
    TINY_VOCAB_SIZE,
    build_tiny_model,
    build_tiny_tokenizer,
    param_count,
)
from swarmrl.training.vllm_backend import vllm_unavailable  # noqa: E402

BENCH = "node_step"
BACKENDS = ("fast", "hf", "vllm")
PAIRS = (("hf", "fast"), ("hf", "vllm"), ("fast", "vllm"))  # baseline / challenger
QWEN25_05B = {
    "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864,
    "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
    "tie_word_embeddings": True, "rope_theta": 1000000.0, "max_position_embeddings": 32768,
}
PRESETS: dict[str, dict[str, Any] | None] = {
    "qwen2.5-0.5b": QWEN25_05B,
    "qwen-vocab-small": {**QWEN25_05B, "hidden_size": 64, "intermediate_size": 256,
                         "num_hidden_layers": 2, "num_attention_heads": 4,
                         "num_key_value_heads": 2},
    "tiny": None,  # swarmrl's tiny-0.5m
}
TINY_NAME = "tiny-0.5m"
# (prompts, group size, max new tokens, warmup, steps)
DEFAULTS = {"cuda": (8, 8, 256, 2, 5), "cpu": (4, 4, 16, 1, 5)}
MiB = 2**20

_stdout = sys.stdout  # where JSON lines go (set in main, before anything is redirected)
_device_name = "cpu"


def emit(record: dict[str, Any], out: Any) -> None:
    line = json.dumps({"bench": BENCH, **record, "device": _device_name})
    print(line, file=_stdout, flush=True)
    if out is not None:
        out.write(line + "\n")
        out.flush()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _version(pkg: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return None


# --- the model, written once ---------------------------------------------------------------------
def padded_byte_tokenizer(vocab_size: int) -> Any:
    """swarmrl's byte tokenizer with filler tokens ``<id>`` for ids 258 .. vocab_size-1.

    Encoding is unchanged (the pre-tokenizer splits text into single bytes, which fillers never
    match); decoding turns every id a model of ``vocab_size`` can sample into text.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    base = build_tiny_tokenizer()
    if vocab_size <= TINY_VOCAB_SIZE:
        return base
    data = json.loads(base.backend_tokenizer.to_str())
    vocab = data["model"]["vocab"]
    for i in range(TINY_VOCAB_SIZE, vocab_size):
        vocab[f"<{i}>"] = i
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(data)), eos_token=base.eos_token,
        pad_token=base.pad_token, padding_side="left",
    )


def build_preset(preset: str, device: torch.device, dtype: torch.dtype, tokenizer: str,
                 seed: int) -> tuple[Any, Any]:
    """(model, tokenizer) of a preset, randomly initialised with ``seed``."""
    shape = PRESETS[preset]
    if shape is None:
        return build_tiny_model(TINY_NAME, seed=seed).to(dtype), build_tiny_tokenizer()
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(**shape, eos_token_id=BYTE_VOCAB, pad_token_id=BYTE_VOCAB + 1,
                         bos_token_id=None)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.device(device):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config).to(dtype)
    model.generation_config.eos_token_id = BYTE_VOCAB
    model.generation_config.pad_token_id = BYTE_VOCAB + 1
    tok = (padded_byte_tokenizer(shape["vocab_size"]) if tokenizer == "padded"
           else build_tiny_tokenizer())
    return model, tok


def save_preset(preset: str, path: Path, device: torch.device, dtype: torch.dtype,
                tokenizer: str, seed: int) -> dict[str, Any]:
    model, tok = build_preset(preset, device, dtype, tokenizer, seed)
    with quiet_progress():
        model.save_pretrained(path)
    tok.save_pretrained(path)
    # transformers 5 writes its own class name ("TokenizersBackend"); the older one vLLM may pin
    # knows only "PreTrainedTokenizerFast", the same plain tokenizer (load_tokenizer reads both).
    tok_cfg = path / "tokenizer_config.json"
    tok_cfg.write_text(json.dumps({**json.loads(tok_cfg.read_text()),
                                   "tokenizer_class": "PreTrainedTokenizerFast"}, indent=2))
    info = {"params": param_count(model), "vocab": model.config.vocab_size,
            "tokenizer": "padded" if len(tok) > TINY_VOCAB_SIZE else "bytes",
            "tokenizer_len": len(tok)}
    del model
    _free()
    return info


# --- one node step ---------------------------------------------------------------------------
@dataclass
class Run:
    """One backend's measured steps over all rounds."""

    step_s: list[float] = field(default_factory=list)
    generate_s: list[float] = field(default_factory=list)
    verify_s: list[float] = field(default_factory=list)
    train_s: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    completions: int = 0
    truncated: int = 0
    rewards: list[float] = field(default_factory=list)
    train_tokens: list[int] = field(default_factory=list)
    load_s: list[float] = field(default_factory=list)
    round_tokens_per_s: list[float] = field(default_factory=list)
    peak_mib: float = 0.0
    device_used_mib: float = 0.0
    params: int = 0
    settings: dict[str, str] = field(default_factory=dict)  # what "auto" resolved to
    impl: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_used_mib(device: torch.device) -> float:
    if device.type != "cuda":
        return 0.0
    free, total = torch.cuda.mem_get_info(device)
    return (total - free) / MiB


def node_step(brain: LMBrain, sampler: TaskSampler, cfg: NodeConfig, prompts: int,
              device: torch.device) -> dict[str, Any]:
    """Exactly the node's local step (node/loop.py): tasks -> rollout -> verify -> train."""
    _sync(device)
    t0 = time.perf_counter()
    specs = sampler.sample(prompts)
    problems = [materialize(s) for s in specs]
    style = cfg.tasks.prompt_style
    requests = [RolloutRequest(format_prompt(p, style), p.family, task_key(s), p.answer)
                for s, p in zip(specs, problems, strict=True)]
    t_gen = time.perf_counter()
    samples = brain.rollout(requests, cfg.generation.group_size)
    _sync(device)
    t_ver = time.perf_counter()
    groups = []
    for spec, prob, req, comps in zip(specs, problems, requests, samples, strict=True):
        rewards = [verify(prob, c.text, style, cfg.tasks.format_reward).reward for c in comps]
        groups.append(ScoredGroup(req.prompt, comps, rewards, True, req.task_key, prob.family,
                                  prob.answer, spec))
    t_train = time.perf_counter()
    stats = brain.train(groups)
    _sync(device)
    t_end = time.perf_counter()
    comps = [c for g in samples for c in g]
    return {
        "step_s": t_end - t0, "generate_s": t_ver - t_gen, "verify_s": t_train - t_ver,
        "train_s": t_end - t_train, "tokens": sum(c.num_tokens for c in comps),
        "completions": len(comps), "truncated": sum(c.truncated for c in comps),
        "rewards": [r for g in groups for r in g.rewards], "train_tokens": stats.tokens,
        "skipped": stats.skipped,
    }


def make_config(a: argparse.Namespace, model_name: str, backend: str, seed: int) -> NodeConfig:
    return NodeConfig.model_validate({
        "seed": seed,
        "model": {"name": model_name, "warm_start": False, "device": a.device,
                  "dtype": a.dtype},
        "tasks": {"families": {"arith": 1.0}, "prompt_style": a.prompt_style, "seed": seed},
        "generation": {"backend": backend, "group_size": a.group_size,
                       "max_new_tokens": a.max_new_tokens, "temperature": 1.0, "top_p": 1.0},
        "grpo": {"learning_rate": a.lr, "drop_zero_advantage": False},
        "sapo": {"local": a.prompts, "external": 0},
    })


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def collect_warnings(into: list[str]) -> Iterator[None]:
    """Python warnings and swarmrl/vllm log warnings raised inside, first lines, deduplicated."""
    handler = _Collect()
    loggers = [logging.getLogger(n) for n in ("swarmrl", "vllm")]
    for lg in loggers:
        lg.addHandler(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for lg in loggers:
                lg.removeHandler(handler)
            for msg in [str(w.message) for w in caught] + handler.messages:
                first = msg.strip().splitlines()[0][:200] if msg.strip() else ""
                if first and first not in into and len(into) < 5:
                    into.append(first)


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _close_backends(brain: LMBrain) -> None:
    """Let a backend that holds an engine (vLLM) shut it down before the brain is dropped."""
    for backend in getattr(brain.policy, "_backends", {}).values():
        for name in ("close", "shutdown"):
            fn = getattr(backend, name, None)
            if callable(fn):
                with contextlib.suppress(Exception):
                    fn()
                break


def run_brain(a: argparse.Namespace, model_name: str, backend: str, round_i: int,
              run: Run) -> None:
    """Build a fresh brain for ``backend``, run warmup + measured steps, add them to ``run``."""
    device = torch.device(a.device)
    seed = a.seed + round_i  # every backend of a round: the same weights, seed and tasks
    cfg = make_config(a, model_name, backend, seed)
    _free()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    brain = None
    try:
        with collect_warnings(run.warnings):
            t0 = time.perf_counter()
            brain = LMBrain.from_config(cfg, progress=False)
            _sync(device)
            run.load_s.append(time.perf_counter() - t0)
            sampler = TaskSampler(cfg.tasks, node_seed=cfg.seed)
            secs = toks = 0.0
            used = _device_used_mib(device)
            for i in range(a.warmup + a.steps):
                r = node_step(brain, sampler, cfg, a.prompts, device)
                used = max(used, _device_used_mib(device))
                if r["skipped"]:
                    raise RuntimeError("the update was skipped: nothing was trained")
                if i < a.warmup:
                    continue
                for k in ("step_s", "generate_s", "verify_s", "train_s", "tokens",
                          "train_tokens"):
                    getattr(run, k).append(r[k])
                run.completions += r["completions"]
                run.truncated += r["truncated"]
                run.rewards += r["rewards"]
                secs += r["step_s"]
                toks += r["tokens"]
            run.round_tokens_per_s.append(round(toks / secs, 1))
            run.impl |= {type(b).__name__ for b in brain.policy._backends.values()}
            for b in brain.policy._backends.values():  # vLLM: weight refreshes, warmup included
                if getattr(b, "syncs", 0):
                    run.settings["weight_syncs"] = run.settings.get("weight_syncs", 0) + b.syncs
                    run.settings["weight_sync_s_mean"] = round(b.sync_seconds / b.syncs, 4)
            run.params = param_count(brain.policy.model)
            run.settings["autocast"] = "bf16" if brain.learner.autocast else "off"
            if backend == "fast":
                run.settings["decode"] = resolve_decode(cfg.generation.decode, brain.policy.model)
            if device.type == "cuda":
                run.peak_mib = max(run.peak_mib, torch.cuda.max_memory_allocated(device) / MiB)
                run.device_used_mib = max(run.device_used_mib, used)
    finally:
        if brain is not None:
            _close_backends(brain)
        del brain
        _free()


def _stat(xs: list[float], digits: int = 4) -> dict[str, float]:
    return {"median": round(statistics.median(xs), digits),
            "mean": round(statistics.fmean(xs), digits)}


def summarize(backend: str, run: Run, device: torch.device) -> dict[str, Any]:
    rec: dict[str, Any] = {"backend": backend, "impl": ",".join(sorted(run.impl)),
                           "params": run.params, **run.settings, "steps": len(run.step_s)}
    for k in ("step_s", "generate_s", "verify_s", "train_s"):
        s = _stat(getattr(run, k))
        rec[f"{k}_median"], rec[f"{k}_mean"] = s["median"], s["mean"]
    tokens, secs = sum(run.tokens), sum(run.step_s)
    rec.update({
        "tokens_per_step": round(tokens / len(run.tokens), 1),
        "tokens_per_s": round(tokens / secs, 1),
        "generate_tokens_per_s": round(tokens / sum(run.generate_s), 1),
        "train_tokens_per_step": round(statistics.fmean(run.train_tokens), 1),
        "truncated_share": round(run.truncated / max(run.completions, 1), 3),
        "reward_mean": round(statistics.fmean(run.rewards), 4) if run.rewards else 0.0,
        "load_s_mean": round(statistics.fmean(run.load_s), 2),
        "round_tokens_per_s": run.round_tokens_per_s,
    })
    if device.type == "cuda":
        rec["peak_mib"] = round(run.peak_mib, 1)
        rec["device_used_mib"] = round(run.device_used_mib, 1)
    if run.warnings:
        rec["warnings"] = run.warnings
    return rec


def ratio(base: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """> 1: ``other`` is faster (times) or uses less memory than ``base``."""
    rec: dict[str, Any] = {"ratio": f"{base['backend']}/{other['backend']}"}
    for k in ("step", "generate", "train"):
        rec[f"{k}_x"] = round(base[f"{k}_s_median"] / max(other[f"{k}_s_median"], 1e-9), 3)
    rec["tokens_per_s_x"] = round(other["tokens_per_s"] / max(base["tokens_per_s"], 1e-9), 3)
    if "peak_mib" in base and "peak_mib" in other:
        rec["memory_x"] = round(base["peak_mib"] / max(other["peak_mib"], 1e-3), 3)
    return rec


# --- main ----------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="default: qwen2.5-0.5b on CUDA, tiny on CPU")
    p.add_argument("--model", default=None, help="a real model (hub id or path) instead")
    p.add_argument("--tokenizer", choices=["padded", "bytes"], default="padded",
                   help="presets with a large vocabulary: byte tokenizer padded to the model's "
                   "vocabulary (default) or the plain 258-token one")
    p.add_argument("--device", default=None, help="'cuda', 'cpu', ... (default: cuda if any)")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                   help="model.dtype ('auto': bfloat16 on GPUs that support it, else float32)")
    p.add_argument("--prompts", type=int, default=None, help="tasks per step (I)")
    p.add_argument("--group-size", type=int, default=None, help="completions per task (G)")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--prompt-style", choices=["short", "instruct"], default=None,
                   help="default: short for tiny, instruct otherwise")
    p.add_argument("--warmup", type=int, default=None, help="discarded steps per brain")
    p.add_argument("--steps", type=int, default=None, help="measured steps per brain")
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat the comparison (fresh brains, rotated backend order)")
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave)")
    p.add_argument("--out", type=Path, default=None, help="also append the JSON lines here")
    a = p.parse_args(argv)
    if a.device is None:
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    kind = "cuda" if torch.device(a.device).type == "cuda" else "cpu"
    if a.preset is None:
        a.preset = "qwen2.5-0.5b" if kind == "cuda" else "tiny"
    defaults = DEFAULTS[kind]
    for name, value in zip(("prompts", "group_size", "max_new_tokens", "warmup", "steps"),
                           defaults, strict=True):
        if getattr(a, name) is None:
            setattr(a, name, value)
    if a.prompt_style is None:
        a.prompt_style = "short" if a.preset == "tiny" and a.model is None else "instruct"
    if a.steps < 1 or a.warmup < 0 or a.rounds < 1:
        p.error("need --steps >= 1, --warmup >= 0, --rounds >= 1")
    return a


def main(argv: list[str] | None = None) -> int:
    global _stdout, _device_name
    a = parse_args(argv)
    _stdout = sys.stdout
    if a.threads:
        torch.set_num_threads(a.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    device = torch.device(a.device)
    _device_name = device_name(device)
    out = None
    if a.out is not None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        out = a.out.open("a")

    backends = list(dict.fromkeys(a.backends))
    skipped: dict[str, str] = {}
    if "vllm" in backends and (why := vllm_unavailable(device)) is not None:
        skipped["vllm"] = why
        backends.remove("vllm")

    with tempfile.TemporaryDirectory(prefix="swarmrl-node-step-") as tmp:
        dtype = resolve_dtype(a.dtype, device)
        if a.model is not None:
            model_name, info = a.model, {}
        else:
            model_name = tmp
            # The model's stdout chatter (and vLLM's) goes to stderr; the JSON lines stay clean.
            with contextlib.redirect_stdout(sys.stderr):
                info = save_preset(a.preset, Path(tmp), device, dtype, a.tokenizer, a.seed)
        emit({"meta": True, "date": time.strftime("%Y-%m-%d"), **machine_meta(),
              "transformers": _version("transformers"),
              "vllm": _version("vllm"), "python": platform.python_version(),
              "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
              "preset": None if a.model else a.preset, "model": a.model or a.preset,
              **info, "dtype": str(dtype).removeprefix("torch."),
              "prompts": a.prompts, "group_size": a.group_size,
              "max_new_tokens": a.max_new_tokens, "prompt_style": a.prompt_style,
              "warmup": a.warmup, "steps": a.steps, "rounds": a.rounds,
              "backends": backends}, out)
        for name, why in skipped.items():
            emit({"backend": name, "skipped": why}, out)

        runs = {b: Run() for b in backends}
        for r in range(a.rounds):
            order = backends[r % len(backends):] + backends[: r % len(backends)]
            for b in order:
                if runs[b].error is not None:
                    continue
                try:
                    with contextlib.redirect_stdout(sys.stderr):
                        run_brain(a, model_name, b, r, runs[b])
                except Exception as e:  # noqa: BLE001 - report it and go on with the others
                    runs[b].error = f"{type(e).__name__}: {str(e).strip()[:300]}"

    results: dict[str, dict[str, Any]] = {}
    for b in backends:
        run = runs[b]
        if run.error is not None or not run.step_s:
            emit({"backend": b, "error": run.error or "no measured steps",
                  **({"warnings": run.warnings} if run.warnings else {})}, out)
            continue
        results[b] = summarize(b, run, device)
        emit(results[b], out)
    for base, other in PAIRS:
        if base in results and other in results:
            emit(ratio(results[base], results[other]), out)
    if out is not None:
        out.close()
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
