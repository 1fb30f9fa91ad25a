"""swarmrl: a decentralized RL post-training network for language models.

Layers (lower never imports higher): protocol, tasks -> kernels -> training -> selfplay -> node
-> simulator -> cli. See docs/architecture.md.
"""

__version__ = "0.1.0"
