"""What enters from the swarm and what a node trains on from it: admission (the door),
guard (rate, regeneration, claims, reputation), plausibility, the peer table, and the SAPO pool
with its re-scoring and external selection (sapo.py). Torch-free.

Import the modules themselves (``swarmrl.swarm.admission``...): this package re-exports nothing.
"""
