"""Snapshots of a running node for the control API, read from the control server's threads.

The node runs on trio's thread and is never blocked or called into: these functions copy what
they need (lists, dicts, counters) and build reply messages from the copies. A copy that races a
mutation on the node's thread raises RuntimeError ("changed size during iteration"); ``_copy``
simply tries again. Figures come from the one metrics path (``Node.metrics``), so they equal
metrics.jsonl.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from swarmrl import __version__
from swarmrl.config import ConfigError, format_validation_error, toml_document
from swarmrl.control.proto import control_pb2 as pb
from swarmrl.node.loop import Node
from swarmrl.protocol.messages import FreeFormTask, TaskSpec, task_key
from swarmrl.tasks.bounds import TaskSpace

T = TypeVar("T")

TREND_WINDOW = 10
REWARD_HISTORY = 64


class Rejected(ValueError):
    """A request the server refuses; ``code`` names the gRPC status (see control.py)."""

    def __init__(self, message: str, code: str = "INVALID_ARGUMENT") -> None:
        super().__init__(message)
        self.code = code


@dataclass
class ServedNode:
    """A node the control server answers for, with what its host knows beside it."""

    node: Node
    state: Callable[[], str] | None = None  # the host's word for it (offline, relaying, ...)
    extra: Callable[[], dict[str, str]] = dict  # addresses, genesis, scenario, ...
    connected: Callable[[], list[str]] | None = None  # default: node.transport.peers()
    trains: bool = True  # False: a bootstrap node (no model: nothing to pause or submit)

    @property
    def name(self) -> str:
        return self.node.cfg.name


@dataclass
class Served:
    """Everything a server answers for: one daemon node, or all of a simulation's."""

    kind: str  # "daemon" or "simulation"
    nodes: Callable[[], list[ServedNode]]
    peer_names: Callable[[], dict[str, str]] = field(default=dict)  # peer id -> node name

    def select(self, selector: str) -> ServedNode:
        """The node named (or whose peer id starts with) ``selector``; '' = the only node."""
        nodes = self.nodes()
        if not nodes:
            raise Rejected("no node is running yet", "UNAVAILABLE")
        if not selector:
            if len(nodes) == 1:
                return nodes[0]
            raise Rejected(
                f"this {self.kind} serves {len(nodes)} nodes; pick one with --peer NAME "
                f"({_names(nodes)})", "NOT_FOUND"
            )
        for sn in nodes:
            if selector in (sn.name, sn.node.peer_id):
                return sn
        hits = [sn for sn in nodes if len(selector) >= 6 and sn.node.peer_id.startswith(selector)]
        if len(hits) == 1:
            return hits[0]
        raise Rejected(f"no node {selector!r} here ({_names(nodes)})", "NOT_FOUND")


def _names(nodes: list[ServedNode]) -> str:
    names = [sn.name for sn in nodes]
    return ", ".join(names[:8]) + (f", ... {len(names)} in all" if len(names) > 8 else "")


def _copy(fn: Callable[[], T], tries: int = 20) -> T:
    """Run a copying function, again if the node's thread mutated the container meanwhile."""
    for _ in range(tries - 1):
        try:
            return fn()
        except RuntimeError:
            continue
    return fn()


def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def _mean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return sum(xs) / len(xs) if xs else None


# --- status ----------------------------------------------------------------------------------
def rows(node: Node, last: int | None = None) -> list[dict[str, Any]]:
    """The last ``last`` step rows held in memory (all if None), oldest first."""
    history = _copy(lambda: list(node.metrics.history))
    return history if last is None else history[-last:] if last > 0 else []


def node_now(node: Node, last_row: dict[str, Any] | None) -> float:
    """The node's clock. A simulation's virtual clock cannot be read off trio's thread (or
    after the run): there, the latest moment the node recorded stands in for it."""
    try:
        return node.runtime.now()
    except RuntimeError:
        seen = [p.last_seen for p in node.peers]
        at_step = node.started_at + (last_row or {}).get("time", 0.0)
        return max([at_step, *seen])


def state_of(sn: ServedNode) -> str:
    if sn.state is not None:
        return sn.state()
    node = sn.node
    if node.stopping:
        return "stopping"
    if node.control.paused:
        return "paused"
    if node.cfg.steps and node.step >= node.cfg.steps:
        return "done"
    return "training"


