"""The `swarmrl` command (typer): main.py (the app and `train`; the command groups keys.py,
models.py, config_cmd.py, sim.py, node.py, genesis.py; common.py: what they share),
inspect.py + inspect_view.py (`swarmrl inspect` and its views), errors.py (the one fail() of
both, one line on stderr, and their exit codes). `app` is the console script's entry point
(`swarmrl.cli:app`); `python -m swarmrl.cli` runs it too (__main__.py)."""

from swarmrl.cli.config_cmd import config_markdown
from swarmrl.cli.main import app, main

__all__ = ["app", "config_markdown", "main"]
