"""Free-form tasks are claims until this node's own solvers agree with their reference answer.

An LM creator's task carries the answer its author believes in. A solver trains on it only once
its own completions' most common answer is the reference (a plurality over at least
``min_answers`` answers, the reference strictly ahead of any other answer); until then it still
attempts and publishes it, so the creator learns the swarm's solve rate.
"""

from __future__ import annotations

from collections import Counter, OrderedDict

from swarmrl.tasks.verifiers import normalize_text

REFERENCE = "\x00reference"
"""The bucket of answers the verifier judged equal to the reference (whatever their spelling)."""
_MAX_TASKS = 4096


class FreeFormCheck:
    def __init__(self, min_answers: int) -> None:
        self.min_answers = min_answers
        self.answers: OrderedDict[str, Counter[str]] = OrderedDict()
        self.verified: set[str] = set()

    def add(self, key: str, answers: list[tuple[str | None, bool]]) -> bool:
        """Count this node's answers ``(extracted answer, judged correct)``; returns verified."""
        counts = self.answers.setdefault(key, Counter())
        self.answers.move_to_end(key)
        for answer, correct in answers:
            if correct:
                counts[REFERENCE] += 1
            elif answer is not None:
                counts[normalize_text(answer)[:128]] += 1
        total = sum(counts.values())
        others = max((c for a, c in counts.items() if a != REFERENCE), default=0)
        if total >= self.min_answers and counts[REFERENCE] > others:
            self.verified.add(key)
        else:  # later answers can overturn an earlier majority
            self.verified.discard(key)
        while len(self.answers) > _MAX_TASKS:
            old, _ = self.answers.popitem(last=False)
            self.verified.discard(old)
        return key in self.verified

    def is_verified(self, key: str) -> bool:
        return key in self.verified
