"""The one config model: every knob of a node, a training run or a simulation, documented.

Sections are small pydantic models composed into :class:`NodeConfig`, each in the module of the
layer or idea that owns it (tasks, training, sharing, network, selfplay, distill, node). Configs
load from TOML (``load_config``, toml_io.py); any error is reported as one line naming the field
and the reason (``ConfigError``). toml_io.py also writes TOML; docs.py renders the models as
documentation (Markdown, and commented TOML). This package imports no torch so every layer may
use it.
"""

from swarmrl.config.base import ConfigError, _Section, format_validation_error, parse_config
from swarmrl.config.distill import DistillConfig, TeacherConfig
from swarmrl.config.docs import (
    comment_lines,
    commented_toml,
    config_markdown,
    describe,
    field_comment,
)
from swarmrl.config.network import NetworkConfig
from swarmrl.config.node import (
    LOOPBACK_HOSTS,
    CheckpointConfig,
    ControlConfig,
    EvalConfig,
    NodeConfig,
    split_host_port,
)
from swarmrl.config.selfplay import SelfPlayConfig
from swarmrl.config.sharing import GuardConfig, SAPOConfig
from swarmrl.config.tasks import TaskConfig
from swarmrl.config.toml_io import (
    load_config,
    load_toml,
    toml_document,
    toml_key,
    toml_tables,
    toml_value,
    tomllib,
)
from swarmrl.config.training import GenerationConfig, GRPOConfig, LoRAConfig, ModelConfig

__all__ = [
    # base.py
    "ConfigError",
    "_Section",
    "format_validation_error",
    "parse_config",
    # the sections, by owner
    "TaskConfig",
    "LoRAConfig",
    "ModelConfig",
    "GenerationConfig",
    "GRPOConfig",
    "SAPOConfig",
    "GuardConfig",
    "NetworkConfig",
    "SelfPlayConfig",
    "DistillConfig",
    "TeacherConfig",
    "EvalConfig",
    "CheckpointConfig",
    "ControlConfig",
    "NodeConfig",
    "LOOPBACK_HOSTS",
    "split_host_port",
    # toml_io.py
    "tomllib",
    "load_toml",
    "load_config",
    "toml_key",
    "toml_value",
    "toml_tables",
    "toml_document",
    # docs.py
    "describe",
    "config_markdown",
    "comment_lines",
    "field_comment",
    "commented_toml",
]
