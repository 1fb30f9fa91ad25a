"""`swarmrl inspect`: ask a running node (or simulation) what it is doing, over the control API.

Where the node is: ``--node HOST:PORT``, else env SWARMRL_NODE, else the ``control.addr`` file
the daemon (or `swarmrl sim --control`) wrote in ``--dir`` (default: the current directory).
Every command takes ``--json`` for scripts; every failure is one line and exit code 1.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from swarmrl.cli.errors import EXIT_INSPECT, fail

inspect_app = typer.Typer(
    help="Inspect and steer a running node or simulation: status, peers, pool, rollouts, "
    "metrics, a live view (top), pause/resume, submit tasks.",
    no_args_is_help=True,
)
# Piped output (scripts, logs, tests) gets room for the peers table rather than rich's 80.
out = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160)

NodeOpt = Annotated[
    str | None,
    typer.Option("--node", help="Control address HOST:PORT (env SWARMRL_NODE; default: "
                 "control.addr in --dir).", envvar="SWARMRL_NODE", show_envvar=False),
]
DirOpt = Annotated[
    Path | None, typer.Option("--dir", help="Run directory holding control.addr (default: .).")
]
TokenOpt = Annotated[
    str | None, typer.Option("--token", help="The node's control token (env SWARMRL_TOKEN).",
                             envvar="SWARMRL_TOKEN", show_envvar=False),
]
PeerOpt = Annotated[
    str, typer.Option("--peer", help="Which node of a simulation: name or peer id (prefix).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to wait for an answer.")]


def resolve_addr(node: str | None, run_dir: Path | None) -> str:
    if node:
        return node
    from swarmrl.control.client import CONTROL_ADDR_FILE

    where = run_dir or Path(".")
    path = where / CONTROL_ADDR_FILE
    try:
        addr = path.read_text().strip()
    except OSError:
        hint = f"no {path}" if run_dir else f"no {CONTROL_ADDR_FILE} here"
        fail(f"which node? {hint}; pass --node HOST:PORT or --dir RUN_DIR", EXIT_INSPECT)
    if not addr:
        fail(f"{path} is empty; pass --node HOST:PORT", EXIT_INSPECT)
    return addr


@contextmanager
def client(node: str | None, run_dir: Path | None, token: str | None,
           timeout: float = 5.0) -> Iterator[Any]:
    """A connected ControlClient; InspectError anywhere inside becomes one line and exit 1."""
    from swarmrl.control.client import ControlClient, InspectError

    addr = resolve_addr(node, run_dir)
    token = token or _dir_token(node, run_dir)
    try:
        with ControlClient(addr, token or None, timeout) as c:
            yield c
    except InspectError as e:
        fail(str(e), EXIT_INSPECT)


def _dir_token(node: str | None, run_dir: Path | None) -> str | None:
    """The run directory's own token, when the address came from it (--dir, or the current
    directory): whoever can read the run directory is its owner."""
    from swarmrl.control.client import TOKEN_FILE

    if node and run_dir is None:
        return None
    try:
        return (run_dir or Path(".")).joinpath(TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None


def emit(data: Any, as_json: bool, view: Any) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, allow_nan=False))
    else:
        out.print(view)


def _call(c: Any, method: str, request: Any) -> dict[str, Any]:
    from swarmrl.control.client import to_dict

    return to_dict(c.call(method, request))


# --- read-only views -------------------------------------------------------------------------
@inspect_app.command("status")
def status(node: NodeOpt = None, run_dir: DirOpt = None, token: TokenOpt = None,
           peer: PeerOpt = "", as_json: JsonOpt = False, timeout: TimeoutOpt = 5.0) -> None:
    """Who the node is, whether it is learning (reward trend), its pace, drops by reason."""
    from swarmrl.cli.inspect_view import status_view
    from swarmrl.control.client import pb

    with client(node, run_dir, token, timeout) as c:
        s = _call(c, "Status", pb.NodeRequest(node=peer))
    emit(s, as_json, status_view(s) if not as_json else None)


@inspect_app.command("peers")
def peers(node: NodeOpt = None, run_dir: DirOpt = None, token: TokenOpt = None,
          peer: PeerOpt = "", as_json: JsonOpt = False, timeout: TimeoutOpt = 5.0) -> None:
    """Who the node talks to: each peer's card, last seen, groups admitted and dropped (why)."""
    from swarmrl.cli.inspect_view import peers_view
    from swarmrl.control.client import pb

    with client(node, run_dir, token, timeout) as c:
        p = _call(c, "Peers", pb.NodeRequest(node=peer))
    emit(p, as_json, peers_view(p) if not as_json else None)


