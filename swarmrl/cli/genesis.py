"""`swarmrl genesis`: swarm genesis files, what every member agrees on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from swarmrl.cli.errors import fail

genesis_app = typer.Typer(
    help="Swarm genesis files: what every member agrees on, named by its hash.",
    no_args_is_help=True,
)


@genesis_app.command("new")
def genesis_new(
    out: Annotated[Path, typer.Option("--out", help="Genesis file to write.")],
    swarm_id: Annotated[str, typer.Option("--swarm-id", help="The swarm's name.")],
    family: Annotated[
        list[str] | None,
        typer.Option("--family", help="NAME or NAME=WEIGHT (repeatable; default: arith)."),
    ] = None,
    description: Annotated[str, typer.Option(help="What this swarm trains.")] = "",
    defaults: Annotated[
        Path | None,
        typer.Option(help="A (partial) node config TOML whose values become the swarm defaults."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a genesis file (versions read from this machine) and print its hash."""
    from swarmrl.config import ConfigError, load_toml
    from swarmrl.daemon.genesis import genesis_toml, new_genesis

    if out.exists() and not force:
        fail(f"{out} exists (pass --force to overwrite it)")
    try:
        families = _parse_families(family or ["arith"])
        base = load_toml(defaults) if defaults else None
        g = new_genesis(swarm_id, families, description, base)
    except ConfigError as e:
        fail(str(e))
    out.write_text(genesis_toml(g))
    typer.echo(g.hash)


def _parse_families(items: list[str]) -> dict[str, float]:
    from swarmrl.config import ConfigError

    families = {}
    for item in items:
        name, _, weight = item.partition("=")
        try:
            families[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise ConfigError(f"--family {item!r}: weight is not a number") from None
    return families


@genesis_app.command("show")
def genesis_show(path: Annotated[Path, typer.Argument(help="A genesis file.")]) -> None:
    """Print a genesis file's hash and what it defines."""
    from swarmrl.config import ConfigError
    from swarmrl.daemon.genesis import load_genesis

    try:
        g = load_genesis(path)
    except ConfigError as e:
        fail(str(e))
    typer.echo(f"hash:     {g.hash}")
    typer.echo(f"swarm id: {g.swarm_id}")
    typer.echo(f"protocol: {g.protocol_version}")
    if g.description:
        typer.echo(f"about:    {g.description}")
    for name, f in g.families.items():
        typer.echo(
            f"family:   {name} weight {f.weight:g}, version {f.version}, verifier {f.verifier}"
        )
    if g.defaults:
        typer.echo(f"defaults: {g.defaults}")
