"""Run a whole swarm in one process: the real Node loop over the in-memory network or libp2p.

Every node is the same ``Node`` the daemon runs. With the in-memory network (the default) each
gets a ``SimRuntime`` (inline model work, modelled virtual time) and a ``MemoryTransport``
endpoint, and the run happens under trio's MockClock, so latencies, partitions and churn cost
virtual seconds, not wall seconds, and the same seed gives the same run.

With ``network.transport = "libp2p"`` each node gets a real libp2p host on 127.0.0.1 (the
daemon's transport) and a ``PacedRuntime`` on the wall clock: the same scenario over the real
network path. Nodes bootstrap from the nodes already online and find the rest through peer
cards. Link conditions and partitions are not emulated there (a warning says so); churn is:
a leaving node closes its host, a rejoining one opens a fresh host with the same key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio
import trio.testing

from swarmrl.brain.base import Brain
from swarmrl.brain.stub import StubBrain
from swarmrl.config import NodeConfig
from swarmrl.net import LinkSpec, MemoryNetwork
from swarmrl.node.loop import Node
from swarmrl.node.runtime import PacedRuntime, SimRuntime
from swarmrl.protocol import Identity
from swarmrl.simulator.adversary import adversary_node
from swarmrl.simulator.scenario import NodeSpec, Scenario
from swarmrl.tasks.sandbox import InProcessChecker

log = logging.getLogger("swarmrl.sim")

ProgressFn = Callable[[str, int], None]


@dataclass
class SimNode:
    spec: NodeSpec
    cfg: NodeConfig
    node: Node
    online: bool = True
    scope: trio.CancelScope | None = None
    done: bool = False


@dataclass
class SimResult:
    scenario: Scenario
    nodes: list[SimNode]
    virtual_seconds: float = 0.0
    events: list[str] = field(default_factory=list)


def make_brain(spec: NodeSpec, cfg: NodeConfig) -> Brain:
    if spec.brain == "stub":
        return StubBrain(skills=spec.stub_skills, seed=cfg.seed)
    from swarmrl.brain.lm import LMBrain

    return LMBrain.from_config(cfg)


def _identity(seed: int, index: int) -> Identity:
    # Deterministic keys so peer ids, and therefore pool ordering, repeat across runs.
    import hashlib

    return Identity.from_private_bytes(
        hashlib.sha256(f"swarmrl-sim/{seed}/{index}".encode()).digest()
    )


def _matches(name: str, patterns: list[str]) -> bool:
    return any(name == p or name.startswith(p + "-") for p in patterns)


class Simulation:
    def __init__(
        self,
        scenario: Scenario,
        out_dir: Path | None,
        progress: ProgressFn | None = None,
        brain_factory: Callable[[NodeSpec, NodeConfig], Brain] = make_brain,
    ) -> None:
        self.scenario = scenario
        self.out_dir = out_dir
        self.progress = progress or (lambda name, step: None)
        self.brain_factory = brain_factory
        self.nodes: list[SimNode] = []
        self.events: list[str] = []
        self.net: MemoryNetwork | None = None  # None: libp2p, one real host per node
        self.t0 = 0.0  # trio time of the scenario's second 0
        self.live_addrs: dict[str, list[str]] = {}  # libp2p: online nodes' listen addresses

    def build(self, net: MemoryNetwork | None) -> None:
        sc = self.scenario
        configs = sc.node_configs()
        honest = [i for i, (spec, _) in enumerate(configs) if spec.adversary == "none"]
        victim = _identity(sc.seed, honest[0]).peer_id if honest else None
        for i, (spec, cfg) in enumerate(configs):
            ident = _identity(sc.seed, i)
            if net is not None:
                runtime: SimRuntime | PacedRuntime = SimRuntime(sc.seconds_per_token, spec.speed)
            else:
                runtime = PacedRuntime(sc.seconds_per_token, spec.speed)
            node_dir = self.out_dir / "nodes" / cfg.name if self.out_dir else None
            extra = {}
            node_cls: type[Node] = Node
            if spec.adversary != "none":
                node_cls, extra = adversary_node(spec.adversary), {"victim": victim}
            node = node_cls(
                cfg,
                self.brain_factory(spec, cfg),
                net.endpoint(ident.peer_id) if net is not None else None,  # type: ignore[arg-type]
                ident,
                runtime,
                node_dir,
                # Every peer of a simulation is its own code: its tasks need no sandbox.
                checker=InProcessChecker(),
                **extra,
            )
            self.nodes.append(SimNode(spec, cfg, node))

    async def run(self) -> SimResult:
        sc = self.scenario
        self.t0 = trio.current_time()
        if sc.network.transport == "libp2p":
            _warn_unemulated(sc)
            self.build(None)
            await self._run_nodes()
        else:
            link = LinkSpec(
                latency_s=sc.network.latency_ms / 1000,
                jitter_s=sc.network.jitter_ms / 1000,
                loss=sc.network.loss,
                bandwidth_bps=sc.network.bandwidth_mbps * 1e6,
            )
            fanout = sc.network.fanout
            async with MemoryNetwork(seed=sc.seed, default_link=link, fanout=fanout) as net:
                self.net = net
                self.build(net)
                await self._run_nodes()
        for sn in self.nodes:
            sn.node.metrics.close()
        return SimResult(sc, self.nodes, trio.current_time() - self.t0, self.events)

    async def _run_nodes(self) -> None:
        async with trio.open_nursery() as nursery:
            for sn in self.nodes:
                nursery.start_soon(self._drive, sn)
            nursery.start_soon(self._events)
            while not all(sn.done for sn in self.nodes):
                await trio.sleep(1.0)
                self._idle_while_paused()
            nursery.cancel_scope.cancel()

    def _idle_while_paused(self) -> None:
        """Every node still training is paused (control API): on the virtual clock nothing can
        happen until a Resume arrives from the control thread, so wait in real time instead of
        letting the clock spin."""
        live = [sn for sn in self.nodes if not sn.done and sn.online]
        if self.net is not None and live and all(sn.node.control.paused for sn in live):
            time.sleep(0.2)

    async def _drive(self, sn: SimNode) -> None:
        """Run one node to its step count, across leaves and rejoins."""
        while sn.node.step < sn.cfg.steps:
            if not sn.online:
                if not self._rejoins_later(sn):
                    break  # left for good (churn without join_at_s): done, or the run never ends
                await trio.sleep(1.0)
                continue
            with trio.CancelScope() as scope:
                sn.scope = scope
                async with self._connected(sn), trio.open_nursery() as nursery:
                    nursery.start_soon(self._watch_progress, sn)
                    await sn.node.run(sn.cfg.steps)
                    nursery.cancel_scope.cancel()
            sn.scope = None
        sn.done = True
        self.progress(sn.cfg.name, sn.node.step)
        if sn.node.teacher is not None and sn.online and self.net is not None:
            await sn.node.teacher.serve()  # done training, still teaching until the run ends

    @asynccontextmanager
    async def _connected(self, sn: SimNode) -> AsyncIterator[None]:
        """The node's network for one stint online: its memory endpoint, or a fresh libp2p host
        bootstrapped from the nodes online now (the first node waits for nobody)."""
        if self.net is not None:
            yield
            return
        from swarmrl.net.libp2p_transport import Libp2pTransport

        first = sn is self.nodes[0]
        while not first and not self.live_addrs:
            await trio.sleep(0.05)
        bootstrap = [a for addrs in list(self.live_addrs.values())[:3] for a in addrs[:1]]
        net_cfg = sn.cfg.network.model_copy(
            update={"listen": ["/ip4/127.0.0.1/tcp/0"], "bootstrap": bootstrap, "announce": []}
        )
        ident = sn.node.identity
        async with Libp2pTransport.open(ident, net_cfg, swarm_id=sn.cfg.swarm_id) as transport:
            sn.node.transport = transport
            self.live_addrs[sn.cfg.name] = transport.listen_addrs()
            try:
                yield
            finally:
                self.live_addrs.pop(sn.cfg.name, None)

    async def _watch_progress(self, sn: SimNode) -> None:
        last = -1
        while True:
            if sn.node.step != last:
                last = sn.node.step
                self.progress(sn.cfg.name, last)
            await trio.sleep(0.5)

    async def _events(self) -> None:
        timeline: list[tuple[float, str, Callable[[], None]]] = []
        for p in self.scenario.partitions:
            timeline.append(
                (p.at_s, f"partition {p.groups}", lambda p=p: self._partition(p.groups))
            )
            timeline.append((p.until_s, "heal", self._heal))
        for c in self.scenario.churn:
            timeline.append(
                (c.leave_at_s, f"{c.node} leaves", lambda c=c: self._set_online(c.node, False))
            )
            if c.join_at_s is not None:
                timeline.append(
                    (c.join_at_s, f"{c.node} rejoins", lambda c=c: self._set_online(c.node, True))
                )
        for at, label, action in sorted(timeline, key=lambda t: t[0]):
            await trio.sleep_until(self.t0 + at)
            self.events.append(f"t={at:.1f}s {label}")
            action()

    def _rejoins_later(self, sn: SimNode) -> bool:
        now = trio.current_time() - self.t0
        return any(
            c.join_at_s is not None and c.join_at_s >= now and _matches(sn.cfg.name, [c.node])
            for c in self.scenario.churn
        )

    def _partition(self, groups: list[list[str]]) -> None:
        if self.net is None:
            return  # libp2p: not emulated (warned at start)
        ids = [[sn.node.peer_id for sn in self.nodes if _matches(sn.cfg.name, g)] for g in groups]
        self.net.partition(ids)

    def _heal(self) -> None:
        if self.net is not None:
            self.net.heal()

    def _set_online(self, pattern: str, online: bool) -> None:
        for sn in self.nodes:
            if not _matches(sn.cfg.name, [pattern]) or sn.online == online:
                continue
            sn.online = online
            if not online:
                if sn.scope is not None:
                    sn.scope.cancel()  # libp2p: leaving _connected closes the host
                if self.net is not None:
                    sn.node.transport.close_nowait()  # type: ignore[attr-defined]
            elif self.net is not None:
                # Rejoining: a fresh endpoint, the node's state as its last moment (as a resume).
                sn.node.transport = self.net.endpoint(sn.node.peer_id)


def _warn_unemulated(sc: Scenario) -> None:
    if sc.partitions:
        log.warning("libp2p transport: %d partition(s) in the scenario are not emulated",
                    len(sc.partitions))
    if sc.network.loss or sc.network.fanout:
        log.warning("libp2p transport: network.loss and network.fanout are not emulated "
                    "(gossipsub's own mesh decides who forwards to whom)")


def _quiet_libp2p() -> None:
    """py-libp2p logs tracebacks at WARNING when hosts stop (churn, the end of a run); they
    say nothing a user can act on, so show its errors only unless we are debugging."""
    import libp2p  # noqa: F401 - importing it sets its loggers up; adjust them afterwards

    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("libp2p").setLevel(logging.ERROR)


def run_scenario(
    scenario: Scenario,
    out_dir: Path | None,
    progress: ProgressFn | None = None,
    brain_factory: Callable[[NodeSpec, NodeConfig], Brain] = make_brain,
    serve: Callable[[Simulation], None] | None = None,
) -> SimResult:
    """Run a scenario to completion: under trio's virtual clock on the in-memory network, on
    the wall clock over libp2p. ``serve`` is handed the simulation before it starts (to serve
    the control API for its nodes)."""
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    _set_threads(scenario.threads)
    sim = Simulation(scenario, out_dir, progress, brain_factory)
    if serve is not None:
        serve(sim)
    if scenario.network.transport == "libp2p":
        _quiet_libp2p()
        return trio.run(sim.run)
    clock = trio.testing.MockClock(autojump_threshold=0)
    _seed_trio_scheduler(scenario.seed)
    return trio.run(sim.run, clock=clock)


def _seed_trio_scheduler(seed: int) -> None:
    """Make trio's tie-breaking between tasks woken at the same instant repeat with the seed.

    trio orders each batch of runnable tasks at random (on purpose, to flush out ordering
    bugs). On a virtual clock many tasks wake at the same instant (a delivery, a node's next
    step, a partition), so without this the same scenario and seed gave different runs. This
    is the hook trio itself gives Hypothesis (``trio._core._run._r``); if a future trio moves
    it, runs merely stop being exactly repeatable.
    """
    try:
        from trio._core import _run

        _run._r.seed(seed)
    except (ImportError, AttributeError):  # pragma: no cover - private trio API
        pass


def _set_threads(n: int) -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency, but the stub needs none
        return
    torch.set_num_threads(n)
