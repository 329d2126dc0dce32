"""The fleet as the model sees it: immutable views of services, real servers, gateways and
clients, their findings, and the helpers that read observations the same way everywhere.

Pure: no I/O and no clock reads (see `wgconsole.core.fleet_builder` for how a poll becomes a Fleet).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from wgconsole.core.inventory import Gateway, Inventory
from wgconsole.core.records import (
    Endpoint,
    ForwardMethod,
    HostStatus,
    IpvsConn,
    IpvsDest,
    IpvsService,
    IpvsTimeouts,
    KeepalivedSource,
    KeepalivedVirtualServer,
    LbObservation,
    SyncDaemon,
    VrrpState,
    VsSysctls,
)

# WireGuard timers (drivers/net/wireguard/messages.h), in seconds.
REKEY_AFTER_TIME = 120.0
REJECT_AFTER_TIME = 180.0

# The fixed vocabularies: each a Literal type (mypy checks every value written) and the tuple
# of its values, in the order they sort in (for code that goes through them).
Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
SEVERITY_RANK: Mapping[Severity, int] = {name: rank for rank, name in enumerate(SEVERITIES)}

# A client's freshest handshake against the WireGuard timers (model.client_status).
ClientStatus = Literal["fresh", "ageing", "stale", "never"]
CLIENT_STATUSES: tuple[ClientStatus, ...] = get_args(ClientStatus)
# "evicted": at weight 0 by the guard's eviction (its record on the LB), whatever its host says.
RealServerState = Literal["active", "drained", "quiescent", "evicted", "missing", "unreachable"]
REAL_SERVER_STATES: tuple[RealServerState, ...] = get_args(RealServerState)


def short_key(public_key: str) -> str:
    """A WireGuard public key shortened for display: enough to tell peers apart."""
    return public_key[:8] + "…"


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    severity: Severity
    subject: str
    message: str
    # Lets the model hand each client its own codes without matching on display names,
    # which may collide; excluded from equality so Finding(code, severity, subject, message)
    # compares as the four documented fields.
    client_key: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITY_RANK:
            raise ValueError(f"unknown severity {self.severity!r}")

    @property
    def rank(self) -> int:
        """0 for critical, 1 for warning, 2 for info: lower is worse."""
        return SEVERITY_RANK[self.severity]

    def sort_key(self) -> tuple[int, str, str, str]:
        return (self.rank, self.code, self.subject, self.message)

    def to_json(self) -> dict[str, str]:
        return {
            "code": self.code,
            "severity": self.severity,
            "subject": self.subject,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class ServiceView:
    lb: str
    protocol: str
    vip: str
    port: int
    scheduler: str
    flags: tuple[str, ...]
    sh_fallback: bool
    sh_port: bool
    expire_nodest_conn: bool | None
    dests: tuple[IpvsDest, ...]  # kernel order, newest first
    raw: IpvsService  # everything the sh bucket model needs (flags, dest order, weights)

    @property
    def label(self) -> str:
        return service_label(self.protocol, Endpoint(self.vip, self.port))

    def to_json(self) -> dict[str, Any]:
        return {
            "lb": self.lb,
            "vip": self.vip,
            "port": self.port,
            "protocol": self.protocol,
            "scheduler": self.scheduler,
            "flags": list(self.flags),
            "expire_nodest_conn": self.expire_nodest_conn,
        }


@dataclass(frozen=True, slots=True)
class RealServerView:
    gateway: str | None  # None: an IPVS dest that is not in the inventory
    address: Endpoint
    weight: int | None  # None: the inventory gateway is not a dest of the service
    forward: ForwardMethod | None
    active_conns: int
    inactive_conns: int
    lb_entries: int
    conns: int
    in_packets: int
    out_packets: int
    in_bytes: int
    out_bytes: int
    state: RealServerState
    kernel_index: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "gateway": self.gateway,
            "address": str(self.address),
            "weight": self.weight,
            "forward": self.forward,
            "state": self.state,
            "connections": self.lb_entries,
            "active_conns": self.active_conns,
            "inactive_conns": self.inactive_conns,
            "in_packets": self.in_packets,
            "out_packets": self.out_packets,
            "in_bytes": self.in_bytes,
            "out_bytes": self.out_bytes,
            "kernel_index": self.kernel_index,
        }


@dataclass(frozen=True, slots=True)
class GatewayView:
    name: str
    reachable: bool
    link_up: bool | None
    public_key: str | None
    listen_port: int | None
    peer_count: int | None
    clock_skew: float | None  # gateway clock - bastion taken_at, seconds
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reachable": self.reachable,
            "link_up": self.link_up,
            "public_key": self.public_key,
            "listen_port": self.listen_port,
            "peers": self.peer_count,
            "clock_skew": self.clock_skew,
        }


@dataclass(frozen=True, slots=True)
class PeerOnGateway:
    gateway: str
    endpoint: Endpoint | None
    handshake_age: float | None  # None: never; measured on that gateway's clock
    rx_bytes: int
    tx_bytes: int
    allowed_ips: tuple[str, ...]
    keepalive: int

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": None if self.endpoint is None else str(self.endpoint),
            "handshake_age": self.handshake_age,
            "rx_bytes": self.rx_bytes,
            "tx_bytes": self.tx_bytes,
        }


@dataclass(frozen=True, slots=True)
class ClientView:
    public_key: str
    name: str | None
    address: str | None
    endpoint: str | None
    per_gateway: tuple[PeerOnGateway, ...]
    lb_gateway: str | None
    lb_entry: IpvsConn | None
    handshake_gateway: str | None
    handshake_age: float | None
    status: ClientStatus
    # The gateway this client would land on if the backup director took over now (see
    # core.director): its synced entry's there, else the backup's sh choice; None: dropped,
    # or no backup (one LB), or no source address known for it.
    failover_gateway: str | None = None
    # It has a synced entry on the backup; None: no backup director.
    failover_synced: bool | None = None
    findings: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.name if self.name else short_key(self.public_key)

    def on(self, gateway: str) -> PeerOnGateway | None:
        for peer in self.per_gateway:
            if peer.gateway == gateway:
                return peer
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "public_key": self.public_key,
            "address": self.address,
            "endpoint": self.endpoint,
            "lb_gateway": self.lb_gateway,
            "handshake_gateway": self.handshake_gateway,
            "handshake_age": self.handshake_age,
            "status": self.status,
            "findings": list(self.findings),
            "gateways": {peer.gateway: peer.to_json() for peer in self.per_gateway},
            "failover_gateway": self.failover_gateway,
            "failover_synced": self.failover_synced,
        }


# The JSON contract's vrrp_state: MASTER, BACKUP or FAULT. keepalived's INIT and STOP are
# instances that neither hold the VIP nor can take it over: FAULT there.
_CONTRACT_STATE: dict[VrrpState, str] = {
    "MASTER": "MASTER",
    "BACKUP": "BACKUP",
    "FAULT": "FAULT",
    "INIT": "FAULT",
    "STOP": "FAULT",
}

# A bucket of a table: the gateway a new client hashed there is sent to (its inventory name,
# or the dest's address when no gateway has it); None: dropped.
Table = tuple[str | None, ...]


@dataclass(frozen=True, slots=True)
class DirectorView:
    """One LB as a director of the pair."""

    name: str
    reachable: bool
    holds_vip: bool | None  # the VIP is one of its addresses; None: addresses not read
    is_reference: bool  # the LB the others' tables are compared with (the VIP holder)
    vrrp_instance: str | None  # keepalived's instance carrying the VIP (else its first one)
    vrrp_state: VrrpState | None  # as keepalived reports it; None: no keepalived, or unread
    vrrp_priority: int | None  # its effective priority
    vrrp_source: KeepalivedSource | None  # which keepalived dump it was read from
    sync_daemons: tuple[SyncDaemon, ...] | None  # None: not read
    sysctls: VsSysctls | None
    timeouts: IpvsTimeouts | None
    expire_nodest_conn: bool | None
    service: IpvsService | None  # its copy of the inventory's service (flags, order, weights)
    table: Table | None  # its 256 buckets; None: no sh service (or not answering)
    buckets_differing: int | None  # buckets whose gateway differs from the reference's
    synced_clients: int | None  # the clients with a synced entry here (None: the reference)
    keepalived_service: KeepalivedVirtualServer | None  # the service's virtual_server
    keepalived_managed: bool | None  # keepalived's config has it; None: unknown (no config)
    problems: tuple[str, ...]  # director facts that could not be read
    # keepalived runs (or may) but could not be read: whether it owns the service is unknown.
    keepalived_unknown: bool = False

    def sync_daemon_json(self) -> dict[str, Any] | None:
        """{"master": {...} | None, "backup": {...} | None}; None: none runs, or not read."""
        if not self.sync_daemons:
            return None
        out: dict[str, Any] = {"master": None, "backup": None}
        for daemon in self.sync_daemons:
            out[daemon.role] = {"interface": daemon.interface, "syncid": daemon.syncid}
        return out

    def to_json(self) -> dict[str, Any]:
        state = None if self.vrrp_state is None else _CONTRACT_STATE[self.vrrp_state]
        return {
            "name": self.name,
            "reachable": self.reachable,
            "holds_vip": bool(self.holds_vip),
            "vrrp_state": state,
            "buckets_differing": self.buckets_differing,
            "sync_daemon": self.sync_daemon_json(),
            "vrrp_priority": self.vrrp_priority,
            "vrrp_source": self.vrrp_source,
            "reference": self.is_reference,
            "synced_clients": self.synced_clients,
            "keepalived_managed": self.keepalived_managed,
            # What a keepalived reload applies to the service here (its config's real_servers).
            "keepalived_restores": None
            if self.keepalived_service is None
            else [
                {"address": str(r.endpoint), "weight": r.weight}
                for r in self.keepalived_service.real_servers
            ],
            "timeouts": None
            if self.timeouts is None
            else {
                "tcp": self.timeouts.tcp,
                "tcpfin": self.timeouts.tcp_fin,
                "udp": self.timeouts.udp,
            },
            "sysctls": None if self.sysctls is None else dict(self.sysctls.values),
            "problems": list(self.problems),
        }


@dataclass(frozen=True, slots=True)
class ProbeView:
    """An inventory prober's peer, as each gateway that carries it has it (not a client)."""

    name: str
    public_key: str
    per_gateway: tuple[PeerOnGateway, ...]


