"""The one `swarmrl` command: keys, models, training alone, simulations, node daemon, genesis.

Heavy imports (torch, transformers) happen inside commands so `swarmrl --help` stays instant.
Every user error is one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import logging
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from swarmrl.cli.errors import EXIT_INTERRUPTED, fail

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
models_app = typer.Typer(help="Built-in tiny models, their warm starts, importing others.",
                        no_args_is_help=True)
sim_app = typer.Typer(help="Run a whole swarm on this machine (in-memory network, virtual clock).")
app.add_typer(keys_app, name="keys")
app.add_typer(models_app, name="models")
app.add_typer(sim_app, name="sim")
config_app = typer.Typer(
    help="Node configuration: effective values and field docs.", no_args_is_help=True
)
app.add_typer(config_app, name="config")
node_app = typer.Typer(
    help="Run a node on the real network: init a config, run until stopped.",
    no_args_is_help=True,
)
app.add_typer(node_app, name="node")
genesis_app = typer.Typer(
    help="Swarm genesis files: what every member agrees on, named by its hash.",
    no_args_is_help=True,
)
app.add_typer(genesis_app, name="genesis")
from swarmrl.cli.inspect import inspect_app  # noqa: E402 - light: typer and rich only

app.add_typer(inspect_app, name="inspect")

console = Console(stderr=True)


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


@models_app.command("import-gguf")
def models_import_gguf(
    gguf: Annotated[Path, typer.Argument(help="A .gguf file (e.g. from an offline package).")],
    out: Annotated[Path, typer.Option(help="New folder to write (config, weights, tokenizer).")],
    dtype: Annotated[str, typer.Option(help="Weights' dtype: float32 or bfloat16.")] = "float32",
) -> None:
    """Convert a GGUF model to a transformers folder that model.name can point at."""
    from swarmrl.config import ConfigError
    from swarmrl.training.gguf_import import import_gguf

    try:
        typer.echo(str(import_gguf(gguf, out, dtype)))
    except ConfigError as e:
        fail(str(e))


# --- config -------------------------------------------------------------------------------
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
    transport: Annotated[
        str | None,
        typer.Option(
            help="Override network.transport: 'memory' (virtual clock, repeatable) or "
            "'libp2p' (real hosts on 127.0.0.1, wall clock)."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("-v", help="Debug logs.")] = False,
    control: Annotated[
        str | None,
        typer.Option(help="Serve the control API for all nodes on HOST:PORT (`swarmrl inspect "
                     "--dir OUT --peer NAME`); overrides the scenario's control.listen."),
    ] = None,
    metrics: Annotated[
        str | None, typer.Option(help="Serve Prometheus /metrics for all nodes on HOST:PORT.")
    ] = None,
    serve_after: Annotated[
        bool, typer.Option("--serve-after", help="Keep serving after the run until Ctrl-C.")
    ] = False,
) -> None:
    """Run a simulated swarm and write metrics, summary.json, plots and report.md."""
    if ctx.invoked_subcommand is not None:
        return
    _setup_logging(verbose)
    from swarmrl.config import ConfigError, load_toml
    from swarmrl.simulator import run_with_progress
    from swarmrl.simulator.report import sharing_line
    from swarmrl.simulator.scenario import load_scenario

    try:
        data = load_toml(scenario) if scenario else None
        sc = load_scenario(scenario, data)
        if steps is not None:
            sc.steps = steps
        if transport is not None:
            if transport not in ("memory", "libp2p"):
                raise ConfigError(f"--transport: {transport!r} is not 'memory' or 'libp2p'")
            sc.network.transport = transport  # type: ignore[assignment]
        ctl = _sim_control(sc, control, metrics)
    except ConfigError as e:
        fail(str(e))
    served: list[Any] = []  # the control handle, once serving
    base = scenario.parent if scenario else None
    t0 = time.time()
    try:
        summary = run_with_progress(
            sc, out, console, serve=_sim_server(ctl, out, base, served) if ctl else None
        )
        sw = summary["swarm"]
        typer.echo(
            f"swarm reward {sw['reward_first']:.3f} -> {sw['reward_last']:.3f} over "
            f"{sc.steps} steps x {sw['nodes']} nodes in {time.time() - t0:.0f} s"
        )
        if line := sharing_line(summary["nodes"]):
            typer.echo(line)
        typer.echo(f"report: {out / 'report.md'}")
        if served and serve_after:
            _serve_until_interrupted(served[0])
    except ConfigError as e:
        fail(str(e))
    finally:
        for handle in served:
            handle.stop(0.5)


def _sim_control(sc: Any, listen: str | None, metrics: str | None) -> Any:
    """The scenario's [control] with the command line's addresses; None if nothing to serve."""
    from swarmrl.config import ControlConfig, parse_config

    data = sc.control.model_dump()
    if listen is not None:
        data["listen"] = listen
    if metrics is not None:
        data["metrics_listen"] = metrics
    cfg = parse_config(ControlConfig, data)  # ConfigError: one line, reported by the caller
    return cfg if cfg.listen or cfg.metrics_listen else None


def _sim_server(cfg: Any, out: Path, base: Path | None, served: list[Any]) -> Any:
    def serve(sim: Any) -> None:
        from swarmrl.control.server import write_control_addr
        from swarmrl.simulator.serve import serve_simulation

        handle = serve_simulation(sim, cfg, base, run_dir=out)
        served.append(handle)
        if handle.addr:
            write_control_addr(out, handle.addr)
            console.print(f"control API on {handle.addr}: swarmrl inspect nodes --dir {out}")
        if handle.metrics_addr:
            console.print(f"Prometheus metrics on http://{handle.metrics_addr}/metrics")

    return serve


def _serve_until_interrupted(handle: Any) -> None:
    # Taken explicitly: a background job of a non-interactive shell starts with SIGINT ignored
    # (then Python never raises KeyboardInterrupt), and supervisors stop a process with SIGTERM.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.default_int_handler)
    where = " and ".join(a for a in (handle.addr, handle.metrics_addr) if a)
    console.print(f"run finished; still serving on {where} (Ctrl-C or SIGTERM to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopped serving")


@sim_app.command("experiment")
def sim_experiment(
    name: Annotated[
        str, typer.Argument(help="Experiment: 'sapo', 'selfplay', 'distill' or 'guard'.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("runs/experiment"),
    seeds: Annotated[int, typer.Option(help="Seeds per configuration.")] = 3,
    steps: Annotated[int | None, typer.Option(help="Steps per node.")] = None,
    scenario: Annotated[Path | None, typer.Option(help="Base scenario TOML.")] = None,
    preset: Annotated[
        str | None,
        typer.Option(help="sapo only: the swarm to run, 'paper' (default) or 'skills' "
                     "(swarmrl/simulator/scenarios/sapo_*.toml)."),
    ] = None,
) -> None:
    """Run a named experiment (same seeds and task sequences across its arms) and tabulate it."""
    from swarmrl.simulator.experiments import EXPERIMENTS, SAPO_PRESETS

    if name not in EXPERIMENTS:
        fail(f"unknown experiment {name!r}; known: {', '.join(sorted(EXPERIMENTS))}")
    kwargs = {}
    if preset is not None:
        if name != "sapo" or scenario is not None:
            fail("--preset: only for 'sapo', and not with --scenario (a preset is a scenario)")
        if preset not in SAPO_PRESETS:
            fail(f"--preset: unknown sapo preset {preset!r}; known: {', '.join(SAPO_PRESETS)}")
        kwargs["preset"] = preset
    table = EXPERIMENTS[name](out=out, seeds=seeds, steps=steps, scenario=scenario,
                              console=console, **kwargs)
    typer.echo(table)


# --- node ----------------------------------------------------------------------------------
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


# --- genesis -------------------------------------------------------------------------------
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


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
