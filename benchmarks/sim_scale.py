"""How many simulated node-steps per second the simulator sustains at 10, 100 and 1000 nodes.

Stub learners (no LM) with the real node loop, pool, codec, signatures and in-memory gossip on
the virtual clock. Prints one JSON line per size.

    .venv/bin/python benchmarks/sim_scale.py [--sizes 10 100 1000] [--steps 5] [--fanout 8]
"""

from __future__ import annotations

import argparse
import json
import time

from swarmrl.simulator.runner import run_scenario
from swarmrl.simulator.scenario import load_scenario
from swarmrl.training.precision import machine_meta


def scenario(nodes: int, steps: int, fanout: int | None) -> dict:
    return {
        "name": f"scale-{nodes}",
        "seed": 0,
        "steps": steps,
        "defaults": {
            "tasks": {"families": {"arith": 1.0}, "pool_size": 32},
            "sapo": {"local": 4, "external": 4},
            "checkpoint": {"every": 0},
        },
        "nodes": [{"name": "n", "count": nodes, "brain": "stub", "stub_skills": {"arith": 0.0}}],
        "network": {"latency_ms": 50, "jitter_ms": 20, "fanout": fanout},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--fanout", type=int, default=8, help="gossip fanout per publish (0 = all)")
    args = ap.parse_args()
    print(json.dumps({"bench": "sim_scale", "meta": True, **machine_meta()}), flush=True)
    for n in args.sizes:
        sc = load_scenario(data=scenario(n, args.steps, args.fanout or None))
        t0 = time.perf_counter()
        res = run_scenario(sc, None)
        wall = time.perf_counter() - t0
        steps = sum(sn.node.step for sn in res.nodes)
        admitted = sum(sn.node.metrics.counters["admitted:rollout_group"] for sn in res.nodes)
        print(
            json.dumps(
                {
                    "bench": "sim_scale",
                    "nodes": n,
                    "steps_per_node": args.steps,
                    "fanout": args.fanout or None,
                    "node_steps": steps,
                    "wall_s": round(wall, 2),
                    "node_steps_per_s": round(steps / wall, 1),
                    "virtual_s": round(res.virtual_seconds, 1),
                    "groups_admitted": admitted,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
