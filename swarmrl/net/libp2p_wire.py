"""Small wire pieces of the libp2p transport: the hello exchange and request/response frames.

Frames are unsigned-varint length-prefixed (as every libp2p protocol does), read with a hard
size limit so a peer cannot make us buffer more than one message's worth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msgpack
from libp2p.abc import INetStream
from libp2p.utils.varint import encode_varint_prefixed, read_varint_prefixed_bytes_limited

HELLO_PROTOCOL = "/swarmrl/hello/1"
HELLO_MAX_BYTES = 4096
_HELLO_TAG = "swarmrl-hello"
_HELLO_VERSION = 1

REPLY_OK = 0
REPLY_ERROR = 1
_MAX_ERROR_BYTES = 200


def request_protocol(protocol: str) -> str:
    """The stream protocol id that carries requests for ``protocol`` (e.g. "teacher")."""
    return protocol if protocol.startswith("/") else f"/swarmrl/rpc/{protocol}/1"


@dataclass(frozen=True)
class Hello:
    """What two peers compare when they connect: same swarm and same genesis/protocol bytes."""

    swarm_id: str
    handshake: bytes
    explain: Callable[[bytes, bytes], str] | None = None
    """``explain(ours, theirs)``: what differs, in words (the daemon knows genesis files)."""

    def encode(self) -> bytes:
        return msgpack.packb([_HELLO_TAG, _HELLO_VERSION, self.swarm_id, self.handshake])

    @classmethod
    def decode(cls, data: bytes) -> Hello:
        """Raises ValueError for anything that is not a hello of our version."""
        try:
            items = msgpack.unpackb(data, raw=False, max_bin_len=HELLO_MAX_BYTES)
        except Exception as exc:  # msgpack raises several unrelated types on garbage
            raise ValueError(f"unreadable hello: {exc}") from exc
        if not (isinstance(items, list) and len(items) == 4 and items[0] == _HELLO_TAG):
            raise ValueError("not a swarmrl hello")
        if items[1] != _HELLO_VERSION:
            raise ValueError(f"hello version {items[1]!r}, this node speaks {_HELLO_VERSION}")
        swarm_id, handshake = items[2], items[3]
        if not isinstance(swarm_id, str) or not isinstance(handshake, bytes):
            raise ValueError("malformed hello")
        return cls(swarm_id, handshake)

    def mismatch(self, remote: Hello, peer: str) -> str | None:
        """Why ``peer`` (who sent ``remote``) cannot join us, in words a user understands."""
        if remote.swarm_id != self.swarm_id:
            return (
                f"peer {peer} is on swarm {remote.swarm_id!r}, this node on {self.swarm_id!r}: "
                "refused"
            )
        if remote.handshake != self.handshake:
            if self.explain is not None:
                return f"refused peer {peer}: {self.explain(self.handshake, remote.handshake)}"
            return f"peer {peer} is on another swarm genesis / protocol version: refused"
        return None


async def write_frame(stream: INetStream, data: bytes) -> None:
    await stream.write(encode_varint_prefixed(data))


async def read_frame(stream: INetStream, max_bytes: int) -> bytes:
    """One frame; raises libp2p's MessageTooLarge above ``max_bytes``."""
    return await read_varint_prefixed_bytes_limited(stream, max_bytes)


def encode_reply(ok: bool, payload: bytes) -> bytes:
    return bytes([REPLY_OK if ok else REPLY_ERROR]) + payload


def error_reply(message: str) -> bytes:
    return encode_reply(False, message.encode("utf-8", "replace")[:_MAX_ERROR_BYTES])


def decode_reply(frame: bytes) -> tuple[bool, bytes]:
    """``(ok, payload)``; raises ValueError for an empty or unknown frame."""
    if not frame or frame[0] not in (REPLY_OK, REPLY_ERROR):
        raise ValueError("malformed reply frame")
    return frame[0] == REPLY_OK, frame[1:]
