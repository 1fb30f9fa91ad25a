"""Control and inspection of running nodes from outside their loop: the gRPC control API
(server.py, its client.py and the proto/ it speaks), the copying snapshots it serves
(inspection.py) and the Prometheus collector over the same figures (prometheus.py). It reads
node/, which never imports it; the daemon and the simulator serve it. Nothing is imported here,
so a client does not load the server's dependencies."""
