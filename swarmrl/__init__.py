"""swarmrl: a decentralized RL post-training network for language models.

Layers (lower never imports higher): protocol -> tasks -> config -> kernels -> training ->
selfplay -> node -> simulator -> cli, checked by `make test` ([tool.importlinter] in
pyproject.toml). See docs/architecture.md.
"""

__version__ = "0.1.0"
