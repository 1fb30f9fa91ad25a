"""Distillation between real processes: a teacher daemon and a student daemon on 127.0.0.1 over
libp2p (`swarmrl node run`); the student finds the teacher from its peer card and its
metrics.jsonl shows distillation."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from test_daemon import GENESIS, TINY_NODE, Daemon, wait_for, write


def node_dir(
    root: Path, name: str, seed: int, genesis: Path, head: str = "", tail: str = ""
) -> Path:
    text = TINY_NODE.format(name=name, seed=seed, genesis=genesis, listen="/ip4/127.0.0.1/tcp/0")
    return write(root / name / "node.toml", head + text + tail)


@pytest.mark.network
@pytest.mark.slow
def test_a_student_daemon_distills_from_a_teacher_daemon(tmp_path: Path) -> None:
    genesis = write(tmp_path / "genesis.toml", GENESIS)
    teacher_cfg = node_dir(tmp_path, "teacher", 1, genesis, head='roles = ["solver", "teacher"]\n')
    student_cfg = node_dir(tmp_path, "student", 2, genesis,
                           tail='[distill]\nmode = "grpo+kl"\ntimeout_s = 10.0\n')
    teacher = Daemon(tmp_path / "teacher", ["--config", str(teacher_cfg)])
    daemons = [teacher]
    try:
        teacher.wait_running(60)
        student = Daemon(tmp_path / "student",
                         ["--config", str(student_cfg), "--bootstrap", teacher.addr])
        daemons.append(student)
        student.wait_running(60)

        def taught() -> list[dict]:
            return [r for r in student.metrics() if r.get("distill_teacher") == teacher.peer_id]

        rows = wait_for(taught, 120, "the student to distill from the teacher", teacher, student)
        r = rows[0]
        assert r["distill_kl"] is not None and r["distill_tokens"] > 0
        assert 0.0 < r["distill_share"] <= 1.0 and r["distill_fallback"] == 0.0
        assert r["distill_coef"] == 1.0
        for d in daemons:
            assert d.stop(signal.SIGTERM) == 0, d.log()[-3000:]
            assert "Traceback" not in d.log()
    finally:
        for d in daemons:
            d.kill()
