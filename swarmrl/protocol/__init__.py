"""The wire contract: messages, signed envelopes and their codec, identities, replay protection.
The transports that carry these bytes between nodes are swarmrl.net. No torch here (see
docs/architecture.md)."""

from swarmrl.protocol.codec import (
    DEFAULT_MAX_SIZE,
    Envelope,
    decode,
    decode_message,
    encode,
    encode_message,
    seal,
)
from swarmrl.protocol.errors import IdentityError, ProtocolError
from swarmrl.protocol.identity import Identity, public_key_from_peer_id, verify
from swarmrl.protocol.messages import (
    MESSAGE_KINDS,
    PROTOCOL_VERSION,
    SCHEMA_VERSION,
    FreeFormTask,
    HardwareSummary,
    Message,
    PeerCard,
    RolloutGroup,
    SamplerInfo,
    Task,
    TaskProposal,
    TaskSpec,
    TeacherReply,
    TeacherRequest,
    content_id,
    task_key,
)
from swarmrl.protocol.replay import ReplayGuard, SeqCounter

__all__ = [
    "DEFAULT_MAX_SIZE",
    "MESSAGE_KINDS",
    "PROTOCOL_VERSION",
    "SCHEMA_VERSION",
    "Envelope",
    "FreeFormTask",
    "HardwareSummary",
    "Identity",
    "IdentityError",
    "Message",
    "PeerCard",
    "ProtocolError",
    "ReplayGuard",
    "RolloutGroup",
    "SamplerInfo",
    "SeqCounter",
    "Task",
    "TaskProposal",
    "TaskSpec",
    "TeacherReply",
    "TeacherRequest",
    "content_id",
    "decode",
    "decode_message",
    "encode",
    "encode_message",
    "public_key_from_peer_id",
    "seal",
    "task_key",
    "verify",
]
