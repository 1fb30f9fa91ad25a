"""A Prometheus endpoint reading the one metrics path (``Node.metrics``) at each scrape.

Nothing is counted twice: a custom collector turns the node's step rows, running totals and
counters into Prometheus families when scraped, so the figures equal metrics.jsonl. Every series
carries a ``node`` label (the node's name), so a simulation's nodes share one endpoint and
dashboards work the same for a daemon. Counters cover this process's life (they restart with
it, as Prometheus expects of counters); ``swarmrl_step`` is the node's step across restarts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from swarmrl.config import ConfigError, split_host_port
from swarmrl.control import inspection as snap
from swarmrl.control.inspection import Served, ServedNode
from swarmrl.node.metrics import SUMMED

ROW_GAUGES = {
    "reward": "Mean local reward of the last step's completions (0..1).",
    "external_reward": "Mean local re-score of the last step's external groups.",
    "loss": "The last GRPO update's loss.",
}
COUNTER_FAMILIES = {
    # counter prefix -> (metric name, label, help)
    "dropped": ("swarmrl_messages_dropped", "reason", "Swarm messages dropped, by reason."),
    "admitted": ("swarmrl_messages_admitted", "kind", "Swarm messages admitted, by kind."),
    "published": ("swarmrl_messages_published", "topic", "Messages this node published."),
}
KNOWN_ROW_FIELDS = {"step", "time", "policy_version", "pool", "peers", *ROW_GAUGES, *SUMMED}


class SwarmCollector(Collector):
    def __init__(self, served: Served) -> None:
        self.served = served

    def collect(self) -> Iterator[Metric]:
        fams = _Families()
        for sn in self.served.nodes():
            _collect_node(sn, fams)
        yield from fams.all()


class _Families:
    """One family per metric name, filled node by node (label sets differ per family)."""

    def __init__(self) -> None:
        self._fams: dict[str, Metric] = {}

    def gauge(self, name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
        return self._get(name, lambda: GaugeMetricFamily(name, doc, labels=labels))

    def counter(self, name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
        return self._get(name, lambda: CounterMetricFamily(name, doc, labels=labels))

    def summary(self, name: str, doc: str, labels: list[str]) -> SummaryMetricFamily:
        return self._get(name, lambda: SummaryMetricFamily(name, doc, labels=labels))

    def info(self, name: str, doc: str, labels: list[str]) -> InfoMetricFamily:
        return self._get(name, lambda: InfoMetricFamily(name, doc, labels=labels))

    def _get(self, name: str, make: Any) -> Any:
        if name not in self._fams:
            self._fams[name] = make()
        return self._fams[name]

    def all(self) -> list[Metric]:
        return list(self._fams.values())


def _collect_node(sn: ServedNode, f: _Families) -> None:
    node = sn.node
    n = [sn.name]
    rows = snap.rows(node, 1)
    last = rows[-1] if rows else {}
    totals = snap._copy(lambda: dict(node.metrics.totals))
    f.info("swarmrl_node", "Who the node is.", ["node"]).add_metric(n, {
        "peer_id": node.peer_id, "swarm": node.cfg.swarm_id, "model": node.brain.model_id,
        "roles": ",".join(node.cfg.roles), "state": snap.state_of(sn),
    })
    f.gauge("swarmrl_step", "Training steps done (across restarts).", ["node"]).add_metric(
        n, node.step)
    f.gauge("swarmrl_policy_version", "Updates applied to the policy.", ["node"]).add_metric(
        n, node.brain.policy_version)
    for key, doc in ROW_GAUGES.items():
        value = last.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            f.gauge(f"swarmrl_{key}", doc, ["node"]).add_metric(n, value)
    _totals(n, totals, f)
    f.gauge("swarmrl_pool_groups", "External groups in the swarm pool.", ["node"]).add_metric(
        n, len(node.pool))
    f.gauge("swarmrl_pool_capacity", "The pool's bound.", ["node"]).add_metric(
        n, node.pool.cfg.pool_capacity)
    f.gauge("swarmrl_peers", "Peers heard from (peer table).", ["node"]).add_metric(
        n, len(node.peers))
    f.gauge("swarmrl_peers_connected", "Peers connected now.", ["node"]).add_metric(
        n, len(snap._connected(sn)))
    f.gauge("swarmrl_paused", "1 while paused by a user.", ["node"]).add_metric(
        n, float(node.control.paused))
    f.gauge("swarmrl_tasks_queued", "Submitted tasks waiting.", ["node"]).add_metric(
        n, len(node.control))
    _counters(n, snap.counters(node), f)
    pool_stats = node.pool.stats
    evicted = f.counter("swarmrl_pool_evicted", "Pool entries evicted, by reason.",
                        ["node", "reason"])
    for reason, v in snap._copy(lambda: dict(pool_stats.evicted)).items():
        evicted.add_metric([*n, reason], v)
    transport = f.counter("swarmrl_transport_events", "The transport's own counters.",
                          ["node", "event"])
    for event, v in snap.transport_stats(node).items():
        transport.add_metric([*n, event], v)
    _other_fields(n, last, f)


def _totals(n: list[str], t: dict[str, float], f: _Families) -> None:
    f.counter("swarmrl_steps", "Steps logged by this process.", ["node"]).add_metric(
        n, t.get("steps", 0))
    f.counter("swarmrl_train_tokens", "Tokens trained on.", ["node"]).add_metric(
        n, t.get("tokens", 0))
    f.counter("swarmrl_completion_tokens", "Tokens sampled locally.", ["node"]).add_metric(
        n, t.get("completion_tokens", 0))
    groups = f.counter("swarmrl_groups", "Rollout groups trained on.", ["node", "source"])
    groups.add_metric([*n, "local"], t.get("groups_local", 0))
    groups.add_metric([*n, "external"], t.get("groups_external", 0))
    f.counter("swarmrl_groups_with_signal", "Groups with non-zero advantages.",
              ["node"]).add_metric(n, t.get("groups_with_signal", 0))
    f.summary("swarmrl_step_duration_seconds", "Wall (or virtual) seconds per step.",
              ["node"]).add_metric(n, count_value=t.get("steps", 0), sum_value=t.get("seconds", 0))


def _counters(n: list[str], counters: dict[str, int], f: _Families) -> None:
    for name, value in sorted(counters.items()):
        prefix, _, rest = name.partition(":")
        if prefix in COUNTER_FAMILIES and rest:
            metric, label, doc = COUNTER_FAMILIES[prefix]
            f.counter(metric, doc, ["node", label]).add_metric([*n, rest], value)
        else:
            f.counter("swarmrl_events", "Other node counters, by name.",
                      ["node", "event"]).add_metric([*n, name], value)


def _other_fields(n: list[str], last: dict[str, Any], f: _Families) -> None:
    """Numeric fields of the last step row that have no metric of their own (added by roles
    and losses later) appear generically, so nothing needs changing here to see them."""
    fam = f.gauge("swarmrl_step_field", "Other numeric fields of the last step row.",
                  ["node", "field"])
    for key, value in last.items():
        if key in KNOWN_ROW_FIELDS or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            fam.add_metric([*n, key], value)


def serve_metrics(served: Served, listen: str) -> tuple[Any, str]:
    """Serve /metrics on ``listen`` (HOST:PORT) in a daemon thread; returns (server, bound)."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SwarmCollector(served))
    host, port = split_host_port(listen)
    try:
        server, _thread = start_http_server(port, addr=host.strip("[]"), registry=registry)
    except OSError as e:
        raise ConfigError(
            f"control.metrics_listen: cannot listen on {listen} ({e.strerror or e})"
        ) from None
    return server, f"{host}:{server.server_address[1]}"
