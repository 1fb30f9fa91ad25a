"""The config documented from its models: every field with its default and meaning."""

from __future__ import annotations

from pydantic import BaseModel


def describe(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted field, default, description) for every field, sections expanded: the docs table."""
    rows = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.append((prefix + name, "", f.description or ""))
            rows += describe(ann, prefix + name + ".")
        else:
            default = "" if f.is_required() else repr(f.get_default(call_default_factory=True))
            rows.append((prefix + name, default, f.description or ""))
    return rows
