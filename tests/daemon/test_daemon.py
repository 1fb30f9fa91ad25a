"""The node daemon: genesis files and refusals, `swarmrl node/genesis` commands, and real daemon
processes on 127.0.0.1 (and in network namespaces where root and `ip netns` allow).

The multi-process tests share one small swarm (a bootstrap node and two tiny-model nodes that
only know the bootstrap) and run in file order: discovery and external groups, a refused node
on another genesis, SIGKILL + restart, then SIGTERM for everyone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from typer.testing import CliRunner

from swarmrl.cli import app
from swarmrl.config import ConfigError
from swarmrl.daemon.genesis import (
    explain_mismatch,
    genesis_toml,
    handshake_bytes,
    load_genesis,
    new_genesis,
)
from swarmrl.daemon.node_init import node_toml
from swarmrl.daemon.resolve import resolve_setup
from swarmrl.daemon.validator import TOPIC_KINDS, make_validator
from swarmrl.daemon.watcher import read_status
from swarmrl.net import topic_name
from swarmrl.node.metrics import read_metrics
from swarmrl.protocol import Identity, PeerCard, TeacherRequest, encode, seal
from swarmrl.protocol.messages import PROTOCOL_VERSION
from swarmrl.training.checkpoint_files import latest_checkpoint

runner = CliRunner()

GENESIS = """
# a comment does not change the hash
swarm_id = "t"
description = "test swarm"
[families.arith]
weight = 1
version = "1"
verifier = "numeric"
[defaults.generation]
group_size = 4
[defaults.sapo]
local = 2
external = 2
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- genesis ---------------------------------------------------------------------------------
def test_genesis_hash_ignores_spelling_but_not_content(tmp_path: Path) -> None:
    a = load_genesis(write(tmp_path / "a.toml", GENESIS))
    # other key order, 1.0 for 1, no comment: the same genesis
    respelled = """
description = "test swarm"
swarm_id = "t"
[defaults.sapo]
external = 2
local = 2
[defaults.generation]
group_size = 4
[families.arith]
verifier = "numeric"
version = "1"
weight = 1.0
"""
    b = load_genesis(write(tmp_path / "b.toml", respelled))
    assert a.hash == b.hash and len(a.hash) == 64 and int(a.hash, 16) >= 0
    c = load_genesis(write(tmp_path / "c.toml", GENESIS.replace("test swarm", "other")))
    assert c.hash != a.hash
    # what `genesis new` writes loads back to the same genesis
    g = new_genesis("t2", {"arith": 2.0}, "x")
    assert load_genesis(write(tmp_path / "g.toml", genesis_toml(g))).hash == g.hash
    assert g.families["arith"].version == "1"


def test_genesis_errors_name_the_field(tmp_path: Path) -> None:
    bad = GENESIS.replace("weight = 1", "weight = -1")
    with pytest.raises(ConfigError, match=r"families\.arith\.weight"):
        load_genesis(write(tmp_path / "bad.toml", bad))
    bad_defaults = GENESIS + "[defaults.grpo]\nlearning_rate = 0\n"
    with pytest.raises(ConfigError, match=r"grpo\.learning_rate"):
        load_genesis(write(tmp_path / "bad2.toml", bad_defaults))
    with pytest.raises(ConfigError, match="no such config file"):
        load_genesis(tmp_path / "missing.toml")
    future = 'protocol_version = 999\n' + GENESIS
    with pytest.raises(ConfigError, match=r"protocol_version: .*speaks wire protocol 1, not 999"):
        load_genesis(write(tmp_path / "future.toml", future))


def test_genesis_defaults_apply_beneath_the_node_config(tmp_path: Path) -> None:
    g = load_genesis(write(tmp_path / "g.toml", GENESIS))
    cfg = g.apply({"generation": {"max_new_tokens": 5}, "sapo": {"local": 3}})
    assert cfg.swarm_id == "t"
    assert cfg.generation.group_size == 4 and cfg.generation.max_new_tokens == 5
    assert cfg.sapo.local == 3 and cfg.sapo.external == 2
    assert cfg.tasks.families == {"arith": 1.0}
    with pytest.raises(ConfigError, match="genesis defines 't'"):
        g.apply({"swarm_id": "elsewhere"})


