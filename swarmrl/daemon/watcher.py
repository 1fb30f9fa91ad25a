"""The daemon's watcher: changes in the transport and peer table turned into log lines, and the
status file (<run dir>/status.json) rewritten every half second."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import trio

from swarmrl.daemon.resolve import DaemonSetup
from swarmrl.node.loop import Node
from swarmrl.protocol.atomic_file import write_json_atomic

log = logging.getLogger("swarmrl.daemon")

STATUS_FILE = "status.json"
ALONE_WARNING_S = 30.0


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
            await self.node.publish("peers", self.node.card())

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


def read_status(out: Path) -> dict[str, Any] | None:
    """A node's status.json, or None if it has not written one yet."""
    try:
        return json.loads((out / STATUS_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
