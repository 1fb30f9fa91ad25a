"""What the `swarmrl` commands share: the stderr console, logging for a command's run, and
loading a node config (a ConfigError is one line on stderr)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rich.console import Console

from swarmrl.cli.errors import fail

console = Console(stderr=True)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _node_config(path: Path | None, **overrides: Any) -> Any:
    from swarmrl.config import ConfigError, NodeConfig, load_config

    try:
        return load_config(NodeConfig, path, **overrides)
    except ConfigError as e:
        fail(str(e))