def test_local_generator_versions_must_match(tmp_path: Path) -> None:
    g = load_genesis(write(tmp_path / "g.toml", GENESIS))
    g.check_local_versions()
    old_text = GENESIS.replace('version = "1"', 'version = "0"')
    old = load_genesis(write(tmp_path / "o.toml", old_text))
    with pytest.raises(ConfigError, match="generator version '0'"):
        old.check_local_versions()


def test_handshake_carries_genesis_and_protocol_and_explains_refusals() -> None:
    g = new_genesis("t")
    ours = g.handshake()
    assert g.hash.encode() in ours and f"proto={PROTOCOL_VERSION}".encode() in ours
    other = handshake_bytes("t", "f" * 64, PROTOCOL_VERSION)
    assert "other genesis ffffffffffff" in explain_mismatch(ours, other)
    newer = handshake_bytes("t", g.hash, PROTOCOL_VERSION + 1)
    assert "incompatible protocol version" in explain_mismatch(ours, newer)
    assert "not a swarmrl peer" in explain_mismatch(ours, b"\xff garbage")


def test_validator_passes_only_signed_envelopes_of_their_author_and_topic() -> None:
    me, other = Identity.generate(), Identity.generate()
    data = encode(seal(PeerCard(peer_id=me.peer_id), me, seq=1))
    validate = make_validator(1 << 20, "s")
    peers, rollouts = topic_name("s", "peers"), topic_name("s", "rollouts")
    assert validate(peers, me.peer_id, data)
    assert not validate(peers, other.peer_id, data)  # relayed under someone else's name
    assert not validate(peers, me.peer_id, data[:-1] + bytes([data[-1] ^ 1]))  # tampered
    assert not validate(peers, me.peer_id, b"\x00" * 40)
    assert not validate(rollouts, me.peer_id, data)  # a peer card on the rollouts topic
    assert not validate(topic_name("other", "peers"), me.peer_id, data)  # not our swarm's topic
    request = TeacherRequest(request_id=1, tokenizer_fingerprint="f", prompt_ids=[1],
                             completion_ids=[[2] * 4000] * 8)
    big = encode(seal(request, me, seq=2))
    assert len(big) > 30_000
    for name in TOPIC_KINDS:  # request/response traffic has no business on any gossip topic
        assert not validate(topic_name("s", name), me.peer_id, big)


# --- setup and CLI ---------------------------------------------------------------------------
def test_resolve_setup_layers_genesis_config_and_options(tmp_path: Path) -> None:
    write(tmp_path / "g.toml", GENESIS)
    config = write(
        tmp_path / "n" / "node.toml",
        'name = "a"\n[generation]\nmax_new_tokens = 5\n[network]\ngenesis = "../g.toml"\n',
    )
    boot = "/ip4/127.0.0.1/tcp/4001/p2p/" + Identity.generate().peer_id
    setup = resolve_setup(config, bootstrap=[boot], steps=7)
    assert setup.genesis is not None and setup.cfg.swarm_id == "t"
    assert setup.cfg.generation.group_size == 4 and setup.cfg.generation.max_new_tokens == 5
    assert setup.cfg.network.bootstrap == [boot] and setup.cfg.steps == 7
    assert setup.key_file == tmp_path / "n" / "node.key" and setup.out == tmp_path / "n"
    assert not setup.is_bootstrap
    assert resolve_setup(config, role="bootstrap", out=tmp_path / "o").is_bootstrap
    with pytest.raises(ConfigError, match="needs /p2p/"):
        resolve_setup(config, bootstrap=["/ip4/127.0.0.1/tcp/4001"])


def test_node_init_writes_a_documented_config_and_a_private_key(tmp_path: Path) -> None:
    write(tmp_path / "g.toml", GENESIS)
    out = tmp_path / "node"
    swarm = str(tmp_path / "g.toml")
    result = runner.invoke(app, ["node", "init", "--out", str(out), "--swarm", swarm])
    assert result.exit_code == 0, result.output
    key = out / "node.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert Identity.load(key).peer_id in result.output
    text = (out / "node.toml").read_text()
    assert "# AdamW learning rate." in text and "# group_size = 4" in text  # the swarm's value
    setup = resolve_setup(out / "node.toml")
    assert setup.genesis is not None and setup.cfg.generation.group_size == 4
    other = tmp_path / "other"
    made = runner.invoke(app, ["node", "init", "--out", str(other), "--swarm", swarm])
    assert made.exit_code == 0
    seeds = {resolve_setup(d / "node.toml").cfg.seed for d in (out, other)}
    assert len(seeds) == 2  # each node its own seed: not the same tasks and samples
    again = runner.invoke(app, ["node", "init", "--out", str(out)])
    assert again.exit_code == 2 and "exists" in again.stderr
    # the plain template parses too, every default commented out
    assert "name = " in node_toml() and "\n# steps = 0" in node_toml()