def _connected(sn: ServedNode) -> list[str]:
    fn = sn.connected or sn.node.transport.peers
    return _copy(lambda: list(fn()))


def summary(sn: ServedNode, last: dict[str, Any] | None = None) -> pb.NodeSummary:
    node = sn.node
    if last is None:
        tail = rows(node, 1)
        last = tail[-1] if tail else {}
    reward = _finite(last.get("reward"))
    return pb.NodeSummary(
        name=sn.name, peer_id=node.peer_id, roles=list(node.cfg.roles),
        model=node.brain.model_id or "(none)", step=node.step, target_steps=node.cfg.steps,
        state=state_of(sn), reward=reward, peers=len(node.peers), pool_groups=len(node.pool),
    )


def status(sn: ServedNode) -> pb.StatusReply:
    node = sn.node
    recent = rows(node, REWARD_HISTORY)
    last = recent[-1] if recent else {}
    rewards = [_finite(r.get("reward")) for r in recent]
    pace = recent[-(2 * TREND_WINDOW):]
    span = (pace[-1].get("time", 0) - pace[0].get("time", 0)) if len(pace) > 1 else 0.0
    reply = pb.StatusReply(
        node=summary(sn, last),
        swarm_id=node.cfg.swarm_id,
        tokenizer=node.brain.tokenizer_fingerprint,
        policy_version=node.brain.policy_version,
        paused=node.control.paused,
        uptime_seconds=max(0.0, node_now(node, last) - node.started_at),
        rewards=[math.nan if r is None else r for r in rewards],
        reward_recent=_mean(rewards[-TREND_WINDOW:]),
        reward_before=_mean(rewards[-2 * TREND_WINDOW:-TREND_WINDOW]),
        steps_per_second=(len(pace) - 1) / span if span > 0 else 0.0,
        tokens_per_second=sum(r.get("tokens", 0) for r in pace[1:]) / span if span > 0 else 0.0,
        peers_connected=len(_connected(sn)),
        tasks_queued=len(node.control),
        last_step_json=json.dumps(last) if last else "",
        counters=counters(node),
        transport=transport_stats(node),
        extra=sn.extra(),
        software_version=__version__,
    )
    return reply


def counters(node: Node) -> dict[str, int]:
    return {k: int(v) for k, v in _copy(lambda: dict(node.metrics.counters)).items()}


def transport_stats(node: Node) -> dict[str, int]:
    stats = getattr(node.transport, "stats", None) or {}
    return {k: int(v) for k, v in _copy(lambda: dict(stats)).items()}


# --- peers and pool --------------------------------------------------------------------------
def peers(sn: ServedNode, names: dict[str, str]) -> pb.PeersReply:
    node = sn.node
    infos = _copy(lambda: list(node.peers))
    connected = set(_connected(sn))
    in_pool = _copy(node.pool.peer_counts)
    tail = rows(node, 1)
    now = node_now(node, tail[-1] if tail else None)
    out = []
    for info in sorted(infos, key=lambda i: -i.last_seen):
        card = info.card
        out.append(pb.PeerInfo(
            peer_id=info.peer_id,
            name=names.get(info.peer_id, ""),
            has_card=card is not None,
            model=card.model_id if card else "",
            roles=list(card.roles) if card else [],
            policy_version=card.policy_version if card else 0,
            software_version=card.software_version if card else "",
            addrs=list(card.listen_addrs) if card else [],
            last_seen_seconds_ago=max(0.0, now - info.last_seen),
            first_seen_seconds_ago=max(0.0, now - info.first_seen),
            admitted=info.admitted,
            dropped=_copy(lambda info=info: dict(info.dropped)),
            pool_groups=in_pool.get(info.peer_id, 0),
            connected=info.peer_id in connected,
            trained=info.trained,
            distill_served=info.distill_served,
            distill_received=info.distill_received,
            **_standing(node, info.peer_id, now),
        ))
    refused = dict(getattr(node.transport, "refused", {}) or {})
    return pb.PeersReply(peers=out, connected=sorted(connected), refused=refused)


def _standing(node: Node, peer_id: str, now: float) -> dict[str, object]:
    s = _copy(lambda: node.guard.standing(peer_id, now))
    return {"reputation": s["reputation"], "ignored": s["ignored"],
            "failed_checks": s["failed_checks"]}


