"""Fuzz: over 100,000 hostile inputs to decode; only ProtocolError may escape, nothing may hang.

Plain seeded ``random`` rather than hypothesis: a hundred thousand cases need to be cheap to make.
Correctly *signed* garbage payloads are included so the payload parser and validator are fuzzed
too, not just the signature check that stops most mutations.
"""

from __future__ import annotations

import contextlib
import random
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest

from swarmrl.protocol import (
    FreeFormTask,
    Identity,
    PeerCard,
    ProtocolError,
    RolloutGroup,
    TaskProposal,
    TaskSpec,
    TeacherReply,
    TeacherRequest,
    codec,
    decode,
    decode_message,
    encode,
    encode_message,
    seal,
)

KEY = Identity.from_private_bytes(b"f" * 32)
KINDS = ["rollout_group", "task_proposal", "peer_card", "teacher_request", "teacher_reply"]


def _corpus() -> list[bytes]:
    spec = TaskSpec(family="arith", params={"digits": 3, "ops": "+-", "neg": True}, seed=5, index=9)
    free = FreeFormTask(prompt="What is 2+2?", reference_answer="4", creator=KEY.peer_id)
    messages = [
        TaskProposal(task=spec, note="try this"),
        TaskProposal(task=free),
        RolloutGroup(task=spec, completions=["<answer>12</answer>", "13"], claimed_rewards=[1, 0]),
        RolloutGroup(task=free, completions=["x" * 3000, "y" * 500]),
        PeerCard(peer_id=KEY.peer_id, roles=["solver", "creator"], listen_addrs=["/ip4/1.2.3.4"]),
        TeacherRequest(request_id=3, tokenizer_fingerprint="t", prompt_ids=[1, 2],
                       completion_ids=[[3, 4, 5], [6]]),
        TeacherReply(request_id=3, logprobs=[[-0.5, -1.25], [-3.0]]),
        TeacherReply(request_id=4, error="busy"),
    ]
    return [encode(seal(m, KEY, i, timestamp=1e9 + i)) for i, m in enumerate(messages)]


CORPUS = _corpus()
HUGE_HEADERS = [
    b"\xdb\xff\xff\xff\xff",  # str32
    b"\xc6\xff\xff\xff\xff",  # bin32
    b"\xdd\xff\xff\xff\xff",  # array32
    b"\xdf\xff\xff\xff\xff",  # map32
    b"\xc9\xff\xff\xff\xff\x01",  # ext32
    b"\xda\xff\xff",  # str16
    b"\xc5\xff\xff",  # bin16
    b"\xdc\xff\xff",  # array16
    b"\xde\xff\xff",  # map16
]