def test_genesis_commands(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    result = runner.invoke(
        app, ["genesis", "new", "--out", str(path), "--swarm-id", "demo", "--family", "arith=2"]
    )
    assert result.exit_code == 0, result.output
    digest = result.stdout.strip()
    assert load_genesis(path).hash == digest
    shown = runner.invoke(app, ["genesis", "show", str(path)])
    assert shown.exit_code == 0 and digest in shown.stdout and "arith weight 2" in shown.stdout
    bad = runner.invoke(app, ["genesis", "new", "--out", str(tmp_path / "x.toml"),
                              "--swarm-id", "d", "--family", "nosuchfamily"])
    assert bad.exit_code == 2 and "unknown task family" in bad.stderr
    assert len([line for line in bad.stderr.splitlines() if line.strip()]) == 1


def test_node_run_bad_input_is_one_line(tmp_path: Path) -> None:
    config = write(tmp_path / "node.toml", "[network]\nbootstrap = ['/ip4/1.2.3.4/tcp/1']\n")
    result = runner.invoke(app, ["node", "run", "--config", str(config)])
    assert result.exit_code == 2 and "needs /p2p/" in result.stderr
    result = runner.invoke(app, ["node", "run", "--config", str(config), "--role", "king"])
    assert result.exit_code == 2 and "not a role" in result.stderr
    missing = runner.invoke(app, ["node", "run", "--config", str(config), "--swarm", "nope.toml"])
    assert missing.exit_code == 2 and "nope.toml" in missing.stderr


def test_examples_load() -> None:
    root = Path(__file__).resolve().parents[2] / "examples"
    g = load_genesis(root / "genesis.toml")
    assert g.hash in (root / "genesis.toml").read_text()  # the comment tells the truth
    setup = resolve_setup(root / "node.toml")
    assert setup.genesis == g and setup.cfg.swarm_id == "example" and setup.cfg.steps == 0


# --- real daemons ----------------------------------------------------------------------------
TINY_NODE = """
name = "{name}"
seed = {seed}
steps = 0
threads = 1
peer_card_every_s = 2.0
[model]
name = "tiny-0.5m"
warm_start = false
device = "cpu"
[generation]
group_size = 4
max_new_tokens = 6
[grpo]
learning_rate = 1e-3
[tasks]
pool_size = 4
[checkpoint]
every = 2
keep = 2
[network]
key_file = "node.key"
genesis = "{genesis}"
listen = ["{listen}"]
"""


class Daemon:
    """One `swarmrl node run` process and its run directory."""

    def __init__(self, out: Path, args: list[str], prefix: list[str] | None = None) -> None:
        self.out = out
        self.args = args
        self.prefix = prefix or []
        self.runs = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.runs += 1
        self.stderr = self.out / f"stderr-{self.runs}.log"
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "status.json").unlink(missing_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "swarmrl.cli", "node", "run", *self.args]
        with open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen(self.prefix + cmd, stdout=err, stderr=err, env=env)

    def status(self) -> dict[str, Any]:
        return read_status(self.out) or {}

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")

    def metrics(self) -> list[dict[str, Any]]:
        path = self.out / "metrics.jsonl"
        return read_metrics(path) if path.exists() else []

    def wait_running(self, timeout: float = 60) -> dict[str, Any]:
        wait_for(lambda: self.status().get("state") == "running", timeout, "running", self)
        return self.status()

    @property
    def addr(self) -> str:
        return self.status()["addrs"][0]

    @property
    def peer_id(self) -> str:
        return self.status()["peer_id"]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def wait_for(cond: Callable[[], Any], timeout: float, what: str, *daemons: Daemon) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        for d in daemons:
            if d.proc is not None and d.proc.poll() is not None:
                pytest.fail(f"{d.out.name} exited with {d.proc.returncode} waiting for {what}:\n"
                            + d.log()[-3000:])
        time.sleep(0.3)
    tails = "\n".join(f"--- {d.out.name}\n{d.log()[-2000:]}" for d in daemons)
    pytest.fail(f"timed out after {timeout} s waiting for {what}\n{tails}")


