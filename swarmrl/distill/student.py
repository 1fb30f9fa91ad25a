"""The student side of on-policy distillation: ask a teacher peer to score this step's samples.

After sampling, :meth:`DistillClient.annotate` sends each local group (prompt ids and the
sampler's own completion ids, never re-tokenized) to one teacher, concurrently, and attaches
the teacher's per-token log-probs to the groups it answered for. Teachers are the peer ids in
``distill.teachers`` plus, with ``distill.discover``, peers whose card says 'teacher' and has
our tokenizer fingerprint. A group the teacher does not answer in ``distill.timeout_s`` (or
refuses, or answers with a reply that does not fit) trains on plain GRPO: counted as
``distill:fallback:<reason>``, logged at debug, and visible in the step's metrics row.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any, Protocol

import trio
from pydantic import ValidationError

from swarmrl.brain.base import ScoredGroup
from swarmrl.net import RequestTimeout, TransportError
from swarmrl.protocol import ProtocolError, decode, encode, seal
from swarmrl.protocol.messages import TeacherReply, TeacherRequest
from swarmrl.training.distill import TeacherSignal, grpo_weight, schedule_coef

if TYPE_CHECKING:
    from swarmrl.brain.base import Brain
    from swarmrl.config import NodeConfig
    from swarmrl.net import Transport
    from swarmrl.protocol import Identity, SeqCounter
    from swarmrl.swarm.peers import PeerTable

log = logging.getLogger("swarmrl.node.student")

PROTOCOL = "teacher"  # the teacher's request/response protocol (distill/teacher.py serves it)
BACKOFF_STEPS = 5  # a teacher that failed us is skipped this many steps (if others exist)
LATENCY_EWMA = 0.3  # weight of the newest latency in 'least_loaded'


def can_ask(brain: Any) -> bool:
    """Whether a brain gives prompt ids a teacher can score (LMBrain does; the stub doesn't)."""
    return callable(getattr(brain, "encode_prompt", None))


class _Clock(Protocol):
    def now(self) -> float: ...


class _Counters(Protocol):
    def count(self, name: str, n: int = 1) -> None: ...


class StudentHost(Protocol):
    """What the student reads of the node it serves (``node/loop.py:Node``, the one
    implementation): its config (distill, name), brain (prompt ids, tokenizer fingerprint),
    identity, envelope counter and clock (to sign requests), counters, the peer table (teachers'
    cards, served counts) and the transport it asks over.

    node/ sits above distill/ in the layers, so the node is described here, not imported.
    """

    cfg: NodeConfig
    brain: Brain
    identity: Identity
    seq: SeqCounter
    runtime: _Clock
    metrics: _Counters
    peers: PeerTable
    transport: Transport

    @property
    def peer_id(self) -> str: ...


class DistillClient:
    """Finds teachers, asks one per step, and turns answers into ``TeacherSignal``s."""

    def __init__(self, node: StudentHost) -> None:
        self.node = node
        self.cfg = node.cfg.distill
        self.enabled = can_ask(node.brain)
        self.figures: dict[str, Any] = {}  # this step's distill_* figures for the metrics row
        self._turn = 0
        self._latency: dict[str, float] = {}
        self._skip_until: dict[str, int] = {}
        self._request_ids = itertools.count(1)
        self._warned_no_teacher = False
        if not self.enabled:
            log.warning("%s: distill.mode = %r, but its model cannot be distilled into: "
                        "training on plain GRPO", node.cfg.name, self.cfg.mode)
        elif not self.cfg.teachers and not self.cfg.discover:
            log.warning("%s: distill.mode = %r with no teachers listed and discover = false: "
                        "no teacher can be found, every step trains on plain GRPO",
                        node.cfg.name, self.cfg.mode)

    # --- whom to ask ------------------------------------------------------------------------
    def candidates(self) -> list[str]:
        """Listed teachers first, then discovered ones (sorted, so runs repeat), never us."""
        me = self.node.peer_id
        found = list(dict.fromkeys(p for p in self.cfg.teachers if p != me))
        if self.cfg.discover:
            ours = self.node.brain.tokenizer_fingerprint[:128]
            found += sorted(
                info.peer_id for info in self.node.peers
                if info.card is not None and "teacher" in info.card.roles
                and info.card.tokenizer_fingerprint == ours
                and info.peer_id != me and info.peer_id not in found
            )
        return found

    def pick(self, candidates: list[str], step: int) -> str:
        live = [p for p in candidates if self._skip_until.get(p, -1) <= step] or candidates
        if self.cfg.pick == "least_loaded":  # untried first, then the fastest recently
            return min(live, key=lambda p: (p in self._latency, self._latency.get(p, 0.0)))
        self._turn += 1
        return live[(self._turn - 1) % len(live)]

    # --- one step ---------------------------------------------------------------------------
    async def annotate(self, groups: list[ScoredGroup], step: int) -> None:
        """Attach a teacher's log-probs to the groups it answers for (in place)."""
        coef = schedule_coef(self.cfg, step)
        self.figures = {"distill_coef": coef, "distill_teacher": None, "distill_fallback": 0.0}
        if not self.enabled or not groups or coef <= 0:
            return
        candidates = self.candidates()
        if not candidates:
            if not self._warned_no_teacher:
                # At start a teacher's card may simply not have arrived yet: info, not alarm.
                log.info("%s: no teacher known yet: training on plain GRPO until one is",
                         self.node.cfg.name)
                self._warned_no_teacher = True
            self._fallback(Counter({"no_teacher": len(groups)}), len(groups))
            return
        teacher = self.pick(candidates, step)
        t0 = trio.current_time()
        results = await self._ask_all(teacher, groups)
        reasons: Counter[str] = Counter()
        for g, res in zip(groups, results, strict=True):
            if isinstance(res, str):
                reasons[res] += 1
            else:
                g.teacher = TeacherSignal(
                    res, coef, grpo_weight(self.cfg), self.cfg.max_advantage, teacher
                )
        self._after(teacher, step, trio.current_time() - t0, len(groups) - sum(reasons.values()))
        if reasons:
            self._fallback(reasons, len(groups))

    def _after(self, teacher: str, step: int, seconds: float, answered: int) -> None:
        if answered:
            old = self._latency.get(teacher, seconds)
            self._latency[teacher] = (1 - LATENCY_EWMA) * old + LATENCY_EWMA * seconds
            self.figures["distill_teacher"] = teacher
            self.figures["distill_ms"] = round(seconds * 1000, 2)
            self.node.metrics.count("distill:groups", answered)
            info = self.node.peers.get(teacher)
            if info is not None:
                info.distill_received += answered
        else:
            self._skip_until[teacher] = step + BACKOFF_STEPS

    def _fallback(self, reasons: Counter[str], total: int) -> None:
        reason = reasons.most_common(1)[0][0]
        self.figures["distill_fallback"] = round(sum(reasons.values()) / total, 4)
        self.node.metrics.count(f"distill:fallback:{reason}")
        log.debug("%s: %d of %d groups on plain GRPO (%s)", self.node.cfg.name,
                  sum(reasons.values()), total, dict(reasons))

    async def _ask_all(self, teacher: str, groups: list[ScoredGroup]) -> list[Any]:
        """Each group's teacher log-probs, or the reason it has none; all asked at once."""
        results: list[Any] = ["timeout"] * len(groups)

        async def one(i: int) -> None:
            results[i] = await self._ask(teacher, groups[i])

        with trio.move_on_after(self.cfg.timeout_s):
            async with trio.open_nursery() as nursery:
                for i in range(len(groups)):
                    nursery.start_soon(one, i)
        return results

    async def _ask(self, teacher: str, g: ScoredGroup) -> list[list[float]] | str:
        ids = [c.token_ids for c in g.completions]
        if any(c is None for c in ids):
            return "no_token_ids"
        node = self.node
        request_id = next(self._request_ids)
        try:
            req = TeacherRequest(
                request_id=request_id,
                tokenizer_fingerprint=node.brain.tokenizer_fingerprint[:128],
                prompt_ids=node.brain.encode_prompt(g.prompt),  # type: ignore[attr-defined]
                completion_ids=ids,
            )
            env = seal(req, node.identity, seq=node.seq.next(), timestamp=node.runtime.now())
            data = encode(env)
        except (ValidationError, ProtocolError) as e:
            log.debug("teacher request not sent: %s", e)
            return "too_large"
        try:
            raw = await node.transport.request(teacher, PROTOCOL, data, self.cfg.timeout_s)
        except RequestTimeout:
            return "timeout"
        except TransportError as e:
            log.debug("teacher %s unreachable: %s", teacher[:16], e)
            return "unreachable"
        return self._read_reply(teacher, request_id, raw, ids)  # type: ignore[arg-type]

    def _read_reply(
        self, teacher: str, request_id: int, raw: bytes, ids: list[list[int]]
    ) -> list[list[float]] | str:
        try:
            env = decode(raw)
        except ProtocolError as e:
            log.debug("bad teacher reply from %s: %s", teacher[:16], e)
            return "bad_reply"
        reply = env.payload
        if env.sender != teacher or not isinstance(reply, TeacherReply):
            return "bad_reply"
        if reply.request_id != request_id:
            return "bad_reply"
        if reply.error is not None:
            log.debug("teacher %s refused: %s", teacher[:16], reply.error)
            reason = reply.error.split(":", 1)[0]  # the teacher's counter name comes first
            return f"refused:{reason}" if reason.isidentifier() else "refused"
        if [len(x) for x in reply.logprobs] != [len(c) for c in ids]:
            return "bad_reply"  # one log-prob per sampled token, or nothing
        return [list(x) for x in reply.logprobs]