def _random_obj(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(12 if depth < 4 else 9)
    if choice == 0:
        return None
    if choice == 1:
        return rng.random() < 0.5
    if choice == 2:
        return rng.choice([0, 1, -1, 2**63 - 1, -(2**63), 2**64 - 1, 2**53 + 1, rng.getrandbits(4)])
    if choice == 3:
        return rng.choice([0.0, -0.0, 1.5, float("nan"), float("inf"), 1e308, rng.random()])
    if choice == 4:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(8)))
    if choice == 5:
        return rng.randbytes(rng.randrange(70))
    if choice == 6:
        return rng.choice(KINDS + ["type", "task", "spec", "free", "completions", "family"])
    if choice == 7:
        return KEY.peer_id
    if choice == 8:
        return rng.choice(["", "x" * 300, "\U0001f600"])
    if choice == 9:
        return [_random_obj(rng, depth + 1) for _ in range(rng.randrange(8))]
    if choice == 10:
        return {str(_random_obj(rng, 3))[:20]: _random_obj(rng, depth + 1) for _ in range(4)}
    return {"type": rng.choice(["spec", "free", "x"]), "family": "arith", "seed": rng.randrange(9),
            "index": 0, "params": {}, "task": _random_obj(rng, depth + 1)}


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _flip(rng: random.Random, data: bytes, flips: int) -> bytes:
    out = bytearray(data)
    for _ in range(flips):
        pos = rng.randrange(len(out) * 8)
        out[pos // 8] ^= 1 << (pos % 8)
    return bytes(out)


def _edit(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    pos = rng.randrange(len(out) + 1)
    op = rng.randrange(4)
    if op == 0:
        out[pos:pos] = rng.randbytes(rng.randrange(1, 9))
    elif op == 1:
        del out[pos : pos + rng.randrange(1, 9)]
    elif op == 2 and pos < len(out):
        out[pos] = rng.choice([0x00, 0xFF, 0xC1, 0xC0, 0xDD, 0xDB, 0xC6, 0xD9, 0x7F, 0x80])
    else:
        out[pos:pos] = rng.choice(HUGE_HEADERS)
    return bytes(out)


def _signed(kind: str, body: bytes, seq: int = 1) -> bytes:
    """A correctly signed envelope around arbitrary payload bytes: reaches the payload parser."""
    sig = KEY.sign(codec._signing_bytes(kind, 1, KEY.peer_id, 1.0, seq, body))
    return _pack([kind, 1, KEY.peer_id, 1.0, seq, body, sig])


def _deep(rng: random.Random) -> bytes:
    depth = rng.choice([10, 500, 1023, 1024, 1025, 5000, 100_000])
    opener = rng.choice([b"\x91", b"\x81\xa1a", b"\x92\xc0", b"\xdc\x00\x01"])
    nested = opener * depth + b"\xc0"
    if rng.random() < 0.5:
        return nested
    return _signed(rng.choice(KINDS), b"\x81\xa4task" + nested)


def _outer_shapes(rng: random.Random) -> bytes:
    parts = msgpack.unpackb(rng.choice(CORPUS))
    for _ in range(rng.randrange(1, 3)):
        parts[rng.randrange(len(parts))] = _random_obj(rng)
    if rng.random() < 0.2:
        parts = parts[: rng.randrange(len(parts))] if rng.random() < 0.5 else parts + [None]
    return _pack(parts)


def _huge(rng: random.Random) -> bytes:
    header = rng.choice(HUGE_HEADERS) + rng.randbytes(rng.randrange(16))
    where = rng.randrange(3)
    if where == 0:
        return header
    if where == 1:
        base = rng.choice(CORPUS)
        pos = rng.randrange(len(base))
        return base[:pos] + header + base[pos:]
    return _signed(rng.choice(KINDS), b"\x81\xa4task" + header)


def _splice(rng: random.Random) -> bytes:
    a, b = rng.choice(CORPUS), rng.choice(CORPUS)
    return a[: rng.randrange(len(a) + 1)] + b[rng.randrange(len(b) + 1) :]


def _signed_garbage(rng: random.Random) -> bytes:
    kind = rng.choice(KINDS)
    if rng.random() < 0.5:
        return _signed(kind, _pack(_random_obj(rng)))
    # A real payload, mutated, then properly signed: near-valid input for the validator.
    body = msgpack.unpackb(rng.choice(CORPUS))[5]
    body = _flip(rng, body, 1) if rng.random() < 0.5 else _edit(rng, body)
    return _signed(kind, body)


# (name, count, generator)
CASES: list[tuple[str, int, Callable[[random.Random], bytes]]] = [
    ("random_short", 30_000, lambda r: r.randbytes(r.randrange(65))),
    ("random_long", 4_000, lambda r: r.randbytes(r.randrange(64, 2049))),
    ("random_msgpack_prefix", 6_000, lambda r: bytes([r.choice([0x97, 0xDC, 0xDD])])
     + r.randbytes(r.randrange(40))),
    ("truncated", 10_000, lambda r: (d := r.choice(CORPUS))[: r.randrange(len(d))]),
    ("bit_flips", 20_000, lambda r: _flip(r, r.choice(CORPUS), r.randrange(1, 5))),
    ("edits", 10_000, lambda r: _edit(r, r.choice(CORPUS))),
    ("splices", 5_000, _splice),
    ("random_trees", 8_000, lambda r: _pack(_random_obj(r))),
    ("outer_shapes", 4_000, _outer_shapes),
    ("signed_garbage", 2_500, _signed_garbage),
    ("deep_nesting", 500, _deep),
    ("huge_lengths", 1_500, _huge),
]


def _inputs(rng: random.Random) -> Iterator[tuple[str, Any]]:
    for name, count, make in CASES:
        for _ in range(count):
            yield name, make(rng)
    for odd in (None, "", "text", 0, 1.5, [], {}, object(), bytearray(b"\x97"), memoryview(b"")):
        yield "not_bytes", odd
    yield "oversize", b"\x00" * (codec.DEFAULT_MAX_SIZE + 1)
    yield "oversize", bytearray(CORPUS[0]) * 5000


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_decode_survives_100k_hostile_inputs() -> None:
    rng = random.Random(20240601)
    outcomes: Counter[str] = Counter()
    slowest: list[tuple[float, int, str, Any]] = []  # the 5 slowest inputs
    total = 0
    for name, data in _inputs(rng):
        total += 1
        start = time.perf_counter()
        try:
            envelope = decode(data)
        except ProtocolError:
            outcomes["rejected"] += 1
        else:
            # Only a properly signed input can pass (a re-signed mutated payload, a splice that
            # rebuilt a corpus item), and what passes must be canonical.
            outcomes["accepted"] += 1
            assert name == "signed_garbage" or data in CORPUS, f"{name}: accepted {data!r}"
            assert encode(envelope) == data
        with contextlib.suppress(ProtocolError):
            decode_message(data)
        slowest = sorted([*slowest, (time.perf_counter() - start, total, name, data)])[-5:]
    assert total >= 100_000
    assert outcomes["rejected"] >= total - 1000
    # A slow input is slow every time; a pause of the machine (GC, a busy neighbour: 1.08 s
    # once in CI for an input that decodes in 0.1 ms) is not. So the slowest are timed again.
    for _, _, name, data in slowest:
        best = min(_decode_seconds(data) for _ in range(3))
        assert best < 1.0, f"input {name!r} takes {best:.3f} s to decode"


def _decode_seconds(data: Any) -> float:
    start = time.perf_counter()
    for decoder in (decode, decode_message):
        with contextlib.suppress(ProtocolError):
            decoder(data)
    return time.perf_counter() - start


def test_corpus_is_valid() -> None:
    # The fuzzer's seeds must decode, or the mutations test nothing interesting.
    for data in CORPUS:
        envelope = decode(data)
        assert encode(envelope) == data
        assert decode_message(encode_message(envelope.payload)) == envelope.payload


def test_float32_and_nan_timestamps_are_refused() -> None:
    parts = msgpack.unpackb(CORPUS[0])
    as_float32 = _pack(parts[:3]).replace(b"\x93", b"\x97", 1) + b"\xca" + struct.pack(
        ">f", parts[3]
    ) + b"".join(_pack(p) for p in parts[4:])
    nan = _pack([*parts[:3], float("nan"), *parts[4:]])
    for data in (as_float32, nan):
        with pytest.raises(ProtocolError):
            decode(data)
