"""`swarmrl node run`: one node on the real network (libp2p) until it is stopped.

The daemon drives the one node loop (:class:`swarmrl.node.loop.Node`) over a
``Libp2pTransport`` with the wall-clock runtime, exactly as ``swarmrl train`` drives it over an
in-memory network. What it adds is the life of a process: resolve the config (genesis defaults
beneath the node's own file), load or create the key, resume from the last checkpoint, write
the node's addresses where scripts can find them, log what happens in plain words, and on
SIGINT/SIGTERM finish the step in flight, checkpoint, leave the swarm and exit 0.

A bootstrap node (role ``bootstrap``) has no model: it joins the swarm's topics so gossip flows
through it, relays for others if configured, and passes peer cards on so newcomers discover the
rest of the swarm.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from swarmrl.brain.base import Brain, TrainStats
from swarmrl.config import ConfigError, NodeConfig, commented_toml, load_toml, parse_config
from swarmrl.daemon.genesis import Genesis, explain_mismatch, load_genesis, private_handshake
from swarmrl.net import topic_name
from swarmrl.node.loop import Node, StepResult
from swarmrl.node.runtime import RealRuntime
from swarmrl.protocol import DEFAULT_MAX_SIZE, Identity, ProtocolError, decode
from swarmrl.protocol.atomic_file import write_json_atomic, write_text_atomic
from swarmrl.protocol.errors import IdentityError

log = logging.getLogger("swarmrl.daemon")

STATUS_FILE = "status.json"
ADDRS_FILE = "node.addrs"
LOG_FILE = "node.log"
ALONE_WARNING_S = 30.0
STOP_GRACE_S = 120.0
"""How long a stop signal waits for the step in flight before cancelling it (a second signal
stops at once)."""


# --- setup -----------------------------------------------------------------------------------
@dataclass
class DaemonSetup:
    """Everything `node run` resolved before starting: config, genesis, key and run dir."""

    cfg: NodeConfig
    genesis: Genesis | None
    key_file: Path
    out: Path

    @property
    def is_bootstrap(self) -> bool:
        return "bootstrap" in self.cfg.roles

    def handshake(self) -> bytes:
        if self.genesis is not None:
            return self.genesis.handshake()
        return private_handshake(self.cfg.swarm_id)


def resolve_setup(
    config: Path | None,
    *,
    swarm: Path | None = None,
    bootstrap: list[str] | None = None,
    listen: list[str] | None = None,
    role: list[str] | str | None = None,
    out: Path | None = None,
    steps: int | None = None,
) -> DaemonSetup:
    """Config file + command-line options + genesis -> a validated setup (or ConfigError).

    Relative paths in the config (key file, genesis) are relative to the config file; the run
    directory defaults to the config file's directory (where `node init` put it).
    """
    data: dict[str, Any] = load_toml(config) if config else {}
    base = config.parent if config else out
    if base is None:
        raise ConfigError("give --config FILE or --out DIR")
    net = data.setdefault("network", {})
    if bootstrap:
        net["bootstrap"] = list(bootstrap)
    if listen:
        net["listen"] = list(listen)
    if role:
        data["roles"] = [role] if isinstance(role, str) else list(role)
    if steps is not None:
        data["steps"] = steps
    genesis_path = swarm or (base / net["genesis"] if net.get("genesis") else None)
    genesis = load_genesis(genesis_path) if genesis_path else None
    if "steps" not in data and not (genesis and "steps" in genesis.defaults):
        data["steps"] = 0  # a daemon runs until it is stopped unless told otherwise
    if genesis is not None:
        net["genesis"] = str(Path(genesis_path).resolve())
        cfg = genesis.apply(data)
        if "bootstrap" not in cfg.roles:  # a bootstrap node generates no tasks
            genesis.check_local_versions()
    else:
        cfg = parse_config(NodeConfig, data)
    key_file = base / cfg.network.key_file
    if cfg.control.token_file:  # relative to the config file, like the key
        cfg.control.token_file = str(base / Path(cfg.control.token_file).expanduser())
    return DaemonSetup(cfg, genesis, key_file, out or base)


def load_or_create_key(path: Path) -> Identity:
    if path.exists():
        return Identity.load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ident = Identity.generate()
    ident.save(path)
    log.info("created a new key %s (peer id %s)", path, ident.peer_id)
    return ident


class _Formatter(logging.Formatter):
    """Our lines plain; the library's marked as such, so users know whose words they read."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if record.name.startswith("swarmrl"):
            return line
        head, _, msg = line.partition(f" {record.levelname} ")
        return f"{head} {record.levelname} [{record.name.split('.')[0]}] {msg}"


