"""A swarm's genesis: the small file that defines a swarm and, by its hash, names it.

A genesis fixes what every member must agree on: the swarm id (topic names), the wire protocol
version, the task families with their weights and generator/verifier versions (so every node
regenerates the same answer keys), and default hyperparameters. Nodes exchange the genesis hash
and protocol version in the transport's handshake, so a peer on another genesis or protocol is
refused before any gossip flows.

The hash is the sha256 of the genesis' canonical JSON (sorted keys, no whitespace), shown as hex:
two files that differ only in comments, key order or TOML spelling (``1`` vs ``1.0``) have the
same hash. No torch is imported here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from swarmrl.config import (
    ConfigError,
    NodeConfig,
    field_comment,
    load_toml,
    parse_config,
    toml_key,
    toml_tables,
    toml_value,
)
from swarmrl.protocol.messages import PROTOCOL_VERSION

HANDSHAKE_PREFIX = "swarmrl-hello"


class GenesisFamily(BaseModel):
    """One task family of the swarm: how often it is drawn and which generator scores it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: float = Field(gt=0.0, description="Sampling weight of this family in a node's mix.")
    version: str = Field(
        max_length=32,
        description="Generator version: a node whose generator has another version could "
        "compute other answer keys, so it refuses to start.",
    )
    verifier: str = Field(max_length=64, description="Name of the verifier that scores it.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Generator parameters (as tasks.family_params)."
    )
    bounds: dict[str, Any] = Field(
        default_factory=dict,
        description="How far a peer's task may set each param ([lo, hi] for numbers, the "
        "longest text for text), over the shipped bounds (as tasks.bounds): tasks outside are "
        "dropped by every member before they are generated.",
    )


class Genesis(BaseModel):
    """What every member of a swarm agrees on; its hash names the swarm."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    swarm_id: str = Field(
        max_length=128,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Swarm namespace; gossip topics are /swarmrl/<swarm_id>/<topic>/1.",
    )
    protocol_version: int = Field(
        default=PROTOCOL_VERSION,
        ge=0,
        le=2**16,
        description="Wire protocol version; nodes speaking another one are refused.",
    )
    description: str = Field(
        default="", max_length=1024, description="Free text for humans: what this swarm trains."
    )
    families: dict[str, GenesisFamily] = Field(
        min_length=1,
        max_length=256,
        description="Task family name -> weight, generator version, verifier, params.",
    )
    defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="Default hyperparameters: a partial node config (any [section] of node.toml) "
        "applied beneath each node's own config.",
    )

    @field_validator("protocol_version")
    @classmethod
    def _a_version_we_speak(cls, v: int) -> int:
        # A swarm on another wire protocol cannot be joined by this build: say so at load time
        # (a node would otherwise start, be refused by every peer, and train alone).
        if v != PROTOCOL_VERSION:
            raise ValueError(
                f"this swarmrl speaks wire protocol {PROTOCOL_VERSION}, not {v}: a swarm on "
                f"protocol {v} needs a swarmrl release that speaks it"
            )
        return v

    @model_validator(mode="after")
    def _defaults_are_a_node_config(self) -> Genesis:
        # Fail at load time, naming the field, rather than on every node that applies them.
        parse_config(NodeConfig, _deep_merge(self.base_config(), {}))
        return self

    # --- identity ----------------------------------------------------------------------------
    def canonical_bytes(self) -> bytes:
        data = self.model_dump(mode="json")
        for fam in data["families"].values():
            if not fam["bounds"]:  # a genesis without bounds keeps the hash it had before them
                del fam["bounds"]
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON, hex: the swarm's identity."""
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    @property
    def short_hash(self) -> str:
        return self.hash[:12]

    def handshake(self) -> bytes:
        """Bytes both sides of a connection must share (genesis hash + protocol version)."""
        return handshake_bytes(self.swarm_id, self.hash, self.protocol_version)

    # --- applying to a node ------------------------------------------------------------------
    def base_config(self) -> dict[str, Any]:
        """The node config a member starts from: the defaults plus the swarm's id and tasks."""
        fams = self.families.items()
        tasks = {
            "families": {name: f.weight for name, f in fams},
            "family_params": {name: dict(f.params) for name, f in fams if f.params},
            "bounds": {name: dict(f.bounds) for name, f in fams if f.bounds},
        }
        return _deep_merge(self.defaults, {"swarm_id": self.swarm_id, "tasks": tasks})

    def apply(self, node_data: dict[str, Any]) -> NodeConfig:
        """The node's own config (raw TOML data) over the genesis defaults, validated.

        The node's file wins for hyperparameters; the swarm id always comes from the genesis
        (a node cannot be in one swarm and publish on another's topics).
        """
        own_id = node_data.get("swarm_id")
        if own_id is not None and own_id != self.swarm_id:
            raise ConfigError(
                f"swarm_id: the config says {own_id!r} but the genesis defines {self.swarm_id!r}; "
                "remove swarm_id from the config"
            )
        merged = _deep_merge(self.base_config(), node_data)
        own_families = node_data.get("tasks", {}).get("families")
        if own_families:  # a node's own mix replaces the swarm's (e.g. a subset), not adds to it
            merged["tasks"]["families"] = own_families
            bounds = merged["tasks"].get("bounds", {})
            merged["tasks"]["bounds"] = {k: v for k, v in bounds.items() if k in own_families}
        return parse_config(NodeConfig, merged)

    def check_local_versions(self) -> None:
        """Refuse to run if this machine's task generators differ from the genesis'."""
        from swarmrl.tasks.families import get_family
        from swarmrl.tasks.problem import TaskError

        for name, fam in self.families.items():
            try:
                local = get_family(name)
            except TaskError as e:
                raise ConfigError(f"genesis family {name!r}: {e}") from None
            if local.version != fam.version:
                raise ConfigError(
                    f"genesis family {name!r} needs generator version {fam.version!r}, this node "
                    f"has {local.version!r} (install the versions the swarm uses)"
                )


