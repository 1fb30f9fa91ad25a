"""Signed envelopes and their msgpack wire encoding, with hard limits.

Wire format: a msgpack array of 7 items

    [kind: str, schema_version: int, sender: str, timestamp: float64, seq: uint,
     payload: bin, signature: bin(64)]

``payload`` is the canonical msgpack of ``message.model_dump(mode="python")`` (maps with sorted
keys at every level). The signature is ed25519 over ``_DOMAIN + msgpack([the first six items])``;
the domain tag keeps these signatures from ever being valid for anything else signed by the
same key (e.g. libp2p's own records).

Both layers must be canonical: :func:`decode` re-encodes what it parsed and refuses any input
that is not byte-for-byte what :func:`encode` would produce. So an envelope has exactly one
encoding (no malleability, no dedupe confusion, ``encode(decode(b)) == b``) and any change to any
bit is rejected, either by the canonical check or by the signature.

:func:`decode` raises only :class:`ProtocolError`, whatever the bytes, in bounded time and memory:
the size is checked before parsing, msgpack runs with per-container limits, ext types are refused,
and the signature is checked before the payload is parsed at all.
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any, Literal, get_args

import msgpack
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from swarmrl.protocol.errors import ProtocolError
from swarmrl.protocol.identity import SIGNATURE_LEN, Identity, public_key_from_peer_id
from swarmrl.protocol.messages import (
    KIND_OF,
    MESSAGE_KINDS,
    SCHEMA_VERSION,
    Message,
    PeerIdStr,
)

DEFAULT_MAX_SIZE = 1024 * 1024 - 16 * 1024
"""Largest encoded envelope: gossipsub refuses RPCs over 1 MiB, and the RPC framing (topic, from,
seqno, libp2p signature and key) needs a little room around our bytes."""

MAX_SEQ = 2**64 - 1
_DOMAIN = b"swarmrl/envelope/v1\x00"
_ENVELOPE_ITEMS = 7
_MAX_KIND_LEN = 64
_MAX_PEER_ID_LEN = 128
_MAX_ERROR_CHARS = 300

# Limits for the payload tree. Generous for honest messages (the biggest honest array is a list of
# MAX_TOKENS ints, the biggest string MAX_COMPLETION_CHARS chars = 4 bytes each in UTF-8), tight
# enough that a hostile header cannot make msgpack allocate much before it fails.
_PAYLOAD_MAX_STR = 64 * 1024
_PAYLOAD_MAX_ARRAY = 16 * 1024
_PAYLOAD_MAX_MAP = 64

Kind = Literal["rollout_group", "task_proposal", "peer_card", "teacher_request", "teacher_reply"]
if set(get_args(Kind)) != set(MESSAGE_KINDS):  # pragma: no cover - caught by any test run
    raise ImportError("codec.Kind is out of sync with messages.MESSAGE_KINDS")


class Envelope(BaseModel):
    """A signed message as it travels: who sent it, when, in what order, and the typed payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    schema_version: int = Field(ge=1, le=SCHEMA_VERSION)
    sender: PeerIdStr
    timestamp: float = Field(allow_inf_nan=False)
    seq: int = Field(ge=0, le=MAX_SEQ)
    payload: Message
    signature: Annotated[bytes, Field(min_length=SIGNATURE_LEN, max_length=SIGNATURE_LEN)]

    @model_validator(mode="after")
    def _payload_matches_kind(self) -> Envelope:
        if type(self.payload) is not MESSAGE_KINDS[self.kind]:
            raise ValueError(f"payload is {type(self.payload).__name__}, kind says {self.kind}")
        return self

    def signing_bytes(self) -> bytes:
        """The exact bytes the sender signed."""
        return _signing_bytes(
            self.kind, self.schema_version, self.sender, self.timestamp, self.seq,
            payload_bytes(self.payload),
        )


# --- canonical payload bytes -------------------------------------------------------------------


