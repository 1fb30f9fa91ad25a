"""The one TOML reader and writer of configs.

Reading: ``load_toml`` (a file, or a one-line ConfigError) and ``load_config`` (a config model
from TOML or defaults, with dotted overrides). Writing: ``toml_key`` and ``toml_value`` (one key,
one value), ``toml_tables`` (nested dicts as [a.b] tables, as a genesis writes its defaults) and
``toml_document`` (a node config: scalars, then a [section] per table). tomllib only reads;
nothing in the stdlib writes TOML, and these few functions are all the configs need.
"""

from __future__ import annotations

import json
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


# --- the writer (values only) ---------------------------------------------------------------
def toml_key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key)


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def toml_tables(prefix: str, data: dict[str, Any]) -> list[str]:
    """``data`` as the table [prefix] of its scalars, then a [prefix.key] table for each nested
    dict, all the way down."""
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    lines = [f"[{prefix}]"] + [f"{toml_key(k)} = {toml_value(v)}" for k, v in scalars.items()]
    for key, sub in tables.items():
        lines += [""] + toml_tables(f"{prefix}.{toml_key(key)}", sub)
    return lines


def toml_document(data: dict[str, Any]) -> str:
    """``data`` (a config's ``model_dump(mode="json")`` or a part of one) as a TOML file: its
    scalars, then a [section] per dict, whose own dicts are inline tables. TOML has no null: a
    None is left out (it reads back as its default)."""
    lines = [f"{toml_key(k)} = {toml_value(v)}"
             for k, v in data.items() if not isinstance(v, dict) and v is not None]
    for section, values in data.items():
        if isinstance(values, dict):
            lines += ["", f"[{toml_key(section)}]"]
            lines += [
                f"{toml_key(k)} = {toml_value(v)}" for k, v in values.items() if v is not None
            ]
    return "\n".join(lines) + "\n"
