"""Exceptions of the protocol layer.

:class:`ProtocolError` means *the bytes or the claims of a peer are bad* (drop them and count).
Kept apart on purpose from :class:`swarmrl.net.errors.TransportError`, *the network failed us*
(retry, try another peer, or give up). Identity-file problems are a local configuration error.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Input from the wire is malformed, oversized, unauthenticated, replayed or stale.

    The codec raises nothing else, whatever the bytes, so callers can drop-and-count with one
    ``except``.
    """


class IdentityError(Exception):
    """A key file is missing, unreadable, malformed, or has unsafe permissions."""

