"""The control API: a real gRPC server in this process over real nodes (a finished stub swarm,
and live nodes training on a trio thread), the token check, and the Prometheus endpoint scraped
over HTTP against the metrics.jsonl figures."""

from __future__ import annotations

import json
import math
import stat
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import trio
from _control_helpers import finished_sim, live_nodes, live_served, serve, serve_sim

from swarmrl.config import ConfigError, ControlConfig, NodeConfig, parse_config, tomllib
from swarmrl.control.client import ControlClient, InspectError, to_dict
from swarmrl.control.inspection import node_now
from swarmrl.control.proto import control_pb2 as pb
from swarmrl.control.server import resolve_token
from swarmrl.node.metrics import read_metrics
from swarmrl.simulator.runner import Simulation
from swarmrl.simulator.serve import serve_simulation

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Simulation:
    sim = finished_sim(tmp_path_factory.mktemp("sim"))
    # garbage from the wire: dropped and counted by reason, like any bad message
    async def garbage() -> None:
        await sim.nodes[0].node.admission.admit("someone", b"\x00 not msgpack")

    trio.run(garbage)  # the node's clock is trio's
    return sim


@pytest.fixture(scope="module")
def client(sim: Simulation) -> Iterator[ControlClient]:
    handle = serve_sim(sim)
    with ControlClient(handle.addr) as c:
        yield c
    handle.stop(0)


def jsonl(sim: Simulation, i: int) -> list[dict[str, Any]]:
    assert sim.out_dir is not None
    return read_metrics(sim.out_dir / "nodes" / sim.nodes[i].cfg.name / "metrics.jsonl")


def call(c: ControlClient, method: str, request: Any) -> dict[str, Any]:
    return to_dict(c.call(method, request))


# --- every RPC on a finished simulation --------------------------------------------------------
def test_list_nodes_and_status_match_the_metrics_log(
    client: ControlClient, sim: Simulation
) -> None:
    listed = call(client, "ListNodes", pb.ListNodesRequest())
    assert listed["server"] == "simulation"
    assert [n["name"] for n in listed["nodes"]] == ["s-0", "s-1", "s-2"]
    assert all(n["state"] == "done" and n["step"] == 12 for n in listed["nodes"])

    rows = jsonl(sim, 0)
    s = call(client, "Status", pb.NodeRequest(node="s-0"))
    node = sim.nodes[0].node
    assert s["node"]["peer_id"] == node.peer_id and s["node"]["model"] == "stub"
    assert s["policy_version"] == node.brain.policy_version and not s["paused"]
    assert s["last_step"] == rows[-1]  # every field of the last row, as logged
    assert s["rewards"] == [r["reward"] for r in rows]
    assert s["reward_recent"] == pytest.approx(sum(r["reward"] for r in rows[-10:]) / 10)
    assert s["counters"] == dict(node.metrics.counters)
    assert s["counters"]["dropped:malformed"] == 1
    assert s["extra"] == {"scenario": "inspect", "transport": "memory"}
    assert s["steps_per_second"] > 0 and s["uptime_seconds"] > 0
    # a peer id (or a unique prefix of one) selects a node as well as its name
    by_id = call(client, "Status", pb.NodeRequest(node=node.peer_id[:20]))
    assert by_id["node"]["name"] == "s-0"