@inspect_app.command("pool")
def pool(node: NodeOpt = None, run_dir: DirOpt = None, token: TokenOpt = None,
         peer: PeerOpt = "", as_json: JsonOpt = False, timeout: TimeoutOpt = 5.0,
         limit: Annotated[int, typer.Option(help="Entries listed, newest first.")] = 20) -> None:
    """The swarm pool: size, share per peer, what was refused or evicted, newest entries."""
    from swarmrl.cli.inspect_view import pool_view
    from swarmrl.control.client import pb

    with client(node, run_dir, token, timeout) as c:
        p = _call(c, "Pool", pb.PoolRequest(node=peer, limit=limit))
    emit(p, as_json, pool_view(p) if not as_json else None)


@inspect_app.command("rollouts")
def rollouts(node: NodeOpt = None, run_dir: DirOpt = None, token: TokenOpt = None,
             peer: PeerOpt = "", as_json: JsonOpt = False, timeout: TimeoutOpt = 5.0,
             limit: Annotated[int, typer.Option(help="Groups, newest first.")] = 4,
             source: Annotated[str, typer.Option(help="'local', 'external' or 'all'.")] = "all",
             full: Annotated[bool, typer.Option(help="Do not shorten texts.")] = False) -> None:
    """The last rollout groups trained on, with the completions and this node's rewards."""
    from swarmrl.cli.inspect_view import rollouts_view
    from swarmrl.control.client import pb

    if source not in ("local", "external", "all"):
        fail(f"--source: {source!r} is not 'local', 'external' or 'all'", EXIT_INSPECT)
    req = pb.RecentRolloutsRequest(node=peer, limit=limit, source="" if source == "all" else source)
    with client(node, run_dir, token, timeout) as c:
        r = _call(c, "RecentRollouts", req)
    emit(r, as_json, rollouts_view(r, full) if not as_json else None)


@inspect_app.command("metrics")
def metrics(node: NodeOpt = None, run_dir: DirOpt = None, token: TokenOpt = None,
            peer: PeerOpt = "", as_json: JsonOpt = False, timeout: TimeoutOpt = 5.0,
            last: Annotated[int, typer.Option(help="History rows first (-1 = all).")] = 20,
            follow: Annotated[bool, typer.Option("--follow", "-f",
                                                 help="Keep printing new steps.")] = False) -> None:
    """Step rows (the metrics.jsonl figures) and counters; --follow streams new steps.

    With --json: one JSON object per line, each a step row (then, without --follow, one
    object {"counters": ...})."""
    from swarmrl.cli.inspect_view import metrics_line, metrics_table
    from swarmrl.control.client import pb

    req = pb.MetricsRequest(node=peer, follow=follow, last=max(last, -1))
    first = True
    counters: dict[str, int] = {}
    with client(node, run_dir, token, timeout) as c:
        try:
            for update in c.stream("Metrics", req, follow=follow):
                rows = [json.loads(s) for s in update.steps]
                counters = dict(update.counters)
                if as_json:
                    for row in rows:
                        typer.echo(json.dumps(row))
                elif first and not follow:
                    out.print(metrics_table(rows))
                else:
                    for row in rows:
                        out.print(metrics_line(row), highlight=False)
                first = False
        except KeyboardInterrupt:
            return
    if not follow:
        if as_json:
            typer.echo(json.dumps({"counters": counters}))
        else:
            from swarmrl.cli.inspect_view import counts

            out.print(f"counters: {counts(counters)}", highlight=False)


@inspect_app.command("config")
def config(node: NodeOpt = None, run_dir: DirOpt = None, token: TokenOpt = None,
           peer: PeerOpt = "", as_json: JsonOpt = False, timeout: TimeoutOpt = 5.0) -> None:
    """The node's effective config (TOML; secrets redacted)."""
    from swarmrl.control.client import pb

    with client(node, run_dir, token, timeout) as c:
        reply = c.call("Config", pb.NodeRequest(node=peer))
    typer.echo(reply.json if as_json else reply.toml.rstrip("\n"))


@inspect_app.command("nodes")
def nodes(node: NodeOpt = None, run_dir: DirOpt = None, token: TokenOpt = None,
          as_json: JsonOpt = False, timeout: TimeoutOpt = 5.0) -> None:
    """The nodes this server serves (a simulation serves all of its nodes)."""
    from swarmrl.cli.inspect_view import nodes_view
    from swarmrl.control.client import pb

    with client(node, run_dir, token, timeout) as c:
        n = _call(c, "ListNodes", pb.ListNodesRequest())
    emit(n, as_json, nodes_view(n) if not as_json else None)