def _canonical(obj: Any) -> Any:
    # Sorted map keys at every level: two nodes holding equal models produce equal bytes.
    if isinstance(obj, dict):
        return {k: _canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    return obj


def _pack(obj: Any) -> bytes:
    try:
        return msgpack.packb(obj, use_bin_type=True, use_single_float=False, datetime=False)
    except (TypeError, ValueError, OverflowError) as exc:  # e.g. lone surrogates in a str
        raise ProtocolError(f"cannot encode: {exc}") from exc


def payload_bytes(message: BaseModel) -> bytes:
    """Canonical msgpack bytes of a message (what the envelope signs and carries)."""
    return _pack(_canonical(message.model_dump(mode="python")))


def _signing_bytes(
    kind: str, version: int, sender: str, timestamp: float, seq: int, payload: bytes
) -> bytes:
    return _DOMAIN + _pack([kind, version, sender, timestamp, seq, payload])


# --- sealing and encoding ----------------------------------------------------------------------


def kind_of(message: BaseModel) -> str:
    try:
        return KIND_OF[type(message)]
    except KeyError:
        raise ProtocolError(f"not a wire message: {type(message).__name__}") from None


def seal(
    message: BaseModel,
    identity: Identity,
    seq: int,
    timestamp: float | None = None,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
) -> Envelope:
    """Sign ``message`` as ``identity``; refuse (ProtocolError) if it would not fit ``max_size``."""
    kind = kind_of(message)
    ts = time.time() if timestamp is None else float(timestamp)
    if not math.isfinite(ts):
        raise ProtocolError("timestamp must be finite")
    if not 0 <= seq <= MAX_SEQ:
        raise ProtocolError(f"seq out of range: {seq}")
    body = payload_bytes(message)
    signature = identity.sign(
        _signing_bytes(kind, SCHEMA_VERSION, identity.peer_id, ts, seq, body)
    )
    envelope = Envelope.model_construct(
        kind=kind, schema_version=SCHEMA_VERSION, sender=identity.peer_id, timestamp=ts,
        seq=seq, payload=message, signature=signature,
    )
    size = len(_encode_parts(envelope, body))
    if size > max_size:
        raise ProtocolError(f"envelope too large: {size} > {max_size} bytes")
    return envelope


def _encode_parts(envelope: Envelope, body: bytes) -> bytes:
    e = envelope
    return _pack([e.kind, e.schema_version, e.sender, e.timestamp, e.seq, body, e.signature])


def encode(envelope: Envelope) -> bytes:
    """The wire bytes of an envelope (canonical: exactly what was signed, plus the signature)."""
    return _encode_parts(envelope, payload_bytes(envelope.payload))


# --- decoding ----------------------------------------------------------------------------------


def _no_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack ext type {code} not allowed")


def _unpack(data: bytes, *, max_str: int, max_bin: int, max_array: int, max_map: int) -> Any:
    try:
        return msgpack.unpackb(
            data, raw=False, use_list=True, strict_map_key=True, timestamp=0,
            max_str_len=max_str, max_bin_len=max_bin, max_array_len=max_array,
            max_map_len=max_map, max_ext_len=0, ext_hook=_no_ext,
        )
    except Exception as exc:  # C unpacker errors: ValueError family, StackError, UnicodeError
        raise ProtocolError(f"bad msgpack: {_brief(exc)}") from exc


def _brief(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:_MAX_ERROR_CHARS]


def _check_outer(parts: Any) -> tuple[str, int, str, float, int, bytes, bytes]:
    if not isinstance(parts, list) or len(parts) != _ENVELOPE_ITEMS:
        raise ProtocolError("envelope: not an array of 7 items")
    kind, version, sender, ts, seq, body, sig = parts
    if not isinstance(kind, str) or kind not in MESSAGE_KINDS:
        raise ProtocolError(f"envelope: unknown kind {str(kind)[:_MAX_KIND_LEN]!r}")
    # bool is an int subclass but msgpack never produces it for an int; refuse it all the same.
    if type(version) is not int or version < 1:
        raise ProtocolError("envelope: bad schema_version")
    if version > SCHEMA_VERSION:
        raise ProtocolError(f"envelope: schema_version {version} is newer than {SCHEMA_VERSION}")
    if not isinstance(sender, str):
        raise ProtocolError("envelope: sender is not a string")
    if type(ts) is not float or not math.isfinite(ts):
        raise ProtocolError("envelope: timestamp is not a finite float")
    if type(seq) is not int or seq < 0:
        raise ProtocolError("envelope: bad seq")
    if not isinstance(body, bytes):
        raise ProtocolError("envelope: payload is not bytes")
    if not isinstance(sig, bytes) or len(sig) != SIGNATURE_LEN:
        raise ProtocolError("envelope: signature is not 64 bytes")
    return kind, version, sender, ts, seq, body, sig


def _validation_summary(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0] if errors else {"loc": (), "msg": "invalid"}
    loc = ".".join(str(p) for p in first["loc"])[:120]
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{loc}: {first['msg']}{more}"[:_MAX_ERROR_CHARS]


def _decode_payload(kind: str, body: bytes) -> BaseModel:
    tree = _unpack(
        body, max_str=_PAYLOAD_MAX_STR, max_bin=0, max_array=_PAYLOAD_MAX_ARRAY,
        max_map=_PAYLOAD_MAX_MAP,
    )
    if not isinstance(tree, dict):
        raise ProtocolError(f"{kind}: payload is not a map")
    try:
        message = MESSAGE_KINDS[kind].model_validate(tree)
    except ValidationError as exc:
        raise ProtocolError(f"{kind}: invalid payload: {_validation_summary(exc)}") from None
    except (ValueError, TypeError, RecursionError) as exc:  # pragma: no cover - belt and braces
        raise ProtocolError(f"{kind}: invalid payload: {_brief(exc)}") from None
    if payload_bytes(message) != body:
        # Validation coerced something (an int for a float, unsorted keys, a missing default):
        # refuse, so that each message has one encoding and re-encoding keeps the signature valid.
        raise ProtocolError(f"{kind}: non-canonical payload encoding")
    return message


def decode(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> Envelope:
    """Parse, authenticate and validate wire bytes. Raises only ProtocolError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_size:
        raise ProtocolError(f"envelope too large: {len(data)} > {max_size} bytes")
    parts = _unpack(
        data, max_str=max(_MAX_KIND_LEN, _MAX_PEER_ID_LEN), max_bin=max_size,
        max_array=_ENVELOPE_ITEMS, max_map=0,
    )
    kind, version, sender, ts, seq, body, sig = _check_outer(parts)
    if seq > MAX_SEQ:  # pragma: no cover - msgpack cannot carry a larger uint
        raise ProtocolError("envelope: seq out of range")
    if _pack(parts) != data:
        raise ProtocolError("envelope: non-canonical encoding")
    key = public_key_from_peer_id(sender)  # ProtocolError unless an inline ed25519 id
    try:
        key.verify(sig, _signing_bytes(kind, version, sender, ts, seq, body))
    except Exception:  # InvalidSignature
        raise ProtocolError("envelope: bad signature") from None
    message = _decode_payload(kind, body)
    return Envelope.model_construct(
        kind=kind, schema_version=version, sender=sender, timestamp=ts, seq=seq,
        payload=message, signature=sig,
    )


# --- unsigned messages (local storage, request bodies already inside an authenticated stream) ---


def encode_message(message: BaseModel) -> bytes:
    """Canonical, unsigned bytes of a message: msgpack [kind, schema_version, payload]."""
    return _pack([kind_of(message), SCHEMA_VERSION, payload_bytes(message)])


def decode_message(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> BaseModel:
    """Inverse of :func:`encode_message`, with the same limits and checks. Raises ProtocolError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_size:
        raise ProtocolError(f"message too large: {len(data)} > {max_size} bytes")
    parts = _unpack(data, max_str=_MAX_KIND_LEN, max_bin=max_size, max_array=3, max_map=0)
    if not isinstance(parts, list) or len(parts) != 3:
        raise ProtocolError("message: not an array of 3 items")
    kind, version, body = parts
    if not isinstance(kind, str) or kind not in MESSAGE_KINDS:
        raise ProtocolError(f"message: unknown kind {str(kind)[:_MAX_KIND_LEN]!r}")
    if type(version) is not int or not 1 <= version <= SCHEMA_VERSION:
        raise ProtocolError("message: unsupported schema_version")
    if not isinstance(body, bytes):
        raise ProtocolError("message: payload is not bytes")
    if _pack(parts) != data:
        raise ProtocolError("message: non-canonical encoding")
    return _decode_payload(kind, body)
