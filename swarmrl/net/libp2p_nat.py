"""The NAT options of NetworkConfig, wired to what py-libp2p (0.8.x) really offers.

* ``relay_hop``: run the circuit relay v2 *hop* service, so peers behind NAT can reserve a slot
  on this node and be reached through it (for bootstrap nodes on public addresses).
* ``relay``: run the circuit relay v2 client: the *stop* handler (accept relayed connections),
  the ``/p2p-circuit`` dialling transport, and relay discovery, which reserves a slot on
  connected peers that offer the hop service.
* ``autonat``: answer AutoNAT dial-back requests and ask connected peers every few minutes
  whether we are reachable; the verdict is in ``Libp2pTransport.nat_status["autonat"]``.
* ``hole_punching``: DCUtR; upgrades a relayed connection to a direct one. Needs ``relay``.

Each option is started only when set; if py-libp2p refuses to start one, the node logs why and
runs without it (``nat_status`` says so) rather than pretending it is on. None of this can be
exercised on a loopback-only test machine beyond starting and stopping; see docs/networking.md.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from typing import Any

import trio
from libp2p.abc import IHost
from libp2p.tools.anyio_service import background_trio_service

from swarmrl.net.libp2p_settings import NetworkSettings

log = logging.getLogger(__name__)

_AUTONAT_INTERVAL_S = 300.0
_AUTONAT_FIRST_CHECK_S = 30.0  # give the bootstrap dials time to connect before asking
_AUTONAT_STATUS = {0: "unknown", 1: "public", 2: "private"}


async def start_nat_services(
    host: IHost, net: NetworkSettings, stack: AsyncExitStack
) -> dict[str, str]:
    """Start the enabled NAT services on ``host`` (stopped when ``stack`` closes).

    Returns ``{option: status}`` with "off", "on", or "unavailable: <why>".
    """
    status = {"relay": "off", "relay_hop": "off", "autonat": "off", "hole_punching": "off"}
    if net.relay or net.relay_hop:
        status.update(await _start_relay(host, net, stack))
    if net.autonat:
        status["autonat"] = await _start_autonat(host, stack)
    if net.hole_punching:
        if status["relay"] != "on":
            status["hole_punching"] = "unavailable: needs relay = true"
            log.warning("hole_punching is set but relay is not: DCUtR disabled")
        else:
            status["hole_punching"] = await _start_service(
                "hole_punching", stack, lambda: _dcutr(host)
            )
    return status


async def _start_relay(host: IHost, net: NetworkSettings, stack: AsyncExitStack) -> dict[str, str]:
    from libp2p.relay.circuit_v2 import CircuitV2Protocol, CircuitV2Transport
    from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole

    out: dict[str, str] = {}
    protocol = CircuitV2Protocol(host, allow_hop=net.relay_hop)
    state = await _start_service("relay", stack, lambda: protocol)
    if net.relay_hop:
        out["relay_hop"] = state
    if not net.relay:
        return out
    if state != "on":
        out["relay"] = state
        return out
    try:
        roles = RelayRole.STOP | RelayRole.CLIENT
        if net.relay_hop:
            roles |= RelayRole.HOP
        transport = CircuitV2Transport(host, protocol, RelayConfig(roles=roles))
        host.get_network().transport_manager.add_transport(transport)  # type: ignore[attr-defined]
    except Exception as exc:
        out["relay"] = f"unavailable: {exc!r}"
        log.warning("circuit relay client could not start: %r; running without it", exc)
        return out
    out["relay"] = await _start_service("relay", stack, lambda: transport.discovery)
    return out


def _dcutr(host: IHost) -> Any:
    from libp2p.relay.circuit_v2 import DCUtRProtocol

    return DCUtRProtocol(host)


async def _start_service(name: str, stack: AsyncExitStack, make: Any) -> str:
    try:
        await stack.enter_async_context(background_trio_service(make()))
    except Exception as exc:
        log.warning("NAT option %s could not start: %r; running without it", name, exc)
        return f"unavailable: {exc!r}"
    return "on"


async def _start_autonat(host: IHost, stack: AsyncExitStack) -> str:
    try:
        from libp2p.host.autonat import AutoNATService

        service = AutoNATService(host, serve=True)  # type: ignore[arg-type]
    except Exception as exc:
        log.warning("AutoNAT could not start: %r; running without it", exc)
        return f"unavailable: {exc!r}"
    nursery = await stack.enter_async_context(trio.open_nursery())
    stack.callback(nursery.cancel_scope.cancel)  # runs before the nursery's own exit
    nursery.start_soon(_autonat_loop, host, service)
    return "on"


async def _autonat_loop(host: IHost, service: Any) -> None:
    await trio.sleep(_AUTONAT_FIRST_CHECK_S)
    while True:
        servers = list(host.get_connected_peers())
        if servers:
            try:
                verdict = await service.check_reachability(servers)
                log.info("AutoNAT: this node looks %s", _AUTONAT_STATUS.get(verdict, verdict))
            except Exception as exc:
                log.debug("AutoNAT check failed: %r", exc)
        await trio.sleep(_AUTONAT_INTERVAL_S)
