"""Honest daemons with different models over real libp2p: does the guard leave them alone?

A bootstrap and three `swarmrl node run` processes on 127.0.0.1, one per model a public swarm
mixes (tiny-0.5m and tiny-4m: byte-level tokenizers of two sizes; tiny-bpe-0.5m: a subword
tokenizer), train SAPO 4/4 on one task space for --minutes. Every node is honest, so every
group one of them drops as implausible is a false positive. At the end each node is asked over
its control API (`swarmrl inspect peers --json`) what it did with each peer's groups. Prints one
JSON line per (receiver, sender) and a summary line: groups judged when chosen for training,
dropped as implausible (share), reputation, ignored.

    .venv/bin/python benchmarks/honest_daemons.py [--minutes 30] [--out runs/honest]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from swarmrl.training.precision import machine_meta

MODELS = {"byte": "tiny-0.5m", "big": "tiny-4m", "bpe": "tiny-bpe-0.5m"}

GENESIS = """swarm_id = "honest"
description = "three models, one task space: the sapo 'models' preset over libp2p"
[families.arith]
weight = 1
version = "1"
verifier = "numeric"
params = { ops = "+-", min_digits = 1, max_digits = 2 }
[defaults.generation]
group_size = 8
max_new_tokens = 16
[defaults.grpo]
learning_rate = 5e-5
[defaults.sapo]
local = 4
external = 4
"""

NODE = """name = "{name}"
seed = {seed}
steps = 0
threads = 1
[model]
name = "{model}"
warm_start = {warm}
[checkpoint]
every = 0
[network]
key_file = "node.key"
genesis = "{genesis}"
listen = ["/ip4/127.0.0.1/tcp/0"]
"""


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps({"bench": "honest_daemons", **obj}), flush=True)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "swarmrl.cli", *args]


def start(out: Path, args: list[str]) -> subprocess.Popen[bytes]:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    with open(out / "stderr.log", "wb") as err:
        return subprocess.Popen(cli("node", "run", *args), stdout=err, stderr=err, env=env)


def status(out: Path, timeout: float = 300) -> dict[str, Any]:
    """The daemon's status.json once it is running (a warm start can take minutes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            s = json.loads((out / "status.json").read_text())
            if s.get("state") == "running":
                return s
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"{out.name} did not start:\n{(out / 'stderr.log').read_text()[-2000:]}")


def inspect(out: Path, what: str) -> dict[str, Any]:
    done = subprocess.run(cli("inspect", what, "--dir", str(out), "--json"),
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--out", type=Path, default=Path("runs/honest"))
    ap.add_argument("--no-warm-start", dest="warm_start", action="store_false",
                    help="random tiny models (a quick check: no warm start to build)")
    args = ap.parse_args()
    emit({"meta": True, "date": time.strftime("%Y-%m-%d"), "minutes": args.minutes,
          "models": MODELS, "warm_start": args.warm_start, **machine_meta()})
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    genesis = args.out / "genesis.toml"
    genesis.write_text(GENESIS)
    procs = [start(args.out / "boot", ["--swarm", str(genesis), "--role", "bootstrap",
                                       "--out", str(args.out / "boot"),
                                       "--listen", "/ip4/127.0.0.1/tcp/0"])]
    boot = status(args.out / "boot")["addrs"][0]
    for seed, (name, model) in enumerate(MODELS.items(), start=1):
        d = args.out / name
        d.mkdir()
        (d / "node.toml").write_text(NODE.format(name=name, seed=seed, model=model,
                                                 genesis=genesis.resolve(),
                                                 warm=str(args.warm_start).lower()))
        procs.append(start(d, ["--config", str(d / "node.toml"), "--bootstrap", boot]))
    ids = {name: status(args.out / name)["peer_id"] for name in MODELS}
    names = {v: k for k, v in ids.items()}
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < args.minutes * 60:
            time.sleep(5)
            dead = [p.args for p in procs if p.poll() is not None]
            if dead:
                raise SystemExit(f"a daemon exited: {dead}")
        report(args, names)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()


def report(args: argparse.Namespace, names: dict[str, str]) -> None:
    judged = dropped = ignored = 0
    for receiver in MODELS:
        steps = inspect(args.out / receiver, "status")["node"]["step"]
        for p in inspect(args.out / receiver, "peers")["peers"]:
            sender = names.get(p["peer_id"])
            if sender is None:
                continue  # the bootstrap publishes no groups
            implausible = int(p.get("dropped", {}).get("implausible", 0))
            row = {"receiver": receiver, "sender": sender, "receiver_steps": steps,
                   "admitted": p.get("admitted", 0), "trained": p.get("trained", 0),
                   "implausible": implausible,
                   "implausible_share": implausible / max(1, p.get("trained", 0) + implausible),
                   "reputation": p.get("reputation", 1.0), "ignored": bool(p.get("ignored")),
                   "dropped": p.get("dropped", {})}
            emit(row)
            judged += row["trained"] + implausible
            dropped += implausible
            ignored += row["ignored"]
    emit({"summary": True, "minutes": args.minutes, "judged": judged, "implausible": dropped,
          "implausible_share": dropped / max(1, judged), "ignored_pairs": ignored})


if __name__ == "__main__":
    main()
