"""Generation backends: sample G completions per prompt from a causal LM.

Two backends share one interface and one sampling rule (temperature, then nucleus top-p, no
top-k; temperature 0 = greedy):

- ``HFBackend`` calls transformers' ``generate``.
- ``FastBackend`` is our own KV-cached loop. On CPU with tiny models it wins by doing less work,
  not by cleverness: each distinct prompt is prefilled once and its cache copied G times
  (``generate`` prefills every copy), and finished rows leave the batch so the remaining ones stop
  paying for them. Its per-token step is either the model's own forward (any architecture) or,
  for Llama-family models (Llama, SmolLM2, Mistral, Qwen2, Qwen3), the lean step of
  :mod:`swarmrl.training.lean_decode` (same logits in fp32, a fraction of the overhead);
  ``generation.decode`` chooses.

Both are deterministic given ``generator`` (a seeded ``torch.Generator``): checkpoints store its
state so a resumed run samples the same tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from swarmrl.config import GenerationConfig
from swarmrl.training.backend_base import BackendBase, GenerationBackend, Sample
from swarmrl.training.lean_decode import LeanDecoder, LeanLM, lean_unsupported
from swarmrl.training.precision import fast_bf16

log = logging.getLogger(__name__)

# decode = "auto" samples from a bf16 copy of the weights from this size up, where the hardware
# multiplies bf16 fast: measured on an AVX512-BF16 CPU, tiny-4m (4.3M) generates ~25% faster from
# bf16 weights, while tiny-0.5m (0.56M) is slower (its matmuls are too small to gain from bf16 and
# the extra elementwise casts cost more than they save).
LEAN_BF16_MIN_PARAMS = 2_000_000


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Mask (to -inf) the tail outside the nucleus, keeping at least the top token.

    Same rule as transformers' TopPLogitsWarper so both backends sample one distribution: sort
    ascending and drop tokens whose cumulative probability stays <= 1 - top_p.
    """
    if top_p >= 1.0:
        return logits
    sorted_logits, sorted_idx = torch.sort(logits, descending=False, dim=-1)
    cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cum <= (1 - top_p)
    remove_sorted[..., -1:] = False
    remove = remove_sorted.scatter(-1, sorted_idx, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


def reshapes(temperature: float, top_p: float) -> bool:
    """Whether sampling draws from a distribution other than the raw model's (greedy picks the
    raw model's top token, so it does not)."""
    return temperature > 0 and (temperature != 1.0 or top_p < 1.0)


def sample_tokens(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample one token per row; returns (tokens [B], their log-probs under the sampled
    distribution, their log-probs under the raw model distribution)."""
    raw = logits.float()
    shaped = reshapes(temperature, top_p)
    processed = top_p_filter(raw / temperature, top_p) if shaped else raw
    if temperature == 0:
        tokens = raw.argmax(dim=-1)
    else:
        probs = processed.softmax(dim=-1)
        tokens = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    raw_lp = raw.log_softmax(dim=-1).gather(-1, tokens[:, None]).squeeze(-1)
    if not shaped:
        return tokens, raw_lp, raw_lp
    logprobs = processed.log_softmax(dim=-1).gather(-1, tokens[:, None]).squeeze(-1)
    return tokens, logprobs, raw_lp


def _left_pad(seqs: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s):] = 1
    return ids.to(device), mask.to(device)


def resolve_decode(mode: str, model: Any) -> str:
    """``generation.decode`` -> the step FastBackend runs: "model", "lean" or "lean-bf16"."""
    why_not = lean_unsupported(model)
    if mode == "auto":
        if why_not is not None:
            return "model"
        p = next(model.parameters())
        big = sum(q.numel() for q in model.parameters()) >= LEAN_BF16_MIN_PARAMS
        bf16 = big and p.dtype == torch.float32 and fast_bf16(p.device)
        return "lean-bf16" if bf16 else "lean"
    if mode != "model" and why_not is not None:
        raise ValueError(f"generation.decode={mode!r} cannot run this model: {why_not}")
    return mode


class ModelDecoder:
    """FastBackend's decode steps through the model's own forward and its ``DynamicCache``."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def start(self, ids: torch.Tensor, mask: torch.Tensor, n: int, max_new_tokens: int
              ) -> torch.Tensor:
        """Prefill the distinct prompts, copy each prompt's cache to its n rows; first logits."""
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos,
                         use_cache=True, logits_to_keep=1)
        self.cache = out.cache
        self.cache.batch_repeat_interleave(n)
        self.mask = mask.repeat_interleave(n, dim=0)
        self.pos = pos[:, -1:].repeat_interleave(n, dim=0) + 1
        return out.logits[:, -1].repeat_interleave(n, dim=0)

    def select(self, rows: torch.Tensor) -> None:
        self.cache.batch_select_indices(rows)
        self.mask, self.pos = self.mask[rows], self.pos[rows]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=1)
        out = self.model(input_ids=tokens[:, None], attention_mask=self.mask,
                         position_ids=self.pos, cache=self.cache, use_cache=True)
        self.pos = self.pos + 1
        return out.logits[:, -1]


