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
import logging
import os
import signal
from typing import Any

import trio

from swarmrl.brain.base import Brain
from swarmrl.config import ConfigError, NodeConfig
from swarmrl.daemon.daemon_node import DaemonNode, NullBrain
from swarmrl.daemon.genesis import explain_mismatch
from swarmrl.daemon.logs import setup_logging
from swarmrl.daemon.resolve import DaemonSetup, load_or_create_key
from swarmrl.daemon.validator import make_validator
from swarmrl.daemon.watcher import Watcher
from swarmrl.node.loop import Node
from swarmrl.node.runtime import RealRuntime
from swarmrl.protocol import DEFAULT_MAX_SIZE, Identity
from swarmrl.protocol.atomic_file import write_text_atomic
from swarmrl.protocol.errors import IdentityError

log = logging.getLogger("swarmrl.daemon")

ADDRS_FILE = "node.addrs"
STOP_GRACE_S = 120.0
"""How long a stop signal waits for the step in flight before cancelling it (a second signal
stops at once)."""


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
        nursery.start_soon(node.receive, node.topics["peers"])
        nursery.start_soon(node.announce_loop)
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
