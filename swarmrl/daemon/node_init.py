"""`swarmrl node init`'s node.toml: every field with its meaning, defaults commented out."""

from __future__ import annotations

from typing import Any

from swarmrl.config import NodeConfig, commented_toml
from swarmrl.daemon.genesis import Genesis


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
