"""The network: the Transport interface a node is written against (gossip topics plus
request/response), the in-memory network of the simulator, and the libp2p transport of the
daemon. It carries protocol/'s bytes and imports no torch. The libp2p transport
(:mod:`swarmrl.net.libp2p_transport`) is not imported here: importing swarmrl.net does not load
libp2p until it is asked for."""

from swarmrl.net.errors import RequestTimeout, TransportClosed, TransportError
from swarmrl.net.memory import LinkSpec, MemoryNetwork, MemoryTransport
from swarmrl.net.transport import Handler, Subscription, Transport, topic_name

__all__ = [
    "Handler",
    "LinkSpec",
    "MemoryNetwork",
    "MemoryTransport",
    "RequestTimeout",
    "Subscription",
    "Transport",
    "TransportClosed",
    "TransportError",
    "topic_name",
]