def test_peers_say_who_sent_what_and_what_was_dropped(
    client: ControlClient, sim: Simulation
) -> None:
    p = call(client, "Peers", pb.NodeRequest(node="s-1"))
    node = sim.nodes[1].node
    assert {x["name"] for x in p["peers"]} == {"s-0", "s-2"}
    for peer in p["peers"]:
        info = node.peers.get(peer["peer_id"])
        assert info is not None
        assert peer["admitted"] == info.admitted > 0
        assert peer["dropped"] == dict(info.dropped)
        assert peer["has_card"] and peer["model"] == "stub" and peer["roles"] == ["solver"]
        assert peer["pool_groups"] == node.pool.peer_counts().get(peer["peer_id"], 0)
    dropped = sum(sum(x["dropped"].values()) for x in p["peers"])
    assert dropped == sum(v for k, v in node.metrics.counters.items() if k.startswith("dropped:"))
    # The guard's view of each peer: how many of its groups were trained on, its reputation.
    for peer in p["peers"]:
        info = node.peers.get(peer["peer_id"])
        assert peer["trained"] == info.trained
        assert peer["reputation"] == pytest.approx(1.0) and not peer["ignored"]
    assert sum(x["trained"] for x in p["peers"]) > 0
    now = node_now(node, node.metrics.history[-1])
    node.guard.penalize(p["peers"][0]["peer_id"], "claim_mismatch", now)
    again = call(client, "Peers", pb.NodeRequest(node="s-1"))
    hit = next(x for x in again["peers"] if x["peer_id"] == p["peers"][0]["peer_id"])
    assert hit["reputation"] == pytest.approx(0.5, abs=0.01)
    assert hit["failed_checks"] == {"claim_mismatch": 1}


def test_pool_and_recent_rollouts(client: ControlClient, sim: Simulation) -> None:
    node = sim.nodes[2].node
    pool = call(client, "Pool", pb.PoolRequest(node="s-2", limit=3))
    assert pool["size"] == len(node.pool) and len(pool["entries"]) == min(3, len(node.pool))
    assert pool["by_peer"] == node.pool.peer_counts()
    assert pool["capacity"] == node.cfg.sapo.pool_capacity

    ext = call(client, "RecentRollouts",
               pb.RecentRolloutsRequest(node="s-2", limit=3, source="external"))["rollouts"]
    others = {sn.node.peer_id for sn in sim.nodes[:2]}
    assert ext and all(not g["local"] and g["sender"] in others for g in ext)
    local = call(client, "RecentRollouts",
                 pb.RecentRolloutsRequest(node="s-2", limit=2, source="local"))["rollouts"]
    assert len(local) == 2 and all(g["local"] and g["task"]["family"] == "arith" for g in local)
    last = node.recent[-1].local_groups[0]
    assert [c["reward"] for c in local[0]["completions"]] == last.rewards
    assert [c["text"] for c in local[0]["completions"]] == [c.text for c in last.completions]
    with pytest.raises(InspectError, match="source 'both'"):
        client.call("RecentRollouts", pb.RecentRolloutsRequest(node="s-2", source="both"))


def test_metrics_history_and_config(client: ControlClient, sim: Simulation) -> None:
    updates = list(client.stream("Metrics", pb.MetricsRequest(node="s-1", last=-1)))
    assert len(updates) == 1
    assert [json.loads(r) for r in updates[0].steps] == jsonl(sim, 1)
    assert dict(updates[0].counters) == dict(sim.nodes[1].node.metrics.counters)
    two = list(client.stream("Metrics", pb.MetricsRequest(node="s-1", last=2)))
    assert [json.loads(r)["step"] for r in two[0].steps] == [11, 12]

    cfg = client.call("Config", pb.NodeRequest(node="s-1"))
    # the node's config as it runs: its prompt style resolved ('auto' -> the stub's 'short')
    assert NodeConfig.model_validate(json.loads(cfg.json)) == sim.nodes[1].node.cfg
    assert sim.nodes[1].cfg.tasks.prompt_style == "auto"
    assert json.loads(cfg.json)["tasks"]["prompt_style"] == "short"
    assert tomllib.loads(cfg.toml)["sapo"]["external"] == 2


def test_unknown_or_missing_node_selector(client: ControlClient) -> None:
    with pytest.raises(InspectError, match=r"pick one with --peer NAME \(s-0, s-1, s-2\)"):
        client.call("Status", pb.NodeRequest())
    with pytest.raises(InspectError, match="no node 'nope' here"):
        client.call("Peers", pb.NodeRequest(node="nope"))


def test_a_finished_node_cannot_be_paused_or_given_tasks(client: ControlClient) -> None:
    with pytest.raises(InspectError, match="s-0 is done"):
        client.call("Pause", pb.NodeRequest(node="s-0"))
    spec = pb.TaskSpecInput(family="arith", seed=1, index=2)
    with pytest.raises(InspectError, match="s-0 is done"):
        client.call("SubmitTask", pb.SubmitTaskRequest(node="s-0", spec=spec))