def handshake_bytes(swarm_id: str, genesis_hash: str, protocol_version: int) -> bytes:
    """Readable, so a refusal can say *why*: ``swarmrl-hello proto=1 swarm=x genesis=<hex>``."""
    text = f"{HANDSHAKE_PREFIX} proto={protocol_version} swarm={swarm_id} genesis={genesis_hash}"
    return text.encode()


def private_handshake(swarm_id: str) -> bytes:
    """Handshake of a swarm without a genesis file: its id and our protocol version only."""
    return handshake_bytes(swarm_id, "none", PROTOCOL_VERSION)


def parse_handshake(data: bytes) -> dict[str, str]:
    """``{'proto': .., 'swarm': .., 'genesis': ..}`` from handshake bytes ({} if not ours)."""
    try:
        words = data.decode("utf-8", errors="strict").split()
    except UnicodeDecodeError:
        return {}
    if not words or words[0] != HANDSHAKE_PREFIX:
        return {}
    return dict(w.split("=", 1) for w in words[1:] if "=" in w)


def explain_mismatch(ours: bytes, theirs: bytes) -> str:
    """Why a peer's handshake differs from ours, in words a user can act on."""
    a, b = parse_handshake(ours), parse_handshake(theirs)
    if not b:
        return "not a swarmrl peer (unknown handshake)"
    if a.get("proto") != b.get("proto"):
        return (
            f"incompatible protocol version {b.get('proto')} (ours is {a.get('proto')}); "
            "upgrade the older node"
        )
    if a.get("genesis") != b.get("genesis") or a.get("swarm") != b.get("swarm"):
        return (
            f"other genesis {b.get('genesis', '?')[:12]} of swarm {b.get('swarm')!r} "
            f"(ours is {a.get('genesis', '?')[:12]} of swarm {a.get('swarm')!r})"
        )
    return "handshake differs"


# --- files -----------------------------------------------------------------------------------
def load_genesis(path: str | Path) -> Genesis:
    """Read and validate a genesis TOML; errors are one-line ConfigErrors naming the field."""
    data = load_toml(path)
    try:
        return parse_config(Genesis, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def new_genesis(
    swarm_id: str,
    families: dict[str, float] | None = None,
    description: str = "",
    defaults: dict[str, Any] | None = None,
) -> Genesis:
    """A genesis for the given families, their versions and verifiers read from this machine."""
    from swarmrl.tasks.families import get_family
    from swarmrl.tasks.problem import TaskError

    fams = {}
    for name, weight in (families or {"arith": 1.0}).items():
        try:
            fam = get_family(name)
        except TaskError as e:
            raise ConfigError(str(e)) from None
        fams[name] = {"weight": weight, "version": fam.version, "verifier": fam.verifier}
    data = {
        "swarm_id": swarm_id,
        "description": description,
        "families": fams,
        "defaults": defaults if defaults is not None else DEFAULT_HYPERPARAMETERS,
    }
    return parse_config(Genesis, data)


DEFAULT_HYPERPARAMETERS: dict[str, Any] = {
    "generation": {"group_size": 8, "max_new_tokens": 16, "temperature": 1.0},
    "sapo": {"local": 4, "external": 4},
    "grpo": {"loss_type": "dapo", "epsilon_low": 0.2, "epsilon_high": 0.28},
}
"""The paper's 4 local / 4 external groups and DAPO clipping: a sensible start for a swarm."""


def genesis_toml(g: Genesis) -> str:
    """A genesis as a commented TOML file (what `swarmrl genesis new` writes)."""
    lines = [
        "# swarmrl genesis: what every member of this swarm agrees on.",
        f"# hash: {g.hash}",
        "# Changing anything below (except comments) changes the hash, i.e. makes a new swarm.",
        "",
    ]
    lines += field_comment(Genesis, "swarm_id") + [f"swarm_id = {toml_value(g.swarm_id)}", ""]
    lines += field_comment(Genesis, "protocol_version")
    lines += [f"protocol_version = {g.protocol_version}", ""]
    lines += field_comment(Genesis, "description")
    lines += [f"description = {toml_value(g.description)}", ""]
    for name, fam in g.families.items():
        lines += [f"# Task family {name!r}: weight, generator version, verifier, params."]
        lines += [f"[families.{toml_key(name)}]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in fam.model_dump().items()]
        lines += [""]
    lines += field_comment(Genesis, "defaults")
    lines += toml_tables("defaults", g.defaults)
    return "\n".join(lines).rstrip() + "\n"


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``; nested tables merge, everything else is replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
