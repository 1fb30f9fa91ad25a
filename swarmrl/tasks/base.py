"""The Family interface: a deterministic generator of problems from task specs."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from swarmrl.protocol.messages import TaskSpec
from swarmrl.tasks.problem import Problem, TaskError


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts, identical on every machine and process.

    Python's ``hash()`` is salted per process (PYTHONHASHSEED), so every seed we derive goes
    through blake2b of the parts' text instead.
    """
    data = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") >> 1


class Family(ABC):
    """A task family: turns a :class:`TaskSpec` into the same :class:`Problem` everywhere."""

    name: str
    version: str
    verifier: str
    """Name of the verifier that scores this family's problems."""

    @abstractmethod
    def check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Validate generator params and return them in wire form (bool/int/float/str only).

        Raises :class:`TaskError` naming the offending param.
        """

    @abstractmethod
    def _generate(self, spec: TaskSpec, params: dict[str, Any]) -> Problem:
        """Generate the problem of an already checked spec."""

    def generate(self, spec: TaskSpec) -> Problem:
        """The problem of ``spec``: same spec, same question and answer on every node."""
        if spec.family != self.name:
            raise TaskError(f"spec is for family {spec.family!r}, not {self.name!r}")
        if spec.family_version != self.version:
            # A generator of another version could give another answer key for the same spec,
            # and a node must never score against a key it cannot reproduce.
            raise TaskError(
                f"{self.name}: spec has family_version {spec.family_version!r}, "
                f"this node generates version {self.version!r}"
            )
        params = self.check_params(spec.params)
        return self._generate(spec, params)

    def make_spec(
        self, params: Mapping[str, Any] | None = None, *, seed: int, index: int
    ) -> TaskSpec:
        """A spec of this family with its version filled in and its params checked."""
        checked = self.check_params(params or {})
        try:
            return TaskSpec(
                family=self.name, family_version=self.version, params=checked,
                seed=seed, index=index,
            )
        except ValidationError as e:  # e.g. a param text longer than the wire allows
            first = e.errors()[0]
            where = ".".join(str(x) for x in first.get("loc", ()))
            raise TaskError(f"{self.name}: spec refused by the wire schema at {where}: "
                            f"{first.get('msg', 'invalid')}") from None

    def default_params(self) -> dict[str, Any]:
        """Every generator parameter with its default value, in wire form (what task bounds
        are derived from)."""
        return {}

    def score_answer(self, problem: Problem, answer: str) -> tuple[float, str]:
        """Family-specific scoring of an extracted answer (only some families have one)."""
        raise TaskError(f"{self.name}: has no family scorer")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, version={self.version!r})"
