"""``[eval]``, ``[checkpoint]``, ``[control]`` and :class:`NodeConfig`, the one model that
composes every section: a node alone, in a simulation or as a daemon in a swarm."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from swarmrl.config.base import _Section
from swarmrl.config.distill import DistillConfig, TeacherConfig
from swarmrl.config.network import NetworkConfig
from swarmrl.config.selfplay import SelfPlayConfig
from swarmrl.config.sharing import GuardConfig, SAPOConfig
from swarmrl.config.tasks import TaskConfig
from swarmrl.config.training import GenerationConfig, GRPOConfig, ModelConfig


class EvalConfig(_Section):
    """Held-out evaluation: a fixed set of problems of the node's own task families, never
    drawn by its task stream, scored greedily and sampled every k steps."""

    every: int = Field(
        default=0, ge=0, description="Evaluate after every k-th update (0 = never)."
    )
    on_start: bool = Field(
        default=False, description="Also evaluate before the first update (the starting point)."
    )
    problems: int = Field(
        default=64, ge=1, le=4096, description="Size of the held-out set."
    )
    samples: int = Field(
        default=4,
        ge=0,
        le=64,
        description="Sampled completions per problem at the generation temperature, besides "
        "one greedy completion (0 = greedy only).",
    )
    seed: int = Field(
        default=987_654_321,
        ge=0,
        description="Task seed of the held-out set: one no node's task stream uses, so every "
        "node with the same task families evaluates on the same problems.",
    )


class CheckpointConfig(_Section):
    every: int = Field(default=50, ge=0, description="Checkpoint every k steps (0 = only at exit).")
    keep: int = Field(default=2, ge=1, description="How many recent checkpoints to keep.")


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "[::1]", "localhost")


def split_host_port(addr: str) -> tuple[str, int]:
    """'HOST:PORT' (IPv6 as '[::1]:PORT') -> (host, port); ValueError if it is not one."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{addr!r} is not HOST:PORT (e.g. 127.0.0.1:7850)")
    return host, int(port)


class ControlConfig(_Section):
    """The control and inspection API (`swarmrl inspect`) and the Prometheus endpoint.

    The API belongs to the node's owner: every call presents a token as gRPC metadata
    (`authorization: Bearer <token>`). Without `token` or `token_file`, a daemon (and `swarmrl
    sim --control`) creates one in `<run dir>/control.token`, readable by its owner only, where
    `swarmrl inspect --dir RUN_DIR` finds it; other users of the machine cannot pause the node,
    read its config or submit tasks. The traffic is not encrypted: reach a remote node through an
    SSH tunnel or a TLS proxy.
    """

    listen: str = Field(
        default="127.0.0.1:0",
        description="HOST:PORT of the gRPC control API (port 0 = any free port; the bound "
        "address is written to <run dir>/control.addr and status.json); empty = no control API. "
        "Simulations serve it only with `swarmrl sim --control HOST:PORT` (or this field set in "
        "the scenario's [control]).",
    )
    token: str = Field(
        default="",
        description="Secret clients must present (`swarmrl inspect --token`, env SWARMRL_TOKEN); "
        "required when `listen` is not a loopback address.",
    )
    token_file: str = Field(
        default="",
        description="Read the token from this file instead (first line; relative paths are "
        "relative to the config file).",
    )
    allow_no_token: bool = Field(
        default=False,
        description="Serve the control API on loopback without a token. Any local user can then "
        "pause the node, read its whole config and submit tasks: only for a machine of your own.",
    )
    metrics_listen: str = Field(
        default="",
        description="HOST:PORT of a Prometheus /metrics endpoint (e.g. 127.0.0.1:9464; the same "
        "figures as metrics.jsonl); empty = off. It has no token: it shows figures, no text.",
    )
    metrics_public: bool = Field(
        default=False,
        description="Allow metrics_listen on a non-loopback address (anyone who reaches it reads "
        "the node's figures); without it such an address is refused.",
    )

    @model_validator(mode="after")
    def _check(self) -> ControlConfig:
        # Beyond loopback only when explicitly allowed: a token for the API, a flag for metrics.
        rules = (
            ("listen", self.has_token,
             "set control.token or control.token_file so only you can control the node"),
            ("metrics_listen", self.metrics_public,
             "set control.metrics_public = true to publish the node's figures there"),
        )
        for name, allowed, hint in rules:
            value = getattr(self, name)
            if not value:
                continue
            host, _ = split_host_port(value)
            if host not in LOOPBACK_HOSTS and not allowed:
                raise ValueError(f"{name}: {value} is not a loopback address; {hint}")
        return self

    @property
    def has_token(self) -> bool:
        return bool(self.token or self.token_file)


