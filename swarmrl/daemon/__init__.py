"""A node as a process: `swarmrl node run` on the real network (daemon.py: resume, libp2p,
signals, the bootstrap role, the control API; resolve.py: config resolution and the key;
logs.py; daemon_node.py: the logging node loop and a bootstrap node's NullBrain; validator.py:
the gossip gate; watcher.py: log lines and status.json; node_init.py: `node init`'s node.toml),
the swarm's definition it joins (genesis.py), and `swarmrl train`, one node alone (solo.py).
Each drives node/'s one loop."""