def make_node_dir(root: Path, name: str, seed: int, genesis: Path, listen: str) -> Path:
    d = root / name
    write(d / "node.toml", TINY_NODE.format(name=name, seed=seed, genesis=genesis, listen=listen))
    return d / "node.toml"


class Swarm:
    """A bootstrap node and two tiny-model nodes ``a`` and ``b`` that only know it."""

    boot: Daemon
    a: Daemon
    b: Daemon

    def __init__(self, root: Path) -> None:
        self.root = root
        self.genesis = write(root / "genesis.toml", GENESIS)
        self.daemons: list[Daemon] = []

    def bootstrap(self, name: str, genesis: Path | None = None, boot: list[str] = ()) -> Daemon:
        args = ["--swarm", str(genesis or self.genesis), "--role", "bootstrap",
                "--out", str(self.root / name), "--listen", "/ip4/127.0.0.1/tcp/0"]
        for b in boot:
            args += ["--bootstrap", b]
        return self.add(Daemon(self.root / name, args))

    def node(self, name: str, seed: int, boot: str) -> Daemon:
        config = make_node_dir(self.root, name, seed, self.genesis, "/ip4/127.0.0.1/tcp/0")
        return self.add(Daemon(self.root / name, ["--config", str(config), "--bootstrap", boot]))

    def add(self, d: Daemon) -> Daemon:
        self.daemons.append(d)
        return d


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swarm]:
    s = Swarm(tmp_path_factory.mktemp("swarm"))
    s.boot = s.bootstrap("boot")
    s.boot.wait_running(30)
    s.a = s.node("a", 1, s.boot.addr)
    s.b = s.node("b", 2, s.boot.addr)
    s.a.wait_running()
    s.b.wait_running()
    yield s
    for d in s.daemons:
        d.kill()


@pytest.mark.network
@pytest.mark.slow
def test_a_strangers_garbage_on_every_protocol_leaves_every_daemon_running(swarm: Swarm) -> None:
    """One malformed frame from anyone used to end any node (exit 1), the bootstrap included."""
    from _hostile_peers import BAD_PROTOBUF, GARBAGE, NODE_PROTOCOLS, hit

    for d in (swarm.boot, swarm.a):
        before = d.status()
        opened = trio.run(hit, d.addr, NODE_PROTOCOLS, [GARBAGE, BAD_PROTOBUF])
        assert opened >= 2 * 4, opened  # GossipSub 1.0-1.2 and the hello, at least
        assert d.proc is not None and d.proc.poll() is None, d.log()[-3000:]
        if d is swarm.a:
            start = before["step"]
            wait_for(lambda d=d, start=start: d.status()["step"] > start + 2, 60,
                     "a to go on stepping", d)
        wait_for(lambda d=d: d.status().get("state") == "running", 30, "running", d)


@pytest.mark.network
@pytest.mark.slow
def test_nodes_discover_each_other_and_train_on_external_groups(swarm: Swarm) -> None:
    a, b, boot = swarm.a, swarm.b, swarm.boot
    # a and b only know the bootstrap: their direct link comes from each other's peer cards
    wait_for(lambda: b.peer_id in a.status()["peers"] and a.peer_id in b.status()["peers"],
             60, "a and b to connect directly", a, b, boot)
    assert boot.peer_id in a.status()["peers"]
    for d in (a, b):
        wait_for(lambda d=d: any(r["groups_external"] > 0 for r in d.metrics()), 90,
                 f"{d.out.name} to train on an external group", a, b, boot)
    assert "connected to bootstrap " + boot.peer_id in a.log()
    assert f"peer {b.peer_id} joined (model tiny-0.5m, roles solver)" in a.log()
    assert f"peer {a.peer_id} joined" in boot.log()


