"""The anchor for benchmarks/gossip.py: hivemind's DHT store/get latency on loopback.

rl-swarm shares rollouts by storing them in hivemind's DHT and having peers get them, so this is
the mechanism our gossip replaces. Runs in its own virtualenv (hivemind pins clash with ours):

    make .venv-hivemind   # its own venv from requirements-hivemind.lock (hivemind 1.1.12)
    .venv-hivemind/bin/python benchmarks/hivemind_dht_anchor.py --nodes 8

Each hivemind.DHT is its own OS process with its own p2pd daemon. Per operation, one node
stores a payload of rollout-group size under a fresh key (with its own subkey, as rl-swarm
does), then every other node gets it; we time the store, one get, and the time until the last
node has it. One JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor


def pct_ms(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    idx = min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))
    return round(values[idx] * 1000, 1)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--payload-bytes", type=int, default=12_000)
    p.add_argument("--ops", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import hivemind
    from hivemind.utils import get_dht_time

    rng = random.Random(args.seed)
    started = time.time()
    first = hivemind.DHT(host_maddrs=["/ip4/127.0.0.1/tcp/0"], start=True)
    peers = [str(a) for a in first.get_visible_maddrs()]
    dhts = [first] + [
        hivemind.DHT(host_maddrs=["/ip4/127.0.0.1/tcp/0"], initial_peers=peers, start=True)
        for _ in range(args.nodes - 1)
    ]
    startup_s = time.time() - started
    time.sleep(2.0)  # let routing tables fill

    store_s: list[float] = []
    get_s: list[float] = []
    all_s: list[float] = []
    failures = 0
    payload = os.urandom(args.payload_bytes)
    with ThreadPoolExecutor(max_workers=args.nodes) as pool:
        for op in range(args.ops):
            writer = rng.randrange(args.nodes)
            key = f"bench_round_{op}"
            t0 = time.perf_counter()
            ok = dhts[writer].store(
                key, payload, expiration_time=get_dht_time() + 300, subkey=f"peer{writer}"
            )
            t1 = time.perf_counter()
            if not ok:
                failures += 1
                continue

            def fetch(i: int, t_start: float = t1, key: str = key) -> float | None:
                found = dhts[i].get(key, latest=True)
                return time.perf_counter() - t_start if found is not None else None

            readers = [i for i in range(args.nodes) if i != writer]
            results = list(pool.map(fetch, readers))
            if any(r is None for r in results):
                failures += 1
                continue
            store_s.append(t1 - t0)
            get_s.append(results[0])  # one reader, alone would be a little faster
            all_s.append(max(r for r in results if r is not None))
    for dht in dhts:
        dht.shutdown()
    print(
        json.dumps(
            {
                "bench": "hivemind_dht_anchor",
                "hivemind": hivemind.__version__,
                "nodes": args.nodes,
                "layout": f"{args.nodes} hivemind.DHT processes, each with its own p2pd",
                "payload_bytes": args.payload_bytes,
                "ops": args.ops,
                "failures": failures,
                "startup_s": round(startup_s, 1),
                "store_p50_ms": pct_ms(store_s, 0.5),
                "store_p99_ms": pct_ms(store_s, 0.99),
                "get_p50_ms": pct_ms(get_s, 0.5),
                "get_p99_ms": pct_ms(get_s, 0.99),
                "store_then_all_got_p50_ms": pct_ms(
                    [s + a for s, a in zip(store_s, all_s, strict=True)], 0.5
                ),
                "store_then_all_got_p99_ms": pct_ms(
                    [s + a for s, a in zip(store_s, all_s, strict=True)], 0.99
                ),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
