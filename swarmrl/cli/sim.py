"""`swarmrl sim`: a whole swarm on this machine, and the experiments built on it."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from swarmrl.cli.common import _setup_logging, console
from swarmrl.cli.errors import fail

sim_app = typer.Typer(help="Run a whole swarm on this machine (in-memory network, virtual clock).")


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