def test_reflection_lists_the_service(sim: Simulation) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    handle = serve_sim(sim)
    try:
        with grpc.insecure_channel(handle.addr) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            req = reflection_pb2.ServerReflectionRequest(list_services="")
            reply = next(iter(stub.ServerReflectionInfo(iter([req]), timeout=5)))
        names = {s.name for s in reply.list_services_response.service}
        assert "swarmrl.control.v1.NodeControl" in names
    finally:
        handle.stop(0)


# --- live nodes: pause, resume, submitted tasks, followed metrics ------------------------------
def wait_until(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_pause_resume_submit_and_follow_on_live_nodes() -> None:
    with live_nodes(2) as nodes:
        handle = serve(live_served(nodes))
        try:
            with ControlClient(handle.addr) as c:
                _pause_and_resume(c, nodes[0])
                _submitted_task_is_trained_next(c, nodes[1])
                _follow_streams_new_steps(c, nodes[0])
        finally:
            handle.stop(0)


def _pause_and_resume(c: ControlClient, node: Any) -> None:
    wait_until(lambda: node.step >= 3)
    r = call(c, "Pause", pb.NodeRequest(node="live-0"))
    assert r["paused"] and r["state"] == "paused" and node.control.paused
    assert not node.stopping  # a user's pause is not the daemon's stopping flag
    time.sleep(0.3)  # the step in flight finishes
    held = node.step
    time.sleep(0.6)
    assert node.step == held, "a paused node kept training"
    status = call(c, "Status", pb.NodeRequest(node="live-0"))
    assert status["paused"] and status["node"]["state"] == "paused"
    r = call(c, "Resume", pb.NodeRequest(node="live-0"))
    assert not r["paused"] and r["state"] == "training"
    wait_until(lambda: node.step > held + 2)


def _submitted_task_is_trained_next(c: ControlClient, node: Any) -> None:
    spec = pb.TaskSpecInput(family="arith", params_json='{"ops": "*"}', seed=99, index=5)
    r = call(c, "SubmitTask", pb.SubmitTaskRequest(node="live-1", spec=spec))
    assert "*" in r["question"] and r["queued"] >= 1

    def trained() -> bool:
        return any(g.task_key == r["task_key"] for s in node.recent for g in s.local_groups)

    wait_until(trained)
    free = pb.FreeFormInput(prompt="What is 6 * 7?", reference_answer="42")
    r2 = call(c, "SubmitTask", pb.SubmitTaskRequest(node="live-1", free_form=free))
    assert r2["family"] == "free" and r2["answer"] == "42"
    bad = [
        (pb.TaskSpecInput(family="no_such_family"), "unknown task family 'no_such_family'"),
        (pb.TaskSpecInput(family="arith", params_json="{oops"), "params are not JSON"),
        (pb.TaskSpecInput(family="basic_arithmetic"),
         "'basic_arithmetic' is not one of this node's task families \\(arith\\)"),
    ]
    for task, message in bad:
        with pytest.raises(InspectError, match=message):
            c.call("SubmitTask", pb.SubmitTaskRequest(node="live-1", spec=task))
    with pytest.raises(InspectError, match="verifier 'nope'"):
        c.call("SubmitTask", pb.SubmitTaskRequest(node="live-1", free_form=pb.FreeFormInput(
            prompt="x", reference_answer="y", verifier="nope")))
    with pytest.raises(InspectError, match="give a task"):
        c.call("SubmitTask", pb.SubmitTaskRequest(node="live-1"))


def _follow_streams_new_steps(c: ControlClient, node: Any) -> None:
    req = pb.MetricsRequest(node="live-0", follow=True, last=1, interval_s=0.05)
    steps: list[int] = []
    stream = c.stream("Metrics", req, follow=True)
    for update in stream:
        steps += [json.loads(r)["step"] for r in update.steps]
        if len(steps) >= 4:
            break
    stream.close()
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert steps[-1] - steps[0] >= 3  # new steps arrived while following


# --- the token ---------------------------------------------------------------------------------
def test_token_is_required_when_set(sim: Simulation, tmp_path: Path) -> None:
    handle = serve_sim(sim, token="s3cret")
    try:
        for token, why in [(None, "no token"), ("wrong", "wrong token")]:
            with ControlClient(handle.addr, token) as c, pytest.raises(InspectError) as e:
                c.call("ListNodes", pb.ListNodesRequest())
            assert why in str(e.value) and "SWARMRL_TOKEN" in str(e.value)
        with ControlClient(handle.addr, "wrong") as c, pytest.raises(InspectError, match="wrong"):
            list(c.stream("Metrics", pb.MetricsRequest(node="s-0")))
        with ControlClient(handle.addr, "s3cret") as c:
            assert len(c.call("ListNodes", pb.ListNodesRequest()).nodes) == 3
    finally:
        handle.stop(0)
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    assert resolve_token(ControlConfig(token_file="token"), tmp_path) == "from-file"
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_token(ControlConfig(token_file="missing"), tmp_path)


def test_binding_beyond_loopback_needs_a_token() -> None:
    with pytest.raises(ConfigError, match="not a loopback address; set control.token"):
        parse_config(NodeConfig, {"control": {"listen": "0.0.0.0:7850"}})
    assert parse_config(NodeConfig, {"control": {"listen": "0.0.0.0:7850", "token": "t"}})
    assert parse_config(NodeConfig, {"control": {"listen": "[::1]:7850"}})
    with pytest.raises(ConfigError, match="is not HOST:PORT"):
        parse_config(NodeConfig, {"control": {"listen": "localhost"}})
    with pytest.raises(ConfigError, match="metrics_listen: 0.0.0.0:9464 is not a loopback"):
        parse_config(NodeConfig, {"control": {"metrics_listen": "0.0.0.0:9464"}})
    public = {"metrics_listen": "0.0.0.0:9464", "metrics_public": True}
    assert parse_config(NodeConfig, {"control": public})


def test_a_run_directory_gets_its_own_token_unless_told_otherwise(
    sim: Simulation, tmp_path: Path
) -> None:
    handle = serve_simulation(sim, ControlConfig(), None, run_dir=tmp_path)
    try:
        token_file = tmp_path / "control.token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 40
        with ControlClient(handle.addr) as c, pytest.raises(InspectError, match="no token"):
            c.call("ListNodes", pb.ListNodesRequest())
        with ControlClient(handle.addr, token) as c:
            assert c.call("ListNodes", pb.ListNodesRequest()).nodes
    finally:
        handle.stop(0)
    again = serve_simulation(sim, ControlConfig(), None, run_dir=tmp_path)
    again.stop(0)
    assert token_file.read_text().strip() == token  # one token per run directory
    open_ = serve_simulation(sim, ControlConfig(allow_no_token=True), None, run_dir=tmp_path)
    try:
        with ControlClient(open_.addr) as c:
            assert c.call("ListNodes", pb.ListNodesRequest()).nodes
    finally:
        open_.stop(0)


def test_followers_cannot_lock_out_other_clients(sim: Simulation) -> None:
    """At most MAX_FOLLOWERS followed metrics streams; the next is refused in one line, and
    every other call is still answered while they run."""
    from swarmrl.control.proto import control_pb2_grpc as pb_grpc
    from swarmrl.control.server import MAX_FOLLOWERS

    handle = serve_sim(sim)
    channel = grpc.insecure_channel(handle.addr)
    try:
        stub = pb_grpc.NodeControlStub(channel)
        req = pb.MetricsRequest(node="s-0", follow=True, interval_s=0.001)
        streams = [stub.Metrics(req) for _ in range(MAX_FOLLOWERS)]
        for st in streams:
            next(st)  # each is being served (and holds a follower slot)
        with pytest.raises(grpc.RpcError) as e:
            next(stub.Metrics(req))
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "followed already" in e.value.details()
        with ControlClient(handle.addr) as c:
            for _ in range(20):
                assert c.call("Status", pb.NodeRequest(node="s-0")).node.name == "s-0"
        once = stub.Metrics(pb.MetricsRequest(node="s-0", last=1))  # not followed: served
        assert len(list(once)) == 1
        for st in streams:
            st.cancel()
        time.sleep(0.5)
        assert next(stub.Metrics(req)) is not None  # a slot is free again
    finally:
        channel.close()
        handle.stop(0)


def test_unreachable_node_and_port_in_use_are_one_line(sim: Simulation) -> None:
    with ControlClient("127.0.0.1:1", timeout=2) as c, pytest.raises(InspectError) as e:
        c.call("ListNodes", pb.ListNodesRequest())
    assert str(e.value) == "cannot reach a node at 127.0.0.1:1 (connection refused); is it running?"
    handle = serve_sim(sim)
    try:
        with pytest.raises(ConfigError, match="cannot listen on"):
            serve_sim(sim, listen=handle.addr)
    finally:
        handle.stop(0)


# --- Prometheus --------------------------------------------------------------------------------
def scrape(addr: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=5).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text) for s in fam.samples
    }


