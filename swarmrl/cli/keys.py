"""`swarmrl keys`: peer identities, ed25519 key files and their peer ids."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from swarmrl.cli.errors import fail

keys_app = typer.Typer(
    help="Peer identities: ed25519 key files and their peer ids.", no_args_is_help=True
)


@keys_app.command("new")
def keys_new(
    out: Annotated[Path, typer.Option("--out", help="Where to write the key file (mode 0600).")],
    force: Annotated[bool, typer.Option(help="Overwrite an existing key file.")] = False,
) -> None:
    """Create a new ed25519 identity and print its peer id."""
    from swarmrl.protocol import Identity, IdentityError

    if out.exists() and not force:
        fail(f"{out} exists (pass --force to overwrite it)")
    ident = Identity.generate()
    try:
        ident.save(out, overwrite=force)
    except (IdentityError, OSError) as e:
        fail(str(e))
    typer.echo(ident.peer_id)


@keys_app.command("show")
def keys_show(path: Annotated[Path, typer.Argument(help="A key file.")]) -> None:
    """Print the peer id of a key file."""
    from swarmrl.protocol import Identity, IdentityError

    try:
        typer.echo(Identity.load(path).peer_id)
    except (IdentityError, OSError) as e:
        fail(str(e))
