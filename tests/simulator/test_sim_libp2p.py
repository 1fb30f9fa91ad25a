"""The simulator over the real network path: libp2p hosts on 127.0.0.1, the wall clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from _sim_helpers import LM_MODEL, oracle_brain, scenario

from swarmrl.node.metrics import read_metrics
from swarmrl.simulator import run_scenario
from swarmrl.simulator.report import node_rows, summarize

pytestmark = [pytest.mark.network, pytest.mark.slow, pytest.mark.timeout(120)]


def _libp2p(nodes: list[dict], **kw) -> object:
    # ~0.5 s of modelled work per step: long enough for hosts to connect and gossip meanwhile
    kw.setdefault("seconds_per_token", 0.0015)
    return scenario(nodes, network={"transport": "libp2p"}, **kw)


def test_stub_swarm_over_libp2p_shares_rollouts_and_survives_churn() -> None:
    steps = 12
    sc = _libp2p(
        [{"name": "n", "count": 4, "brain": "stub"}],
        steps=steps,
        churn=[{"node": "n-2", "leave_at_s": 1.0, "join_at_s": 2.0}],
    )
    result = run_scenario(sc, None)
    summary = summarize(result, 0.0)
    assert [n["steps"] for n in summary["nodes"]] == [steps] * 4
    assert result.events == ["t=1.0s n-2 leaves", "t=2.0s n-2 rejoins"]
    ids = {sn.node.peer_id for sn in result.nodes}
    heard_from: set[str] = set()
    for sn in result.nodes:
        node = sn.node
        # it heard others over real gossip and trained on their groups
        heard = {p for p in ids - {node.peer_id} if (info := node.peers.get(p)) and info.admitted}
        assert heard, sn.cfg.name
        heard_from |= heard
        assert sum(r["groups_external"] for r in node_rows(result)[sn.cfg.name]) > 0
        assert node.metrics.counters.get("dropped:own_message", 0) == 0  # never echoed to self
    # every node, bootstrap or not, reached somebody (a loaded machine may delay a few links)
    assert heard_from == ids


def test_tiny_lm_nodes_train_on_each_others_groups_over_libp2p(tmp_path: Path) -> None:
    steps = 4
    sc = _libp2p([{"name": "lm", "count": 3, "brain": "lm", "config": LM_MODEL}], steps=steps,
                 seconds_per_token=0.01)
    result = run_scenario(sc, tmp_path, brain_factory=oracle_brain)
    for sn in result.nodes:
        rows = read_metrics(tmp_path / "nodes" / sn.cfg.name / "metrics.jsonl")
        assert [r["step"] for r in rows] == list(range(1, steps + 1))
        assert sum(r["groups_external"] for r in rows) > 0, sn.cfg.name
        assert sn.node.brain.policy_version == steps