@dataclass(frozen=True, slots=True)
class Fleet:
    taken_at: float
    service: ServiceView | None
    real_servers: tuple[RealServerView, ...]
    clients: tuple[ClientView, ...]
    gateways: tuple[GatewayView, ...]
    hosts: tuple[HostStatus, ...]
    findings: tuple[Finding, ...]
    conns: tuple[IpvsConn, ...]
    # The directors, in inventory order (core.director); the VIP holder (the LB the others'
    # tables are compared with) and the LB that would take over from it (None: one LB).
    load_balancers: tuple[DirectorView, ...] = ()
    vip_holder: str | None = None
    failover_lb: str | None = None
    probes: tuple[ProbeView, ...] = ()

    def client(self, public_key: str) -> ClientView | None:
        for view in self.clients:
            if view.public_key == public_key:
                return view
        return None

    def gateway(self, name: str) -> GatewayView | None:
        for view in self.gateways:
            if view.name == name:
                return view
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "taken_at": self.taken_at,
            "service": None if self.service is None else self.service.to_json(),
            "real_servers": [rs.to_json() for rs in self.real_servers],
            "clients": [c.to_json() for c in self.clients],
            "gateways": [g.to_json() for g in self.gateways],
            "hosts": [_host_json(h, self.taken_at) for h in self.hosts],
            "findings": [f.to_json() for f in self.findings],
            "load_balancers": [lb.to_json() for lb in self.load_balancers],
            "vip_holder": self.vip_holder,
            "failover_lb": self.failover_lb,
        }


