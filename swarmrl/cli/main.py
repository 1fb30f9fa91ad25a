"""The one `swarmrl` command: keys, models, training alone, simulations, node daemon, genesis.

Heavy imports (torch, transformers) happen inside commands so `swarmrl --help` stays instant.
Every user error is one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from swarmrl.cli.common import _node_config, _setup_logging, console
from swarmrl.cli.config_cmd import config_app
from swarmrl.cli.errors import fail
from swarmrl.cli.genesis import genesis_app
from swarmrl.cli.inspect import inspect_app
from swarmrl.cli.keys import keys_app
from swarmrl.cli.models import models_app
from swarmrl.cli.node import node_app
from swarmrl.cli.sim import sim_app

app = typer.Typer(
    name="swarmrl",
    help="swarmrl: decentralized RL post-training for language models. Nodes share rollouts "
    "over gossip and each trains its own policy with GRPO (SAPO), self-play and distillation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(keys_app, name="keys")
app.add_typer(models_app, name="models")
app.add_typer(sim_app, name="sim")
app.add_typer(config_app, name="config")
app.add_typer(node_app, name="node")
app.add_typer(genesis_app, name="genesis")
app.add_typer(inspect_app, name="inspect")


# --- train ---------------------------------------------------------------------------------
@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Run directory (metrics, checkpoints).")],
    steps: Annotated[int | None, typer.Option(
        help="Total training steps of the run (a resumed run goes on to this step)."
    )] = None,
    config: Annotated[Path | None, typer.Option(help="Node config TOML.")] = None,
    model: Annotated[str | None, typer.Option(help="tiny-0.5m, tiny-4m, hub id or path.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed.")] = None,
    resume: Annotated[
        bool, typer.Option(help="Resume from the latest checkpoint in --out.")
    ] = True,
    verbose: Annotated[bool, typer.Option("-v", help="Debug logs.")] = False,
) -> None:
    """Train one node alone (silo): no peers, its own tasks, a GRPO update per step."""
    _setup_logging(verbose)
    cfg = _node_config(
        config,
        steps=steps,
        seed=seed,
        **{
            "model.name": model,
            "grpo.learning_rate": lr,
            "sapo.external": 0,
            "sapo.publish": False,
        },
    )
    from swarmrl.config import ConfigError
    from swarmrl.daemon.solo import train_alone

    try:
        summary = train_alone(cfg, out, resume=resume, console=console)
    except ConfigError as e:  # found only when the model loads (model.name)
        fail(str(e))
    typer.echo(_format_summary(summary))


def _format_summary(s: dict[str, Any]) -> str:
    return (
        f"steps {s['steps']}  reward first10 {s['reward_first10']:.3f} -> last10 "
        f"{s['reward_last10']:.3f}  ({s['seconds']:.0f} s, {s['seconds_per_step']:.2f} s/step)"
        f"\nmetrics: {s['metrics']}"
    )


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
