"""The one metrics path: every step's figures go to metrics.jsonl and to in-memory counters.

One JSON object per line, written with a single ``write`` and flushed, so a crash leaves at most
a torn last line, which ``read_metrics`` skips. Counters (drops by reason, messages in/out) live
beside it so inspect and Prometheus read the same numbers as the log.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter, deque
from pathlib import Path
from typing import Any

SUMMED = (
    "tokens", "completion_tokens", "seconds", "groups_local", "groups_external",
    "groups_with_signal",
)
"""Step-row fields also kept as running totals (Prometheus counters must never go down, even
when old rows leave the in-memory history)."""


class Metrics:
    """Per-node metrics: a JSONL log of steps plus counters, with a short in-memory history."""

    def __init__(self, path: Path | None = None, history: int = 100_000) -> None:
        self.path = path
        self.counters: Counter[str] = Counter()
        self.history: deque[dict[str, Any]] = deque(maxlen=history)
        self.totals: Counter[str] = Counter()  # SUMMED fields and "steps", this process's rows
        self._fh = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - held for the run

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def log_step(self, record: dict[str, Any]) -> None:
        clean = {k: _jsonable(v) for k, v in record.items()}
        self.history.append(clean)
        self.totals["steps"] += 1
        for key in SUMMED:
            if isinstance(clean.get(key), (int, float)):
                self.totals[key] += clean[key]
        if self._fh is not None:
            self._fh.write(json.dumps(clean, separators=(",", ":")) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Read a metrics.jsonl, skipping a torn or corrupt line (a crash mid-write)."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows
