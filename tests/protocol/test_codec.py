"""Envelopes: round trips of every kind, tampering, limits, canonical encoding."""

from __future__ import annotations

import math

import msgpack
import pytest
from _protocol_strategies import STRATEGIES, messages
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from swarmrl.protocol import (
    DEFAULT_MAX_SIZE,
    MESSAGE_KINDS,
    Envelope,
    Identity,
    PeerCard,
    ProtocolError,
    RolloutGroup,
    TaskProposal,
    TaskSpec,
    TeacherReply,
    codec,
    decode,
    decode_message,
    encode,
    encode_message,
    seal,
)
from swarmrl.protocol.messages import MAX_COMPLETION_CHARS, SCHEMA_VERSION

KEY = Identity.from_private_bytes(b"k" * 32)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _small() -> TaskProposal:
    return TaskProposal(task=TaskSpec(family="arith", params={"digits": 2}, seed=1, index=0))


def _signed_parts(
    kind: str, body: bytes, *, version: int = SCHEMA_VERSION, ident: Identity = KEY,
    ts: float = 1000.0, seq: int = 1,
) -> bytes:
    """Hand-build a correctly signed envelope around arbitrary payload bytes."""
    sig = ident.sign(codec._signing_bytes(kind, version, ident.peer_id, ts, seq, body))
    return msgpack.packb([kind, version, ident.peer_id, ts, seq, body, sig], use_bin_type=True)


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(MESSAGE_KINDS))
def test_every_kind_round_trips(kind: str) -> None:
    @given(STRATEGIES[kind], st.integers(0, 2**64 - 1), st.floats(0, 2e9))
    @SETTINGS
    def check(message: BaseModel, seq: int, ts: float) -> None:
        envelope = seal(message, KEY, seq, timestamp=ts)
        data = encode(envelope)
        back = decode(data)
        assert back == envelope
        assert back.kind == kind and back.payload == message
        assert type(back.payload) is type(message)
        assert encode(back) == data  # canonical: one encoding per envelope
        assert decode_message(encode_message(message)) == message

    check()


@given(messages)
@SETTINGS
def test_encoding_is_deterministic(message: BaseModel) -> None:
    a = seal(message, KEY, 7, timestamp=1.5)
    b = seal(message, KEY, 7, timestamp=1.5)
    assert encode(a) == encode(b)


def test_param_order_does_not_change_the_bytes() -> None:
    one = TaskSpec(family="f", params={"a": 1, "b": 2}, seed=0, index=0)
    two = TaskSpec(family="f", params={"b": 2, "a": 1}, seed=0, index=0)
    assert codec.payload_bytes(one) == codec.payload_bytes(two)


def test_seal_defaults_timestamp_to_now() -> None:
    envelope = seal(_small(), KEY, 0)
    assert envelope.sender == KEY.peer_id and envelope.schema_version == SCHEMA_VERSION
    assert abs(envelope.timestamp - __import__("time").time()) < 60
    assert envelope.signing_bytes().startswith(b"swarmrl/envelope/v1\x00")


def test_large_rollout_group_round_trips() -> None:
    group = RolloutGroup(
        task=TaskSpec(family="arith", seed=1, index=2),
        completions=["é" * MAX_COMPLETION_CHARS] * 20,  # 2-byte chars: ~650 KB
    )
    data = encode(seal(group, KEY, 1))
    assert 600_000 < len(data) <= DEFAULT_MAX_SIZE
    assert decode(data).payload == group


# --- seal refuses what it cannot send ------------------------------------------------------


def test_seal_refuses_oversized_envelopes() -> None:
    group = RolloutGroup(
        task=TaskSpec(family="arith", seed=1, index=2),
        completions=["\U0001f600" * MAX_COMPLETION_CHARS] * 64,  # 4 MiB
    )
    with pytest.raises(ProtocolError, match="too large"):
        seal(group, KEY, 1)
    with pytest.raises(ProtocolError, match="too large"):
        seal(_small(), KEY, 1, max_size=100)


