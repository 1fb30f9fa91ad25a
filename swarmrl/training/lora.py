"""LoRA adapters through peft (``model.lora``): a node trains a few low-rank matrices and keeps
the model's own weights frozen, so its optimizer state and checkpoints hold only the adapters.

The wrapped model is a ``peft.PeftModel``; everything that reads the policy (sampling, the lean
decode step, log-probs, plausibility, teaching) sees it through the same transformers methods.
``save_pretrained`` of a PeftModel writes only the adapters; :func:`load_adapters` reads them back
in place (the optimizer keeps its references). vLLM is handed the merged weights.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from swarmrl.config import ConfigError, LoRAConfig

ADAPTER_CONFIG = "adapter_config.json"


def apply_lora(model: Any, cfg: LoRAConfig) -> Any:
    """``model`` with fresh adapters (B = 0: the wrapped model computes what it did)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ConfigError(
            "model.lora.enabled: LoRA needs peft (pip install 'swarmrl[lora]')"
        ) from None
    targets: str | list[str] = cfg.target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    try:
        lora = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                          target_modules=targets, task_type="CAUSAL_LM")
        with warnings.catch_warnings():
            # peft 0.21 reads transformers' deprecated alias; nothing for us to change
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated",
                                    FutureWarning)
            # fp32 adapters on a bf16 base (peft's autocast_adapter_dtype): updates stay fp32
            return get_peft_model(model, lora)
    except ValueError as e:  # no module of that name in this model
        first = str(e).strip().splitlines()[0]
        raise ConfigError(f"model.lora.target_modules: {first}") from None


def is_lora(model: Any) -> bool:
    return hasattr(model, "peft_config")


def trainable(model: Any) -> list[torch.nn.Parameter]:
    """What the optimizer updates: everything, or with LoRA the adapters only."""
    return [p for p in model.parameters() if p.requires_grad]


def load_adapters(model: Any, directory: str | Path) -> None:
    """Adapters saved by ``save_pretrained`` into the model's own, in place. A checkpoint of
    full weights into a LoRA model, or of another rank or targets, is a ValueError."""
    from peft import set_peft_model_state_dict

    directory = Path(directory)
    files = sorted(directory.glob("*.safetensors"))
    if not (directory / ADAPTER_CONFIG).is_file() or not files:
        raise ValueError(f"{directory}: holds full model weights, not LoRA adapters "
                         "(model.lora.enabled is set)")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(f))
    ours = {k for k, _ in model.named_parameters() if "lora_" in k}
    try:
        result = set_peft_model_state_dict(model, state)
    except RuntimeError as e:  # shapes differ: another rank
        raise ValueError(f"{directory}: adapters do not fit this model.lora: "
                         f"{str(e).splitlines()[-1].strip()}") from None
    missing = [k for k in result.missing_keys if k in ours]
    if result.unexpected_keys or missing or len(state) != len(ours):
        raise ValueError(f"{directory}: adapters do not fit this model.lora (missing "
                         f"{missing[:3]}, unexpected {list(result.unexpected_keys)[:3]})")


def effective_weight(module: Any) -> torch.Tensor:
    """A linear layer's weight as its forward computes with it: with its active adapters
    merged in when it carries LoRA, else the plain weight."""
    base = getattr(module, "base_layer", None)
    if base is None:
        return module.weight
    w = base.weight
    if module.merged or module.disable_adapters:
        return w
    for adapter in module.active_adapters:
        if adapter in module.lora_A:
            w = w + module.get_delta_weight(adapter)
    return w


def merged_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The weights the model computes with, under the base model's own names: adapters merged
    in (for engines that load plain weights, vLLM)."""
    if not is_lora(model):
        return dict(model.state_dict())
    base = model.get_base_model()
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, module in base.named_modules():
            if hasattr(module, "base_layer") and hasattr(module, "get_delta_weight"):
                out[f"{name}.weight"] = effective_weight(module)
                if module.base_layer.bias is not None:
                    out[f"{name}.bias"] = module.base_layer.bias
        for name, t in base.state_dict().items():
            if "lora_" in name or ".base_layer." in name:
                continue
            out.setdefault(name, t)
    return out
