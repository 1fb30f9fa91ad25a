"""Faults: SIGKILL at random instants while checkpoints are being written never leaves a corrupt
checkpoint visible; the next start resumes from the last good one."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swarmrl.training.checkpoint_files import latest_checkpoint, list_checkpoints

WRITER = Path(__file__).with_name("_checkpoint_writer.py")


def _start(root: Path, start: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    return subprocess.Popen([sys.executable, str(WRITER), str(root), str(start)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _check_whole(path: Path) -> int:
    """Every file of the checkpoint holds its own step's bytes: nothing torn, nothing mixed."""
    step = int(path.name.rsplit("-", 1)[1])  # step-N, or a swapped-out .tmp-PID-old-step-N
    for name in ("weights.bin", "optimizer.bin", "extra.bin"):
        data = (path / name).read_bytes()
        assert len(data) == 4 << 20, (path, name, len(data))
        assert data.count(bytes([step % 251])) == len(data), (path, name)
    return step


@pytest.mark.slow
def test_sigkill_during_checkpoint_writes_never_leaves_a_corrupt_one(tmp_path) -> None:
    rng = random.Random(7)
    root = tmp_path / "ckpt"
    last = -1
    kills = 0
    while kills < 12:
        proc = _start(root, 0)
        # Let it get going, then kill at a random instant (writes take tens of ms each).
        deadline = time.monotonic() + 60
        while latest_checkpoint(root) is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
        kills += 1
        good = latest_checkpoint(root)
        assert good is not None, f"kill {kills}: no good checkpoint left: {os.listdir(root)}"
        step = _check_whole(good)
        assert step >= last, "resume would go back in time"
        last = step
    # Everything still listed either verifies or is skipped; the last start resumes past it.
    assert list_checkpoints(root)
    proc = _start(root, 0)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    assert _check_whole(latest_checkpoint(root)) >= last


def test_kill_between_the_two_renames_of_a_resave_keeps_the_old_copy(tmp_path) -> None:
    """Re-saving step N swaps the old step-N out before the new one goes in; a kill between
    the two renames leaves only the swapped-out copy, which must still count (and be restored)."""
    from swarmrl.training.checkpoint_files import write_step_dir

    def write(d: Path) -> None:
        (d / "w.bin").write_bytes(b"5" * 1000)

    done = write_step_dir(tmp_path, 5, write, keep=1)
    dead_pid = 999_999_999
    orphan = tmp_path / f".tmp-{dead_pid}-old-{done.name}"
    os.rename(done, orphan)  # the writer died right here
    (tmp_path / f".tmp-{dead_pid}-half").mkdir()  # and its new copy never got renamed in
    found = latest_checkpoint(tmp_path)
    assert found is not None and found.name.endswith(done.name)
    # The next writer restores it before anything else, and prunes with it in view.
    write_step_dir(tmp_path, 6, write, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000005", "step-00000006"]
    assert not list(tmp_path.glob(".tmp-*"))
