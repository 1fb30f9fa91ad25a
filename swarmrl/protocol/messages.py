"""The wire contract: every message a node sends or receives, with a bound on every field.

Messages are pydantic models. They travel inside a signed :class:`Envelope` (see ``codec.py``);
the envelope says which kind of message its payload is, so message models carry no kind tag of
their own except where a union needs one (tasks are either a procedural spec or free-form text).

Everything here is plain data: no torch, no I/O. Bounds are deliberately generous for honest
peers and small enough that one message can never cost a node much memory or time.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

PROTOCOL_VERSION = 1
"""Wire protocol version. A peer with another major version is refused at the handshake."""

SCHEMA_VERSION = 1
"""Version of the message schemas below; a decoder refuses envelopes with a newer one."""

# --- bounds (one place, so the codec, the guard and the docs agree) -----------------------------
MAX_COMPLETIONS = 64
MAX_COMPLETION_CHARS = 16_384
MAX_PROMPT_CHARS = 8_192
MAX_ANSWER_CHARS = 2_048
MAX_PARAMS = 32
MAX_PARAM_STR = 256
MAX_TOKENS = 8_192
MAX_TEACHER_SEQS = 64
MAX_ADDRS = 16
MAX_ROLES = 8

Name = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:/+-]+$")
]
ShortText = Annotated[str, StringConstraints(max_length=256)]
PeerIdStr = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[1-9A-HJ-NP-Za-km-z]+$")
]
Fingerprint = Annotated[str, StringConstraints(max_length=128)]


def _float_only(value: object) -> object:
    if not isinstance(value, float):
        raise ValueError("not a float")
    return value


ParamValue = (
    bool
    | Annotated[int, Field(ge=-(2**53), le=2**53)]
    # floats only: an int too big for the int branch is refused, not silently made a float
    | Annotated[float, BeforeValidator(_float_only), Field(allow_inf_nan=False)]
    | Annotated[str, StringConstraints(max_length=MAX_PARAM_STR)]
)
Role = Literal["solver", "creator", "teacher", "bootstrap"]


class _Message(BaseModel):
    """Base for wire messages: immutable, no unknown fields, strict where types matter."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskSpec(_Message):
    """A procedural task: any node regenerates the question and its answer key from these fields.

    A forged answer key cannot survive regeneration, which is why procedural tasks are preferred.
    """

    type: Literal["spec"] = "spec"
    family: Name = Field(description="Task family name, e.g. 'basic_arithmetic' or 'arith'.")
    family_version: Annotated[str, StringConstraints(max_length=32)] = Field(
        default="1", description="Version of the family's generator; nodes refuse unknown versions."
    )
    params: dict[Name, ParamValue] = Field(
        default_factory=dict, max_length=MAX_PARAMS, description="Generator configuration."
    )
    seed: int = Field(ge=0, le=2**63 - 1, description="Generator seed.")
    index: int = Field(ge=0, le=2**31, description="Item index within the seeded generator.")


class FreeFormTask(_Message):
    """A task written as text (e.g. by an LM creator), carrying its own reference answer.

    Unverified until the node's own solvers agree with the reference.
    """

    type: Literal["free"] = "free"
    prompt: Annotated[str, StringConstraints(min_length=1, max_length=MAX_PROMPT_CHARS)]
    reference_answer: Annotated[str, StringConstraints(max_length=MAX_ANSWER_CHARS)]
    verifier: Name = Field(default="exact", description="Name of the verifier that scores it.")
    creator: PeerIdStr | None = Field(default=None, description="Peer id of the creator.")
    created_round: int = Field(default=0, ge=0, le=2**31)


Task = Annotated[TaskSpec | FreeFormTask, Field(discriminator="type")]


