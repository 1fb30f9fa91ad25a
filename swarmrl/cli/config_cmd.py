"""`swarmrl config`: a node config's effective values, and every field's docs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from swarmrl.cli.common import _node_config
from swarmrl.cli.errors import fail

config_app = typer.Typer(
    help="Node configuration: effective values and field docs.", no_args_is_help=True
)


@config_app.command("show")
def config_show(
    file: Annotated[Path | None, typer.Argument(help="Node config TOML.", show_default=False)]
    = None,
    config: Annotated[Path | None, typer.Option(help="Node config TOML (same as FILE).")] = None,
) -> None:
    """Print the effective node config (defaults merged with the file) as JSON."""
    if file is not None and config is not None and file != config:
        fail("give the config once: FILE or --config")
    typer.echo(_node_config(file or config).model_dump_json(indent=2))


@config_app.command("docs")
def config_docs() -> None:
    """Print every config field with its default and meaning (Markdown)."""
    typer.echo(config_markdown(), nl=False)


def config_markdown() -> str:
    """docs/configuration.md, generated from the models (`swarmrl config docs`)."""
    from swarmrl.config import config_markdown as render
    from swarmrl.simulator.scenario import ChurnEvent, NodeSpec, PartitionEvent, Scenario

    return render([
        ("Scenario", Scenario),
        ("Scenario `[[nodes]]`", NodeSpec),
        ("Scenario `[[partitions]]`", PartitionEvent),
        ("Scenario `[[churn]]`", ChurnEvent),
    ])
