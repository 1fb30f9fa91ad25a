"""One node's learning: policy, generation backends, GRPO, learner, checkpoints, tiny models.

Import the modules themselves (``swarmrl.training.learner``...): some of them (``brain``,
``sapo``) are torch-free and are imported by the node loop and the simulator, which must not
pay for torch by importing this package, so it re-exports nothing.
"""
