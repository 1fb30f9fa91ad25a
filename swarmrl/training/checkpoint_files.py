"""Checkpoint directories that survive a kill at any instant (no torch: any brain can use them).

A checkpoint is ``root/step-00000123/`` with whatever files its writer puts there plus a
``manifest.json`` (a sha256 of every other file) written last. Everything is written into a
temporary sibling directory, fsynced, then renamed into place, so a checkpoint is either all
there or not there; ``latest_checkpoint`` still verifies the manifest and skips bad ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from swarmrl.config import ConfigError

log = logging.getLogger("swarmrl.node")  # what a node says as it resumes

FORMAT = 1
MANIFEST = "manifest.json"
PREFIX = "step-"
_STARTED = time.time()  # about when this process started: it wrote nothing before


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under root (directories last, so renames are durable)."""
    for dirpath, _, filenames in os.walk(root, topdown=False):
        for f in filenames:
            _fsync_path(Path(dirpath) / f)
        _fsync_path(Path(dirpath))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def write_manifest(d: Path) -> None:
    """The manifest last: it vouches for everything written before it."""
    manifest = {"format": FORMAT, "files": {f: sha256_file(d / f) for f in _files(d)}}
    (d / MANIFEST).write_text(json.dumps(manifest, indent=2))


def write_step_dir(
    root: str | Path, step: int, writer: Callable[[Path], None], keep: int = 2
) -> Path:
    """Write ``root/step-<step>`` atomically with ``writer(tmpdir)``; keep the ``keep`` newest."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(root)
    final = root / f"{PREFIX}{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", dir=root))
    try:
        writer(tmp)
        write_manifest(tmp)
        fsync_tree(tmp)
        trash = None
        if final.exists():  # the same step saved twice: swap the old one out first
            trash = root / f"{_OLD_PREFIX.format(pid=os.getpid())}{final.name}"
            os.rename(final, trash)
        os.rename(tmp, final)
        _fsync_path(root)
        if trash is not None:  # only once the new copy is in place: a kill before keeps it
            shutil.rmtree(trash)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


_OLD_PREFIX = ".tmp-{pid}-old-"
"""A step directory swapped out while the same step is re-saved. A writer killed between its
two renames leaves only this copy: it still counts, and the next writer puts it back."""


def _writer_pid(p: Path) -> int | None:
    try:
        return int(p.name.split("-")[1])
    except (IndexError, ValueError):
        return None


def _dead_writer(p: Path) -> bool:
    """Whether the process that wrote ``p`` is gone: its pid is not alive, or that pid now
    belongs to a process started after ``p`` was last written (pids are reused, and a daemon
    restarted in a container often gets its predecessor's)."""
    pid = _writer_pid(p)
    if pid is None:
        return False
    if pid == os.getpid():
        try:
            return p.stat().st_mtime < _STARTED - 1.0
        except OSError:
            return False
    return not _pid_alive(pid)


def _orphans(root: Path) -> dict[str, Path]:
    """Swapped-out step directories of dead writers whose step directory is missing."""
    found = {}
    for p in root.glob(".tmp-*-old-" + PREFIX + "*"):
        name = p.name.split("-old-", 1)[1]
        if _dead_writer(p) and not (root / name).exists():
            found[name] = p
    return found


def remove_stale_tmp(root: Path) -> None:
    """Tidy what writers that died (their pid is gone) left: restore a swapped-out checkpoint
    that was never replaced, delete everything else."""
    for name, p in _orphans(root).items():
        if verify_checkpoint(p):
            os.rename(p, root / name)
    for p in root.glob(".tmp-*"):
        if _dead_writer(p):
            shutil.rmtree(p, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_checkpoints(root: str | Path) -> list[Path]:
    """Checkpoint directories under ``root`` (complete or not), oldest step first; a swapped-out
    copy left by a killed re-save stands in for its missing step directory."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    named = [(p.name, p) for p in root.iterdir()] + list(_orphans(root).items())
    for name, p in named:
        if p.is_dir() and name.startswith(PREFIX) and name[len(PREFIX) :].isdigit():
            found.append((int(name[len(PREFIX) :]), p))
    return [p for _, p in sorted(found)]


def verify_checkpoint(path: str | Path) -> bool:
    """True when the manifest exists, lists every file, and every hash matches."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        files = manifest["files"]
        if set(files) != set(_files(path)) - {MANIFEST}:
            return False
        return all(sha256_file(path / f) == digest for f, digest in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest checkpoint that verifies; incomplete or corrupt ones are skipped."""
    return next(iter(verified_checkpoints(root)), None)


def verified_checkpoints(root: str | Path) -> list[Path]:
    """Every checkpoint whose manifest verifies, newest first."""
    return [p for p in reversed(list_checkpoints(root)) if verify_checkpoint(p)]


def tuplify(x: object) -> object:
    """random.Random state comes back from JSON as lists; setstate wants tuples."""
    return tuple(tuplify(v) for v in x) if isinstance(x, list) else x


def load_newest(root: Path, load: Callable[[Path], None], name: str) -> Path | None:
    """Load the newest checkpoint under ``root`` that loads; returns it, or None when there is
    none. A checkpoint whose files verify can still hold what this node cannot load (another
    model's weights, a bad state file): ``load`` raises, and the one before is tried, with a
    warning. If none loads, ConfigError says so and nothing is deleted."""
    if not root.is_dir():
        return None
    remove_stale_tmp(root)  # what a writer killed mid-checkpoint left
    tried = []
    for path in verified_checkpoints(root):
        try:
            load(path)
        except Exception as e:  # noqa: BLE001 - any reason a file does not load
            why = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            log.warning("%s: checkpoint %s does not load (%s); trying the one before",
                        name, path, why[:300])
            tried.append(f"{path.name} ({why[:120]})")
            continue
        return path
    if tried:
        raise ConfigError(f"no checkpoint under {root} loads: {'; '.join(tried)}; move "
                          "them away to start from scratch")
    return None