NORMAL_NETWORK_EVENTS = (
    "Failed to open TCP stream",  # a peer that left, or an address it no longer listens on
    "failed to upgrade security for peer",  # a handshake cut short (a refused or banned peer)
    "fail to upgrade mux for peer",
    "Failed to auto-connect",
)
"""py-libp2p ERROR lines that are everyday events of a swarm (a peer that left cleanly was
redialled for minutes, an ERROR line each time): shown with --verbose only, like its DEBUG."""


def _normal_network_event(record: logging.LogRecord) -> bool:
    if not record.name.startswith("libp2p"):
        return False
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed log call: show it
        return False
    return message.startswith(NORMAL_NETWORK_EVENTS)


def setup_logging(out: Path, verbose: bool = False) -> None:
    """Plain INFO lines on stderr and in <out>/node.log; other libraries' errors only."""
    import libp2p  # noqa: F401 - its import configures its loggers; we reconfigure after

    out.mkdir(parents=True, exist_ok=True)
    fmt = _Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    # Other libraries' chatter (some libp2p modules set their own INFO level) only if verbose.
    quiet = logging.DEBUG if verbose else logging.ERROR

    def ours_or_loud(record: logging.LogRecord) -> bool:
        if record.name.startswith("swarmrl"):
            return True
        if record.levelno >= logging.ERROR and _normal_network_event(record):
            return verbose  # py-libp2p says ERROR for a peer that is not there (any more)
        return record.levelno >= quiet

    root = logging.getLogger()
    for handler in (logging.StreamHandler(), logging.FileHandler(out / LOG_FILE)):
        handler.setFormatter(fmt)
        handler.addFilter(ours_or_loud)
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("swarmrl").setLevel(logging.DEBUG if verbose else logging.INFO)
    # py-libp2p stops its loggers propagating (they then reach stderr bare, through logging's
    # last resort); route them through our handlers instead.
    logging.getLogger("libp2p").propagate = True