def test_seal_refuses_bad_arguments() -> None:
    with pytest.raises(ProtocolError, match="finite"):
        seal(_small(), KEY, 1, timestamp=math.nan)
    with pytest.raises(ProtocolError, match="seq"):
        seal(_small(), KEY, -1)
    with pytest.raises(ProtocolError, match="seq"):
        seal(_small(), KEY, 2**64)
    with pytest.raises(ProtocolError, match="not a wire message"):
        seal(TaskSpec(family="f", seed=0, index=0), KEY, 1)
    lone_surrogate = TaskProposal.model_construct(
        task=_small().task, creator_round=0, note="\ud800"
    )
    with pytest.raises(ProtocolError, match="cannot encode"):
        seal(lone_surrogate, KEY, 1)


def test_envelope_model_checks_kind_against_payload() -> None:
    good = seal(_small(), KEY, 1, timestamp=5.0)
    fields = good.model_dump()
    fields["payload"] = good.payload
    assert Envelope(**fields) == good
    with pytest.raises(ValidationError):
        Envelope(**{**fields, "kind": "peer_card"})
    with pytest.raises(ValidationError):
        Envelope(**{**fields, "signature": b"short"})


# --- tampering ------------------------------------------------------------------------------


def test_every_single_bit_flip_is_rejected() -> None:
    data = encode(seal(_small(), KEY, 3, timestamp=1234.5))
    assert len(data) < 400
    for i in range(len(data)):
        for bit in range(8):
            mutated = bytearray(data)
            mutated[i] ^= 1 << bit
            with pytest.raises(ProtocolError):
                decode(bytes(mutated))


_BIG = encode(seal(
    RolloutGroup(task=TaskSpec(family="arith", seed=1, index=2),
                 completions=[f"completion {i} " * 300 for i in range(40)],
                 claimed_rewards=[0.5] * 40),
    KEY, 9, timestamp=99.0,
))


@given(st.integers(0, len(_BIG) * 8 - 1))
@settings(max_examples=100, deadline=None)
def test_bit_flips_in_a_large_envelope_are_rejected(position: int) -> None:
    mutated = bytearray(_BIG)
    mutated[position // 8] ^= 1 << (position % 8)
    with pytest.raises(ProtocolError):
        decode(bytes(mutated))


def test_forged_sender_is_rejected(other_identity: Identity) -> None:
    parts = msgpack.unpackb(encode(seal(_small(), KEY, 1, timestamp=1.0)))
    parts[2] = other_identity.peer_id
    with pytest.raises(ProtocolError, match="bad signature"):
        decode(msgpack.packb(parts, use_bin_type=True))


def test_non_ed25519_sender_is_rejected() -> None:
    parts = msgpack.unpackb(encode(seal(_small(), KEY, 1, timestamp=1.0)))
    parts[2] = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"
    with pytest.raises(ProtocolError, match="peer id"):
        decode(msgpack.packb(parts, use_bin_type=True))


# --- structural rejections, each with a message saying what was wrong ------------------------


def _parts() -> list[object]:
    return msgpack.unpackb(encode(seal(_small(), KEY, 1, timestamp=1.0)))


@pytest.mark.parametrize(
    ("index", "value", "match"),
    [
        (0, "no_such_kind", "unknown kind"),
        (0, 7, "unknown kind"),
        (1, SCHEMA_VERSION + 1, "newer"),
        (1, 0, "schema_version"),
        (1, "1", "schema_version"),
        (2, 5, "sender"),
        (3, 1, "timestamp"),
        (3, math.inf, "timestamp"),
        (4, -1, "seq"),
        (4, 1.0, "seq"),
        (5, "text", "payload"),
        (6, b"x" * 63, "signature"),
    ],
)
def test_bad_envelope_fields(index: int, value: object, match: str) -> None:
    parts = _parts()
    parts[index] = value
    with pytest.raises(ProtocolError, match=match):
        decode(msgpack.packb(parts, use_bin_type=True))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "msgpack"),
        (b"\xc1", "msgpack"),
        (msgpack.packb({"a": 1}), "msgpack"),  # maps are refused by the limits
        (msgpack.packb([1, 2, 3]), "7 items"),
        (msgpack.packb(5), "7 items"),
        (b"\xdd\xff\xff\xff\xff", "max_array_len"),
        (b"\xd6\xff\x00\x00\x00\x00", "msgpack"),  # msgpack timestamp ext
        (b"\xc7\x00\x05", "msgpack"),  # zero-length ext
        (b"\x91" * 5000, "msgpack"),
    ],
)
def test_malformed_outer_layer(data: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode(data)


def test_decode_rejects_non_bytes_and_oversize() -> None:
    for bad in (None, "text", 5, [b"x"]):
        with pytest.raises(ProtocolError, match="expected bytes"):
            decode(bad)  # type: ignore[arg-type]
        with pytest.raises(ProtocolError, match="expected bytes"):
            decode_message(bad)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="too large"):
        decode(b"\0" * (DEFAULT_MAX_SIZE + 1))
    with pytest.raises(ProtocolError, match="too large"):
        decode_message(b"\0" * (DEFAULT_MAX_SIZE + 1))
    data = encode(seal(_small(), KEY, 1))
    assert decode(bytearray(data)) == decode(memoryview(data))
    with pytest.raises(ProtocolError, match="too large"):
        decode(data, max_size=len(data) - 1)


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(ProtocolError, match="msgpack"):
        decode(encode(seal(_small(), KEY, 1)) + b"\x00")


