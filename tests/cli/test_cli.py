"""`swarmrl` end to end through typer's CliRunner: train and resume, sims, keys, config errors."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from swarmrl.cli import app
from swarmrl.node.metrics import read_metrics
from swarmrl.simulator.experiments import SAPO_PRESETS, sapo_scenario_path
from swarmrl.simulator.scenario import load_scenario

torch.set_num_threads(1)

runner = CliRunner()

TINY_NODE = """
seed = 3
[model]
name = "tiny-0.5m"
warm_start = false
device = "cpu"
[generation]
group_size = 2
max_new_tokens = 4
[sapo]
local = 2
[checkpoint]
every = 0
"""

STUB_SCENARIO = """
name = "cli-stub"
seed = 2
steps = 5

[defaults]
tasks = { families = { arith = 1.0 }, pool_size = 8 }
generation = { group_size = 4 }
sapo = { local = 2, external = 2 }
checkpoint = { every = 0 }

[[nodes]]
name = "s"
count = 3
brain = "stub"
"""


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "sim", "keys"):
        assert command in result.output
    for sub in (["train", "--help"], ["sim", "--help"], ["keys", "--help"]):
        assert runner.invoke(app, sub).exit_code == 0


@pytest.mark.slow
def test_train_then_resume_with_more_steps(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text(TINY_NODE)
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["train", "--out", str(out), "--config", str(config), "--steps", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "steps 3" in result.stdout
    rows = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert {"step", "reward", "loss", "tokens", "seconds"} <= set(r)
        assert r["groups_local"] == 2 and r["groups_external"] == 0
    assert (out / "checkpoints" / "step-00000003").is_dir()

    result = runner.invoke(
        app, ["train", "--out", str(out), "--config", str(config), "--steps", "5"]
    )
    assert result.exit_code == 0, result.output
    assert "steps 5" in result.stdout
    said = " ".join(result.output.split())  # the console wraps long lines
    assert "resuming" in said and "at step 3" in said and "2 more to reach --steps 5" in said
    rows = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]  # resumed, not restarted
    assert (out / "checkpoints" / "step-00000005").is_dir()


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ("grpo = {learning_rate = -1}\n", "grpo.learning_rate"),
        ("bogus_field = 1\n", "bogus_field"),
        ("[sapo]\nlocal = 'many'\n", "sapo.local"),
        ("[tasks.families]\nnope = 1.0\n", "families.nope: unknown task family 'nope'"),
    ],
)
def test_a_bad_config_is_one_line_naming_the_field(tmp_path: Path, toml: str, field: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "o"), "--config", str(config)])
    assert result.exit_code != 0
    lines = error_lines(result)
    assert len(lines) == 1, lines
    assert field in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_a_model_that_does_not_load_is_one_line(tmp_path: Path) -> None:
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    for name in (str(tmp_path / "missing"), str(not_a_model)):
        config = tmp_path / "m.toml"
        config.write_text(f"[model]\nname = {name!r}\n")
        result = runner.invoke(app, ["train", "--out", str(tmp_path / "o"), "--config",
                                     str(config), "--steps", "1"])
        assert result.exit_code == 2, result.output
        lines = error_lines(result)
        assert len(lines) == 1 and lines[0].startswith("error: model.name:"), lines
        assert "Traceback" not in result.output


def test_a_missing_or_broken_config_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("steps = = 3\n")
    for path in (tmp_path / "missing.toml", broken):
        result = runner.invoke(app, ["train", "--out", str(tmp_path / "o"), "--config", str(path)])
        assert result.exit_code != 0
        assert len(error_lines(result)) == 1
        assert path.name in result.stderr


def test_keys_new_then_show_print_the_same_peer_id(tmp_path: Path) -> None:
    key = tmp_path / "node.key"
    made = runner.invoke(app, ["keys", "new", "--out", str(key)])
    assert made.exit_code == 0, made.output
    peer_id = made.stdout.strip()
    assert peer_id.startswith("12D3KooW")
    assert os.stat(key).st_mode & 0o777 == 0o600
    shown = runner.invoke(app, ["keys", "show", str(key)])
    assert shown.exit_code == 0
    assert shown.stdout.strip() == peer_id
    again = runner.invoke(app, ["keys", "new", "--out", str(key)])
    assert again.exit_code != 0 and len(error_lines(again)) == 1
    assert "--force" in error_lines(again)[0]  # the flag a CLI user can pass
    assert runner.invoke(app, ["keys", "show", str(key)]).stdout.strip() == peer_id  # untouched


def test_keys_show_refuses_a_readable_key_in_one_line(tmp_path: Path) -> None:
    # a long directory name: the error must stay on one line whatever the width
    deep = tmp_path / ("a-rather-long-directory-name-" * 3) / "[brackets]"
    deep.mkdir(parents=True)
    key = deep / "node.key"
    assert runner.invoke(app, ["keys", "new", "--out", str(key)]).exit_code == 0
    key.chmod(0o644)
    result = runner.invoke(app, ["keys", "show", str(key)])
    assert result.exit_code != 0
    lines = error_lines(result)
    assert len(lines) == 1, lines
    assert "0644" in lines[0] and "chmod 600" in lines[0]
    assert str(key) in lines[0]  # the path is shown as is, brackets included
    missing = runner.invoke(app, ["keys", "show", str(tmp_path / "nope.key")])
    assert missing.exit_code != 0 and len(error_lines(missing)) == 1


def test_sim_with_a_stub_scenario_writes_a_report(tmp_path: Path) -> None:
    scenario = tmp_path / "stub.toml"
    scenario.write_text(STUB_SCENARIO)
    out = tmp_path / "sim"
    result = runner.invoke(app, ["sim", "--scenario", str(scenario), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "report:" in result.stdout
    report = (out / "report.md").read_text()
    assert "cli-stub" in report
    assert (out / "summary.json").is_file()
    for name in ("s-0", "s-1", "s-2"):
        assert len(read_metrics(out / "nodes" / name / "metrics.jsonl")) == 5


def test_sim_with_a_bad_scenario_is_one_line(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.toml"
    scenario.write_text(STUB_SCENARIO.replace("steps = 5", "steps = 0"))
    result = runner.invoke(app, ["sim", "--scenario", str(scenario), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    lines = error_lines(result)
    assert len(lines) == 1 and "steps" in lines[0]


def test_an_unknown_experiment_is_one_line_listing_the_known_ones() -> None:
    result = runner.invoke(app, ["sim", "experiment", "nope"])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "unknown experiment 'nope'" in line and "\n" not in line
    for name in ("distill", "guard", "sapo", "selfplay"):
        assert name in line


def test_a_bad_preset_is_one_line() -> None:
    for args, says in (
        (["sim", "experiment", "sapo", "--preset", "nope"], "unknown sapo preset 'nope'"),
        (["sim", "experiment", "guard", "--preset", "skills"], "only for 'sapo'"),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and says in result.stderr, result.output
        assert len(error_lines(result)) == 1
    for name in SAPO_PRESETS:  # every preset is a valid scenario
        assert load_scenario(sapo_scenario_path(name)).nodes


def test_config_show_takes_the_file_as_an_argument_or_an_option(tmp_path: Path) -> None:
    config = tmp_path / "n.toml"
    config.write_text("[grpo]\nlearning_rate = 0.001\n")
    for args in (["config", "show", str(config)], ["config", "show", "--config", str(config)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["grpo"]["learning_rate"] == 0.001
    both = runner.invoke(app, ["config", "show", str(config), "--config", str(tmp_path / "x")])
    assert both.exit_code != 0 and len(error_lines(both)) == 1


def test_models_warmstart_builds_once_then_reuses_the_cache(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"[model]\ncache_dir = {str(tmp_path / 'cache')!r}\n")
    args = ["models", "warmstart", "--model", "tiny-0.5m", "--steps", "2", "--config", str(config)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    path = Path(first.stdout.strip().splitlines()[-1])
    assert (path / "recipe.json").is_file() and path.is_relative_to(tmp_path / "cache")
    built = (path / "recipe.json").stat().st_mtime_ns
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and again.stdout.strip().splitlines()[-1] == str(path)
    assert (path / "recipe.json").stat().st_mtime_ns == built  # reused, not rebuilt


def test_a_warm_start_built_under_umask_077_is_readable_by_all(tmp_path: Path) -> None:
    """The cache is meant to be shared; a daemon builds under umask 077 (its own files 0600)."""
    config = tmp_path / "c.toml"
    config.write_text(f"[model]\ncache_dir = {str(tmp_path / 'cache')!r}\n")
    old = os.umask(0o077)
    try:
        result = runner.invoke(app, ["models", "warmstart", "--model", "tiny-0.5m", "--steps",
                                     "1", "--config", str(config)])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip().splitlines()[-1])
    modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in [path, *path.rglob("*")]}
    assert all(m & 0o044 == 0o044 for m in modes.values()), modes
