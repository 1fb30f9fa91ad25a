"""The one TOML reader: ``load_toml`` (a file, or a one-line ConfigError) and
``load_config`` (a config model from TOML or defaults, with dotted overrides)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from swarmrl.config.base import ConfigError, parse_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def load_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        return tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from None


def load_config(model: type[BaseModel], path: str | Path | None, **overrides: Any) -> Any:
    """Load a config section model from TOML (or defaults), then apply dotted overrides."""
    data: dict[str, Any] = load_toml(path) if path else {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return parse_config(model, data)