def test_non_canonical_outer_encoding_is_rejected() -> None:
    parts = _parts()
    packed = msgpack.packb(parts, use_bin_type=True)
    # The same seq as a uint64 instead of a fixint: same values, other bytes.
    longer = packed.replace(b"\x01\xc4", b"\xcf" + (1).to_bytes(8, "big") + b"\xc4", 1)
    assert longer != packed and msgpack.unpackb(longer) == parts
    with pytest.raises(ProtocolError, match="non-canonical"):
        decode(longer)


# --- payload layer (correctly signed, so only the payload checks can catch these) ------------


def _payload(**overrides: object) -> dict[str, object]:
    tree = codec._canonical(_small().model_dump())
    tree.update(overrides)
    return tree


@pytest.mark.parametrize(
    ("kind", "body", "match"),
    [
        ("task_proposal", msgpack.packb([1, 2]), "not a map"),
        ("task_proposal", b"\xc1", "msgpack"),
        ("task_proposal", msgpack.packb({"x": 1}), "invalid payload"),
        ("task_proposal", msgpack.packb(_payload(note="n" * 300)), "note"),
        ("task_proposal", msgpack.packb(_payload(extra=1)), "extra"),
        ("task_proposal", msgpack.packb(_payload(creator_round=1.0)), "non-canonical"),
        ("peer_card", msgpack.packb(_payload()), "invalid payload"),
        ("task_proposal", msgpack.packb(dict(reversed(_payload().items()))), "non-canonical"),
        ("task_proposal", msgpack.packb({"task": [[[[[[[]]]]]]]}), "invalid payload"),
        ("task_proposal", b"\x81\xa4task" + b"\x91" * 2000, "msgpack"),
        ("task_proposal", msgpack.packb({"note": b"bytes"}, use_bin_type=True), "msgpack"),
        ("task_proposal", msgpack.packb({"note": "x" * 70_000}), "max_str_len"),
        ("task_proposal", msgpack.packb({"task": list(range(20_000))}), "max_array_len"),
        ("task_proposal", msgpack.packb({str(i): i for i in range(100)}), "max_map_len"),
        ("task_proposal", msgpack.packb({1: 1}), "msgpack"),
    ],
)
def test_bad_signed_payloads(kind: str, body: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode(_signed_parts(kind, body))


def test_signed_envelope_with_good_payload_is_accepted() -> None:
    envelope = decode(_signed_parts("task_proposal", codec.payload_bytes(_small())))
    assert envelope.payload == _small()


def test_newer_schema_version_is_refused_even_if_signed() -> None:
    body = codec.payload_bytes(_small())
    with pytest.raises(ProtocolError, match="newer"):
        decode(_signed_parts("task_proposal", body, version=SCHEMA_VERSION + 1))


def test_validation_errors_are_summarized() -> None:
    body = msgpack.packb({"request_id": -1, "logprobs": [[1.0, 2.0]], "error": 5})
    with pytest.raises(ProtocolError) as info:
        decode(_signed_parts("teacher_reply", body))
    message = str(info.value)
    assert "more" in message and len(message) < 400


# --- unsigned messages ----------------------------------------------------------------------


def test_decode_message_rejections() -> None:
    good = encode_message(TeacherReply(request_id=1))
    assert decode_message(good) == TeacherReply(request_id=1)
    for data, match in [
        (msgpack.packb([1, 2]), "3 items"),
        (msgpack.packb(["nope", 1, b""]), "unknown kind"),
        (msgpack.packb(["peer_card", 99, b""]), "schema_version"),
        (msgpack.packb(["peer_card", 1, "str"]), "payload is not bytes"),
        (good[:-1], "msgpack"),
    ]:
        with pytest.raises(ProtocolError, match=match):
            decode_message(data)
    parts = msgpack.unpackb(good)
    longer = b"\x93" + msgpack.packb(parts[0]) + b"\xcc\x01" + msgpack.packb(parts[2])
    assert msgpack.unpackb(longer) == parts
    with pytest.raises(ProtocolError, match="non-canonical"):
        decode_message(longer)


def test_peer_card_for_a_real_identity(identity: Identity) -> None:
    card = PeerCard(peer_id=identity.peer_id, roles=["solver", "teacher"])
    assert decode(encode(seal(card, identity, 1))).payload == card


def test_big_int_params_are_refused_not_made_floats() -> None:
    # An int beyond 2**53 used to validate as a float and silently change value.
    with pytest.raises(ValidationError):
        TaskSpec(family="f", params={"n": 2**60}, seed=0, index=0)
    spec = TaskSpec(family="f", params={"n": 2**53, "x": 2.0, "b": True}, seed=0, index=0)
    assert spec.params == {"n": 2**53, "x": 2.0, "b": True}
    assert [type(v) for v in spec.params.values()] == [int, float, bool]


def test_sampled_logprobs_must_line_up_with_the_completions() -> None:
    """A group's log-probs are one row per completion, counts matching per-token rows, never
    a probability above 1: anything else is refused like any malformed field."""
    from pydantic import ValidationError

    from swarmrl.protocol.messages import RolloutGroup, SampledLogprobs, TaskSpec

    task = TaskSpec(family="arith", family_version="1", params={}, seed=1, index=0)
    good = SampledLogprobs(sums=[-1.5, -0.5], counts=[2, 1], tokens=[[-1.0, -0.5], [-0.5]])
    RolloutGroup(task=task, completions=["a", "b"], logprobs=good)
    with pytest.raises(ValidationError, match="one row per completion"):
        RolloutGroup(task=task, completions=["a"], logprobs=good)
    with pytest.raises(ValidationError, match="tokens do not match counts"):
        SampledLogprobs(sums=[-1.5], counts=[3], tokens=[[-1.0, -0.5]])
    with pytest.raises(ValidationError, match="differ in length"):
        SampledLogprobs(sums=[-1.5, -1.0], counts=[2])
    with pytest.raises(ValidationError):
        SampledLogprobs(sums=[0.5], counts=[1])  # log p > 0: not a probability
