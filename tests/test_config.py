"""The one config model: documented fields, one-line errors, TOML loading, docs in sync."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from swarmrl.config import ConfigError, NodeConfig, describe, load_config
from swarmrl.simulator.scenario import ChurnEvent, NodeSpec, PartitionEvent, Scenario


@pytest.mark.parametrize("model", [NodeConfig, Scenario, NodeSpec, PartitionEvent, ChurnEvent])
def test_every_field_is_documented(model: type[BaseModel]) -> None:
    missing = [k for k, _, text in describe(model) if not text.strip()]
    assert missing == []


def test_docs_configuration_is_generated_from_the_models() -> None:
    from swarmrl.cli import config_markdown

    doc = Path(__file__).parent.parent / "docs" / "configuration.md"
    assert doc.read_text() == config_markdown(), "run: swarmrl config docs > docs/configuration.md"


def test_toml_with_overrides(tmp_path: Path) -> None:
    f = tmp_path / "node.toml"
    f.write_text('name = "a"\n[grpo]\nlearning_rate = 1e-4\n[sapo]\nlocal = 2\n')
    cfg = load_config(NodeConfig, f, **{"sapo.external": 6, "steps": None})
    assert (cfg.name, cfg.grpo.learning_rate, cfg.sapo.local, cfg.sapo.external) == (
        "a", 1e-4, 2, 6)


@pytest.mark.parametrize(
    "text, field",
    [
        ("[grpo]\nlearning_rate = -1\n", "grpo.learning_rate"),
        ("[sapo]\nbogus = 1\n", "sapo.bogus"),
        ("[tasks]\nfamilies = {}\n", "families"),
        ("steps = 'many'\n", "steps"),
    ],
)
def test_bad_config_is_one_line_naming_the_field(tmp_path: Path, text: str, field: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(NodeConfig, f)
    msg = str(err.value)
    assert "\n" not in msg and field in msg


def test_missing_and_invalid_toml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(NodeConfig, tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[grpo\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(NodeConfig, bad)