class FastBackend(BackendBase):
    """A plain KV-cached sampling loop: one prefill per distinct prompt, finished rows dropped.

    ``weights_version`` (the policy's version) tells when the lean step's fused weights are
    stale. Without it they are re-read on every call, as nothing else can tell: a fused
    optimizer step changes the weights without bumping the tensors' version counters.
    """

    def __init__(self, model: Any, tokenizer: Any, generator: torch.Generator | None = None,
                 weights_version: Callable[[], int] | None = None) -> None:
        super().__init__(model, tokenizer, generator)
        self.weights_version = weights_version
        self._lean: LeanLM | None = None
        self._lean_key: tuple | None = None

    def _weights_key(self) -> tuple | None:
        """Changes whenever the weights may have: the policy version, plus in-place edits
        (checkpoint loads bump the tensors' version counters) and moved or replaced tensors."""
        if self.weights_version is None:
            return None
        return (self.weights_version(),
                tuple((p.data_ptr(), p._version) for p in self.model.parameters()))

    def release(self) -> None:
        """Drop the lean step's fused weights (a second copy of most of the model): the node
        calls this before an update, after which they would be re-read anyway, so the
        update's activations can use that memory."""
        self._lean = self._lean_key = None

    def _decoder(self, cfg: GenerationConfig) -> ModelDecoder | LeanDecoder:
        mode = resolve_decode(cfg.decode, self.model)
        if mode == "model":
            return ModelDecoder(self.model)
        dtype = torch.bfloat16 if mode == "lean-bf16" else next(self.model.parameters()).dtype
        key = self._weights_key()
        if self._lean is None or self._lean.dtype != dtype:
            self._lean = LeanLM(self.model, dtype)
        elif key is None or key != self._lean_key:
            self._lean.refresh()
        self._lean_key = key
        return LeanDecoder(self._lean)

    @torch.inference_mode()
    def generate(self, prompts: list[str], n: int, cfg: GenerationConfig) -> list[list[Sample]]:
        prompt_ids = self._encode(prompts)
        ids, mask = _left_pad(prompt_ids, self.pad_id, self.device)
        decoder = self._decoder(cfg)
        logits = decoder.start(ids, mask, n, cfg.max_new_tokens)
        # Rows are prompt-major: row r belongs to prompt r // n.
        rows = torch.arange(len(prompts) * n, device=self.device)  # live row -> original row
        tokens: list[list[int]] = [[] for _ in range(len(prompts) * n)]
        logps: list[list[float]] = [[] for _ in range(len(prompts) * n)]
        raws: list[list[float]] = [[] for _ in range(len(prompts) * n)]
        for step in range(cfg.max_new_tokens):
            tok, lp, raw = sample_tokens(logits, cfg.temperature, cfg.top_p, self.generator)
            for r, t, p, q in zip(rows.tolist(), tok.tolist(), lp.tolist(), raw.tolist(),
                                  strict=True):
                tokens[r].append(t)
                logps[r].append(p)
                raws[r].append(q)
            live = tok != self.eos_id
            if step == cfg.max_new_tokens - 1 or not bool(live.any()):
                break
            if not bool(live.all()):
                keep = live.nonzero().squeeze(-1)
                decoder.select(keep)
                rows, tok = rows[keep], tok[keep]
            logits = decoder.step(tok)
        return [[self._sample(prompt_ids[i], tokens[i * n + j], logps[i * n + j],
                              raws[i * n + j]) for j in range(n)] for i in range(len(prompts))]


