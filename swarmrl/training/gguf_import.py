"""A GGUF file (llama.cpp's format, as offline model packages ship them) -> a transformers folder.

transformers reads GGUF (``gguf_file=``, with the ``gguf`` package) and dequantises it, but a
model loaded that way cannot be ``save_pretrained`` directly. So a plain model is built from
the loaded config, the dequantised weights are copied in, and that is saved with the tokenizer
(its chat template included) to a folder ``model.name`` can point at. The folder is written
under a temporary name and renamed, so a crash leaves no half-written model.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path

from swarmrl.config import ConfigError


def import_gguf(gguf: Path, out: Path, dtype: str = "float32") -> Path:
    """Write a transformers folder for ``gguf`` at ``out`` (replacing none: ``out`` must not
    exist). Returns ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf, out = Path(gguf), Path(out)
    if not gguf.is_file():
        raise ConfigError(f"gguf: {gguf} is not a file")
    if out.exists():
        raise ConfigError(f"out: {out} exists; choose a new folder (nothing is overwritten)")
    try:
        import gguf as _gguf  # noqa: F401 - transformers needs it to read the file
    except ImportError:
        raise ConfigError("reading GGUF needs the 'gguf' package: pip install gguf") from None
    torch_dtype = getattr(torch, dtype)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch_dtype
    )
    config = copy.deepcopy(loaded.config)
    # Else the saved folder says "quantized with gguf" and loads as a model that cannot be
    # saved (a checkpoint of it failed): the weights written here are plain.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # A tied output head is not a separate tensor in either model; anything else is a bug.
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise ConfigError(f"gguf: {gguf.name} did not map onto {type(model).__name__}: missing "
                          f"{sorted(set(missing) - tied)[:5]}, unexpected {sorted(unexpected)[:5]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
