"""vLLM generation backend (the optional extra ``swarmrl[gpu]``), colocated with the trainer.

The engine runs inside the node's process on the policy's GPU (``VLLM_ENABLE_V1_MULTIPROCESSING``
= 0, as TRL's colocate mode and verl do), so new weights reach it by reference, not over a pipe:

- it starts once, lazily, from the policy's config alone (``load_format="dummy"``: nothing is
  read from disk or the hub) and is then handed the policy's weights with the model's own
  ``load_weights``; after each optimizer step the same call refreshes them, no restart;
- ``generation.vllm_max_lag`` bounds how many policy versions the engine may trail before it is
  refreshed (0: every step). Whatever lag and kernel differences remain are corrected in the
  loss by truncated importance sampling (``grpo.tis_cap``), which needs each token's log-prob
  under the engine: vLLM reports them from its raw logits (``logprobs_mode="raw_logprobs"``,
  V1's default), the same quantity the trainer computes;
- prompts go in as token ids and completions come back as token ids (``skip_tokenizer_init``):
  the policy's own tokenizer encodes and decodes, so vLLM never needs one on disk.

Without vLLM, or with the policy off CUDA, ``make_backend`` falls back to transformers
``generate`` and says so in one log line (``vllm_unavailable`` gives the reason).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

from swarmrl.config import GenerationConfig
from swarmrl.training.backend_base import BackendBase, Sample
from swarmrl.training.lora import merged_state_dict

log = logging.getLogger(__name__)

# Where the in-process engine keeps the model, newest vLLM layout first.
_MODEL_PATHS = (
    "llm_engine.model_executor.driver_worker.worker.model_runner.model",  # V1, in process
    "llm_engine.engine_core.engine_core.model_executor.driver_worker.worker.model_runner.model",
    "llm_engine.model_executor.driver_worker.model_runner.model",  # V0
)


def vllm_unavailable(device: torch.device) -> str | None:
    """Why vLLM cannot generate for a policy on ``device`` here; None when it can."""
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed (pip install 'swarmrl[gpu]')"
    if device.type != "cuda" or not torch.cuda.is_available():
        return f"the policy is on {device} and vLLM generates on a CUDA GPU"
    return None


def needs_sync(engine_version: int | None, version: int, max_lag: int,
               synced_key: tuple | None, key: tuple) -> bool:
    """Whether the engine's weights must be refreshed before sampling.

    Refresh when the engine has none yet, trails the policy by more than ``max_lag`` versions,
    is ahead of it (a checkpoint was loaded), or holds the same version while the tensors were
    edited in place (a checkpoint load at the same version: with no step in between, only a
    load changes them).
    """
    if engine_version is None or version < engine_version:
        return True
    if version - engine_version > max_lag:
        return True
    return version == engine_version and key != synced_key


def sample_from_output(backend: BackendBase, prompt_ids: list[int], completion: Any) -> Sample:
    """A vLLM ``CompletionOutput`` as a Sample: ids cut after the first EOS, raw log-probs.

    A stop on EOS keeps the EOS id in ``token_ids``; should an engine leave it out, it is put
    back (its log-prob unknown: NaN, which importance sampling weighs as 1).
    """
    tokens = [int(t) for t in completion.token_ids]
    raw = [_token_logprob(completion.logprobs, i, t) for i, t in enumerate(tokens)]
    if completion.finish_reason == "stop" and backend.eos_id not in tokens:
        tokens.append(backend.eos_id)
        raw.append(math.nan)
    # vLLM gave the raw model's log-probs, not the sampled distribution's: those stay None.
    return backend._sample(prompt_ids, tokens, None, raw)


def _token_logprob(logprobs: Any, i: int, token: int) -> float:
    if logprobs is None or i >= len(logprobs):
        return math.nan
    entry = logprobs[i]
    if entry is None or token not in entry:
        return math.nan
    return float(entry[token].logprob)


class VLLMBackend(BackendBase):
    """Samples with an in-process vLLM engine that follows the policy's weights."""

    def __init__(self, model: Any, tokenizer: Any, generator: torch.Generator | None = None,
                 weights_version: Callable[[], int] | None = None) -> None:
        super().__init__(model, tokenizer, generator)
        self.weights_version = weights_version or (lambda: 0)
        self.engine: Any = None
        self.engine_version: int | None = None
        self._synced_key: tuple | None = None
        self._workdir: str | None = None
        self.syncs = 0
        self.sync_seconds = 0.0  # total, for the benchmark and the logs

    # --- the engine ------------------------------------------------------------------------
    def _start(self, cfg: GenerationConfig) -> None:
        # In-process engine core: the model object is reachable, so weights pass by reference.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        self._workdir = tempfile.mkdtemp(prefix="swarmrl-vllm-")
        self.model.config.save_pretrained(self._workdir)  # the shape only: weights follow
        seed = self._draw_seed(2**31 - 1)
        kwargs: dict[str, Any] = {
            "model": self._workdir,
            "load_format": "dummy",
            "skip_tokenizer_init": True,
            "dtype": str(next(self.model.parameters()).dtype).removeprefix("torch."),
            "seed": seed,
            "gpu_memory_utilization": cfg.vllm_gpu_memory_utilization,
            "enable_prefix_caching": True,
            "enforce_eager": cfg.vllm_enforce_eager,
        }
        try:
            self.engine = LLM(**kwargs, logprobs_mode="raw_logprobs")
        except TypeError:  # vLLM before logprobs_mode: V1 reports raw log-probs anyway
            self.engine = LLM(**kwargs)
        log.info("vLLM engine started for %s (%s, %.2f of GPU memory)",
                 type(self.model).__name__, kwargs["dtype"], cfg.vllm_gpu_memory_utilization)

    def _engine_model(self) -> Any:
        for path in _MODEL_PATHS:
            obj: Any = self.engine
            try:
                for attr in path.split("."):
                    obj = getattr(obj, attr)
            except AttributeError:
                continue
            return obj
        raise RuntimeError(
            "cannot reach the vLLM engine's model to load new weights; swarmrl needs the "
            "engine in process (VLLM_ENABLE_V1_MULTIPROCESSING=0) and a vLLM with one of the "
            f"layouts {_MODEL_PATHS}"
        )

    def _weights_key(self) -> tuple:
        return tuple((p.data_ptr(), p._version) for p in self.model.parameters())

    @torch.no_grad()
    def sync(self) -> None:
        """Hand the policy's current weights to the engine and forget cached prefixes."""
        t0 = time.perf_counter()
        target = self._engine_model()
        # with LoRA, the adapters merged into the base model's weights, under its names
        weights = merged_state_dict(self.model)
        target.load_weights((name, t.detach()) for name, t in weights.items())
        if hasattr(self.engine, "reset_prefix_cache"):
            self.engine.reset_prefix_cache()  # its KV entries were computed by the old weights
        torch.cuda.synchronize()
        self.engine_version = self.weights_version()
        self._synced_key = self._weights_key()
        self.syncs += 1
        self.sync_seconds += time.perf_counter() - t0
        log.debug("vLLM weights synced to policy v%d in %.3fs", self.engine_version,
                  time.perf_counter() - t0)

    def _ensure(self, cfg: GenerationConfig) -> None:
        if self.engine is None:
            self._start(cfg)
        if needs_sync(self.engine_version, self.weights_version(), cfg.vllm_max_lag,
                      self._synced_key, self._weights_key()):
            self.sync()

    # --- sampling -----------------------------------------------------------------------------
    def _params(self, cfg: GenerationConfig, n: int) -> Any:
        from vllm import SamplingParams

        seed = self._draw_seed(2**31 - 1)
        return SamplingParams(
            n=n, temperature=cfg.temperature, top_p=cfg.top_p,  # top_k: off by default
            max_tokens=cfg.max_new_tokens, logprobs=0, stop_token_ids=[self.eos_id],
            seed=seed, detokenize=False,
        )

    def generate(self, prompts: list[str], n: int, cfg: GenerationConfig) -> list[list[Sample]]:
        self._ensure(cfg)
        prompt_ids = self._encode(prompts)
        # Greedy samples are all the same: ask once per prompt and repeat it.
        per_prompt = 1 if cfg.temperature == 0 else n
        outputs = self.engine.generate(
            [{"prompt_token_ids": ids} for ids in prompt_ids],
            self._params(cfg, per_prompt), use_tqdm=False,
        )
        groups = []
        for ids, out in zip(prompt_ids, outputs, strict=True):
            samples = [sample_from_output(self, ids, c) for c in out.outputs]
            if per_prompt == 1:
                samples = [dataclasses.replace(samples[0]) for _ in range(n)]
            groups.append(samples)
        return groups

    def close(self) -> None:
        """Free the engine and its GPU memory (a node keeps one for its whole run), so that
        another engine can start in this process (the benchmark starts one per round)."""
        if self.engine is not None:
            with contextlib.suppress(Exception):
                self.engine.llm_engine.engine_core.shutdown()
            self.engine = None
            with contextlib.suppress(Exception):
                from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

                cleanup_dist_env_and_memory()
        self.engine_version = self._synced_key = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
