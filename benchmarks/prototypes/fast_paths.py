"""PROTOTYPE, not the shipped trainer: the speed fixes proposed in docs/benchmarks.md, measured
through benchmarks/grpo_throughput.py against TRL (same interleaved schedule, same JSON lines;
our side is labelled ``swarmrl[<variant>]``).

Nothing in swarmrl/ is changed: the variants wrap a stock Policy + Learner.

    --variant fused      AdamW(fused=True) (TRL's default optimizer; ours is the for-loop one)
    --variant amp        bf16 autocast around Learner.train_step (fp32 master weights)
    --variant lean       LeanBackend: fp32 KV-cached decode loop below instead of FastBackend
    --variant lean-bf16  LeanBackend sampling from a bf16 copy of the weights (re-cast after
                         every optimizer step)

    .venv/bin/python benchmarks/prototypes/fast_paths.py --variant fused,amp,lean-bf16
    .venv/bin/python benchmarks/prototypes/fast_paths.py --variant fused,amp,lean --trl-defaults

LeanBackend is FastBackend's interface and sampling rule with a Qwen2-only decode step: the
q/k/v and gate/up weights concatenated once per policy version (one matmul instead of three and
two), a KV cache preallocated for prompt + max_new_tokens and written in place (no torch.cat of
the whole cache per token), RoPE cos/sin tables precomputed and indexed by position,
``F.rms_norm``, and no transformers module dispatch / mask building / output dataclasses per
token. The prompt prefill still goes through the HF model. In fp32 it samples the same tokens
with the same log-probs as FastBackend (checked with a fixed generator).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpo_throughput as gt  # noqa: E402

from swarmrl.tasks import format_prompt, verify  # noqa: E402
from swarmrl.training.generation import FastBackend, _left_pad, sample_tokens  # noqa: E402
from swarmrl.training.learner import Group  # noqa: E402

VARIANTS = {"fused", "amp", "lean", "lean-bf16"}


class LeanQwen2:
    """Decode-step weights of a Qwen2 model, fused and (optionally) cast, re-read on refresh()."""

    def __init__(self, model: Any, dtype: torch.dtype | None = None) -> None:
        self.model = model
        cfg = model.config
        self.H, self.KV = cfg.num_attention_heads, cfg.num_key_value_heads
        self.D = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.H
        self.eps = cfg.rms_norm_eps
        self.dtype = dtype
        theta = cfg.rope_parameters["rope_theta"]
        inv = 1.0 / (theta ** (torch.arange(0, self.D, 2, dtype=torch.float) / self.D))
        freqs = torch.arange(cfg.max_position_embeddings, dtype=torch.float)[:, None] * inv
        emb = torch.cat([freqs, freqs], -1)
        self.cos, self.sin = emb.cos(), emb.sin()
        if dtype is not None:
            self.cos, self.sin = self.cos.to(dtype), self.sin.to(dtype)
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        """Concatenate / cast the weights again (once per optimizer step, ~1-3 ms here)."""
        dt = self.dtype

        def cv(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to(dt) if dt is not None else t.detach()

        m = self.model.model
        self.layers = []
        for layer in m.layers:
            a, f = layer.self_attn, layer.mlp
            self.layers.append({
                "n1": cv(layer.input_layernorm.weight),
                "n2": cv(layer.post_attention_layernorm.weight),
                "wqkv": cv(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])),
                "bqkv": cv(torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias])),
                "wo": cv(a.o_proj.weight),
                "wgu": cv(torch.cat([f.gate_proj.weight, f.up_proj.weight])),
                "wd": cv(f.down_proj.weight),
            })
        self.emb, self.norm = cv(m.embed_tokens.weight), cv(m.norm.weight)
        self.head = cv(self.model.get_output_embeddings().weight)

    @staticmethod
    def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        h = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., h:], x[..., :h]], -1) * sin

    @torch.inference_mode()
    def step(self, tok: torch.Tensor, pos: torch.Tensor, K: list, V: list, t: int,
             mask: torch.Tensor) -> torch.Tensor:
        """One token per row. K, V: per layer [B, KV, S, D] buffers, slot t written in place."""
        B, H, KVh, D = tok.shape[0], self.H, self.KV, self.D
        x = self.emb[tok]
        cos, sin = self.cos[pos][:, None, :], self.sin[pos][:, None, :]
        for i, L in enumerate(self.layers):
            h = F.rms_norm(x, (x.shape[-1],), L["n1"], self.eps)
            q, k, v = F.linear(h, L["wqkv"], L["bqkv"]).split([H * D, KVh * D, KVh * D], -1)
            q = self._rope(q.view(B, H, D), cos, sin)
            K[i][:, :, t] = self._rope(k.view(B, KVh, D), cos, sin)
            V[i][:, :, t] = v.view(B, KVh, D)
            o = F.scaled_dot_product_attention(q[:, :, None], K[i][:, :, : t + 1],
                                               V[i][:, :, : t + 1], attn_mask=mask,
                                               enable_gqa=KVh != H)
            x = x + F.linear(o.reshape(B, H * D), L["wo"])
            h = F.rms_norm(x, (x.shape[-1],), L["n2"], self.eps)
            g, u = F.linear(h, L["wgu"]).chunk(2, -1)
            x = x + F.linear(F.silu(g) * u, L["wd"])
        x = F.rms_norm(x, (x.shape[-1],), self.norm, self.eps)
        return F.linear(x, self.head).float()


class LeanBackend(FastBackend):
    """FastBackend with LeanQwen2 decode steps (HF prefill, one per distinct prompt)."""

    def __init__(self, model: Any, tokenizer: Any, generator: torch.Generator | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__(model, tokenizer, generator)
        self.lean = LeanQwen2(model, dtype)

    @torch.inference_mode()
    def generate(self, prompts: list[str], n: int, cfg: Any) -> list:
        prompt_ids = self._encode(prompts)
        ids, mask = _left_pad(prompt_ids, self.pad_id, self.device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                         logits_to_keep=1)
        P, B = ids.shape[1], len(prompts) * n
        S = P + cfg.max_new_tokens
        dt = self.lean.dtype or out.logits.dtype
        K, V = [], []
        for layer in out.past_key_values.layers:
            shape = (B, layer.keys.shape[1], S, layer.keys.shape[3])
            k, v = torch.empty(shape, dtype=dt), torch.empty(shape, dtype=dt)
            k[:, :, :P] = layer.keys.repeat_interleave(n, 0)
            v[:, :, :P] = layer.values.repeat_interleave(n, 0)
            K.append(k)
            V.append(v)
        logits = out.logits[:, -1].float().repeat_interleave(n, 0)
        full = torch.zeros(B, 1, 1, S, dtype=torch.bool)
        full[:, 0, 0, :P] = mask.repeat_interleave(n, 0).bool()
        next_pos = pos[:, -1].repeat_interleave(n, 0) + 1
        rows = torch.arange(B)
        tokens: list[list[int]] = [[] for _ in range(B)]
        logps: list[list[float]] = [[] for _ in range(B)]
        for step in range(cfg.max_new_tokens):
            tok, lp = sample_tokens(logits, cfg.temperature, cfg.top_p, self.generator)
            for r, t_, p in zip(rows.tolist(), tok.tolist(), lp.tolist(), strict=True):
                tokens[r].append(t_)
                logps[r].append(p)
            live = tok != self.eos_id
            if step == cfg.max_new_tokens - 1 or not bool(live.any()):
                break
            if not bool(live.all()):
                keep = live.nonzero().squeeze(-1)
                K, V = [k[keep] for k in K], [v[keep] for v in V]
                rows, tok, full, next_pos = rows[keep], tok[keep], full[keep], next_pos[keep]
            t = P + step
            full[:, 0, 0, t] = True
            logits = self.lean.step(tok, next_pos, K, V, t, full[..., : t + 1])
            next_pos = next_pos + 1
        return [[self._sample(prompt_ids[i], tokens[i * n + j], logps[i * n + j])
                 for j in range(n)] for i in range(len(prompts))]


class VariantRunner(gt.SwarmrlRunner):
    variant: set[str] = set()

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        m, c = self.policy.model, self.cfg
        if "fused" in self.variant:
            self.learner.optimizer = torch.optim.AdamW(
                m.parameters(), lr=c.learning_rate, betas=c.adam_betas,
                weight_decay=c.weight_decay, fused=True)
        self.backend = None
        if {"lean", "lean-bf16"} & self.variant:
            dtype = torch.bfloat16 if "lean-bf16" in self.variant else None
            self.backend = LeanBackend(m, self.policy.tokenizer, self.policy.generator, dtype)

    def step(self) -> tuple[float, int, float]:
        problem = self.problems[self.i % len(self.problems)]
        self.i += 1
        t0 = time.perf_counter()
        prompt = format_prompt(problem, gt.STYLE)
        if self.backend is None:
            [samples] = self.policy.generate([prompt], self.gen.group_size, self.gen)
        else:
            self.policy.model.eval()
            [samples] = self.backend.generate([prompt], self.gen.group_size, self.gen)
            self.policy.model.train()
        t_gen = time.perf_counter() - t0
        rewards = [verify(problem, s.text, gt.STYLE).reward for s in samples]
        group = Group(samples[0].prompt_ids, [s.completion_ids for s in samples], rewards,
                      [s.truncated for s in samples])
        if "amp" in self.variant:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                self.learner.train_step([group])
        else:
            self.learner.train_step([group])
        if self.backend is not None:
            self.backend.lean.refresh()  # the sampler follows the new weights
        dt = time.perf_counter() - t0
        return dt, sum(len(s.completion_ids) for s in samples), t_gen


def main() -> None:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--variant", default="fused,amp,lean-bf16")
    a, rest = p.parse_known_args()
    variant = {v.strip() for v in a.variant.split(",") if v.strip()}
    if not variant <= VARIANTS:
        raise SystemExit(f"unknown variant(s) {sorted(variant - VARIANTS)}; "
                         f"known: {sorted(VARIANTS)}")
    VariantRunner.variant = variant
    gt.make_runner = VariantRunner
    gt.OURS_LABEL = f"swarmrl[{','.join(sorted(variant))}]"
    gt.main(rest)


if __name__ == "__main__":
    main()
