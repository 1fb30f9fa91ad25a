"""The teacher role: score the tokens a student sampled, for any peer that asks, within limits.

A request is a signed ``TeacherRequest`` envelope on the transport's request/response protocol
``teacher``: one prompt and its completions as token ids. The teacher answers a signed
``TeacherReply`` with log p_teacher of every completion token, or with ``error`` saying why it
refused. Checks, in order: decode (size, schema, signature), kind, envelope sender = the
transport's verified peer, tokenizer fingerprint, size (``teacher.max_tokens_per_request``),
token ids in the vocabulary, the queue, the sender's token bucket. Every refusal is counted
(``teacher:refused:<reason>``) and logged at debug; bad bytes never raise out of the handler.

Accepted requests queue up; a batcher scores what is queued together in one forward pass through
the node's runtime (so a simulation's virtual clock charges the cost).
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import trio

from swarmrl.config import TeacherConfig
from swarmrl.protocol import ProtocolError, decode, encode, seal
from swarmrl.protocol.messages import TeacherReply, TeacherRequest

if TYPE_CHECKING:
    from collections.abc import Callable

    from swarmrl.brain.base import Brain
    from swarmrl.config import NodeConfig
    from swarmrl.net import Transport
    from swarmrl.protocol import Identity, SeqCounter
    from swarmrl.swarm.peers import PeerTable

log = logging.getLogger("swarmrl.node.teacher")

T = TypeVar("T")

PROTOCOL = "teacher"
MAX_BUCKETS = 4096  # peers remembered by the rate limiter (least recently seen forgotten)
LOGPROB_FLOOR = -1e4  # TeacherReply's bound; a -inf from the model is sent as this


class TokenBucket:
    """Per-peer token buckets: ``rate`` tokens per second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int, max_peers: int = MAX_BUCKETS) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_peers = max_peers
        self._state: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, peer: str, n: int, now: float) -> bool:
        """Spend ``n`` of ``peer``'s tokens if it has them; False (nothing spent) if not."""
        level, last = self._state.get(peer, (self.burst, now))
        level = min(self.burst, level + max(0.0, now - last) * self.rate)
        ok = level >= n
        self._state[peer] = (level - n if ok else level, now)
        self._state.move_to_end(peer)
        while len(self._state) > self.max_peers:
            self._state.popitem(last=False)
        return ok


@dataclass
class _Job:
    rows: list[tuple[list[int], list[int]]]
    tokens: int
    done: trio.Event = field(default_factory=trio.Event)
    logprobs: list[list[float]] | None = None


