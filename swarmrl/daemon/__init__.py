"""A node as a process: `swarmrl node run` on the real network (daemon.py: config resolution,
key, resume, libp2p, signals, logs, the control API), the swarm's definition it joins
(genesis.py), and `swarmrl train`, one node alone (solo.py). Each drives node/'s one loop."""