def test_prometheus_figures_equal_the_jsonl_log(sim: Simulation) -> None:
    handle = serve_sim(sim, listen="", metrics_listen="127.0.0.1:0")
    try:
        assert handle.addr == "" and handle.metrics_addr
        got = scrape(handle.metrics_addr)
    finally:
        handle.stop(0)
    for i, sn in enumerate(sim.nodes):
        rows, n = jsonl(sim, i), (("node", sn.cfg.name),)
        assert got[("swarmrl_step", n)] == rows[-1]["step"]
        assert got[("swarmrl_reward", n)] == pytest.approx(rows[-1]["reward"])
        assert got[("swarmrl_train_tokens_total", n)] == sum(r["tokens"] for r in rows)
        assert got[("swarmrl_steps_total", n)] == len(rows)
        assert got[("swarmrl_step_duration_seconds_count", n)] == len(rows)
        assert got[("swarmrl_step_duration_seconds_sum", n)] == pytest.approx(
            sum(r["seconds"] for r in rows))
        ext = (("node", sn.cfg.name), ("source", "external"))
        assert got[("swarmrl_groups_total", ext)] == sum(r["groups_external"] for r in rows)
        assert got[("swarmrl_pool_groups", n)] == len(sn.node.pool)
        for name, value in sn.node.metrics.counters.items():
            kind, _, what = name.partition(":")
            if kind == "dropped":
                labels = (("node", sn.cfg.name), ("reason", what))
                assert got[("swarmrl_messages_dropped_total", labels)] == value
    malformed = (("node", "s-0"), ("reason", "malformed"))
    assert got[("swarmrl_messages_dropped_total", malformed)] == 1
    assert not any(math.isnan(v) for v in got.values())


# --- the generated code ------------------------------------------------------------------------
def test_generated_code_matches_the_proto(tmp_path: Path) -> None:
    """The committed control_pb2*.py are what `make proto` makes from control.proto now."""
    from importlib.metadata import PackageNotFoundError, version

    pytest.importorskip("grpc_tools.protoc")
    pinned = "1.81.1"  # constraints.txt: the version the committed code was generated by
    try:
        if version("grpcio-tools") != pinned:
            pytest.skip(f"grpcio-tools {version('grpcio-tools')} is not the pinned {pinned}")
    except PackageNotFoundError:
        pytest.skip("grpcio-tools is not installed")
    from grpc_tools import protoc

    root = Path(__file__).resolve().parents[2]
    proto = "swarmrl/control/proto/control.proto"
    args = ["protoc", f"-I{root}", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}", str(root / proto)]
    assert protoc.main(args) == 0
    for name in ("control_pb2.py", "control_pb2.pyi", "control_pb2_grpc.py"):
        fresh = (tmp_path / "swarmrl/control/proto" / name).read_text()
        committed = (root / "swarmrl/control/proto" / name).read_text()
        assert fresh == committed, f"run: make proto ({name} is out of date)"
