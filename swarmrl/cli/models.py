"""`swarmrl models`: built-in tiny models, their warm starts, importing others."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from swarmrl.cli.common import _node_config
from swarmrl.cli.errors import fail

models_app = typer.Typer(help="Built-in tiny models, their warm starts, importing others.",
                        no_args_is_help=True)


@models_app.command("warmstart")
def models_warmstart(
    model: Annotated[str, typer.Option(help="tiny-0.5m or tiny-4m.")] = "tiny-4m",
    steps: Annotated[int | None, typer.Option(help="Supervised steps (default: config).")] = None,
    config: Annotated[Path | None, typer.Option(help="Node config TOML.")] = None,
) -> None:
    """Build (or reuse from cache) the supervised warm start of a tiny model."""
    cfg = _node_config(config, **{"model.name": model, "model.warm_start_steps": steps})
    from swarmrl.training.warmstart import ensure_warm_start

    path = ensure_warm_start(cfg.model, progress=True)
    typer.echo(str(path))


@models_app.command("import-gguf")
def models_import_gguf(
    gguf: Annotated[Path, typer.Argument(help="A .gguf file (e.g. from an offline package).")],
    out: Annotated[Path, typer.Option(help="New folder to write (config, weights, tokenizer).")],
    dtype: Annotated[str, typer.Option(help="Weights' dtype: float32 or bfloat16.")] = "float32",
) -> None:
    """Convert a GGUF model to a transformers folder that model.name can point at."""
    from swarmrl.config import ConfigError
    from swarmrl.training.gguf_import import import_gguf

    try:
        typer.echo(str(import_gguf(gguf, out, dtype)))
    except ConfigError as e:
        fail(str(e))
