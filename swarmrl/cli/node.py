"""`swarmrl node`: a node on the real network, `init` its config and `run` it."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

import typer

from swarmrl.cli.errors import EXIT_INTERRUPTED, fail

node_app = typer.Typer(
    help="Run a node on the real network: init a config, run until stopped.",
    no_args_is_help=True,
)


@node_app.command("init")
def node_init(
    out: Annotated[Path, typer.Option("--out", help="Node directory to create.")] = Path("node"),
    swarm: Annotated[
        Path | None, typer.Option("--swarm", help="Genesis file of the swarm to join.")
    ] = None,
    name: Annotated[str, typer.Option(help="Human-readable node name.")] = "node",
    force: Annotated[bool, typer.Option(help="Overwrite an existing node.toml.")] = False,
) -> None:
    """Write a documented node.toml (and a key, mode 0600, if none) into --out."""
    from swarmrl.config import ConfigError
    from swarmrl.daemon.genesis import load_genesis
    from swarmrl.daemon.node_init import node_toml
    from swarmrl.protocol import Identity, IdentityError

    config = out / "node.toml"
    if config.exists() and not force:
        fail(f"{config} exists (pass --force to overwrite it)")
    try:
        genesis = load_genesis(swarm) if swarm else None
    except ConfigError as e:
        fail(str(e))
    out.mkdir(parents=True, exist_ok=True)
    genesis_ref = str(swarm.resolve()) if swarm else ""
    # Each node its own seed: with the default one, two nodes of one model drew the same tasks
    # and sampled the same completions.
    seed = secrets.randbelow(2**31)
    config.write_text(node_toml(name=name, genesis=genesis_ref, genesis_obj=genesis, seed=seed))
    key = out / "node.key"
    try:
        ident = Identity.load(key) if key.exists() else Identity.generate()
        if not key.exists():
            ident.save(key)
    except (IdentityError, OSError) as e:
        fail(str(e))
    typer.echo(f"config:  {config}\nkey:     {key}\npeer id: {ident.peer_id}")
    typer.echo(f"run it:  swarmrl node run --config {config}")


@node_app.command("run")
def node_run(
    config: Annotated[Path | None, typer.Option(help="Node config TOML (node init).")] = None,
    swarm: Annotated[
        Path | None, typer.Option("--swarm", help="Genesis file of the swarm to join.")
    ] = None,
    bootstrap: Annotated[
        list[str] | None,
        typer.Option("--bootstrap", help="Multiaddr .../p2p/<peer-id> to dial (repeatable)."),
    ] = None,
    role: Annotated[
        list[str] | None,
        typer.Option(
            "--role",
            help="Replaces the config's roles (repeatable): 'solver', 'creator' (proposes "
            "tasks), 'teacher' (scores students' tokens), or 'bootstrap' (no model; relays).",
        ),
    ] = None,
    listen: Annotated[
        list[str] | None, typer.Option("--listen", help="Multiaddr to listen on (repeatable).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Run directory (default: the config's).")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Total steps (0 = until stopped).")] = None,
    verbose: Annotated[bool, typer.Option("-v", help="Debug logs, libp2p's included.")] = False,
) -> None:
    """Run one node until SIGINT/SIGTERM (or --steps); it checkpoints and exits cleanly."""
    from swarmrl.config import ConfigError
    from swarmrl.daemon.daemon import run_daemon
    from swarmrl.daemon.resolve import resolve_setup

    known = ("solver", "creator", "teacher", "bootstrap")
    for r in role or []:
        if r not in known:
            fail(f"--role: {r!r} is not a role (use {', '.join(known)})")
    try:
        setup = resolve_setup(
            config, swarm=swarm, bootstrap=bootstrap, listen=listen, role=role, out=out,
            steps=steps,
        )
        code = run_daemon(setup, verbose=verbose)
    except ConfigError as e:
        fail(str(e))
    except KeyboardInterrupt:  # before the node loop took over the signals (model loading)
        fail("interrupted", EXIT_INTERRUPTED)
    raise typer.Exit(code)
