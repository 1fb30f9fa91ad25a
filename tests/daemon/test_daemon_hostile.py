"""A swarm member that gossips tasks with extreme parameters, for every registered family, at
10 per second for 60 s: the honest daemon keeps its step pace and its memory, and drops each
spec with a counted reason (issue 19). Real processes over libp2p on loopback."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio
from test_daemon import TINY_NODE, Daemon, runner, wait_for, write

from swarmrl.cli import app
from swarmrl.daemon.genesis import load_genesis
from swarmrl.tasks.families import get_family, list_families

pytestmark = [pytest.mark.network, pytest.mark.slow]

FAMILIES = ["arith", "chain_sum", "count_primes", "basic_arithmetic", "tower_of_hanoi",
            "knights_knaves", "futoshiki", "jugs", "number_sequence", "game_of_life"]
"""The victim's swarm trains on these (arith mostly): a spec of one of them inside the bounds
is generated, in the sandbox; every other registered family is foreign to it."""
SECONDS, RATE = 60.0, 10.0


def genesis_text() -> str:
    lines = ['swarm_id = "hostile"', "[defaults.generation]", "group_size = 4"]
    for name in FAMILIES:
        f = get_family(name)
        weight = 1.0 if name == "arith" else 0.01
        lines += [f"[families.{name}]", f"weight = {weight}", f'version = "{f.version}"',
                  f'verifier = "{f.verifier}"']
    return "\n".join(lines) + "\n"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def gaps(d: Daemon, first: int, last: int) -> list[float]:
    """Seconds between consecutive steps ``first..last`` (from metrics.jsonl)."""
    times = [r["time"] for r in d.metrics() if first <= r["step"] <= last]
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def _cores() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if shutil.which("taskset") else []


def on_own_core() -> list[str]:
    """A command prefix that keeps the victim on the first core, alone.

    The attacker is one more process on this 2-core machine: unpinned, its own CPU (libp2p's
    framing and encryption of 300 messages a second) was charged to the victim's step rate
    (CI: 0.68x, with the victim dropping every excess message in microseconds). An attacker
    runs on its own machine; the victim's cost of *reading* the flood is what is under test.
    """
    cores = _cores()
    return ["taskset", "-c", str(cores[0])] if len(cores) >= 2 else []


def on_other_cores() -> list[str]:
    cores = _cores()
    return ["taskset", "-c", ",".join(map(str, cores[1:]))] if len(cores) >= 2 else []


@contextmanager
def attacker_off_victims_core() -> Iterator[None]:
    """This (the attacker's) thread runs on the cores other than the victim's meanwhile."""
    cores = _cores()
    if len(cores) < 2:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores[1:])
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def counters(d: Daemon) -> dict[str, int]:
    out = runner.invoke(app, ["inspect", "metrics", "--dir", str(d.out), "--json", "--last", "1"])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout.strip().splitlines()[-1])["counters"]


def test_extreme_specs_from_a_member_cost_the_daemon_neither_pace_nor_memory(
    tmp_path: Path,
) -> None:
    from _hostile_peers import spec_flood

    g = write(tmp_path / "genesis.toml", genesis_text())
    node = TINY_NODE.format(name="victim", seed=3, genesis=g, listen="/ip4/127.0.0.1/tcp/0")
    node = node.replace("every = 2\n", "every = 100000\n")  # no checkpoint pauses in the gaps
    # Never ignore the attacker: every spec goes through the bounds and the sandbox (a sybil
    # with a fresh key per message would not be ignored either). The worst case for cost.
    node += "[guard]\nignore_below = 0.0\n"
    # ...and as if the attacker were a trusted member (an established peer turned hostile, or
    # a key that earned its trust): the newcomer share would otherwise stop all but ~80 specs.
    node = node.replace("[network]\n", "[network]\nnewcomer_messages_per_s = 0.0\n")
    # The victim trains on its own groups only: a peer's in-bounds task is legitimate work (a
    # 7x7 futoshiki prompt makes a longer step), and the checks, not training, are under test.
    node += "[sapo]\nexternal = 0\n"
    config = write(tmp_path / "victim" / "node.toml", node)
    # Not pinned to a core: the sandbox's worker (niced) would share the victim's one core and
    # starve, and the attacker here is light (10 messages a second).
    d = Daemon(tmp_path / "victim", ["--config", str(config)])
    try:
        d.wait_running()
        wait_for(lambda: d.status().get("step", 0) >= 30, 120, "30 warm-up steps", d)
        s0 = d.status()["step"]
        time.sleep(SECONDS)  # a quiet window as long as the flood, to compare with
        rss_before = rss_mib(d.proc.pid)
        starts: list[int] = []
        # The window starts once the attacker is connected and joined: a new connection costs
        # the victim ~0.1 s of event-loop work (py-libp2p's handshakes; a member that sends
        # nothing slowed 1-2 steps to 60-120 ms), whatever it then sends. Specs are under test.
        sent = trio.run(spec_flood, d.addr, "hostile", load_genesis(g).handshake(), SECONDS,
                        RATE, list_families(), lambda: starts.append(d.status()["step"]))
        s1 = starts[0]
        s2 = d.status()["step"]
        rss_after = rss_mib(d.proc.pid)
        quiet, flood = gaps(d, s0, s1), gaps(d, s1, s2)
        drops = {k[8:]: v for k, v in counters(d).items() if k.startswith("dropped:")}
        figures = {"sent": sent, "quiet_median_s": statistics.median(quiet),
                   "quiet_max_s": max(quiet), "flood_median_s": statistics.median(flood),
                   "flood_max_s": max(flood), "rss_before_mib": rss_before,
                   "rss_after_mib": rss_after, "drops": drops,
                   "stalls_over_0.1s": [sum(x > 0.1 for x in w) for w in (quiet, flood)],
                   # where in the minute they were (s): one at the start is the connection's
                   # setup (handshakes, hello), once per connection
                   "flood_stalls_at_s": [round(sum(flood[:i]), 1) for i, x in enumerate(flood)
                                         if x > 0.1]}
        print(json.dumps(figures))
        assert sent >= SECONDS * RATE * 0.95
        assert d.proc.poll() is None
        # every spec dropped with a counted reason (gossip may lose a few: at least 90% seen)
        counted = sum(drops.get(r, 0) for r in ("foreign_family", "out_of_bounds", "over_budget",
                                                "bad_task", "ignored_peer", "rate_limited"))
        assert counted >= 0.9 * sent, figures
        assert drops.get("out_of_bounds", 0) > 0 and drops.get("foreign_family", 0) > 0, figures
        # Pace: the median step time within 25%, and no gap over 0.3 s (the issue saw 10-14 s
        # stalls). "Longest gap < 2x a step" cannot hold even without an attack: the daemon
        # freezes its loaded heap (no more 0.24-0.33 s gen-2 pauses), yet a quiet minute's own
        # longest gap is 45-90 ms, 3-6x its 15 ms median (its own tasks vary: a futoshiki
        # step is long). Under the flood, 0-2 steps a minute take 0.1-0.2 s; the step itself is
        # slow (its own seconds = the gap) while no event-loop task step took over 10 ms
        # (measured with a trio instrument): the training thread shares the GIL and 2 cores
        # with the network reader and the sandbox. The counts are printed with the figures.
        assert statistics.median(flood) < 1.25 * statistics.median(quiet), figures
        assert max(flood) < 0.3, figures
        assert rss_after - rss_before < 100, figures
    finally:
        d.kill()


OTHER_USER = r'''
import json, os, sys
from typer.testing import CliRunner
from swarmrl.cli import app

run, addr = sys.argv[1], sys.argv[2]
out = {}
for name in ("control.token", "node.key", "node.toml", "node.log", "metrics.jsonl",
             "status.json", "control.addr"):
    try:
        with open(os.path.join(run, name)) as f:
            f.read(1)
        out[name] = "read"
    except PermissionError:
        out[name] = "denied"
try:
    os.listdir(run)
    out["listdir"] = "listed"
except PermissionError:
    out["listdir"] = "denied"
runner = CliRunner()
for label, args in (("pause", ["pause"]), ("config", ["config"]),
                    ("guess", ["pause", "--token", "0" * 64]),
                    ("submit", ["submit", "--prompt", "2+2=", "--answer", "5"])):
    result = runner.invoke(app, ["inspect", *args, "--node", addr])
    out[label] = [result.exit_code, result.output[-300:]]
print(json.dumps(out))
'''


def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    # util-linux's setpriv, not subprocess(user=...): Python's own exec as another uid is
    # refused by this venv's interpreter symlink (into root's 0700 home) where setpriv's is not.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd="/")


def test_another_local_user_can_neither_read_nor_steer_a_daemon_on_the_defaults() -> None:
    """uid 65534 on the same machine, the run directory's parent open to all (as a home
    directory often is), the control port known: it reads nothing and changes nothing."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("running a client as another uid needs root and setpriv (util-linux)")
    if as_nobody("-c", "import swarmrl.cli").returncode != 0:
        pytest.skip("uid 65534 cannot run this interpreter here")
    root = Path(tempfile.mkdtemp(prefix="swarmrl-uid-"))
    try:
        root.chmod(0o755)  # not the barrier under test: the run directory's own mode is
        g = write(root / "genesis.toml", genesis_text())
        g.chmod(0o644)
        node = TINY_NODE.format(name="a", seed=5, genesis=g, listen="/ip4/127.0.0.1/tcp/0")
        config = write(root / "a" / "node.toml", node)  # no [control]: the defaults
        d = Daemon(root / "a", ["--config", str(config)])
        try:
            d.wait_running()
            addr = (d.out / "control.addr").read_text().strip()
            got = as_nobody("-c", OTHER_USER, str(d.out), addr)
            assert got.returncode == 0, got.stderr[-2000:]
            seen = json.loads(got.stdout.strip().splitlines()[-1])
            print(json.dumps(seen))
            for name in ("control.token", "node.key", "node.toml", "node.log", "metrics.jsonl",
                         "status.json", "control.addr", "listdir"):
                assert seen[name] == "denied", (name, seen)
            for label in ("pause", "config", "guess", "submit"):
                code, text = seen[label]
                assert code != 0 and ("token" in text), (label, seen)
            before = d.status()["step"]
            wait_for(lambda: d.status()["step"] > before + 5, 30, "steps after the attempts", d)
            assert d.status().get("state") == "running"
        finally:
            d.kill()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def admitted_by_peer(d: Daemon) -> dict[str, int]:
    """Groups admitted per peer, from one snapshot of the daemon's peer table."""
    out = runner.invoke(app, ["inspect", "peers", "--dir", str(d.out), "--json"])
    assert out.exit_code == 0, out.output
    return {p["peer_id"]: int(p.get("admitted", 0)) for p in json.loads(out.stdout)["peers"]}