def pool(node: Node, limit: int) -> pb.PoolReply:
    p = node.pool
    entries = _copy(lambda: list(p.entries.values()))
    listed = []
    for e in reversed(entries[-(limit or 50):]):
        scored = e.scored
        listed.append(pb.PoolEntry(
            content_id=e.content_id, sender=e.sender, family=e.group.task.family,
            task_key=task_key(e.group.task), completions=len(e.group.completions),
            policy_version=e.group.sampler.policy_version, received_step=e.received_step,
            uses=e.uses, local_reward=_mean(scored.rewards) if scored else None,
        ))
    return pb.PoolReply(
        size=len(entries), capacity=p.cfg.pool_capacity, per_peer_cap=p.per_peer_cap,
        by_peer=_copy(p.peer_counts), admitted=p.stats.admitted,
        dropped=_copy(lambda: dict(p.stats.dropped)),
        evicted=_copy(lambda: dict(p.stats.evicted)), entries=listed,
    )


def recent_rollouts(node: Node, limit: int, source: str) -> pb.RecentRolloutsReply:
    if source not in ("", "local", "external"):
        raise Rejected(f"source {source!r} is not 'local', 'external' or empty")
    out: list[pb.Rollout] = []
    for r in reversed(list(node.recent)):
        groups = []
        if source in ("", "local"):
            groups += [(g, "") for g in r.local_groups]
        if source in ("", "external"):
            senders = r.external_senders or [""] * len(r.external_groups)
            groups += list(zip(r.external_groups, senders, strict=False))
        for g, sender in groups:
            out.append(pb.Rollout(
                step=r.step, local=g.local, sender=sender, family=g.family,
                task_key=g.task_key, task_json=g.task.model_dump_json() if g.task else "",
                prompt=g.prompt, answer=g.answer,
                completions=[
                    pb.Completion(text=c.text, reward=rw)
                    for c, rw in zip(g.completions, g.rewards, strict=False)
                ],
            ))
            if len(out) >= (limit or 8):
                return pb.RecentRolloutsReply(rollouts=out)
    return pb.RecentRolloutsReply(rollouts=out)


# --- config and tasks ------------------------------------------------------------------------
def config(node: Node) -> pb.ConfigReply:
    data = node.cfg.model_dump(mode="json")
    if data.get("control", {}).get("token"):
        data["control"]["token"] = "(redacted)"
    return pb.ConfigReply(json=json.dumps(data, indent=2), toml=toml_document(data))


def build_task(
    req: pb.SubmitTaskRequest, space: TaskSpace | None = None
) -> TaskSpec | FreeFormTask:
    """The task a SubmitTask request describes, checked by regenerating it (Rejected if bad).
    With ``space``, a spec must lie in it (the node's families and param bounds, as a peer's
    task must), checked before it is generated."""
    from pydantic import ValidationError

    from swarmrl.tasks import TaskError, get_family, materialize

    kind = req.WhichOneof("task")
    try:
        if kind == "spec":
            s = req.spec
            try:
                params = json.loads(s.params_json) if s.params_json else {}
            except json.JSONDecodeError as e:
                raise Rejected(f"params are not JSON: {e}") from None
            if not isinstance(params, dict):
                raise Rejected("params must be a JSON object")
            family = get_family(s.family)  # an unknown name is told with its close matches
            task: TaskSpec | FreeFormTask = TaskSpec(
                family=s.family, family_version=family.version, params=params,
                seed=s.seed, index=s.index,
            )
            outside = space.check(task) if space is not None else None
            if outside is not None and outside[0] == "foreign_family":
                raise Rejected(f"family {s.family!r} is not one of this node's task families "
                               f"({', '.join(sorted(space.families))})")  # type: ignore[union-attr]
            if outside is not None:
                raise Rejected(f"outside this node's task bounds: {outside[1]} (tasks.bounds)")
        elif kind == "free_form":
            f = req.free_form
            task = FreeFormTask(
                prompt=f.prompt, reference_answer=f.reference_answer,
                verifier=f.verifier or "exact",
            )
        else:
            raise Rejected("give a task: a spec (family, params, seed, index) or a free-form one")
        materialize(task)  # the node must be able to regenerate and score it
    except ValidationError as e:
        raise Rejected(format_validation_error(e)) from None
    except (TaskError, ConfigError) as e:
        raise Rejected(str(e)) from None
    return task
