"""Time and peak memory of swarmrl's Triton loss kernels vs eager PyTorch (and Liger-Kernel).

At Qwen2.5-0.5B shapes by default (vocab 151936, hidden 896, 8 x 1024 tokens, bfloat16), each
case runs forward + backward and prints one JSON line per implementation::

    {"bench": "fused_linear_logprobs", "impl": "triton", "ms": 41.2, "peak_mib": 1180.5, ...}

then one ratio line per case against eager (``time_x`` > 1: faster than eager; ``memory_x`` > 1:
less peak memory than eager)::

    {"bench": "fused_linear_logprobs", "ratio": "eager/triton", "time_x": 1.3, "memory_x": 12.1}

Cases:

- ``token_logprobs``: logits [N, V] -> log p(ids) (+ entropy with ``--entropy``);
  eager = ``swarmrl.kernels.reference_token_logprobs`` (what ``selective_logprobs`` does);
  liger = LigerCrossEntropyLoss(reduction="sum") (-sum log p, the same gradient).
- ``fused_linear_logprobs``: hidden [N, H] @ head [V, H] -> log p(ids), chunked;
  eager = full logits then the reference; liger = LigerFusedLinearCrossEntropyLoss.
- ``grpo_token_loss``: the clipped per-token loss on [B, L] log-probs, DAPO-aggregated.
- ``grpo_step``: hidden -> log-probs -> GRPO loss -> backward (the whole loss of a step);
  liger = LigerFusedLinearGRPOLoss where its installed signature fits.

``peak_mib`` is torch.cuda.max_memory_allocated during the step minus what was allocated before
it (inputs and weights excluded). Liger rows are skipped (with a reason) when it is not installed.

Run on a CUDA machine with triton (and optionally ``pip install liger-kernel``)::

    python benchmarks/kernel_speed.py                      # all cases, Qwen2.5-0.5B shapes
    python benchmarks/kernel_speed.py --cases fused_linear_logprobs --chunk-size 512 --iters 20
    python benchmarks/kernel_speed.py --tokens 4096 --out runs/kernels.jsonl

Without a GPU, the same script runs in Triton's interpreter on small shapes: a check that it
works (its times are the interpreter's, not a speed figure; ``peak_mib`` is null)::

    TRITON_INTERPRET=1 .venv/bin/python benchmarks/kernel_speed.py --device cpu --tokens 64 \\
        --batch 2 --vocab 512 --hidden 32 --warmup 0 --iters 1 --no-liger

Exits with a message (status 2) when no CUDA device is available and `--device cpu` is not given.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from swarmrl.kernels import (
    reference_fused_linear_logprobs,
    reference_grpo_token_loss,
    reference_token_logprobs,
)
from swarmrl.kernels.fused_linear import chunk_rows, triton_fused_linear_logprobs
from swarmrl.kernels.grpo_loss import triton_grpo_token_loss
from swarmrl.kernels.logprobs import triton_token_logprobs
from swarmrl.training.precision import machine_meta

CASES = ("token_logprobs", "fused_linear_logprobs", "grpo_token_loss", "grpo_step")
EPS_LOW, EPS_HIGH = 0.2, 0.28
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def _emit(record: dict, out) -> None:
    line = json.dumps(record)
    print(line, flush=True)
    if out is not None:
        out.write(line + "\n")
        out.flush()


def measure(step: Callable[[], None], warmup: int, iters: int, device: torch.device) -> dict:
    """Mean ms of ``step`` (forward + backward) over ``iters`` after ``warmup``, and its peak."""
    for _ in range(warmup):
        step()
    if device.type != "cuda":  # the interpreter check: wall time only, no allocator to ask
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        return {"ms": round((time.perf_counter() - t0) * 1000 / iters, 3), "peak_mib": None}
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        step()
    end.record()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    return {"ms": round(start.elapsed_time(end) / iters, 3), "peak_mib": round(peak / 2**20, 1)}


def _dapo(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask > 0, per_token, torch.zeros_like(per_token)).sum() / mask.sum()


def _filtered(fn: Callable, **kwargs):
    """Call ``fn`` with the keyword arguments its signature accepts (Liger's API moves)."""
    params = inspect.signature(fn).parameters
    return fn(**{k: v for k, v in kwargs.items() if k in params})


def build_cases(args) -> dict[str, dict[str, Callable[[], None]]]:
    dev, dtype = torch.device(args.device), DTYPES[args.dtype]
    B, L = args.batch, args.tokens // args.batch
    N, V, H = B * L, args.vocab, args.hidden
    g = torch.Generator(device=dev).manual_seed(0)
    hidden = torch.randn(B, L, H, device=dev, generator=g).to(dtype).requires_grad_(True)
    weight = (torch.randn(V, H, device=dev, generator=g) * 2 / H**0.5).to(dtype)
    weight.requires_grad_(True)
    ids = torch.randint(0, V, (B, L), device=dev, generator=g)
    with torch.no_grad():
        logits = (hidden @ weight.T).requires_grad_(True)
    logp0 = (-torch.rand(B, L, device=dev, generator=g) * 4).requires_grad_(True)
    old = logp0.detach() + torch.randn(B, L, device=dev, generator=g) * 0.2
    adv = torch.randn(B, device=dev, generator=g)
    mask = (torch.rand(B, L, device=dev, generator=g) > 0.1).float()
    params = (hidden, weight, logits, logp0)

    def clear() -> None:
        for p in params:
            p.grad = None

    def backward(loss: torch.Tensor) -> None:
        loss.backward()
        clear()

    ent = args.entropy
    cases: dict[str, dict[str, Callable[[], None]]] = {
        "token_logprobs": {
            "eager": lambda: backward(_sum(reference_token_logprobs(logits, ids, ent))),
            "triton": lambda: backward(_sum(triton_token_logprobs(logits, ids, ent,
                                                                  args.block_v))),
        },
        "fused_linear_logprobs": {
            "eager": lambda: backward(_sum(reference_fused_linear_logprobs(hidden, weight, ids,
                                                                           ent))),
            "triton": lambda: backward(_sum(triton_fused_linear_logprobs(
                hidden, weight, ids, ent, args.chunk_size, args.block_v))),
        },
        "grpo_token_loss": {
            "eager": lambda: backward(_dapo(reference_grpo_token_loss(
                logp0, old, adv, mask, EPS_LOW, EPS_HIGH), mask)),
            "triton": lambda: backward(_dapo(triton_grpo_token_loss(
                logp0, old, adv, mask, EPS_LOW, EPS_HIGH), mask)),
        },
        "grpo_step": {
            "eager": lambda: backward(_dapo(reference_grpo_token_loss(
                reference_fused_linear_logprobs(hidden, weight, ids, False)[0], old, adv, mask,
                EPS_LOW, EPS_HIGH), mask)),
            "triton": lambda: backward(_dapo(triton_grpo_token_loss(
                triton_fused_linear_logprobs(hidden, weight, ids, False, args.chunk_size,
                                             args.block_v)[0], old, adv, mask,
                EPS_LOW, EPS_HIGH), mask)),
        },
    }
    if not args.no_liger:
        _add_liger(cases, hidden, weight, logits, ids, old, adv, mask, backward, N, H)
    return cases


def _sum(out: tuple[torch.Tensor, torch.Tensor | None]) -> torch.Tensor:
    logp, entropy = out
    return logp.sum() if entropy is None else logp.sum() + entropy.sum()


def _add_liger(cases, hidden, weight, logits, ids, old, adv, mask, backward, N, H) -> None:
    try:
        from liger_kernel.transformers import (
            LigerCrossEntropyLoss,
            LigerFusedLinearCrossEntropyLoss,
        )
    except Exception as e:  # noqa: BLE001 - optional comparison
        for case in ("token_logprobs", "fused_linear_logprobs"):
            cases[case]["liger"] = f"liger-kernel not importable: {type(e).__name__}: {e}"
        return
    ce = LigerCrossEntropyLoss(reduction="sum")
    flce = LigerFusedLinearCrossEntropyLoss(reduction="sum")
    flat_ids = ids.reshape(-1)
    cases["token_logprobs"]["liger"] = lambda: backward(ce(logits.view(N, -1), flat_ids))
    cases["fused_linear_logprobs"]["liger"] = lambda: backward(
        flce(weight, hidden.view(N, H), flat_ids))
    try:
        from liger_kernel.chunked_loss import LigerFusedLinearGRPOLoss

        grpo = _filtered(LigerFusedLinearGRPOLoss, beta=0.0, use_ref_model=False,
                         epsilon_low=EPS_LOW, epsilon_high=EPS_HIGH, loss_type="dapo",
                         compiled=True)

        def liger_step() -> None:
            out = _filtered(grpo.forward, _input=hidden, lin_weight=weight,
                            selected_token_ids=ids, attention_mask=mask, advantages=adv,
                            old_per_token_logps=old)
            backward(out[0] if isinstance(out, tuple) else out)

        cases["grpo_step"]["liger"] = liger_step
    except Exception as e:  # noqa: BLE001
        cases["grpo_step"]["liger"] = f"LigerFusedLinearGRPOLoss unavailable: {e}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    p.add_argument("--tokens", type=int, default=8 * 1024, help="N = batch x length")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--vocab", type=int, default=151936)
    p.add_argument("--hidden", type=int, default=896)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16")
    p.add_argument("--chunk-size", type=int, default=None, help="fused path rows per chunk")
    p.add_argument("--block-v", type=int, default=None, help="vocabulary block of the kernel")
    p.add_argument("--entropy", action="store_true", help="also compute (and backprop) entropy")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--no-liger", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="also append the JSON lines here")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                   help="cpu: a check of this script under TRITON_INTERPRET=1 (no speed figure)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("benchmarks/kernel_speed.py needs a CUDA device (torch.cuda.is_available() is "
              "False): the Triton kernels only run fast on a GPU. Nothing was measured. "
              "(TRITON_INTERPRET=1 ... --device cpu checks the script on small shapes.)",
              file=sys.stderr)
        return 2
    if args.device == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        print("--device cpu runs the kernels in Triton's interpreter: set TRITON_INTERPRET=1.",
              file=sys.stderr)
        return 2
    try:
        import triton
    except ImportError:
        print("benchmarks/kernel_speed.py needs triton (pip install triton).", file=sys.stderr)
        return 2
    out = None
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        out = args.out.open("a")
    device = torch.device(args.device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu (Triton interpreter)"
    meta = {**machine_meta(), "device": name,
            "triton": triton.__version__, "tokens": args.tokens, "vocab": args.vocab,
            "hidden": args.hidden, "dtype": args.dtype, "entropy": args.entropy,
            "chunk_rows": chunk_rows(args.tokens, args.vocab, args.chunk_size)}
    _emit({"meta": meta}, out)
    cases = build_cases(args)
    for name in args.cases:
        results: dict[str, dict] = {}
        for impl, step in cases[name].items():
            record = {"bench": name, "impl": impl}
            if isinstance(step, str):
                record["skipped"] = step
            else:
                try:
                    results[impl] = measure(step, args.warmup, args.iters, device)
                    record.update(results[impl])
                except torch.cuda.OutOfMemoryError as e:
                    record["error"] = f"out of memory: {str(e).splitlines()[0]}"
                except Exception as e:  # noqa: BLE001 - report and go on to the next impl
                    record["error"] = f"{type(e).__name__}: {e}"
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            _emit(record, out)
        eager = results.get("eager")
        for impl, r in results.items():
            if impl != "eager" and eager is not None:
                memory_x = None if r["peak_mib"] is None else round(
                    eager["peak_mib"] / max(r["peak_mib"], 1e-3), 3)
                _emit({"bench": name, "ratio": f"eager/{impl}",
                       "time_x": round(eager["ms"] / r["ms"], 3), "memory_x": memory_x}, out)
    if out is not None:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