# --- the node --------------------------------------------------------------------------------
class DaemonNode(Node):
    """The one node loop, with words in the log about steps and checkpoints, and a flag telling
    a stop signal whether a step is in flight (so it can let it finish)."""

    LOG_EVERY_S = 2.0
    """Fast steps (tiny models) are summarised: at most one step line per this many seconds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stepping = False
        self.saved_step = -1
        self._unlogged: list[StepResult] = []
        self._last_log = -float("inf")
        self._last_ckpt_log = -float("inf")

    async def train_one_step(self) -> StepResult:
        self.stepping = True
        try:
            r = await super().train_one_step()
        finally:
            self.stepping = False
        self._unlogged.append(r)
        if time.monotonic() - self._last_log >= self.LOG_EVERY_S:
            self._log_steps()
        return r

    def flush_log(self) -> None:
        if self._unlogged:
            self._log_steps()

    def _log_steps(self) -> None:
        done, self._unlogged = self._unlogged, []
        self._last_log = time.monotonic()
        rewards = [r.reward for r in done if r.reward == r.reward]
        reward = sum(rewards) / len(rewards) if rewards else float("nan")
        external = sum(len(r.external_groups) for r in done)
        span = f" (last {len(done)} steps)" if len(done) > 1 else ""
        log.info(
            "step %d: reward %.2f, %s trained%s, %d in pool, %s",
            done[-1].step, reward, _count(external, "external group"), span, len(self.pool),
            _count(len(self.transport.peers()), "peer"),
        )

    def save_checkpoint(self) -> Path | None:
        path = super().save_checkpoint()
        if path is not None:
            self.saved_step = self.step
            # Frequent checkpoints of a fast node would drown the log: say so every 10 s, and
            # always for the last one (taken while stopping).
            now = time.monotonic()
            loud = self.stopping or now - self._last_ckpt_log >= 10.0
            log.log(logging.INFO if loud else logging.DEBUG, "checkpoint saved: %s", path)
            self._last_ckpt_log = now if loud else self._last_ckpt_log
        return path


class NullBrain:
    """The brain of a bootstrap node: no model. It never trains; its card says so."""

    model_id = ""
    tokenizer_fingerprint = ""
    policy_version = 0

    def rollout(self, requests: Any, group_size: int) -> Any:
        raise RuntimeError("a bootstrap node has no model")

    def train(self, groups: Any) -> TrainStats:
        raise RuntimeError("a bootstrap node has no model")

    def save(self, root: Path, step: int, extra: dict[str, Any], keep: int) -> Path:
        raise RuntimeError("a bootstrap node has no model")

    def load(self, path: Path) -> dict[str, Any]:
        raise RuntimeError("a bootstrap node has no model")


# The one message kind each gossip topic carries (teacher requests and replies travel on their
# own request/response streams, never on gossip). Each kind's schema bounds its size.
TOPIC_KINDS = {"rollouts": "rollout_group", "tasks": "task_proposal", "peers": "peer_card"}


def make_validator(max_size: int, swarm_id: str) -> Callable[[str, str, bytes], bool]:
    """The transport's gate, run before a message is delivered or forwarded: only well-formed
    envelopes of the topic's own kind, signed by their libp2p author, pass, so garbage and
    misplaced messages (a 500 KB teacher request on the rollouts topic) die at the first honest
    hop instead of being relayed to the whole swarm."""
    kinds = {topic_name(swarm_id, name): kind for name, kind in TOPIC_KINDS.items()}

    def validate(topic_id: str, sender: str, data: bytes) -> bool:
        kind = kinds.get(topic_id)
        if kind is None:
            return False
        try:
            env = decode(data, max_size=max_size)
        except ProtocolError:
            return False
        return env.sender == sender and env.kind == kind

    return validate


def run_daemon(setup: DaemonSetup, verbose: bool = False) -> int:
    """Run the node until stopped (or until cfg.steps, if not 0); returns the exit code."""
    # Everything the node writes (log, metrics, checkpoints, status, token) is its owner's
    # alone: other users of the machine read none of it.
    os.umask(0o077)
    if setup.out.is_dir():
        setup.out.chmod(0o700)
    setup_logging(setup.out, verbose)
    cfg = setup.cfg
    try:
        ident = load_or_create_key(setup.key_file)
    except (IdentityError, OSError) as e:
        raise ConfigError(str(e)) from None
    swarm = f"swarm {cfg.swarm_id!r}"
    if setup.genesis is not None:
        swarm += f" (genesis {setup.genesis.short_hash})"
    role = "bootstrap node" if setup.is_bootstrap else f"node {cfg.name!r} ({cfg.model.name})"
    log.info("starting %s as %s, peer id %s", role, swarm, ident.peer_id)
    brain: Brain = NullBrain() if setup.is_bootstrap else _load_brain(cfg)
    error = trio.run(_main, setup, ident, brain)
    if error:
        raise ConfigError(error)
    return 0


def _load_brain(cfg: NodeConfig) -> Brain:
    import torch

    from swarmrl.brain.lm import LMBrain

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    log.info("loading model %s", cfg.model.name)
    return LMBrain.from_config(cfg, progress=False)


def _freeze_loaded_heap() -> None:
    """Move everything loaded so far (torch, transformers, the model) out of the collector's
    sight. A full (gen-2) collection walks every tracked object: with those libraries loaded a
    quiet tiny daemon paused 0.22-0.33 s about every 40 s (measured with gc.callbacks), longer
    than ten of its steps. Frozen objects are never collected, which is what they are for."""
    gc.collect()
    gc.freeze()


async def _main(setup: DaemonSetup, ident: Identity, brain: Brain) -> str | None:
    """Run until stopped; returns None, or what kept the node from starting."""
    from swarmrl.net.libp2p_transport import Libp2pTransport

    cfg = setup.cfg
    validator = make_validator(min(DEFAULT_MAX_SIZE, cfg.network.max_message_bytes),
                               cfg.swarm_id)
    async with Libp2pTransport.open(
        ident, cfg.network, swarm_id=cfg.swarm_id, handshake=setup.handshake(),
        validator=validator, explain_mismatch=explain_mismatch,
    ) as transport:
        if not transport.listen_addrs():
            return (
                f"could not listen on {', '.join(cfg.network.listen)} (port in use, or not an "
                "address of this machine? see the log above)"
            )
        node = DaemonNode(cfg, brain, transport, ident, RealRuntime(), setup.out)
        _announce_addresses(node, setup)
        if not setup.is_bootstrap:
            if node.resume():
                node.saved_step = node.step  # that checkpoint need not be written again
            else:
                log.info("no checkpoint in %s: starting at step 0", node.checkpoint_root())
        watcher = Watcher(node, setup)
        _freeze_loaded_heap()
        async with trio.open_nursery() as nursery:
            await nursery.start(_serve_control, node, setup, watcher)
            nursery.start_soon(_stop_on_signal, node, nursery)
            nursery.start_soon(watcher.run)
            if setup.is_bootstrap:
                await _serve_bootstrap(node)
            else:
                await node.run()
                node.stopping = True  # the final checkpoint is logged
                node.flush_log()
                log.info("reached step %d: done", node.step)
            nursery.cancel_scope.cancel()
        node.flush_log()
        if not setup.is_bootstrap and node.step > 0 and node.saved_step != node.step:
            node.save_checkpoint()
        node.metrics.close()
        watcher.write_status("stopped")
        log.info("closing the network connections")
    log.info("stopped cleanly")
    return None


def _announce_addresses(node: Node, setup: DaemonSetup) -> None:
    addrs = node.transport.listen_addrs()
    for addr in setup.cfg.network.announce or addrs:
        log.info("peers can reach this node at %s", addr)
    write_text_atomic(setup.out / ADDRS_FILE, "".join(a + "\n" for a in addrs))
    if not setup.cfg.network.bootstrap and not setup.is_bootstrap:
        log.info("no bootstrap peers given: waiting for others to dial in (training alone)")


async def _serve_bootstrap(node: Node) -> None:
    """A bootstrap node's whole job: be in every topic's mesh and pass peer cards on."""
    log.info("bootstrap node ready: relaying gossip and introducing peers")
    async with trio.open_nursery() as nursery:
        # The node loop's own gossip paths: peer cards go through admission (the peer table,
        # and the transport learns each card's addresses); our own card is announced.
        nursery.start_soon(node._receive, node.topics["peers"])
        nursery.start_soon(node._announce_loop)
        # Gossipsub forwards only topics a node subscribes to, so join rollouts to relay them.
        nursery.start_soon(_drain, node, node.topics["rollouts"])


async def _drain(node: Node, topic: str) -> None:
    async for sender, _data in node.transport.subscribe(topic):
        node.metrics.count("relayed:rollouts")
        # A relay keeps no pool: a well-formed group signed by its author (the validator let
        # it through) is its useful traffic, so its authors leave the newcomer share as
        # members' do (else every peer behind a bootstrap stayed at 1 message/s through it).
        node.transport.vouch(sender)


async def _serve_control(
    node: DaemonNode, setup: DaemonSetup, watcher: Watcher, task_status: Any
) -> None:
    """Serve the control API (and /metrics) until the node stops; its address goes into
    control.addr and status.json, where `swarmrl inspect --dir RUN_DIR` looks."""
    from swarmrl.control.inspection import Served, ServedNode
    from swarmrl.control.server import start_control, write_control_addr

    def extra() -> dict[str, str]:
        facts = {"addrs": " ".join(node.transport.listen_addrs()), "run dir": str(setup.out)}
        if setup.genesis is not None:
            facts["genesis"] = setup.genesis.hash
        return facts

    served = ServedNode(
        node, state=(lambda: "relaying") if setup.is_bootstrap else None, extra=extra,
        connected=lambda: sorted(watcher.connected), trains=not setup.is_bootstrap,
    )
    handle = start_control(Served("daemon", lambda: [served]), setup.cfg.control,
                           run_dir=setup.out)
    if handle.addr:
        write_control_addr(setup.out, handle.addr)
        log.info("control API on %s (swarmrl inspect status --dir %s)", handle.addr, setup.out)
    if handle.metrics_addr:
        log.info("Prometheus metrics on http://%s/metrics", handle.metrics_addr)
    watcher.control = {"addr": handle.addr, "metrics": handle.metrics_addr}
    task_status.started()
    try:
        await trio.sleep_forever()
    finally:
        handle.stop(0.5)  # cancels followed metrics streams, so the process can exit


async def _stop_on_signal(node: DaemonNode, nursery: trio.Nursery) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if node.stopping:
                log.warning("%s again: stopping now", name)
                nursery.cancel_scope.cancel()
                return
            node.stopping = True  # the loop starts no new step
            if isinstance(node.brain, NullBrain):
                log.info("%s: leaving the swarm", name)
            elif node.stepping:
                log.info("%s: finishing step %d, then checkpoint and exit", name, node.step + 1)
            else:
                log.info("%s: checkpoint and exit", name)
            nursery.start_soon(_cancel_when_idle, node, nursery.cancel_scope)


async def _cancel_when_idle(node: DaemonNode, scope: trio.CancelScope) -> None:
    with trio.move_on_after(STOP_GRACE_S):
        while node.stepping:
            await trio.sleep(0.05)
    scope.cancel()


# --- watching and telling --------------------------------------------------------------------
class Watcher:
    """Turns changes in the transport and peer table into log lines and a status file."""

    def __init__(self, node: Node, setup: DaemonSetup) -> None:
        self.node = node
        self.setup = setup
        self.bootstraps = {a.rsplit("/p2p/", 1)[-1] for a in setup.cfg.network.bootstrap}
        self.connected: set[str] = set()
        self.joined: set[str] = set()
        self.alone_since: float | None = None
        self.card_due: float | None = None
        self.control: dict[str, str] = {}  # the control API's addresses (set once it serves)

    async def run(self) -> None:
        self.write_status("running")
        while True:
            self.poll()
            self.write_status("running")
            await self._maybe_announce()
            await trio.sleep(0.5)

    def poll(self) -> None:
        self._connections()
        self._cards()  # refusals: the transport logs them itself, worded by explain_mismatch

    def _connections(self) -> None:
        now = set(self.node.transport.peers())
        for pid in sorted(now - self.connected):
            kind = "bootstrap" if pid in self.bootstraps else "peer"
            log.info("connected to %s %s", kind, pid)
            # Say who we are soon: the new link carries our card once the mesh has formed.
            self.card_due = time.monotonic() + 1.5
        for pid in sorted(self.connected - now):
            log.info("lost connection to %s", pid)
        if now:
            self.alone_since = None
        elif self.alone_since is None:
            self.alone_since = time.monotonic()
        elif self.bootstraps and time.monotonic() - self.alone_since > ALONE_WARNING_S:
            self.alone_since = float("inf")  # once per spell alone
            alone = "waiting" if self.setup.is_bootstrap else "training alone"
            log.warning(
                "no peers for %.0f s: %s (check the bootstrap address and that its port is "
                "reachable)", ALONE_WARNING_S, alone,
            )
        self.connected = now

    def _cards(self) -> None:
        for info in self.node.peers:
            if info.card is None or info.peer_id in self.joined:
                continue
            self.joined.add(info.peer_id)
            card = info.card
            what = (
                "bootstrap" if "bootstrap" in card.roles
                else f"model {card.model_id or '?'}, roles {','.join(card.roles)}"
            )
            log.info("peer %s joined (%s)", info.peer_id, what)

    async def _maybe_announce(self) -> None:
        if self.card_due is not None and time.monotonic() >= self.card_due:
            self.card_due = None
            await self.node._publish("peers", self.node.card())

    def write_status(self, state: str) -> None:
        node, cfg = self.node, self.setup.cfg
        status = {
            "state": state,
            "pid": os.getpid(),
            "name": cfg.name,
            "roles": list(cfg.roles),
            "peer_id": node.peer_id,
            "swarm_id": cfg.swarm_id,
            "genesis": self.setup.genesis.hash if self.setup.genesis else None,
            "addrs": node.transport.listen_addrs(),
            "step": node.step,
            "policy_version": node.brain.policy_version,
            "peers": sorted(node.transport.peers()),
            "known_peers": sorted(i.peer_id for i in node.peers if i.card is not None),
            "refused": dict(getattr(node.transport, "refused", {})),
            "stats": dict(getattr(node.transport, "stats", {})),
            "control": self.control,
            "updated": time.time(),
        }
        # Rewritten every 0.5 s on the event loop: atomic for readers, but no fsync, which
        # could stall the loop behind a checkpoint's writeback; a crash loses one beat.
        write_json_atomic(self.setup.out / STATUS_FILE, status, durable=False)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def read_status(out: Path) -> dict[str, Any] | None:
    """A node's status.json, or None if it has not written one yet."""
    try:
        return json.loads((out / STATUS_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


# --- node init -------------------------------------------------------------------------------
def node_toml(
    name: str = "node", genesis: str = "", genesis_obj: Genesis | None = None,
    seed: int | None = None,
) -> str:
    """A node.toml listing every field with its meaning, defaults commented out; ``seed``, when
    given, is set (nodes with one seed would draw the same tasks and samples).

    Defaults stay commented so a genesis' defaults (applied beneath this file) are not masked;
    with a genesis, the commented values are the swarm's.
    """
    effective = genesis_obj.apply({}) if genesis_obj is not None else NodeConfig()
    if genesis_obj is None or "steps" not in genesis_obj.defaults:
        effective = effective.model_copy(update={"steps": 0})  # `node run`'s own default
    active: dict[str, Any] = {"name": name, "network.key_file": "node.key"}
    if seed is not None:
        active["seed"] = seed
    if genesis:
        active["network.genesis"] = genesis
    head = [
        "# swarmrl node config (written by `swarmrl node init`).",
        "# Every field is listed with its meaning and default; uncomment a line to change it.",
    ]
    if genesis_obj is not None:
        head += [
            f"# Swarm {genesis_obj.swarm_id!r}, genesis {genesis_obj.hash}: its defaults apply",
            "# beneath this file (the commented values below are the swarm's).",
        ]
    head += ["# Run: swarmrl node run --config node.toml [--bootstrap /ip4/.../p2p/<id>]", ""]
    return "\n".join(head + commented_toml(effective, "", active)).rstrip() + "\n"
