"""A node's own task stream: a deterministic, resumable sequence of task specs.

Every draw is a pure function of (seeds, draw number), so the state is two small counters and a
resumed run continues the very same stream. With ``pool_size > 0`` tasks come from a fixed
pool that recurs: tiny models learn within minutes only on problems they see again (an endless
stream of fresh problems did not move reward in 60 rounds; a pool of 8 did).

The pool is derived from ``TaskConfig.seed`` alone, so nodes sharing a config share a pool and
their shared rollouts concern problems every node trains on; the order in which a node walks
the pool depends on its ``node_seed``. Give nodes different ``TaskConfig.seed`` for private pools.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import random
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from swarmrl.protocol.messages import TaskSpec
from swarmrl.tasks.base import derive_seed
from swarmrl.tasks.families import get_family
from swarmrl.tasks.problem import TaskError

STATE_VERSION = 1


@runtime_checkable
class TaskMix(Protocol):
    """What the sampler reads of a node's tasks config: ``swarmrl.config.TaskConfig`` is the one
    implementation. config/ sits above tasks/ in the layers (its validators check family names
    and bounds against tasks/), so tasks/ describes it here instead of importing it."""

    families: dict[str, float]
    family_params: dict[str, dict[str, Any]]
    pool_size: int
    seed: int


class TaskSampler:
    """Yields :class:`TaskSpec` s: a family by weight, that family's params, increasing index."""

    def __init__(self, config: TaskMix, node_seed: int = 0) -> None:
        if not isinstance(node_seed, int) or node_seed < 0:
            raise TaskError(f"node_seed must be a non-negative integer, got {node_seed!r}")
        unknown = sorted(set(config.family_params) - set(config.families))
        if unknown:
            raise TaskError(f"family_params.{unknown[0]}: no such family in tasks.families")
        self.config = config
        self.node_seed = node_seed
        # Sorted so that reordering the TOML table does not change the stream.
        self._names = sorted(config.families)
        self._families = {n: get_family(n) for n in self._names}  # TaskError on bad names
        self._params: dict[str, dict[str, Any]] = {}
        for n in self._names:
            try:
                self._params[n] = self._families[n].check_params(config.family_params.get(n, {}))
            except TaskError as e:
                raise TaskError(f"family_params.{n}: {e}") from None
        total = float(sum(config.families[n] for n in self._names))
        acc, self._cum = 0.0, []
        for n in self._names:
            acc += config.families[n] / total
            self._cum.append(acc)
        # Each family's stream has its own generator seed, the same for every run of this node.
        self._family_seed = {
            n: derive_seed("family", config.seed, node_seed, n) for n in self._names
        }
        self._drawn = 0
        self._counters = {n: 0 for n in self._names}
        self._pool: list[TaskSpec] = self._build_pool() if config.pool_size > 0 else []
        self._epoch_cache: tuple[int, list[int]] | None = None

    # --- drawing --------------------------------------------------------------------------
    def _uniform(self, *parts: object) -> float:
        return derive_seed(*parts) / 2.0**63

    def _pick_family(self, u: float) -> str:
        i = bisect.bisect_right(self._cum, u)
        return self._names[min(i, len(self._names) - 1)]

    def _fresh(self, name: str, index: int, seed: int | None = None) -> TaskSpec:
        return TaskSpec(
            family=name,
            family_version=self._families[name].version,
            params=self._params[name],
            seed=self._family_seed[name] if seed is None else seed,
            index=index,
        )

    def _build_pool(self) -> list[TaskSpec]:
        c = self.config
        counters = {n: 0 for n in self._names}
        pool = []
        for k in range(c.pool_size):
            name = self._pick_family(self._uniform("pool-family", c.seed, k))
            pool.append(self._fresh(name, counters[name], derive_seed("pool", c.seed, name)))
            counters[name] += 1
        return pool

    def _pool_order(self, epoch: int) -> list[int]:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            order = list(range(len(self._pool)))
            seed = derive_seed("pool-order", self.config.seed, self.node_seed, epoch)
            random.Random(seed).shuffle(order)
            self._epoch_cache = (epoch, order)
        return self._epoch_cache[1]

    def next(self) -> TaskSpec:
        """The next spec of the stream."""
        k = self._drawn
        if self._pool:
            # Shuffled passes over the pool: every problem recurs once per len(pool) draws.
            epoch, pos = divmod(k, len(self._pool))
            spec = self._pool[self._pool_order(epoch)[pos]]
        else:
            name = self._pick_family(self._uniform("draw", self.config.seed, self.node_seed, k))
            spec = self._fresh(name, self._counters[name])
            self._counters[name] += 1
        self._drawn = k + 1
        return spec

    def sample(self, n: int) -> list[TaskSpec]:
        """The next ``n`` specs of the stream."""
        if n < 0:
            raise TaskError(f"sample(n): n must be >= 0, got {n}")
        return [self.next() for _ in range(n)]

    def __iter__(self) -> Iterator[TaskSpec]:
        while True:
            yield self.next()

    @property
    def pool(self) -> list[TaskSpec]:
        """The recurring pool (empty when ``pool_size`` is 0)."""
        return list(self._pool)

    @property
    def drawn(self) -> int:
        return self._drawn

    # --- resuming -------------------------------------------------------------------------
    def _fingerprint(self) -> str:
        c = self.config
        data = {
            "families": c.families, "family_params": self._params, "pool_size": c.pool_size,
            "seed": c.seed, "node_seed": self.node_seed,
            "versions": {n: f.version for n, f in self._families.items()},
        }
        blob = json.dumps(data, sort_keys=True, default=str).encode()
        return hashlib.blake2b(blob, digest_size=12).hexdigest()

    def state_dict(self) -> dict[str, Any]:
        """JSON-serializable state; ``load_state_dict`` on a sampler of the same config resumes."""
        return {
            "version": STATE_VERSION,
            "drawn": self._drawn,
            "counters": dict(self._counters),
            "fingerprint": self._fingerprint(),
        }

    def load_state_dict(self, state: dict[str, Any], *, strict: bool = True) -> None:
        """Continue the stream saved in ``state``.

        With ``strict`` (default) a state saved under another task config is refused, since the
        stream it continues is not this one; ``strict=False`` keeps the counters anyway (e.g.
        after re-weighting families on purpose).
        """
        try:
            version, drawn, counters = state["version"], state["drawn"], state["counters"]
        except (KeyError, TypeError):
            raise TaskError("sampler state is missing 'version', 'drawn' or 'counters'") from None
        if version != STATE_VERSION:
            raise TaskError(f"sampler state version {version!r}, expected {STATE_VERSION}")
        if strict and state.get("fingerprint") != self._fingerprint():
            raise TaskError("sampler state was saved under a different task config "
                            "(load with strict=False to continue anyway)")
        if not isinstance(drawn, int) or drawn < 0 or not isinstance(counters, dict):
            raise TaskError("sampler state has a bad 'drawn' or 'counters'")
        self._drawn = drawn
        self._counters = {n: int(counters.get(n, 0)) for n in self._names}
