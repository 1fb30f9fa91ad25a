"""The one `swarmrl` command: keys, models, training alone, simulations (and later: node, inspect).

Heavy imports (torch, transformers) happen inside commands so `swarmrl --help` stays instant.
Every user error is one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

app = typer.Typer(
    name="swarmrl",
    help="swarmrl: decentralized RL post-training for language models. Nodes share rollouts "
    "over gossip and each trains its own policy with GRPO (SAPO), self-play and distillation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(
    help="Peer identities: ed25519 key files and their peer ids.", no_args_is_help=True
)
models_app = typer.Typer(help="Built-in tiny models and their warm starts.", no_args_is_help=True)
sim_app = typer.Typer(help="Run a whole swarm on this machine (in-memory network, virtual clock).")
app.add_typer(keys_app, name="keys")
app.add_typer(models_app, name="models")
app.add_typer(sim_app, name="sim")

console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# --- keys ----------------------------------------------------------------------------------
@keys_app.command("new")
def keys_new(
    out: Annotated[Path, typer.Option("--out", help="Where to write the key file (mode 0600).")],
    force: Annotated[bool, typer.Option(help="Overwrite an existing key file.")] = False,
) -> None:
    """Create a new ed25519 identity and print its peer id."""
    from swarmrl.protocol import Identity, IdentityError

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


# --- models --------------------------------------------------------------------------------
@models_app.command("warmstart")
def models_warmstart(
    model: Annotated[str, typer.Option(help="tiny-0.5m or tiny-4m.")] = "tiny-4m",
    steps: Annotated[int | None, typer.Option(help="Supervised steps (default: config).")] = None,
    config: Annotated[Path | None, typer.Option(help="Node config TOML.")] = None,
) -> None:
    """Build (or reuse from cache) the supervised warm start of a tiny model."""
    cfg = _node_config(config, **{"model.name": model, "model.warm_start_steps": steps})
    from swarmrl.training.warmstart import ensure_warm_start

    path = ensure_warm_start(cfg.model, progress=True)
    typer.echo(str(path))


# --- train ---------------------------------------------------------------------------------
def _node_config(path: Path | None, **overrides: Any) -> Any:
    from swarmrl.config import ConfigError, NodeConfig, load_config

    try:
        return load_config(NodeConfig, path, **overrides)
    except ConfigError as e:
        fail(str(e))


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Run directory (metrics, checkpoints).")],
    steps: Annotated[int | None, typer.Option(help="Training steps.")] = None,
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
    from swarmrl.node.solo import train_alone

    summary = train_alone(cfg, out, resume=resume, console=console)
    typer.echo(_format_summary(summary))


def _format_summary(s: dict[str, Any]) -> str:
    return (
        f"steps {s['steps']}  reward first10 {s['reward_first10']:.3f} -> last10 "
        f"{s['reward_last10']:.3f}  ({s['seconds']:.0f} s, {s['seconds_per_step']:.2f} s/step)"
        f"\nmetrics: {s['metrics']}"
    )


# --- sim -----------------------------------------------------------------------------------
@sim_app.callback(invoke_without_command=True)
def sim(
    ctx: typer.Context,
    scenario: Annotated[
        Path | None, typer.Option(help="Scenario TOML (default: embedded demo).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("runs/sim"),
    steps: Annotated[
        int | None, typer.Option(help="Override the scenario's steps per node.")
    ] = None,
    verbose: Annotated[bool, typer.Option("-v", help="Debug logs.")] = False,
) -> None:
    """Run a simulated swarm and write metrics, summary.json, plots and report.md."""
    if ctx.invoked_subcommand is not None:
        return
    _setup_logging(verbose)
    from swarmrl.config import ConfigError, load_toml
    from swarmrl.simulator import run_with_progress
    from swarmrl.simulator.scenario import load_scenario

    try:
        data = load_toml(scenario) if scenario else None
        sc = load_scenario(scenario, data)
        if steps is not None:
            sc.steps = steps
    except ConfigError as e:
        fail(str(e))
    t0 = time.time()
    summary = run_with_progress(sc, out, console)
    sw = summary["swarm"]
    typer.echo(
        f"swarm reward {sw['reward_first']:.3f} -> {sw['reward_last']:.3f} over "
        f"{sc.steps} steps x {sw['nodes']} nodes in {time.time() - t0:.0f} s"
    )
    typer.echo(f"report: {out / 'report.md'}")


@sim_app.command("experiment")
def sim_experiment(
    name: Annotated[str, typer.Argument(help="Experiment: 'sapo'.")],
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("runs/experiment"),
    seeds: Annotated[int, typer.Option(help="Seeds per configuration.")] = 3,
    steps: Annotated[int | None, typer.Option(help="Steps per node.")] = None,
    scenario: Annotated[Path | None, typer.Option(help="Base scenario TOML.")] = None,
) -> None:
    """Run a named experiment (same seeds and task sequences across its arms) and tabulate it."""
    from swarmrl.simulator.experiments import EXPERIMENTS

    if name not in EXPERIMENTS:
        fail(f"unknown experiment {name!r}; known: {', '.join(sorted(EXPERIMENTS))}")
    table = EXPERIMENTS[name](out=out, seeds=seeds, steps=steps, scenario=scenario, console=console)
    typer.echo(table)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