@inspect_app.command("top")
def top(node: NodeOpt = None, run_dir: DirOpt = None, token: TokenOpt = None,
        peer: PeerOpt = "", timeout: TimeoutOpt = 5.0,
        interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 1.0,
        once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
        ) -> None:
    """A live view: reward sparkline and trend, pace, peers, pool, drops (Ctrl-C to quit)."""
    from rich.live import Live

    from swarmrl.cli.inspect_view import top_view
    from swarmrl.control.client import pb

    def frame(c: Any) -> Any:
        req = pb.NodeRequest(node=peer)
        return top_view(_call(c, "Status", req), _call(c, "Peers", req),
                        _call(c, "Pool", pb.PoolRequest(node=peer, limit=1)))

    with client(node, run_dir, token, timeout) as c:
        if once:
            out.print(frame(c))
            return
        try:
            with Live(frame(c), console=out, auto_refresh=False, screen=False) as live:
                while True:
                    time.sleep(interval)
                    live.update(frame(c), refresh=True)
        except KeyboardInterrupt:
            return


# --- steering --------------------------------------------------------------------------------
@inspect_app.command("pause")
def pause(node: NodeOpt = None, run_dir: DirOpt = None, token: TokenOpt = None,
          peer: PeerOpt = "", as_json: JsonOpt = False, timeout: TimeoutOpt = 5.0) -> None:
    """Finish the step in flight and start no new one (gossip keeps flowing)."""
    _pause(node, run_dir, token, peer, as_json, timeout, "Pause")


@inspect_app.command("resume")
def resume(node: NodeOpt = None, run_dir: DirOpt = None, token: TokenOpt = None,
           peer: PeerOpt = "", as_json: JsonOpt = False, timeout: TimeoutOpt = 5.0) -> None:
    """Resume training after a pause."""
    _pause(node, run_dir, token, peer, as_json, timeout, "Resume")


def _pause(node: str | None, run_dir: Path | None, token: str | None, peer: str,
           as_json: bool, timeout: float, method: str) -> None:
    from swarmrl.control.client import pb

    with client(node, run_dir, token, timeout) as c:
        r = _call(c, method, pb.NodeRequest(node=peer))
    what = "paused (the step in flight finishes)" if r["paused"] else "training again"
    emit(r, as_json, f"{what} at step {r['step']}; state {r['state']}")


@inspect_app.command("submit")
def submit(
    node: NodeOpt = None, run_dir: DirOpt = None, token: TokenOpt = None,
    peer: PeerOpt = "", as_json: JsonOpt = False, timeout: TimeoutOpt = 5.0,
    family: Annotated[str | None, typer.Option(help="Procedural task: its family.")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="Generator parameter KEY=VALUE (JSON value or text; repeatable).")] = None,
    seed: Annotated[int, typer.Option(help="Procedural task: generator seed.")] = 0,
    index: Annotated[int, typer.Option(help="Procedural task: item index.")] = 0,
    prompt: Annotated[str | None, typer.Option(help="Free-form task: the question.")] = None,
    answer: Annotated[str | None, typer.Option(help="Free-form task: reference answer.")] = None,
    verifier: Annotated[str, typer.Option(help="Free-form task: verifier name.")] = "exact",
) -> None:
    """Hand the node a task (--family ... or --prompt/--answer); it is one of its next local
    tasks. The node regenerates it first, so a task it cannot score is refused."""
    from swarmrl.control.client import pb

    if (family is None) == (prompt is None):
        fail("give either --family (a procedural task) or --prompt and --answer (free-form)",
             EXIT_INSPECT)
    if family is not None:
        params = _params(param or [])
        req = pb.SubmitTaskRequest(node=peer, spec=pb.TaskSpecInput(
            family=family, params_json=json.dumps(params), seed=seed, index=index))
    else:
        if answer is None:
            fail("a free-form task needs --answer (its reference answer)", EXIT_INSPECT)
        req = pb.SubmitTaskRequest(node=peer, free_form=pb.FreeFormInput(
            prompt=prompt, reference_answer=answer, verifier=verifier))
    if seed < 0 or index < 0:
        fail("--seed and --index must be >= 0", EXIT_INSPECT)
    with client(node, run_dir, token, timeout) as c:
        r = _call(c, "SubmitTask", req)
    emit(r, as_json, f"queued ({r['queued']} waiting): {r['question']!r} -> answer "
         f"{r['answer']!r} [task {r['task_key']}]")


def _params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            fail(f"--param {item!r}: expected KEY=VALUE", EXIT_INSPECT)
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw  # plain text, e.g. ops=+-
    return params