def admitted_from(d: Daemon, peer_id: str) -> int:
    return admitted_by_peer(d).get(peer_id, 0)


def test_three_thousand_fresh_keys_get_less_into_the_pool_than_one_honest_peer(
    tmp_path: Path,
) -> None:
    """Keys are free: 3,000 of them behind one connection share that connection's newcomer
    share, so together they get less into the pool than one honest (trusted) peer, and the
    connection's flood cuts the victim's step rate by at most 25%."""
    from _hostile_peers import key_flood

    g = write(tmp_path / "genesis.toml", genesis_text())

    def config(name: str, seed: int) -> Path:
        text = TINY_NODE.format(name=name, seed=seed, genesis=g, listen="/ip4/127.0.0.1/tcp/0")
        text = text.replace("every = 2\n", "every = 100000\n")
        # trusted after one admitted group and 5 s, so the honest peer is trusted before the
        # flood (the default, 5 groups over 30 s, would make this test longer)
        text = text.replace("[network]\n", "[network]\ntrust_after = 1\ntrust_after_s = 5.0\n")
        # fresh tasks every step: an honest peer's groups are not duplicates of its last ones
        text = text.replace("pool_size = 4\n", "pool_size = 0\n")
        # Budgets are under test, not reputation: the guard still flags a fast honest tiny peer
        # (reordered gossip read as replays, implausible groups; issue 17) and would ignore it.
        return write(tmp_path / name / "node.toml", text + "[guard]\nignore_below = 0.0\n")

    victim = Daemon(tmp_path / "victim", ["--config", str(config("victim", 11))],
                    prefix=on_own_core())
    honest = None
    try:
        victim.wait_running()
        honest = Daemon(tmp_path / "honest", ["--config", str(config("honest", 12)),
                                              "--bootstrap", victim.addr],
                        prefix=on_other_cores())
        honest.wait_running()
        hid = honest.peer_id
        wait_for(lambda: admitted_from(victim, hid) > 0, 90,
                 "a group of the honest peer in the victim's pool", victim, honest)
        time.sleep(6)  # trust_after_s
        t0, s0 = time.monotonic(), victim.status()["step"]
        time.sleep(SECONDS)
        t1, s1 = time.monotonic(), victim.status()["step"]
        quiet_rate = (s1 - s0) / (t1 - t0)
        before = admitted_by_peer(victim)
        starts: list[tuple[float, int]] = []
        with attacker_off_victims_core():
            sent = trio.run(key_flood, victim.addr, "hostile", load_genesis(g).handshake(),
                            SECONDS, 300.0, 3000,
                            lambda: starts.append((time.monotonic(), victim.status()["step"])))
        t2, s2 = time.monotonic(), victim.status()["step"]
        flood_rate = (s2 - starts[0][1]) / (t2 - starts[0][0])
        time.sleep(3)  # status.json is rewritten every few seconds: let it catch up
        after = admitted_by_peer(victim)
        stats = victim.status()["stats"]
        # every fresh key is a new row of the peer table (4,096 rows; far fewer get past the
        # budgets to be admitted, so none is evicted): one snapshot, no skew between sources
        fresh = sum(n for peer, n in after.items() if peer not in before)
        honest0, honest1 = before.get(hid, 0), after.get(hid, 0)
        figures = {"sent": sent, "fresh_keys_admitted": fresh, "honest_admitted": honest1 - honest0,
                   "quiet_steps_per_s": round(quiet_rate, 2),
                   "flood_steps_per_s": round(flood_rate, 2),
                   "dropped_connection_budget": stats.get("dropped_connection_budget", 0),
                   "dropped_newcomer_budget": stats.get("dropped_newcomer_budget", 0),
                   "banned": stats.get("banned_flooding", 0)}
        print(json.dumps(figures))
        assert victim.proc.poll() is None
        # stopped by its newcomer drops (strikes toward the ban) before, or soon after, it ran
        # through the connection's own budget: hung up on long before its 18,000 messages
        assert figures["dropped_newcomer_budget"] > 0, figures
        assert sent < 0.5 * SECONDS * 300, figures
        assert fresh <= honest1 - honest0, figures
        assert flood_rate >= 0.75 * quiet_rate, figures
    finally:
        victim.kill()
        if honest is not None:
            honest.kill()
