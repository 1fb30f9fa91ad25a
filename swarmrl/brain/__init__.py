"""Every Brain the node loop talks to: the Protocol and its data types (base.py, torch-free),
the language model (lm.py: LMBrain over a transformers policy and training/'s learner) and the
simulator's cheap stub learner (stub.py, torch-free).

Import the modules themselves (``swarmrl.brain.base``...): the node loop and the simulator use
the torch-free ones without paying for torch, so this package re-exports nothing.
"""