class HFBackend(BackendBase):
    """transformers ``generate`` with the sampling rule spelled out (HF's default top_k=50 off)."""

    @torch.inference_mode()
    def generate(self, prompts: list[str], n: int, cfg: GenerationConfig) -> list[list[Sample]]:
        prompt_ids = self._encode(prompts)
        ids, mask = _left_pad(prompt_ids, self.pad_id, self.device)
        # Expand here rather than num_return_sequences, which greedy decoding refuses (and
        # generate expands the same way internally).
        ids, mask = ids.repeat_interleave(n, dim=0), mask.repeat_interleave(n, dim=0)
        sampling: dict[str, Any] = {"do_sample": False}
        processed = reshapes(cfg.temperature, cfg.top_p)
        if cfg.temperature > 0:
            sampling = {"do_sample": True, "temperature": cfg.temperature, "top_p": cfg.top_p}
        # generate draws from the global RNG: seed it from our generator inside a forked RNG so
        # runs are reproducible and the caller's global stream is untouched.
        seed = self._draw_seed(2**62)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            out = self.model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=cfg.max_new_tokens,
                top_k=None, pad_token_id=self.pad_id,
                eos_token_id=self.eos_id, output_scores=True, output_logits=processed,
                return_dict_in_generate=True, **sampling,
            )
        new = out.sequences[:, ids.shape[1]:]
        # scores are the processed logits each token was sampled from, logits the raw ones
        # (only kept when they differ: each is [rows, vocab] per step).
        lps = _chosen_logprobs(out.scores, new).tolist()
        raws = _chosen_logprobs(out.logits, new).tolist() if processed else lps
        rows = new.tolist()
        return [[self._sample(prompt_ids[i], rows[i * n + j], lps[i * n + j], raws[i * n + j])
                 for j in range(n)] for i in range(len(prompts))]


def _chosen_logprobs(steps: tuple[torch.Tensor, ...], tokens: torch.Tensor) -> torch.Tensor:
    """Log-softmax of each step's [B, V] logits at the token chosen there: [B, steps]. One
    step at a time: stacked, a real vocabulary's steps would take GBs in float32."""
    cols = [s.float().log_softmax(dim=-1).gather(-1, tokens[:, i, None]).squeeze(-1)
            for i, s in enumerate(steps)]
    return torch.stack(cols, dim=1)


def make_backend(
    name: str, model: Any, tokenizer: Any, generator: torch.Generator | None = None,
    weights_version: Callable[[], int] | None = None,
) -> GenerationBackend:
    """``weights_version``: the policy's version, so a backend can cache derived weights."""
    if name == "fast":
        return FastBackend(model, tokenizer, generator, weights_version)
    if name == "hf":
        return HFBackend(model, tokenizer, generator)
    if name == "vllm":
        from swarmrl.training.vllm_backend import VLLMBackend, vllm_unavailable

        why = vllm_unavailable(next(model.parameters()).device)
        if why is None:
            return VLLMBackend(model, tokenizer, generator, weights_version)
        log.warning("generation.backend = 'vllm' cannot run here: %s. Falling back to "
                    "transformers generate ('hf').", why)
        return HFBackend(model, tokenizer, generator)
    raise ValueError(f"unknown generation backend {name!r} (fast, hf or vllm)")