class NodeConfig(_Section):
    """One node: alone (`swarmrl train`), in a simulation, or as a daemon in a swarm."""

    name: str = Field(default="node", max_length=64, description="Human-readable node name.")
    swarm_id: str = Field(
        default="local",
        max_length=128,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Swarm namespace; topics are /swarmrl/<swarm_id>/<topic>/1.",
    )
    roles: list[Literal["solver", "creator", "teacher", "bootstrap"]] = Field(
        default_factory=lambda: ["solver"],
        description="What this node does in the swarm ('bootstrap': no model, relays and helps "
        "discovery).",
    )
    steps: int = Field(default=200, ge=0, description="Training steps to run (0 = until stopped).")
    seed: int = Field(default=0, ge=0, description="Seed of torch and sampling.")
    peer_card_every_s: float = Field(
        default=30.0, gt=0.0, description="Seconds between peer-card announcements."
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="The policy.")
    tasks: TaskConfig = Field(
        default_factory=TaskConfig, description="Where this node's own tasks come from."
    )
    generation: GenerationConfig = Field(
        default_factory=GenerationConfig, description="How completions are sampled."
    )
    grpo: GRPOConfig = Field(default_factory=GRPOConfig, description="The GRPO update.")
    checkpoint: CheckpointConfig = Field(
        default_factory=CheckpointConfig, description="When checkpoints are written."
    )
    eval: EvalConfig = Field(
        default_factory=EvalConfig, description="Held-out evaluation every k steps."
    )
    sapo: SAPOConfig = Field(
        default_factory=SAPOConfig, description="Sharing with the swarm (I local + J external)."
    )
    threads: int = Field(
        default=0, ge=0, description="torch CPU threads (0 = leave torch's default)."
    )
    network: NetworkConfig = Field(
        default_factory=NetworkConfig, description="The real network (daemon and libp2p sims)."
    )
    guard: GuardConfig = Field(
        default_factory=GuardConfig, description="Checks on everything from the swarm."
    )
    selfplay: SelfPlayConfig = Field(
        default_factory=SelfPlayConfig, description="Asymmetric self-play (creator / solver)."
    )
    control: ControlConfig = Field(
        default_factory=ControlConfig,
        description="The control/inspection API (`swarmrl inspect`) and Prometheus metrics.",
    )
    distill: DistillConfig = Field(
        default_factory=DistillConfig,
        description="On-policy distillation from a teacher peer (student side).",
    )
    teacher: TeacherConfig = Field(
        default_factory=TeacherConfig,
        description="Limits when serving as a teacher ('teacher' in roles).",
    )

    @model_validator(mode="after")
    def _search_space_inside_the_task_space(self) -> NodeConfig:
        # A parametric creator's proposals outside the bounds would be dropped by every member
        # (and cost it reputation): say so at load time.
        if "creator" not in self.roles or self.selfplay.creator != "parametric":
            return self
        from swarmrl.tasks.bounds import TaskSpace
        from swarmrl.tasks.problem import TaskError

        t = self.tasks
        try:
            space = TaskSpace.build(set(t.families), t.family_params, t.bounds)
            space.check_search_space(self.selfplay.search_space)
        except TaskError as e:
            raise ValueError(str(e)) from None
        return self