def _host_json(host: HostStatus, now: float) -> dict[str, Any]:
    age = None if host.last_success is None else round(max(0.0, now - host.last_success), 3)
    return {
        "name": host.name,
        "role": host.role,
        "reachable": host.reachable,
        "error": host.error,
        "last_success": host.last_success,
        "last_success_age": age,  # seconds: how old this host's data is; None: never answered
    }


# --- helpers shared with findings -------------------------------------------------------


def service_label(protocol: str, vip: Endpoint) -> str:
    return f"{protocol.lower()} {vip}"


def normalize_endpoint(endpoint: Endpoint) -> Endpoint:
    """Canonical address text, so a hand-typed inventory address equals the kernel's form."""
    try:
        address = ipaddress.ip_address(endpoint.address).compressed
    except ValueError:
        return endpoint
    return Endpoint(address, endpoint.port)


def matching_service(inventory: Inventory, lb: LbObservation) -> IpvsService | None:
    """The IPVS service on `lb` that is the inventory's virtual service, if any."""
    protocol = inventory.service.protocol.lower()
    vip = normalize_endpoint(inventory.service.endpoint)
    for service in lb.services:
        if service.protocol.lower() == protocol and normalize_endpoint(service.vip) == vip:
            return service
    return None


def is_unavailable(dest: IpvsDest) -> bool:
    """The kernel's view (ip_vs_sh.c is_unavailable): weight <= 0 or over its upper threshold."""
    if dest.weight <= 0:
        return True
    total = dest.active_conns + dest.inactive_conns
    return dest.u_threshold > 0 and total >= dest.u_threshold


def gateways_by_real_server(inventory: Inventory) -> dict[Endpoint, Gateway]:
    # inventory.gateway_for is a linear scan; conns are many, so index once.
    return {normalize_endpoint(gw.real_server): gw for gw in inventory.gateways}


# --- building ---------------------------------------------------------------------------