class Refused(Exception):
    """A request the teacher will not score; ``reason`` is the counter's name."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def can_teach(brain: Any) -> bool:
    """Whether a brain can score tokens (the transformers one can; the simulator's stub can't)."""
    return callable(getattr(brain, "score_tokens", None)) and hasattr(brain, "vocab_size")


class _Runtime(Protocol):
    def now(self) -> float: ...

    async def run(self, fn: Callable[[], T], work_tokens: Callable[[T], int]) -> T: ...


class _Counters(Protocol):
    def count(self, name: str, n: int = 1) -> None: ...


class TeacherHost(Protocol):
    """What the teacher reads of the node it serves (``node/loop.py:Node``, the one
    implementation): its config (teacher, name), brain (scores tokens), identity, envelope
    counter and runtime (to sign replies and run the scoring), counters, the peer table (served
    counts) and the transport it serves on.

    node/ sits above distill/ in the layers, so the node is described here, not imported.
    """

    cfg: NodeConfig
    brain: Brain
    identity: Identity
    seq: SeqCounter
    runtime: _Runtime
    metrics: _Counters
    peers: PeerTable
    transport: Transport


class TeacherService:
    """Serves ``teacher`` requests for one node while :meth:`serve` runs."""

    def __init__(self, node: TeacherHost) -> None:
        self.node = node
        self.cfg: TeacherConfig = node.cfg.teacher
        self.bucket = TokenBucket(self.cfg.peer_tokens_per_s, self.cfg.peer_burst_tokens)
        self._queue: deque[_Job] = deque()
        self._scoring: list[_Job] = []
        self._ready = trio.Event()
        self._serving = False

    async def serve(self) -> None:
        """Answer requests until cancelled (the node loop's nursery runs this)."""
        if not can_teach(self.node.brain):
            log.warning("%s has the teacher role, but its model cannot score tokens: not "
                        "teaching", self.node.cfg.name)
            return
        self.node.transport.set_handler(PROTOCOL, self.handle)
        self._serving = True
        try:
            await self._batch_loop()
        finally:
            self._serving = False
            self.node.transport.set_handler(PROTOCOL, None)
            for job in [*self._scoring, *self._queue]:  # nobody will score these now:
                job.done.set()  # their handlers answer 'failed' rather than wait forever

    # --- one request --------------------------------------------------------------------------
    async def handle(self, sender: str, data: bytes) -> bytes:
        """The transport's handler: always a signed reply, never an exception."""
        request_id = 0
        try:
            req = self._admit(sender, data)
            request_id = req.request_id
            job = self._enqueue(req, sender)
            await job.done.wait()
            if job.logprobs is None:
                raise Refused("failed", "the teacher could not score this request")
        except Refused as r:
            self.node.metrics.count(f"teacher:refused:{r.reason}")
            log.debug("teacher: refused %s from %s: %s", request_id, sender[:16], r)
            return self._reply(TeacherReply(request_id=request_id, error=str(r)[:256]))
        self.node.metrics.count("teacher:served")
        self.node.metrics.count("teacher:tokens", job.tokens)
        info = self.node.peers.touch(sender, self.node.runtime.now())
        info.distill_served += 1
        return self._reply(TeacherReply(request_id=request_id, logprobs=job.logprobs))

    def _admit(self, sender: str, data: bytes) -> TeacherRequest:
        try:
            env = decode(data)
        except ProtocolError as e:
            raise Refused("malformed", str(e)[:200]) from None
        req = env.payload
        if not isinstance(req, TeacherRequest):
            raise Refused("unexpected_kind", env.kind)
        if env.sender != sender:  # signed by someone else than the peer on the line
            raise Refused("sender_mismatch", "envelope not signed by the requesting peer")
        ours = self.node.brain.tokenizer_fingerprint[:128]
        if req.tokenizer_fingerprint != ours:
            raise Refused("tokenizer", f"tokenizer mismatch: teacher has {ours[:16]}, request "
                          f"has {req.tokenizer_fingerprint[:16]}")
        self._check_size(req)
        return req

    def _check_size(self, req: TeacherRequest) -> None:
        tokens = request_tokens(req)
        if tokens > self.cfg.max_tokens_per_request:
            raise Refused("too_large", f"{tokens} tokens > {self.cfg.max_tokens_per_request}")
        if not req.prompt_ids:
            raise Refused("bad_request", "empty prompt")
        vocab = self.node.brain.vocab_size  # type: ignore[attr-defined]
        if any(t >= vocab for t in req.prompt_ids) or any(
            t >= vocab for c in req.completion_ids for t in c
        ):
            raise Refused("bad_tokens", f"token id outside the vocabulary ({vocab})")

    def _enqueue(self, req: TeacherRequest, sender: str) -> _Job:
        tokens = request_tokens(req)
        if not self._serving:  # a request that raced the end of serve(): nobody would score it
            raise Refused("stopped", "the teacher is not serving")
        if len(self._queue) >= self.cfg.max_queue:
            raise Refused("busy", f"{len(self._queue)} requests queued")
        if not self.bucket.take(sender, tokens, self.node.runtime.now()):
            raise Refused("rate_limited", f"over {self.cfg.peer_tokens_per_s:g} tokens/s")
        job = _Job([(list(req.prompt_ids), list(c)) for c in req.completion_ids], tokens)
        self._queue.append(job)
        self._ready.set()
        return job

    def _reply(self, reply: TeacherReply) -> bytes:
        env = seal(reply, self.node.identity, seq=self.node.seq.next(),
                   timestamp=self.node.runtime.now())
        return encode(env)

    # --- batching -----------------------------------------------------------------------------
    async def _batch_loop(self) -> None:
        while True:
            if not self._queue:
                self._ready = trio.Event()
                await self._ready.wait()
            await trio.sleep(self.cfg.batch_wait_s)  # let concurrent requests join the batch
            self._scoring = self._take_batch()
            await self._score(self._scoring)
            self._scoring = []

    def _take_batch(self) -> list[_Job]:
        batch, tokens = [], 0
        while self._queue and (not batch or tokens + self._queue[0].tokens
                               <= self.cfg.max_batch_tokens):
            job = self._queue.popleft()
            batch.append(job)
            tokens += job.tokens
        return batch

    async def _score(self, batch: list[_Job]) -> None:
        rows = [row for job in batch for row in job.rows]
        tokens = sum(job.tokens for job in batch)
        brain = self.node.brain
        try:
            out = await self.node.runtime.run(
                lambda: brain.score_tokens(rows),  # type: ignore[attr-defined]
                lambda _: tokens,
            )
        except Exception as e:  # a failed forward refuses this batch, never the service
            log.warning("teacher: scoring %d rows failed: %r", len(rows), e)
            out = None
        self.node.metrics.count("teacher:batches")
        i = 0
        for job in batch:
            if out is not None:
                job.logprobs = [_bounded(x) for x in out[i: i + len(job.rows)]]
            i += len(job.rows)
            job.done.set()


def request_tokens(req: TeacherRequest) -> int:
    """What a request costs to score: every completion runs with its prompt."""
    return sum(len(req.prompt_ids) + len(c) for c in req.completion_ids)


def _bounded(logprobs: list[float]) -> list[float]:
    # The reply's schema wants finite values in [-1e4, 0]; rounding can give +1e-8.
    return [min(0.0, max(LOGPROB_FLOOR, x)) if x == x else LOGPROB_FLOOR for x in logprobs]
