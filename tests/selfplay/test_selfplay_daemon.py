"""Self-play between real processes: a creator daemon (`swarmrl node run --role creator`)
proposes tasks over libp2p, a solver daemon attempts them, and the creator learns their solve
rate from the solver's ordinary rollout traffic."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))
from test_daemon import GENESIS, TINY_NODE, Daemon, wait_for, write  # noqa: E402


def node_dir(root: Path, name: str, seed: int, genesis: Path, tail: str = "") -> Path:
    text = TINY_NODE.format(name=name, seed=seed, genesis=genesis, listen="/ip4/127.0.0.1/tcp/0")
    return write(root / name / "node.toml", text + tail)


@pytest.mark.network
@pytest.mark.slow
def test_a_creator_daemon_teaches_a_solver_daemon_its_tasks(tmp_path: Path) -> None:
    genesis = write(tmp_path / "genesis.toml", GENESIS)
    creator_cfg = node_dir(tmp_path, "creator", 1, genesis,
                           tail="[selfplay]\nsettle_completions = 4\n")
    solver_cfg = node_dir(tmp_path, "solver", 2, genesis, tail="[selfplay]\ncreator_ratio = 0.5\n")
    creator = Daemon(tmp_path / "creator", ["--config", str(creator_cfg), "--role", "creator"])
    daemons = [creator]
    try:
        creator.wait_running(60)
        solver = Daemon(tmp_path / "solver", ["--config", str(solver_cfg),
                                              "--bootstrap", creator.addr])
        daemons.append(solver)
        solver.wait_running(60)

        def attempted() -> list[dict]:
            return [r for r in solver.metrics() if r.get("selfplay_creator_tasks", 0) > 0]

        def learned() -> list[dict]:
            return [r for r in creator.metrics() if r.get("selfplay_p") is not None]

        wait_for(attempted, 120, "the solver to attempt the creator's tasks", creator, solver)
        rows = wait_for(learned, 120, "the creator to learn a solve rate", creator, solver)
        assert 0.0 <= rows[-1]["selfplay_p"] <= 1.0
        assert rows[-1]["selfplay_arm"]  # the parametric creator's choice, in the metrics row
        for d in daemons:
            assert d.stop(signal.SIGTERM) == 0, d.log()[-3000:]
            assert "Traceback" not in d.log()
    finally:
        for d in daemons:
            d.kill()
