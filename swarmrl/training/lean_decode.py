"""The lean decode step: one token of a Llama-family model without transformers' modules.

Llama, Mistral (without sliding windows), Qwen2 and Qwen3 (whose q and k get a per-head RMSNorm)
are one architecture for this step: RMSNorm, RoPE, grouped-query attention, a SiLU-gated MLP; they
differ in biases and that norm. SmolLM2 is a Llama.

At batch G and a few dozen new tokens, a small model's decode step is mostly overhead around a
handful of matmuls: a ``DynamicCache`` that ``torch.cat``s the whole cache every token, RoPE
recomputed from position ids, three q/k/v and two gate/up matmuls, RMSNorm as five ops, mask and
output plumbing, module dispatch. This step does the same arithmetic directly:

- q/k/v and gate/up weights concatenated (one matmul instead of three, and two), once per
  policy version: :meth:`LeanLM.refresh` re-reads the weights after every optimizer step;
- a KV cache preallocated for prompt + ``max_new_tokens`` and written in place;
- RoPE cos/sin tables indexed by position, ``F.rms_norm``, one SDPA call per layer;
- LoRA adapters (``model.lora``) merged into those weights at each refresh: the step costs
  what it costs without them.

The prompt prefill still runs through the HF model (once per distinct prompt). In float32 the
step computes the same logits as the HF forward bit for bit, so ``FastBackend`` samples the same
tokens with the same log-probs either way (tests/training/test_training_lean_decode.py). With
grouped k/v heads the two differ by the attention kernel's rounding (~1e-6 in a log-prob):
transformers repeats k and v before SDPA when there is a mask, this step lets SDPA group them,
4x faster at SmolLM2's 9 query / 3 k-v heads on CPU.
Optionally it runs on a bf16 copy of the weights (``generation.decode = "lean-bf16"``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from swarmrl.training.lora import effective_weight

LEAN_TYPES = ("llama", "mistral", "qwen2", "qwen3")


def lean_unsupported(model: Any) -> str | None:
    """Why the lean step cannot run ``model`` exactly; None when it can."""
    cfg = model.config
    if cfg.model_type not in LEAN_TYPES:
        return (f"model_type {cfg.model_type!r} (the lean step runs "
                f"{', '.join(LEAN_TYPES)})")
    if cfg.hidden_act != "silu":
        return f"hidden_act {cfg.hidden_act!r}"
    if (cfg.rope_parameters or {}).get("rope_type", "default") != "default":
        return "scaled RoPE"
    if "sliding_attention" in (getattr(cfg, "layer_types", None) or []):
        return "sliding-window attention"
    if cfg.model_type == "mistral" and getattr(cfg, "sliding_window", None):
        return "sliding-window attention"
    if getattr(cfg, "mlp_bias", False):
        return "MLP biases"
    head = model.get_output_embeddings()
    if not isinstance(head, torch.nn.Linear) or head.bias is not None:
        return "LM head is not a bias-free linear"
    return None


def _bias(module: Any) -> torch.Tensor | None:
    return getattr(module, "base_layer", module).bias


class _Layer(NamedTuple):
    norm1: torch.Tensor
    wqkv: torch.Tensor  # [q; k; v] rows
    bqkv: torch.Tensor | None
    qnorm: torch.Tensor | None  # Qwen3's per-head RMSNorm of q and k
    knorm: torch.Tensor | None
    wo: torch.Tensor
    norm2: torch.Tensor
    wgu: torch.Tensor  # [gate; up] rows
    wdown: torch.Tensor


class KVCache:
    """Per-layer [B, KV, S, D] key/value buffers for S = prompt + max_new_tokens, filled in place.

    ``mask`` [B, 1, 1, S] marks the slots a row may attend to (left padding stays False);
    ``t`` is the next slot to write.
    """

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor], mask: torch.Tensor,
                 t: int) -> None:
        self.keys, self.values, self.mask, self.t = keys, values, mask, t

    def select(self, rows: torch.Tensor) -> None:
        """Keep only ``rows`` (finished rows leave the batch)."""
        self.keys = [k[rows] for k in self.keys]
        self.values = [v[rows] for v in self.values]
        self.mask = self.mask[rows]


class LeanLM:
    """A Llama-family model's decode-step weights in ``dtype`` and the step itself."""

    def __init__(self, model: Any, dtype: torch.dtype) -> None:
        cfg = model.config
        self.model = model
        self.dtype = dtype
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        self.eps = cfg.rms_norm_eps
        self.theta = cfg.rope_parameters["rope_theta"]
        self.cos = self.sin = torch.empty(0)
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        """Re-read (concatenate, cast) the weights: after every change of the policy's weights."""

        def cast(t: torch.Tensor) -> torch.Tensor:  # a no-op (shared storage) when dtypes match
            return t.detach().to(self.dtype)

        body = self.model.get_decoder()
        self.layers = []
        for layer in body.layers:
            a, m = layer.self_attn, layer.mlp
            qkv = (a.q_proj, a.k_proj, a.v_proj)
            bias = [_bias(p) for p in qkv]
            qn, kn = getattr(a, "q_norm", None), getattr(a, "k_norm", None)
            self.layers.append(_Layer(
                cast(layer.input_layernorm.weight),
                cast(torch.cat([effective_weight(p) for p in qkv])),
                None if bias[0] is None else cast(torch.cat(bias)),
                None if qn is None else cast(qn.weight),
                None if kn is None else cast(kn.weight),
                cast(effective_weight(a.o_proj)),
                cast(layer.post_attention_layernorm.weight),
                cast(torch.cat([effective_weight(m.gate_proj), effective_weight(m.up_proj)])),
                cast(effective_weight(m.down_proj)),
            ))
        self.embed, self.norm = cast(body.embed_tokens.weight), cast(body.norm.weight)
        self.head = cast(self.model.get_output_embeddings().weight)

    def rope_tables(self, n: int, device: torch.device) -> None:
        """cos/sin for positions [0, n), as transformers computes default RoPE (fp32, cast)."""
        if self.cos.shape[0] >= n and self.cos.device == device:
            return
        n = max(n, 2 * self.cos.shape[0])  # grow geometrically: rebuilt rarely
        d = self.head_dim
        inv = 1.0 / (self.theta ** (torch.arange(0, d, 2, dtype=torch.int64, device=device)
                                    .float() / d))
        freqs = torch.arange(n, dtype=torch.float, device=device)[:, None] * inv
        emb = torch.cat([freqs, freqs], dim=-1)
        self.cos, self.sin = emb.cos().to(self.dtype), emb.sin().to(self.dtype)
        # rotate_half(x) * sin == roll(x) * [-sin | sin] exactly (negation is exact): one roll
        # instead of two slices, a neg and a cat per call.
        half = d // 2
        self.sin[:, :half] = -self.sin[:, :half]

    @staticmethod
    def _rope(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
        return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * signed_sin

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor, pos: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Float32 logits [B, V] for one new token per row at positions ``pos`` [B] (RoPE
        tables built up to them: :meth:`rope_tables`)."""
        B, H, KV, D = tokens.shape[0], self.heads, self.kv_heads, self.head_dim
        cos, sin = self.cos[pos][:, None], self.sin[pos][:, None]  # [B, 1, D]
        qk = (H + KV) * D
        t = cache.t
        cache.mask[:, :, :, t] = True
        mask = cache.mask[..., : t + 1]
        x = self.embed[tokens]
        for L, K, V in zip(self.layers, cache.keys, cache.values, strict=True):
            h = F.rms_norm(x, (x.shape[-1],), L.norm1, self.eps)
            qkv = F.linear(h, L.wqkv, L.bqkv)
            heads = qkv[:, :qk].view(B, H + KV, D)
            if L.qnorm is not None:
                q, k = heads.split([H, KV], dim=1)
                heads = torch.cat([F.rms_norm(q, (D,), L.qnorm, self.eps),
                                   F.rms_norm(k, (D,), L.knorm, self.eps)], dim=1)
            # q and k heads rotated together: one RoPE for both.
            q, k = self._rope(heads, cos, sin).split([H, KV], dim=1)
            K[:, :, t] = k
            V[:, :, t] = qkv[:, qk:].view(B, KV, D)
            o = F.scaled_dot_product_attention(q[:, :, None], K[:, :, : t + 1], V[:, :, : t + 1],
                                               attn_mask=mask, enable_gqa=KV != H)
            x = x + F.linear(o.reshape(B, H * D), L.wo)
            h = F.rms_norm(x, (x.shape[-1],), L.norm2, self.eps)
            gate, up = F.linear(h, L.wgu).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, L.wdown)
        cache.t = t + 1
        x = F.rms_norm(x, (x.shape[-1],), self.norm, self.eps)
        return F.linear(x, self.head).float()


class LeanDecoder:
    """FastBackend's decode steps through :class:`LeanLM` (prefill through the HF model)."""

    def __init__(self, lean: LeanLM) -> None:
        self.lean = lean

    def start(self, ids: torch.Tensor, mask: torch.Tensor, n: int, max_new_tokens: int
              ) -> torch.Tensor:
        """Prefill the distinct prompts, copy each prompt's cache to its n rows; first logits."""
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.lean.model(input_ids=ids, attention_mask=mask, position_ids=pos,
                              use_cache=True, logits_to_keep=1)
        P, B = ids.shape[1], ids.shape[0] * n
        S = P + max_new_tokens
        keys, values = [], []
        for layer in out.cache.layers:
            for prompt_kv, store in ((layer.keys, keys), (layer.values, values)):
                buf = prompt_kv.new_empty((B, prompt_kv.shape[1], S, prompt_kv.shape[3]),
                                          dtype=self.lean.dtype)
                buf[:, :, :P] = prompt_kv.repeat_interleave(n, dim=0)
                store.append(buf)
        slots = torch.zeros((B, 1, 1, S), dtype=torch.bool, device=ids.device)
        slots[:, 0, 0, :P] = mask.repeat_interleave(n, dim=0).bool()
        self.cache = KVCache(keys, values, slots, P)
        self.pos = pos[:, -1].repeat_interleave(n, dim=0) + 1
        self.lean.rope_tables(int(self.pos.max()) + max_new_tokens, ids.device)
        return out.logits[:, -1].repeat_interleave(n, dim=0)

    def select(self, rows: torch.Tensor) -> None:
        self.cache.select(rows)
        self.pos = self.pos[rows]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        logits = self.lean.step(tokens, self.pos, self.cache)
        self.pos = self.pos + 1
        return logits
