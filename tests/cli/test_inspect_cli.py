"""`swarmrl inspect` through typer's test runner against a real control server: --json output
parsed and checked against the nodes, human output at a glance, and every failure one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _control_helpers import STUB_SCENARIO, finished_sim, live_nodes, live_served, serve, serve_sim
from typer.testing import CliRunner

from swarmrl.cli import app
from swarmrl.config import tomllib
from swarmrl.control.server import write_control_addr
from swarmrl.node.metrics import read_metrics
from swarmrl.simulator.runner import Simulation

pytestmark = pytest.mark.network
runner = CliRunner()


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Simulation:
    return finished_sim(tmp_path_factory.mktemp("sim"))


@pytest.fixture(scope="module")
def addr(sim: Simulation) -> Iterator[str]:
    handle = serve_sim(sim)
    yield handle.addr
    handle.stop(0)


def inspect(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, ["inspect", *args], env=env)


def ok_json(*args: str) -> Any:
    result = inspect(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def one_line_error(result: Any) -> str:
    assert result.exit_code == 1, result.output
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_json_output_matches_the_nodes(sim: Simulation, addr: str) -> None:
    node = sim.nodes[0].node
    assert sim.out_dir is not None
    rows = read_metrics(sim.out_dir / "nodes" / "s-0" / "metrics.jsonl")
    nodes = ok_json("nodes", "--node", addr)
    assert [n["name"] for n in nodes["nodes"]] == ["s-0", "s-1", "s-2"]
    s = ok_json("status", "--node", addr, "--peer", "s-0")
    assert s["node"]["step"] == node.step and s["last_step"] == rows[-1]
    assert s["counters"] == dict(node.metrics.counters)
    peers = ok_json("peers", "--node", addr, "--peer", "s-0")
    assert {p["name"] for p in peers["peers"]} == {"s-1", "s-2"}
    assert sum(p["admitted"] for p in peers["peers"]) == sum(i.admitted for i in node.peers)
    pool = ok_json("pool", "--node", addr, "--peer", "s-0", "--limit", "2")
    assert pool["size"] == len(node.pool) and len(pool["entries"]) == 2
    rollouts = ok_json("rollouts", "--node", addr, "--peer", "s-0", "--source", "local")
    assert rollouts["rollouts"] and all(r["local"] for r in rollouts["rollouts"])

    metrics = inspect("metrics", "--node", addr, "--peer", "s-0", "--last", "-1", "--json")
    assert metrics.exit_code == 0, metrics.output
    lines = [json.loads(x) for x in metrics.stdout.splitlines()]
    assert lines[:-1] == rows and lines[-1] == {"counters": dict(node.metrics.counters)}

    cfg = ok_json("config", "--node", addr, "--peer", "s-0")
    assert cfg["name"] == "s-0" and cfg["sapo"]["local"] == 2
    toml = inspect("config", "--node", addr, "--peer", "s-0")
    assert tomllib.loads(toml.stdout)["generation"]["group_size"] == 4


def test_human_output_answers_the_questions(sim: Simulation, addr: str, tmp_path: Path) -> None:
    write_control_addr(tmp_path, addr)  # as the daemon and `sim --control` do
    status = inspect("status", "--dir", str(tmp_path), "--peer", "s-1")
    assert status.exit_code == 0, status.output
    for words in ("s-1", "done", "step 12/12", "reward", "dropped", "admitted", "peers"):
        assert words in status.stdout
    peers = inspect("peers", "--dir", str(tmp_path), "--peer", "s-1")
    assert "s-0 (" in peers.stdout and "s-2 (" in peers.stdout and "admitted" in peers.stdout
    top = inspect("top", "--once", "--dir", str(tmp_path), "--peer", "s-1")
    assert top.exit_code == 0 and "reward" in top.stdout and "pool" in top.stdout
    rollouts = inspect("rollouts", "--dir", str(tmp_path), "--peer", "s-1", "--limit", "1")
    assert "prompt: Q:" in rollouts.stdout
    metrics = inspect("metrics", "--dir", str(tmp_path), "--peer", "s-1", "--last", "3")
    assert metrics.exit_code == 0 and "counters:" in metrics.stdout


def test_failures_are_one_line(addr: str, tmp_path: Path) -> None:
    assert "cannot reach a node at 127.0.0.1:1" in one_line_error(
        inspect("status", "--node", "127.0.0.1:1", "--timeout", "2"))
    assert "no node 'zz' here" in one_line_error(inspect("status", "--node", addr, "--peer", "zz"))
    assert "pick one with --peer NAME" in one_line_error(inspect("peers", "--node", addr))
    assert "pass --node HOST:PORT or --dir" in one_line_error(
        inspect("status", "--dir", str(tmp_path / "nowhere")))
    assert "s-0 is done" in one_line_error(inspect("pause", "--node", addr, "--peer", "s-0"))
    assert "give either --family" in one_line_error(inspect("submit", "--node", addr))
    assert "--source" in one_line_error(inspect("rollouts", "--node", addr, "--source", "x"))


def test_token_from_option_or_environment(sim: Simulation) -> None:
    handle = serve_sim(sim, token="s3cret")
    try:
        assert "no token" in one_line_error(inspect("nodes", "--node", handle.addr))
        assert "wrong token" in one_line_error(
            inspect("nodes", "--node", handle.addr, "--token", "nope"))
        assert ok_json("nodes", "--node", handle.addr, "--token", "s3cret")["nodes"]
        with_env = inspect("nodes", "--node", handle.addr, env={"SWARMRL_TOKEN": "s3cret"})
        assert with_env.exit_code == 0 and "s-2" in with_env.stdout
    finally:
        handle.stop(0)


def test_steering_live_nodes_from_the_cli() -> None:
    with live_nodes(2) as nodes:
        handle = serve(live_served(nodes))
        try:
            a = ("--node", handle.addr, "--peer", "live-0")
            assert ok_json("pause", *a)["paused"] and nodes[0].control.paused
            assert not ok_json("resume", *a)["paused"] and not nodes[0].control.paused
            queued = ok_json("submit", *a, "--family", "arith", "--param", "ops=*",
                             "--param", "max_digits=1", "--seed", "5", "--index", "1")
            assert "*" in queued["question"]
            assert "unknown task family 'arithm'" in one_line_error(
                inspect("submit", *a, "--family", "arithm"))
            free = ok_json("submit", *a, "--prompt", "2+2?", "--answer", "4")
            assert free["answer"] == "4" and free["family"] == "free"
        finally:
            handle.stop(0)


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_sim_serves_its_nodes_after_the_run(tmp_path: Path, stop_signal: int) -> None:
    """A real `swarmrl sim --control ... --serve-after` process, inspected from outside and
    stopped by SIGINT or SIGTERM, even when started as a background job (SIGINT ignored)."""
    scenario = tmp_path / "stub.toml"
    scenario.write_text(_toml(STUB_SCENARIO))
    out = tmp_path / "run"
    # PYTHONFAULTHANDLER: a child that does not stop is made to print its threads (SIGABRT)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    cmd = [sys.executable, "-m", "swarmrl.cli", "sim", "--scenario", str(scenario), "--out",
           str(out), "--control", "127.0.0.1:0", "--serve-after"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        deadline = time.monotonic() + 60
        while not (out / "report.md").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout
            time.sleep(0.2)
        listed = ok_json("nodes", "--dir", str(out))
        assert [n["state"] for n in listed["nodes"]] == ["done"] * 3
        assert ok_json("peers", "--dir", str(out), "--peer", "s-2")["peers"]
        _wait_for_line(proc, "still serving")
        proc.send_signal(stop_signal)
        try:
            assert proc.wait(20) == 0
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            proc.wait(10)
            raise AssertionError(proc.stdout.read().decode(errors="replace")) from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _wait_for_line(proc: subprocess.Popen[bytes], text: str) -> None:
    assert proc.stdout is not None
    for line in iter(proc.stdout.readline, b""):
        if text.encode() in line:
            return
    raise AssertionError(f"the process ended before printing {text!r}")


def _toml(data: dict[str, Any]) -> str:
    from swarmrl.config import toml_key, toml_value

    return "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in data.items())
