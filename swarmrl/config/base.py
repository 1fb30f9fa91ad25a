"""What every config section shares: a strict pydantic base (unknown keys and bad
assignments are errors) and ConfigError, whose message is one line naming the field."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class ConfigError(ValueError):
    """A config could not be loaded; the message is one line naming the field and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def format_validation_error(err: ValidationError) -> str:
    """One line: the first failing field and why (pydantic's own words, made compact)."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ())) or "config"
    msg = first.get("msg", "invalid")
    extra = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{loc}: {msg}{extra}"


def parse_config(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e)) from None
