"""Gossip over libp2p: how fast a rollout group reaches every node, and how many per second.

For 8, 16 and 32 model-less nodes on loopback (real py-libp2p hosts, real TCP, GossipSub, the
node's own validator = full codec decode + signature check at every hop):

* latency: p50/p99 of the time from ``publish()`` until the *last* node has the group, at a
  light aggregate rate;
* throughput: aggregate publish rates stepped up; for each, the fraction of (message, node)
  deliveries that arrived, and the drop counters that explain the rest. "Sustained without
  loss" is the highest step at which every node got every message.

Then, in the same run, the anchor: hivemind's DHT store/get latency (the mechanism rl-swarm
uses to share rollouts), run in its own virtualenv through benchmarks/hivemind_dht_anchor.py.

Nodes run as several OS processes ("workers"), each hosting a few libp2p hosts in one trio
loop; every JSON line says how they were laid out. Clocks: all workers read the same wall
clock (one machine), so cross-process latencies are comparable.

    .venv/bin/python benchmarks/gossip.py                 # 8, 16, 32 nodes + hivemind anchor
    .venv/bin/python benchmarks/gossip.py --nodes 8 --no-anchor
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SWARM = "bench"
GENESIS = b"bench-genesis"
ANCHOR_PY = ROOT / ".venv-hivemind" / "bin" / "python"
ANCHOR_SCRIPT = ROOT / "benchmarks" / "hivemind_dht_anchor.py"


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record, sort_keys=False), flush=True)


def identity_of(i: int) -> Any:
    from swarmrl.protocol import Identity

    return Identity.from_private_bytes(hashlib.sha256(f"gossip-bench/{i}".encode()).digest())


def rollout_group_envelope(identity: Any, seq: int, completion_chars: int) -> bytes:
    """A real signed envelope of a RolloutGroup with 8 completions of ``completion_chars``."""
    from swarmrl.protocol import RolloutGroup, SamplerInfo, TaskSpec, encode, seal

    text = "Let me work this out step by step. " * (completion_chars // 35 + 1)
    group = RolloutGroup(
        task=TaskSpec(family="arith", seed=seq, index=seq % 1000),
        completions=[f"{i}: {text}"[:completion_chars] + "<answer>42</answer>" for i in range(8)],
        sampler=SamplerInfo(model_id="Qwen/Qwen2.5-0.5B-Instruct", policy_version=seq % 10_000),
        claimed_rewards=[1.0, 0.0] * 4,
        round=seq % 10_000,
    )
    return encode(seal(group, identity, seq, timestamp=time.time()))


# --- the plan: who publishes what when -----------------------------------------------------


def make_plan(n: int, args: argparse.Namespace, start: float) -> dict[str, Any]:
    """Phases on the shared wall clock: mesh settling, latency, then throughput steps."""
    phases = []
    t = start + args.settle_s
    phases.append({"name": "latency", "rate": args.latency_rate, "start": t, "dur": args.phase_s})
    t += args.phase_s + args.drain_s
    for rate in args.rates:
        phases.append({"name": f"rate-{rate:g}", "rate": rate, "start": t, "dur": args.phase_s})
        t += args.phase_s + args.drain_s
    # The last phase gets a long drain, so "lost" means never arrived, not still in flight.
    end = t + max(0.0, args.final_drain_s - args.drain_s)
    return {"n": n, "phases": phases, "end": end, "completion_chars": args.completion_chars}


def layout(n: int, workers: int) -> list[list[int]]:
    per = math.ceil(n / workers)
    return [list(range(w * per, min(n, (w + 1) * per))) for w in range(workers) if w * per < n]


def neighbours(i: int, n: int, k: int = 3) -> list[int]:
    """Whom node i dials: node 0 (a hub every node knows) and k deterministic earlier nodes.

    Every node dials only lower ids, so the graph is connected with average degree ~2k+1,
    enough for GossipSub to build meshes of degree 4..12.
    """
    if i == 0:
        return []
    picks = {0, i - 1}
    h = int.from_bytes(hashlib.sha256(f"nb/{i}".encode()).digest()[:8], "big")
    while len(picks) < min(i, k + 1):
        picks.add(h % i)
        h //= max(i, 2)
        if h == 0:
            h = i * 7919 + len(picks)
    return sorted(picks)


# --- worker: a few hosts in one trio loop --------------------------------------------------


def worker_main(args: argparse.Namespace) -> None:
    import trio

    plan = json.loads(Path(args.plan).read_text())
    ids = [int(x) for x in args.ids.split(",")]
    result = trio.run(_worker, plan, ids, args.port_base)
    Path(args.out).write_text(json.dumps(result))


async def _worker(plan: dict[str, Any], ids: list[int], port_base: int) -> dict[str, Any]:
    from contextlib import AsyncExitStack

    import msgpack
    import trio

    from swarmrl.config import NetworkConfig
    from swarmrl.net.libp2p_transport import Libp2pTransport
    from swarmrl.net.transport import topic_name
    from swarmrl.protocol import ProtocolError, decode

    n = plan["n"]
    topic = topic_name(SWARM, "rollouts")
    arrivals: dict[str, list[float]] = {}  # "sender/seq" -> [count, last arrival time]
    published: dict[str, list[Any]] = {}  # "sender/seq" -> [publish time, phase name]
    cpu: dict[str, float] = {}  # phase -> CPU seconds of this process during it

    def validator(topic: str, sender: str, data: bytes) -> bool:
        try:
            decode(data)  # what the node does: size, canonical form, schema, signature
        except ProtocolError:
            return False
        return True

    def addr(i: int) -> str:
        return f"/ip4/127.0.0.1/tcp/{port_base + i}/p2p/{identity_of(i).peer_id}"

    async def receive(t: Libp2pTransport) -> None:
        async for sender, data in t.subscribe(topic, queue_size=4096):
            now = time.time()
            seq = msgpack.unpackb(data, raw=False)[4]  # the outer array only; cheap
            slot = arrivals.setdefault(f"{sender}/{seq}", [0, 0.0])
            slot[0] += 1
            slot[1] = max(slot[1], now)

    async def publish_phase(t: Libp2pTransport, i: int, phase: dict[str, Any]) -> None:
        # Message k of the phase goes out from node k % n at start + k / rate.
        total = int(phase["rate"] * phase["dur"])
        ident = identity_of(i)
        for k in range(i, total, n):
            at = phase["start"] + k / phase["rate"]
            await trio.sleep(max(0.0, at - time.time()))
            seq = int(phase["start"]) % 100_000 * 100_000 + k
            data = rollout_group_envelope(ident, seq, plan["completion_chars"])
            published[f"{ident.peer_id}/{seq}"] = [time.time(), phase["name"]]
            await t.publish(topic, data)

    net_kwargs = dict(
        publish_per_second=200.0,  # pacing is not what we measure here
        messages_per_topic_per_second=2000.0,  # a forwarder relays the whole swarm's traffic
        queue_size=4096,
        target_peers=16,
    )
    async with AsyncExitStack() as stack:
        nodes: list[Libp2pTransport] = []
        for i in ids:
            net = NetworkConfig(
                listen=[f"/ip4/127.0.0.1/tcp/{port_base + i}"],
                bootstrap=[addr(j) for j in neighbours(i, n)],
                reconnect_min_s=0.2,
                reconnect_max_s=2.0,
                **net_kwargs,
            )
            t = await stack.enter_async_context(
                Libp2pTransport.open(
                    identity_of(i), net, swarm_id=SWARM, handshake=GENESIS, validator=validator
                )
            )
            nodes.append(t)
        async with trio.open_nursery() as nursery:
            for t in nodes:
                nursery.start_soon(receive, t)
            for phase in plan["phases"]:
                await trio.sleep(max(0.0, phase["start"] - time.time()))
                cpu0 = time.process_time()
                async with trio.open_nursery() as pubs:
                    for i, t in zip(ids, nodes, strict=True):
                        pubs.start_soon(publish_phase, t, i, phase)
                # CPU of this process while the phase published (its relaying included)
                cpu[phase["name"]] = time.process_time() - cpu0
            await trio.sleep(max(0.0, plan["end"] - time.time()))
            nursery.cancel_scope.cancel()
        return {
            "arrivals": arrivals,
            "published": published,
            "stats": {str(i): dict(t.stats) for i, t in zip(ids, nodes, strict=True)},
            "peers": {str(i): len(t.peers()) for i, t in zip(ids, nodes, strict=True)},
            "cpu": cpu,
        }


# --- coordinator ---------------------------------------------------------------------------


def run_swarm(n: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    workers = layout(n, min(args.workers, n))
    start = time.time() + args.startup_s
    plan = make_plan(n, args, start)
    port_base = args.port_base + n * 100
    with tempfile.TemporaryDirectory() as tmp:
        plan_file = Path(tmp) / "plan.json"
        plan_file.write_text(json.dumps(plan))
        procs = []
        for w, ids in enumerate(workers):
            out = Path(tmp) / f"w{w}.json"
            cmd = [sys.executable, __file__, "--worker", "--plan", str(plan_file),
                   "--ids", ",".join(map(str, ids)), "--port-base", str(port_base),
                   "--out", str(out)]  # fmt: skip
            procs.append((subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True), out))
        results = []
        for proc, out in procs:
            _, err = proc.communicate(timeout=plan["end"] - time.time() + 120)
            if proc.returncode != 0:
                raise RuntimeError(f"worker failed ({proc.returncode}):\n{err[-3000:]}")
            result = json.loads(out.read_text())
            result["warnings"] = [ln for ln in err.splitlines() if _is_warning(ln)]
            results.append(result)
    return summarize(n, plan, workers, results)


def _is_warning(line: str) -> bool:
    return any(w in line for w in ("WARNING", "ERROR", "Error", "Traceback"))


def summarize(
    n: int, plan: dict[str, Any], workers: list[list[int]], results: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    published: dict[str, list[Any]] = {}
    arrivals: dict[str, list[float]] = {}
    stats: Counter[str] = Counter()
    peers: list[int] = []
    cpu: Counter[str] = Counter()
    warnings: Counter[str] = Counter()
    for r in results:
        published.update(r["published"])
        for key, (count, last) in r["arrivals"].items():
            slot = arrivals.setdefault(key, [0, 0.0])
            slot[0] += count
            slot[1] = max(slot[1], last)
        for s in r["stats"].values():
            stats.update(s)
        peers.extend(r["peers"].values())
        cpu.update(r["cpu"])
        warnings.update(w[:160] for w in r["warnings"])
    common = {
        "bench": "gossip_libp2p",
        "nodes": n,
        "layout": f"{len(workers)} processes x {max(len(w) for w in workers)} hosts "
        "(trio, one loop per process)",
        "payload_bytes": None,
    }
    lines = []
    for phase in plan["phases"]:
        keys = [k for k, (_, name) in published.items() if name == phase["name"]]
        reach_all, delivered = [], 0
        for k in keys:
            count, last = arrivals.get(k, (0, 0.0))
            delivered += int(count)
            if count >= n - 1:
                reach_all.append(last - published[k][0])
        expected = len(keys) * (n - 1)
        reach_all.sort()
        lines.append(
            {
                **common,
                "phase": phase["name"],
                "rate_msgs_per_s": phase["rate"],
                "messages": len(keys),
                "delivered_fraction": round(delivered / expected, 5) if expected else None,
                "reached_all": len(reach_all),
                "p50_ms": _pct_ms(reach_all, 0.50),
                "p99_ms": _pct_ms(reach_all, 0.99),
                "max_ms": _pct_ms(reach_all, 1.0),
                "cpu_cores_busy": round(cpu[phase["name"]] / phase["dur"], 2),
                "cpu_ms_per_msg_per_node": round(1000 * cpu[phase["name"]] / len(keys) / n, 2)
                if keys
                else None,
            }
        )
    lossless = [ln["rate_msgs_per_s"] for ln in lines if ln["delivered_fraction"] == 1.0]
    fast = [ln["rate_msgs_per_s"] for ln in lines if (ln["p99_ms"] or math.inf) < 200]
    drops = {
        k: v for k, v in sorted(stats.items()) if k.startswith("dropped_") and k != "dropped_own"
    }
    lines.append(
        {
            **common,
            "phase": "summary",
            "max_lossless_rate_msgs_per_s": max(lossless) if lossless else 0,
            "max_rate_with_p99_under_200ms": max(fast) if fast else 0,
            "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
            "drops_counted": drops,
            "peers_per_node_min_mean": [min(peers), round(sum(peers) / len(peers), 1)],
            "published": stats["published"],
            "received": stats["received"],
            "worker_warnings": dict(warnings.most_common(5)),
        }
    )
    return lines


def _pct_ms(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    idx = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return round(sorted_values[idx] * 1000, 1)


def run_anchor(args: argparse.Namespace, payload: int) -> None:
    base = {"bench": "hivemind_dht_anchor", "nodes": args.anchor_nodes, "payload_bytes": payload}
    if not ANCHOR_PY.exists():
        emit({**base, "error": f"{ANCHOR_PY} missing: make .venv-hivemind"})  # fmt: skip
        return
    cmd = [str(ANCHOR_PY), str(ANCHOR_SCRIPT), "--nodes", str(args.anchor_nodes),
           "--payload-bytes", str(payload), "--ops", str(args.anchor_ops)]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        emit({**base, "error": "timed out after 600 s"})
        return
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        emit({**base, "error": f"exit {proc.returncode}: {proc.stderr.strip()[-800:]}"})
        return
    for ln in lines:
        print(ln, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nodes", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--workers", type=int, default=4, help="OS processes hosting the nodes")
    p.add_argument("--latency-rate", type=float, default=2.0, help="aggregate msgs/s")
    p.add_argument("--rates", type=float, nargs="+", default=[5, 10, 20, 40])
    p.add_argument("--phase-s", type=float, default=6.0)
    p.add_argument("--drain-s", type=float, default=4.0)
    p.add_argument("--final-drain-s", type=float, default=30.0)
    p.add_argument("--settle-s", type=float, default=6.0, help="mesh forming before phase 1")
    p.add_argument("--startup-s", type=float, default=4.0, help="time to start the workers")
    p.add_argument("--completion-chars", type=int, default=1500)
    p.add_argument("--port-base", type=int, default=41000)
    p.add_argument("--anchor-nodes", type=int, default=8)
    p.add_argument("--anchor-ops", type=int, default=50)
    p.add_argument("--no-anchor", action="store_true")
    # worker mode (internal)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--plan", help=argparse.SUPPRESS)
    p.add_argument("--ids", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker_main(args)
        return
    payload = len(rollout_group_envelope(identity_of(0), 1, args.completion_chars))
    emit(
        {
            "bench": "machine",
            "meta": True,
            **machine_meta(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "libp2p": _version("libp2p"),
            "payload_bytes": payload,
        }
    )
    for n in args.nodes:
        for line in run_swarm(n, args):
            line["payload_bytes"] = payload
            emit(line)
    if not args.no_anchor:
        run_anchor(args, payload)


def machine_meta() -> dict[str, Any]:
    from swarmrl.training.precision import machine_meta as meta

    return meta()


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    main()
