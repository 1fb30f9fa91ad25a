"""The one way swarmrl replaces a file: readers see the old content or the new, never half.

A temp file beside the target (same directory, so the same filesystem and an atomic rename) is
written, flushed and fsynced, ``os.replace``d onto the target, and the directory is fsynced so
the rename itself survives a crash. Any failure removes the temp file. It lives in protocol/,
the lowest layer, so key files (here), a node's run files and the simulator's results share it
without importing torch.

Every file is created 0600: the callers write keys, control tokens and a run's private files,
and the mode is set before a byte is written, so a secret is never readable by others.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

MODE = 0o600


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data``. ``durable=False`` skips both fsyncs (still atomic, not
    crash-proof): for a file rewritten so often that a stale copy after a crash costs nothing."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), MODE)  # mkstemp already uses 0600; be explicit everywhere
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def write_text_atomic(path: str | os.PathLike[str], text: str, *, durable: bool = True) -> None:
    """:func:`write_bytes_atomic` of ``text`` in UTF-8."""
    write_bytes_atomic(path, text.encode("utf-8"), durable=durable)


def write_json_atomic(path: str | os.PathLike[str], obj: Any, *, durable: bool = True) -> None:
    """``obj`` as indented JSON and a final newline (NaN allowed, as Python's json writes it)."""
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n", durable=durable)


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename in ``directory`` durable, where the platform lets a directory be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on a directory
        pass
    finally:
        os.close(fd)
