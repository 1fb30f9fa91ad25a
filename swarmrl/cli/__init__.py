"""The `swarmrl` command (typer): main.py (keys, models, config, train, sim, node, genesis),
inspect.py + inspect_view.py (`swarmrl inspect` and its views), errors.py (the one fail() of
both, one line on stderr, and their exit codes). `app` is the console script's entry point
(`swarmrl.cli:app`); `python -m swarmrl.cli` runs it too (__main__.py)."""

from swarmrl.cli.main import app, config_markdown, main

__all__ = ["app", "config_markdown", "main"]
