"""The one atomic write: old content or new, never half; no temp file left; 0600; fsynced."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import pytest

from swarmrl.protocol import atomic_file
from swarmrl.protocol.atomic_file import write_bytes_atomic, write_json_atomic, write_text_atomic


def test_writes_private_file_and_leaves_no_temp(tmp_path: Path) -> None:
    old = os.umask(0o000)  # even with a permissive umask the file is the owner's only
    try:
        write_text_atomic(tmp_path / "run.token", "secret\n")
    finally:
        os.umask(old)
    path = tmp_path / "run.token"
    assert path.read_text() == "secret\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["run.token"]


def test_replaces_existing_content(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    write_bytes_atomic(path, b"old")
    write_bytes_atomic(path, b"new", durable=False)
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_json_is_indented_with_a_final_newline_and_allows_nan(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_json_atomic(path, {"a": [1, 2], "x": math.nan})
    text = path.read_text()
    assert text.endswith("}\n") and '\n  "a": [' in text
    assert math.isnan(json.loads(text)["x"])


def test_failed_write_keeps_old_content_and_removes_temp(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    path.write_text("old")
    with pytest.raises(TypeError):
        write_bytes_atomic(path, "not bytes")  # type: ignore[arg-type] - fails mid-write
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_failed_replace_keeps_old_content_and_removes_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "node.addrs"
    path.write_text("old")

    def refuse(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(atomic_file.os, "replace", refuse)
    with pytest.raises(OSError, match="disk gone"):
        write_text_atomic(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["node.addrs"]


def test_durable_fsyncs_file_and_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[bool] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)

    monkeypatch.setattr(atomic_file.os, "fsync", fsync)
    write_text_atomic(tmp_path / "a", "x")
    assert synced == [False, True]  # the file, then the directory holding the rename
    synced.clear()
    write_text_atomic(tmp_path / "b", "x", durable=False)
    assert synced == []