class SamplerInfo(_Message):
    """How the sender produced its completions: facts the receiver may use, never trusts blindly."""

    model_id: ShortText = ""
    tokenizer_fingerprint: Fingerprint = ""
    policy_version: int = Field(default=0, ge=0, le=2**53)
    temperature: float = Field(default=1.0, ge=0.0, le=10.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(default=0, ge=0, le=MAX_TOKENS)


LogProb = Annotated[float, Field(le=0.0, ge=-1e4, allow_inf_nan=False)]
MAX_PER_TOKEN_LOGPROBS = 4_096
"""Per-token log-probs ride along only up to this many tokens per group (about 37 KB)."""


class SampledLogprobs(_Message):
    """The sender's own sampling log-probs of its completions (raw model, temperature 1), so a
    receiver can weigh text another policy sampled (truncated importance sampling). Claims like
    rewards: a receiver caps the weights they give at 1, so a forged value can only lower the
    weight of its own sample."""

    sums: list[Annotated[float, Field(le=0.0, ge=-1e7, allow_inf_nan=False)]] = Field(
        max_length=MAX_COMPLETIONS, description="Per completion: sum over its tokens."
    )
    counts: list[Annotated[int, Field(ge=0, le=MAX_TOKENS)]] = Field(
        max_length=MAX_COMPLETIONS, description="Per completion: tokens, in the sender's ids."
    )
    tokens: list[Annotated[list[LogProb], Field(max_length=MAX_TOKENS)]] | None = Field(
        default=None,
        max_length=MAX_COMPLETIONS,
        description="Per completion per token (for receivers with the same tokenizer); left "
        "out above MAX_PER_TOKEN_LOGPROBS tokens in the group.",
    )

    @model_validator(mode="after")
    def _lengths_agree(self) -> SampledLogprobs:
        if len(self.counts) != len(self.sums):
            raise ValueError("sums and counts differ in length")
        if self.tokens is not None and [len(t) for t in self.tokens] != self.counts:
            raise ValueError("tokens do not match counts")
        return self


class RolloutGroup(_Message):
    """One task and the G completions a node sampled for it, as decoded text."""

    task: Task
    completions: list[Annotated[str, StringConstraints(max_length=MAX_COMPLETION_CHARS)]] = Field(
        min_length=1, max_length=MAX_COMPLETIONS
    )
    sampler: SamplerInfo = Field(default_factory=SamplerInfo)
    claimed_rewards: (
        list[Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)]] | None
    ) = Field(default=None, max_length=MAX_COMPLETIONS, description="Advisory only: re-scored.")
    round: int = Field(default=0, ge=0, le=2**53, description="Sender's training step.")
    logprobs: SampledLogprobs | None = None

    @model_validator(mode="after")
    def _one_logprob_row_per_completion(self) -> RolloutGroup:
        if self.logprobs is not None and len(self.logprobs.sums) != len(self.completions):
            raise ValueError("logprobs: one row per completion")
        return self

    def content_id(self) -> str:
        """A stable id of the task and completions, used to deduplicate across the swarm."""
        return content_id(self.task, self.completions)


class TaskProposal(_Message):
    """A creator proposes a task for solvers to attempt."""

    task: Task
    creator_round: int = Field(default=0, ge=0, le=2**53)
    note: ShortText = ""


class HardwareSummary(_Message):
    device: Literal["cpu", "cuda", "mps", "other"] = "cpu"
    accelerator: ShortText = ""
    memory_gb: float = Field(default=0.0, ge=0.0, le=1e5)
    cpus: int = Field(default=0, ge=0, le=1_000_000)


class PeerCard(_Message):
    """What a peer says about itself, published periodically on the peers topic."""

    peer_id: PeerIdStr
    swarm_id: Annotated[str, StringConstraints(max_length=128)] = ""
    roles: list[Role] = Field(default_factory=lambda: ["solver"], max_length=MAX_ROLES)
    model_id: ShortText = ""
    tokenizer_fingerprint: Fingerprint = ""
    policy_version: int = Field(default=0, ge=0, le=2**53)
    hardware: HardwareSummary = Field(default_factory=HardwareSummary)
    listen_addrs: list[ShortText] = Field(default_factory=list, max_length=MAX_ADDRS)
    software_version: Annotated[str, StringConstraints(max_length=32)] = ""
    protocol_version: int = Field(default=PROTOCOL_VERSION, ge=0, le=2**16)


TokenIds = Annotated[list[Annotated[int, Field(ge=0, le=2**31)]], Field(max_length=MAX_TOKENS)]


class TeacherRequest(_Message):
    """A student asks a teacher for the log-prob of every sampled token."""

    request_id: int = Field(ge=0, le=2**63 - 1)
    tokenizer_fingerprint: Fingerprint
    prompt_ids: TokenIds
    completion_ids: list[TokenIds] = Field(min_length=1, max_length=MAX_TEACHER_SEQS)


class TeacherReply(_Message):
    """The teacher's per-token log-probs, or the reason it refused."""

    request_id: int = Field(ge=0, le=2**63 - 1)
    logprobs: list[
        Annotated[list[Annotated[float, Field(le=0.0, ge=-1e4, allow_inf_nan=False)]],
                  Field(max_length=MAX_TOKENS)]
    ] = Field(default_factory=list, max_length=MAX_TEACHER_SEQS)
    error: ShortText | None = None


MESSAGE_KINDS: dict[str, type[_Message]] = {
    "rollout_group": RolloutGroup,
    "task_proposal": TaskProposal,
    "peer_card": PeerCard,
    "teacher_request": TeacherRequest,
    "teacher_reply": TeacherReply,
}
"""Envelope ``kind`` -> payload model. The only kinds a decoder accepts."""

KIND_OF: dict[type[_Message], str] = {cls: kind for kind, cls in MESSAGE_KINDS.items()}

Message = RolloutGroup | TaskProposal | PeerCard | TeacherRequest | TeacherReply


def _canonical(obj: object) -> bytes:
    # Sorted keys so that two nodes building the same params in another order agree.
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def task_key(task: TaskSpec | FreeFormTask) -> str:
    """A stable short id for a task (same task, same key on every node)."""
    return hashlib.blake2b(_canonical(task.model_dump(mode="json")), digest_size=12).hexdigest()


def content_id(task: TaskSpec | FreeFormTask, completions: list[str]) -> str:
    """A stable id of a task and its completions, used to deduplicate rollout groups."""
    data = _canonical([task.model_dump(mode="json"), list(completions)])
    return hashlib.blake2b(data, digest_size=16).hexdigest()
