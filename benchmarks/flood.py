"""A node under a 10,000 messages/s flood: memory stays bounded, honest traffic keeps flowing.

One node (stub learner, the real admission path, pool and guard) receives, on a clock that
advances 0.1 ms per message (10,000 msg/s), a flood from one peer: new validly signed groups,
replays, random bytes, and messages from freshly minted peer ids, while an honest peer sends
one group every 100 ms. Guard on and off run side by side. Prints one JSON line per arm:
peak traced Python memory during the flood, the honest peer's admitted share, the flood's
admitted share, and how many messages per second admission itself can process here.

    .venv/bin/python benchmarks/flood.py [--seconds 10] [--rate 10000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "node"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import trio  # noqa: E402
from _node_helpers import NOW, FixedRuntime, group, node_config, stub_node  # noqa: E402

from swarmrl.protocol import Identity, encode, seal  # noqa: E402
from swarmrl.training.precision import machine_meta  # noqa: E402


def corpus(n_unique: int, rng: random.Random) -> list[tuple[str, bytes]]:
    """(via, bytes) of the flood, cycled through: a quarter each of the four kinds."""
    flooder = Identity.generate()
    minted = [Identity.generate() for _ in range(256)]
    out = []
    for i in range(n_unique):
        kind = i % 4
        if kind == 0:
            out.append((flooder.peer_id, encode(seal(group(i), flooder, seq=i + 1, timestamp=NOW))))
        elif kind == 1:
            out.append((flooder.peer_id, out[0][1]))  # a replay
        elif kind == 2:
            out.append((flooder.peer_id, rng.randbytes(rng.randrange(100, 8000))))
        else:
            who = minted[i % len(minted)]
            out.append((who.peer_id, encode(seal(group(i), who, seq=i + 1, timestamp=NOW))))
    return out


async def run(guard: bool, seconds: float, rate: float, flood: list[tuple[str, bytes]]) -> dict:
    node = stub_node(node_config(swarm_id="alpha", guard={"enabled": guard}),
                     runtime=FixedRuntime())
    honest = Identity.generate()
    honest_msgs = [encode(seal(group(100_000 + i), honest, seq=i + 1, timestamp=NOW))
                   for i in range(int(seconds * 10))]
    total = int(seconds * rate)
    every = int(rate / 10)  # one honest message per 100 ms of flood
    admitted = {"honest": 0, "flood": 0}
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    for i in range(total):
        node.runtime._now = NOW + i / rate
        via, data = flood[i % len(flood)]
        if await node.admission.admit(via, data) is None:
            admitted["flood"] += 1
        due = i % every == 0 and i // every < len(honest_msgs)
        if due and await node.admission.admit(honest.peer_id, honest_msgs[i // every]) is None:
            admitted["honest"] += 1
    wall = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return {
        "bench": "flood",
        "guard": guard,
        "messages": total,
        "offered_rate": rate,
        "peak_traced_mib": round(peak / 2**20, 2),
        "pool": len(node.pool),
        "honest_admitted": f"{admitted['honest']}/{len(honest_msgs)}",
        "flood_admitted_share": round(admitted["flood"] / total, 4),
        "admission_msgs_per_s": round(total / wall),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=10_000.0)
    ap.add_argument("--unique", type=int, default=4000, help="distinct flood messages, cycled")
    args = ap.parse_args()
    print(json.dumps({"bench": "flood", "meta": True, **machine_meta()}), flush=True)
    flood = corpus(args.unique, random.Random(0))
    rows = [trio.run(run, g, args.seconds, args.rate, flood) for g in (True, False)]
    for r in rows:
        print(json.dumps(r))
    on, off = rows
    print(json.dumps({"bench": "flood_ratio", "peak_memory_on_over_off": round(
        on["peak_traced_mib"] / max(off["peak_traced_mib"], 1e-9), 3)}))


if __name__ == "__main__":
    main()
