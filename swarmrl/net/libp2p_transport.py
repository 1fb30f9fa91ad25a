"""The real network: a py-libp2p host with GossipSub topics and request/response streams.

    async with Libp2pTransport.open(identity, net_cfg, swarm_id="demo", handshake=h) as t:
        sub = t.subscribe("/swarmrl/demo/rollouts/1")
        await t.publish("/swarmrl/demo/rollouts/1", data)

The host's key is the node's ed25519 key, so its libp2p peer id *is* the node's peer id and
gossip senders can be checked against envelope signatures.

What this module adds on top of py-libp2p (see docs/networking.md):

* topics live under ``/swarmrl/<swarm-id>/``; publishing or subscribing elsewhere is refused;
* a hello exchange (``/swarmrl/hello/1``) on every connection: a peer on another swarm, genesis
  or protocol version is disconnected and remembered in :attr:`Libp2pTransport.refused`;
* the node's validator (decode + signature) runs inside GossipSub before a message is
  forwarded, so invalid data stops at the first honest hop;
* own publishes paced per topic (token bucket, bounded outbox), the gossipsub rate limit and
  queue bounds set deliberately, payloads above ``max_message_bytes`` refused;
* bootstrap peers redialled with exponential backoff, and peers learned from peer cards
  (:meth:`learn_peer`) dialled while we have fewer than ``target_peers``;
* every drop counted in :attr:`stats` with its reason.

The class is put together here (its state, opening and closing) from three parts, one idea each:
:mod:`~swarmrl.net.libp2p_peering` (dialling, bans, the hello exchange),
:mod:`~swarmrl.net.libp2p_gossip` (publish, subscribe, the inbound message path) and
:mod:`~swarmrl.net.libp2p_rpc` (request/response streams).
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.tools.anyio_service import background_trio_service

from swarmrl.net.budget import GossipBudget
from swarmrl.net.errors import TransportClosed
from swarmrl.net.libp2p_gossip import GossipMixin, _Outbox
from swarmrl.net.libp2p_nat import start_nat_services
from swarmrl.net.libp2p_peering import (
    _DIAL_TIMEOUT_S,
    PeeringMixin,
    _no_auto_connector,
    _Notifee,
)
from swarmrl.net.libp2p_router import CountingGossipSub, DeliveringPubsub, guard_streams
from swarmrl.net.libp2p_rpc import RpcMixin
from swarmrl.net.libp2p_settings import NetworkSettings
from swarmrl.net.libp2p_wire import HELLO_PROTOCOL, Hello
from swarmrl.net.transport import Handler, Subscription, Transport, topic_namespace
from swarmrl.protocol.identity import Identity

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

log = logging.getLogger(__name__)

Validator = Callable[[str, str, bytes], bool]
"""``validator(topic, sender_peer_id, data) -> bool``: False = invalid, neither delivered nor
forwarded. A message that names several topics must pass for each."""

_OUTBOUND_QUEUE = 1024  # gossipsub RPCs held per peer (py-libp2p default: 32)


class Libp2pTransport(PeeringMixin, GossipMixin, RpcMixin, Transport):
    """One node on the libp2p network. Create with :meth:`open` (an async context manager)."""

    def __init__(
        self,
        identity: Identity,
        net: NetworkSettings,
        host: IHost,
        *,
        swarm_id: str,
        handshake: bytes,
        validator: Validator | None,
        explain_mismatch: Callable[[bytes, bytes], str] | None = None,
    ) -> None:
        self.stats: Counter[str] = Counter()
        self.refused: dict[str, str] = {}
        """Peers refused at the hello exchange, with the reason (a sentence for the user)."""
        self._identity = identity
        self._net = net
        self._host = host
        self._swarm_id = swarm_id
        self._prefix = topic_namespace(swarm_id)
        self._hello = Hello(swarm_id, handshake, explain_mismatch)
        self._validator = validator
        self._max_bytes = net.max_message_bytes
        self._closed = False
        self._nursery: trio.Nursery | None = None
        self._subs: dict[str, list[Subscription]] = {}
        self._topic_locks: dict[str, trio.Lock] = {}
        self._outboxes: dict[str, _Outbox] = {}
        self._handlers: dict[str, Handler] = {}
        self._served: set[str] = set()  # stream protocols registered with the host
        self._calls: set[trio.CancelScope] = set()
        self._verified: set[str] = set()  # connected peers whose hello matched ours
        self._greeting: set[str] = set()
        self._gone: dict[str, trio.Event] = {}  # set when a peer's last connection closes
        self._dialing: set[str] = set()
        self._next_dial: dict[str, float] = {}  # learned peer -> earliest redial time
        self._dial_delay: dict[str, float] = {}
        self._bootstrap_ids: set[str] = set()
        self._nat_status: dict[str, str] = {}
        self.pubsub: DeliveringPubsub = DeliveringPubsub(
            host,
            CountingGossipSub(
                self.stats,
                outbound_queue_size=_OUTBOUND_QUEUE,
                messages_per_topic_per_second=net.messages_per_topic_per_second,
            ),
            self.stats,
            self._deliver,
            self._within_budget,
        )
        self.budget = GossipBudget(
            per_connection=net.messages_per_connection_per_s,
            connection_burst=net.connection_burst,
            newcomers=net.newcomer_messages_per_s,
            newcomer_burst=net.newcomer_burst,
            trust_after=net.trust_after,
            trust_after_s=net.trust_after_s,
            ban_after=net.ban_after,
            ban_forgive=net.ban_forgive_per_s,
        )
        self.banned: dict[str, float] = {}
        """Peers hung up on for flooding -> when (trio clock) they may connect again."""

    # --- lifecycle --------------------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        identity: Identity,
        net: NetworkSettings,
        *,
        swarm_id: str,
        handshake: bytes = b"",
        validator: Callable[[str, bytes], bool] | None = None,
        explain_mismatch: Callable[[bytes, bytes], str] | None = None,
    ) -> AsyncIterator[Libp2pTransport]:
        """Start a host listening on ``net.listen``, join the swarm, and close it all on exit.

        ``explain_mismatch(ours, theirs)`` words a refused peer's handshake for the log."""
        listen = [multiaddr.Multiaddr(a) for a in net.listen]
        host = new_host(
            key_pair=identity.to_libp2p_keypair(),
            listen_addrs=listen,
            announce_addrs=[multiaddr.Multiaddr(a) for a in net.announce] or None,
        )
        self = cls(
            identity, net, host, swarm_id=swarm_id, handshake=handshake, validator=validator,
            explain_mismatch=explain_mismatch,
        )
        guard_streams(host, self.stats)
        _no_auto_connector(host)
        body_ok = False
        try:
            async with AsyncExitStack() as stack:
                await stack.enter_async_context(host.run(listen))
                await stack.enter_async_context(background_trio_service(self.pubsub))
                await stack.enter_async_context(background_trio_service(self.pubsub.router))
                await self.pubsub.wait_until_ready()
                outer = await stack.enter_async_context(trio.open_nursery())
                # Our tasks live in a nursery owned by a background task, so close() can cancel
                # them without cancelling the caller's own code inside this block.
                self._nursery = await outer.start(_task_nursery)
                self._nat_status = await start_nat_services(host, net, stack)
                self._start()
                try:
                    yield self
                    body_ok = True
                finally:
                    await self.close()
        except BaseExceptionGroup as group:
            leaves = _leaves(group)
            if body_ok and all(isinstance(e, Exception) for e in leaves):
                # py-libp2p can trip over its own shutdown (a stream handler scheduling work
                # on a service nursery that is closing); the node is leaving anyway.
                log.warning("%s: error while stopping libp2p: %r", self.peer_id, leaves)
                return
            # host.run and the services wrap the body's exception in nested groups; hand a
            # lone exception back as itself so `async with open(...)` is transparent to errors.
            if len(leaves) == 1:
                raise leaves[0] from None
            raise

    def _start(self) -> None:
        assert self._nursery is not None
        self._host.set_stream_handler(HELLO_PROTOCOL, self._serve_hello)
        self._host.get_network().register_notifee(_Notifee(self))
        for addr in self._net.bootstrap:
            self._nursery.start_soon(self._keep_bootstrap, addr)
        log.info("libp2p node %s listening on %s", self.peer_id, ", ".join(self.listen_addrs()))
        if any(state != "off" for state in self._nat_status.values()):
            log.info("NAT options: %s", self._nat_status)

    @property
    def peer_id(self) -> str:
        return self._identity.peer_id

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def nat_status(self) -> dict[str, str]:
        """What each NAT option does on this node ("on", "off", or why it is unavailable)."""
        return dict(self._nat_status)

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosed(f"{self.peer_id}: transport is closed")

    async def close(self) -> None:
        """End subscriptions, fail pending requests, stop our tasks. The host stops when the
        :meth:`open` block exits."""
        if self._closed:
            return
        self._closed = True
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.close()
        for scope in list(self._calls):
            scope.cancel()
        for protocol in list(self._served):
            self._host.remove_stream_handler(protocol)  # type: ignore[arg-type]
        self._served.clear()
        for outbox in self._outboxes.values():
            self.stats["dropped_closed"] += len(outbox.queue)
            outbox.queue.clear()
            outbox.wakeup.set()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        # Leave the network: peers see us go at once, and no gossip stream is still being read
        # while the pubsub service stops (py-libp2p does not expect that).
        with trio.move_on_after(_DIAL_TIMEOUT_S):
            for peer_id in list(self._host.get_connected_peers()):
                await self._disconnect(peer_id)
        await trio.lowlevel.checkpoint()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"Libp2pTransport({self.peer_id}, {state})"


async def _task_nursery(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    async with trio.open_nursery() as nursery:
        task_status.started(nursery)
        await trio.sleep_forever()


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out