@pytest.mark.network
@pytest.mark.slow
def test_inspect_a_running_daemon(swarm: Swarm) -> None:
    """`swarmrl inspect --dir RUN_DIR` finds the daemon's control API (control.addr) and tells
    who it is, who it talks to, and lets a user pause it without stopping it."""
    a, b, boot = swarm.a, swarm.b, swarm.boot
    assert (a.out / "control.addr").read_text().strip() == a.status()["control"]["addr"]

    def inspect(d: Daemon, *args: str) -> dict[str, Any]:
        result = runner.invoke(app, ["inspect", *args, "--dir", str(d.out), "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    status = inspect(a, "status")
    assert status["node"]["peer_id"] == a.peer_id and status["node"]["state"] == "training"
    assert status["last_step"]["step"] >= 1 and status["extra"]["genesis"]
    listed = inspect(a, "peers")
    assert {b.peer_id, boot.peer_id} <= set(listed["connected"])
    peers = {p["peer_id"]: p for p in listed["peers"]}  # those heard from (b trains with a)
    assert peers[b.peer_id]["model"] == "tiny-0.5m" and peers[b.peer_id]["connected"]
    assert peers[b.peer_id]["admitted"] > 0 and peers[b.peer_id]["roles"] == ["solver"]
    assert inspect(boot, "status")["node"]["state"] == "relaying"
    assert inspect(a, "pause")["paused"]
    wait_for(lambda: inspect(a, "status")["node"]["state"] == "paused", 10, "pause", a)
    time.sleep(1.5)  # the step in flight finishes
    held = inspect(a, "status")["node"]["step"]
    time.sleep(1.0)
    assert inspect(a, "status")["node"]["step"] == held
    assert not inspect(a, "resume")["paused"]
    wait_for(lambda: inspect(a, "status")["node"]["step"] > held, 30, "a to train again", a)


def test_a_daemon_belongs_to_its_owner(swarm: Swarm) -> None:
    """Its control API needs the run directory's token (0600); another user, who can neither
    read the token nor enter the run directory (0700), is refused; its files are 0600."""
    a = swarm.a
    addr = (a.out / "control.addr").read_text().strip()
    assert stat.S_IMODE(a.out.stat().st_mode) == 0o700
    for name in ("control.token", "node.log", "metrics.jsonl", "status.json"):
        assert stat.S_IMODE((a.out / name).stat().st_mode) == 0o600, name
    anyone = runner.invoke(app, ["inspect", "pause", "--node", addr])
    assert anyone.exit_code != 0 and "no token" in anyone.output
    token = (a.out / "control.token").read_text().strip()
    wrong = runner.invoke(app, ["inspect", "status", "--node", addr, "--token", token + "x"])
    assert wrong.exit_code != 0 and "wrong token" in wrong.output
    owner = runner.invoke(app, ["inspect", "status", "--node", addr, "--token", token, "--json"])
    assert owner.exit_code == 0 and json.loads(owner.stdout)["node"]["peer_id"] == a.peer_id


@pytest.mark.network
@pytest.mark.slow
def test_a_node_on_another_genesis_is_refused(swarm: Swarm) -> None:
    other = write(swarm.root / "other.toml", GENESIS.replace("test swarm", "another swarm"))
    assert load_genesis(other).hash != load_genesis(swarm.genesis).hash
    stranger = swarm.bootstrap("stranger", genesis=other, boot=[swarm.boot.addr])
    line = wait_for(
        lambda: next((x for x in stranger.log().splitlines() if "refused peer" in x), None),
        40, "the stranger to be refused", stranger,
    )
    assert swarm.boot.peer_id in line and "other genesis" in line
    wait_for(lambda: stranger.peer_id in swarm.boot.status().get("refused", {}), 20,
             "the bootstrap to refuse the stranger", swarm.boot)
    assert stranger.stop() == 0


@pytest.mark.network
@pytest.mark.slow
def test_sigkill_then_restart_resumes_from_the_checkpoint_and_rejoins(swarm: Swarm) -> None:
    b = swarm.b
    ckpts = b.out / "checkpoints"
    wait_for(lambda: (p := latest_checkpoint(ckpts)) and int(p.name[5:]) >= 4, 60,
             "a checkpoint of b", b)
    b.kill()  # SIGKILL: no chance to save anything
    saved = int(latest_checkpoint(ckpts).name[5:])
    rows_before = len(b.metrics())
    b.start()
    b.wait_running()
    wait_for(lambda: f"at step {saved}" in b.log(), 30, "b to resume", b)
    wait_for(lambda: len(b.metrics()) > rows_before, 60, "b to train again", b)
    assert b.metrics()[rows_before]["step"] == saved + 1
    wait_for(lambda: swarm.boot.peer_id in b.status()["peers"], 30, "b to rejoin", b)
    wait_for(lambda: b.peer_id in swarm.a.status()["peers"], 60, "a to see b again", b, swarm.a)


@pytest.mark.network
@pytest.mark.slow
def test_sigterm_checkpoints_and_exits_zero(swarm: Swarm) -> None:
    for d in (swarm.a, swarm.b):
        code = d.stop(signal.SIGTERM)
        assert code == 0, d.log()[-3000:]
        last = d.metrics()[-1]["step"]
        assert latest_checkpoint(d.out / "checkpoints").name == f"step-{last:08d}"
        assert d.status()["state"] == "stopped"
        assert "stopped cleanly" in d.log() and "checkpoint saved" in d.log()
    assert swarm.boot.stop(signal.SIGINT) == 0


@pytest.mark.network
@pytest.mark.slow
def test_a_port_in_use_is_one_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        d = Daemon(tmp_path / "n", ["--role", "bootstrap", "--out", str(tmp_path / "n"),
                                    "--listen", f"/ip4/127.0.0.1/tcp/{port}"])
        assert d.proc is not None and d.proc.wait(60) == 2
    assert f"error: could not listen on /ip4/127.0.0.1/tcp/{port}" in d.log()


# --- network namespaces ----------------------------------------------------------------------
def _netns_unavailable() -> str | None:
    if os.name != "posix" or os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs the `ip` command (iproute2)"
    probe = f"srp{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.decode().strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@pytest.fixture
def two_namespaces() -> Iterator[tuple[str, str]]:
    reason = _netns_unavailable()
    if reason:
        pytest.skip(reason)
    tag = uuid.uuid4().hex[:6]
    ns = (f"sra{tag}", f"srb{tag}")
    veth = (f"va{tag}", f"vb{tag}")

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    try:
        for n in ns:
            ip("netns", "add", n)
        ip("link", "add", veth[0], "type", "veth", "peer", "name", veth[1])
        for i, (n, v) in enumerate(zip(ns, veth, strict=True)):
            ip("link", "set", v, "netns", n)
            ip("-n", n, "addr", "add", f"10.231.7.{i + 1}/24", "dev", v)
            ip("-n", n, "link", "set", v, "up")
            ip("-n", n, "link", "set", "lo", "up")
        yield ns
    finally:
        for n in ns:  # deleting a namespace deletes its end of the veth pair, and so the pair
            subprocess.run(["ip", "netns", "del", n], capture_output=True)


@pytest.mark.network
@pytest.mark.slow
def test_nodes_in_separate_network_namespaces(
    tmp_path: Path, two_namespaces: tuple[str, str]
) -> None:
    ns_a, ns_b = two_namespaces
    genesis = write(tmp_path / "genesis.toml", GENESIS)
    boot = Daemon(tmp_path / "boot", [
        "--swarm", str(genesis), "--role", "bootstrap", "--out", str(tmp_path / "boot"),
        "--listen", "/ip4/10.231.7.1/tcp/0",
    ], prefix=["ip", "netns", "exec", ns_a])
    node = None
    try:
        boot.wait_running(30)
        assert boot.addr.startswith("/ip4/10.231.7.1/tcp/")
        config = make_node_dir(tmp_path, "n", 3, genesis, "/ip4/10.231.7.2/tcp/0")
        node = Daemon(tmp_path / "n", ["--config", str(config), "--bootstrap", boot.addr],
                      prefix=["ip", "netns", "exec", ns_b])
        wait_for(lambda: boot.peer_id in node.status().get("peers", []), 60,
                 "the node to reach the bootstrap across the veth pair", node, boot)
        wait_for(lambda: node.peer_id in boot.status().get("known_peers", []), 30,
                 "the bootstrap to receive the node's peer card", node, boot)
        assert node.stop() == 0 and boot.stop() == 0
    finally:
        boot.kill()
        if node is not None:
            node.kill()
