"""Exceptions of the transports.

:class:`TransportError` means *the network failed us* (retry, try another peer, or give up).
Kept apart on purpose from :class:`swarmrl.protocol.errors.ProtocolError`, *the bytes or the
claims of a peer are bad* (drop them and count).
"""

from __future__ import annotations


class TransportError(Exception):
    """A transport operation failed (peer gone, stream reset, transport closed, ...)."""


class RequestTimeout(TransportError):
    """A request got no reply within its timeout (lost, partitioned, or no handler)."""


class TransportClosed(TransportError):
    """The transport (or the subscription) was closed."""
