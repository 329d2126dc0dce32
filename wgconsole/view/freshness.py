"""How old each host's data is, and the last data of hosts that stopped answering.

A fleet only holds what answered this poll. The console still wants to show what an
unreachable gateway last said (its peers, its interface) — but marked as stale with its
age, never as current. `Keeper` remembers each host's last good data; `host_ages` tells
how old every host's data is at a given moment of the (injectable) clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from wgconsole.core.fleet import Fleet, GatewayView, PeerOnGateway, RealServerView, ServiceView
from wgconsole.core.records import HostRole, HostStatus


@dataclass(frozen=True, slots=True)
class HostAge:
    name: str
    role: HostRole
    reachable: bool
    age: float | None  # seconds since its last good poll; None: it never answered
    error: str | None
    poll_seconds: float | None

    @property
    def stale(self) -> bool:
        """Whatever is shown from this host predates the last poll."""
        return not self.reachable


def host_ages(hosts: Sequence[HostStatus], now: float) -> tuple[HostAge, ...]:
    return tuple(
        HostAge(
            name=h.name,
            role=h.role,
            reachable=h.reachable,
            age=None if h.last_success is None else max(0.0, now - h.last_success),
            error=h.error,
            poll_seconds=h.poll_seconds,
        )
        for h in hosts
    )


@dataclass(frozen=True, slots=True)
class KeptGateway:
    as_of: float  # bastion time of the last poll it answered
    view: GatewayView
    peers: Mapping[str, PeerOnGateway]  # by client public key


@dataclass(frozen=True, slots=True)
class KeptLb:
    as_of: float
    service: ServiceView | None
    real_servers: tuple[RealServerView, ...]
    lb_entries: int


@dataclass(frozen=True, slots=True)
class Kept:
    """Last good data of the hosts that did not answer this poll (and only those)."""

    gateways: Mapping[str, KeptGateway] = field(default_factory=dict)
    lb: KeptLb | None = None

    def gateway(self, name: str) -> KeptGateway | None:
        return self.gateways.get(name)


NOTHING_KEPT = Kept()


class Keeper:
    """Not thread-safe: one poll worker owns it."""

    def __init__(self) -> None:
        self._gateways: dict[str, KeptGateway] = {}
        self._lb: KeptLb | None = None

    def update(self, fleet: Fleet) -> Kept:
        reachable = {gw.name for gw in fleet.gateways if gw.reachable}
        if reachable:
            peers: dict[str, dict[str, PeerOnGateway]] = {name: {} for name in reachable}
            for client in fleet.clients:
                for peer in client.per_gateway:
                    bucket = peers.get(peer.gateway)
                    if bucket is not None:
                        bucket[client.public_key] = peer
            for gw in fleet.gateways:
                if gw.reachable:
                    self._gateways[gw.name] = KeptGateway(fleet.taken_at, gw, peers[gw.name])
        lb_answered = any(h.reachable for h in fleet.hosts if h.role == "lb")
        if lb_answered:
            self._lb = KeptLb(fleet.taken_at, fleet.service, fleet.real_servers, len(fleet.conns))
        return Kept(
            gateways={
                gw.name: self._gateways[gw.name]
                for gw in fleet.gateways
                if not gw.reachable and gw.name in self._gateways
            },
            lb=None if lb_answered else self._lb,
        )
