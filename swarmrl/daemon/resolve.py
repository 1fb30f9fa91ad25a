"""`swarmrl node run`'s setup: the config file, command-line options and genesis resolved into
one validated :class:`DaemonSetup`, and the node's key loaded or created."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarmrl.config import ConfigError, NodeConfig, load_toml, parse_config
from swarmrl.daemon.genesis import Genesis, load_genesis, private_handshake
from swarmrl.protocol import Identity

log = logging.getLogger("swarmrl.daemon")


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
