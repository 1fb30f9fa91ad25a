"""The node's policy: any transformers causal LM plus its tokenizer, a sampler and a version.

``load_policy`` accepts a tiny model name (built in code, optionally from the cached warm
start), a hub id or a local directory; everything after loading is the same code path.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from swarmrl.config import ConfigError, GenerationConfig, ModelConfig
from swarmrl.training.backend_base import GenerationBackend, Sample
from swarmrl.training.checkpoint import quiet_progress
from swarmrl.training.generation import make_backend
from swarmrl.training.logprobs import sequence_logprobs
from swarmrl.training.lora import apply_lora
from swarmrl.training.tiny import (
    TINY_CONFIGS,
    build_tiny_model,
    build_tiny_tokenizer,
    is_tiny,
    tokenizer_fingerprint,
)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def load_tokenizer(path: str) -> Any:
    """A tokenizer from a hub id or directory, left padding, pad token set.

    A tokenizer saved as a plain fast tokenizer (ours) is reloaded as exactly that: AutoTokenizer
    would pick the model type's tokenizer class (Qwen2Tokenizer for a tiny Qwen2), which swaps in
    its own normalizer and pre-tokenizer and changes the ids.
    """
    cfg_file = Path(path) / "tokenizer_config.json"
    plain = False
    if cfg_file.is_file():
        cls = json.loads(cfg_file.read_text()).get("tokenizer_class", "")
        plain = cls in ("TokenizersBackend", "PreTrainedTokenizerFast")
    tok = (PreTrainedTokenizerFast if plain else AutoTokenizer).from_pretrained(path)
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode (no dropout) inside, its own mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


class Policy:
    """A causal LM, its tokenizer, a seeded sampler and a policy version."""

    def __init__(self, model: Any, tokenizer: Any, model_id: str = "", seed: int = 0) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.version = 0
        self.eos_id: int = tokenizer.eos_token_id
        self.pad_id: int = tokenizer.pad_token_id
        if self.eos_id is None:
            raise ValueError(f"{model_id}: tokenizer has no EOS token")
        # Sampling draws only from this generator: its state is what a checkpoint stores.
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self._backends: dict[str, GenerationBackend] = {}
        self._fingerprint: str | None = None
        self.chat = False
        """Prompts go through the tokenizer's chat template (``tasks.prompt_style = 'chat'``):
        one user turn holding the prompt text, then the template's assistant header."""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = tokenizer_fingerprint(self.tokenizer)
        return self._fingerprint

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    # --- sampling --------------------------------------------------------------------------------
    def release_generation_memory(self) -> None:
        """Free what the sampling backends keep between calls (rebuilt on the next call)."""
        for backend in self._backends.values():
            backend.release()

    def generate(self, prompts: list[str], n: int, cfg: GenerationConfig) -> list[list[Sample]]:
        """``n`` completions per prompt (grouped per prompt), with the backend ``cfg`` names."""
        if cfg.backend not in self._backends:
            self._backends[cfg.backend] = make_backend(
                cfg.backend, self.model, self.tokenizer, self.generator, lambda: self.version
            )
        with eval_mode(self.model):
            return self._backends[cfg.backend].generate([self.render(p) for p in prompts], n, cfg)

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def render(self, prompt: str) -> str:
        """The text the model sees for ``prompt``: itself, or in chat style the template's
        rendering of one user turn with the assistant's turn opened."""
        if not self.chat:
            return prompt
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )

    # --- tokens ----------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def encode_prompt(self, prompt: str) -> list[int]:
        """A prompt's ids as generation saw them (rendered, see :meth:`render`)."""
        return self.encode(self.render(prompt))

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def retokenize(self, text: str, ended: bool = True) -> list[int]:
        """Ids of a completion written by another model; EOS appended when it ended by itself."""
        ids = self.encode(text)
        return ids + [self.eos_id] if ended else ids

    def token_logprobs(
        self, prompt_ids: list[list[int]], completion_ids: list[list[int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token log-probs of each completion given its prompt (with grad if enabled).

        Returns ``(logprobs, mask)``, both [B, L] with L the longest completion; completions are
        right-padded and ``mask`` is 1 on real completion tokens.
        """
        return sequence_logprobs(self.model, prompt_ids, completion_ids, self.pad_id)


def _quant_method(quant: Any) -> str:
    method = quant.get("quant_method") if isinstance(quant, dict) else getattr(
        quant, "quant_method", "")
    return str(getattr(method, "value", method))  # transformers' QuantizationMethod enum


def contiguous_head_input(model: nn.Module) -> None:
    """Hand the LM head a contiguous input. transformers slices the positions to score out of
    the hidden states (``logits_to_keep``: the last one when sampling) and torch's CPU linear of
    such a 3-D strided view expands the weight for every row: for SmolLM2 in bf16 a 16-row
    prefill took 1.3 s instead of 0.02 and 0.9 GiB. Copying the slice first costs ~nothing."""
    head = model.get_output_embeddings()
    if isinstance(head, nn.Module):
        head.register_forward_pre_hook(
            lambda _module, args: (args[0].contiguous(), *args[1:]) if args else None
        )


def load_policy(
    cfg: ModelConfig, *, seed: int = 0, progress: bool = True
) -> Policy:
    """Build or load the policy ``cfg`` names, on its device and dtype, in train mode."""
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    if is_tiny(cfg.name):
        tokenizer = build_tiny_tokenizer(cfg.name)
        if cfg.warm_start and cfg.warm_start_steps > 0:
            from swarmrl.training.warmstart import warm_start_model

            model = warm_start_model(cfg, progress=progress)
        else:
            model = build_tiny_model(cfg.name, seed=cfg.init_seed)
    else:
        try:
            tokenizer = load_tokenizer(cfg.name)
            with quiet_progress():
                model = AutoModelForCausalLM.from_pretrained(cfg.name, dtype=dtype)

        except (OSError, ValueError) as e:  # no such folder or hub id, or not a causal LM
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(
                f"model.name: {cfg.name!r} is not a tiny model ({', '.join(TINY_CONFIGS)}) and did "
                f"not load as a local folder or hub id: {first}"
            ) from None
        quant = getattr(model.config, "quantization_config", None)
        if quant is not None and _quant_method(quant) == "gguf":
            raise ConfigError(
                f"model.name: {cfg.name!r} holds GGUF-quantized weights, which train but "
                "cannot be checkpointed; convert it once with `swarmrl models import-gguf FILE "
                "--out DIR` and point model.name at DIR"
            )
    model = model.to(device=device, dtype=dtype)
    contiguous_head_input(model)
    if cfg.lora.enabled:
        model = apply_lora(model, cfg.lora)
    model.train()
    return Policy(model, tokenizer, model_id=cfg.name, seed=seed)
