"""What one poll of one host observed, as immutable records.

Both transports (SSH text parsed by `parsers`, local netlink through pyroute2)
produce exactly these records, so the model never knows which one was used.
No record ever holds a private key: parsers drop it at the first line of a dump.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from typing import Literal, get_args


class ServiceFlag(IntFlag):
    """IPVS service flags as the kernel numbers them (include/uapi/linux/ip_vs.h)."""

    PERSISTENT = 0x01
    HASHED = 0x02
    ONEPACKET = 0x04
    SH_FALLBACK = 0x08  # IP_VS_SVC_F_SCHED1
    SH_PORT = 0x10  # IP_VS_SVC_F_SCHED2


# How IPVS forwards to a real server; "unknown": a method number netlink gave that has no
# name here (include/uapi/linux/ip_vs.h has none either).
ForwardMethod = Literal["masq", "local", "tunnel", "route", "bypass", "unknown"]
FWD_METHODS: dict[int, ForwardMethod] = {
    0: "masq",
    1: "local",
    2: "tunnel",
    3: "route",
    4: "bypass",
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An IP address and port; IPv6 addresses are kept in their compressed text form."""

    address: str
    port: int

    def __str__(self) -> str:
        if ":" in self.address:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class IpvsDest:
    """A real server of a virtual service."""

    endpoint: Endpoint
    weight: int
    forward: ForwardMethod
    active_conns: int
    inactive_conns: int
    u_threshold: int = 0
    l_threshold: int = 0
    conns: int = 0  # total connections scheduled (stats)
    in_packets: int = 0
    out_packets: int = 0
    in_bytes: int = 0
    out_bytes: int = 0


@dataclass(frozen=True, slots=True)
class IpvsService:
    # "udp", "tcp", "sctp"; "fwm" for a firewall-mark service; any other protocol as the
    # kernel names it, lowercased: not a fixed set.
    protocol: str
    vip: Endpoint
    scheduler: str
    flags: int  # ServiceFlag bits, as netlink reports them
    timeout: int = 0  # persistence timeout, 0 = not persistent
    dests: tuple[IpvsDest, ...] = ()  # kernel order: newest first

    @property
    def sh_fallback(self) -> bool:
        return bool(self.flags & ServiceFlag.SH_FALLBACK)

    @property
    def sh_port(self) -> bool:
        return bool(self.flags & ServiceFlag.SH_PORT)

    def flag_names(self) -> list[str]:
        names = []
        if self.flags & ServiceFlag.PERSISTENT:
            names.append("persistent")
        if self.flags & ServiceFlag.ONEPACKET:
            names.append("ops")
        if self.sh_fallback:
            names.append("sh-fallback")
        if self.sh_port:
            names.append("sh-port")
        return names


@dataclass(frozen=True, slots=True)
class IpvsConn:
    """One entry of /proc/net/ip_vs_conn."""

    protocol: str
    client: Endpoint
    virtual: Endpoint
    dest: Endpoint
    state: str
    expires: int  # seconds left


# The steps a drain records, in order: its record is written before anything changes and
# again after each step. A record read back is input like any other (another version, a
# person, or a failed write may have put anything there): it is validated when parsed, and a
# record that does not validate keeps only its `problem`.
DrainPhase = Literal["started", "deleted", "readded", "done"]
DRAIN_PHASES: tuple[DrainPhase, ...] = get_args(DrainPhase)


@dataclass(frozen=True, slots=True)
class DrainRecord:
    """What a drain keeps on each load balancer (/run/wgconsole/drain-<gateway>.json).

    It stays after a finished drain (undrain reads the weight to restore from it, then
    removes it); the kernel's state says whether the drain it belongs to got to its end.
    """

    gateway: str  # inventory name, from the file name
    previous_weight: int | None  # 0..MAX_WEIGHT; None: a bad record (see problem)
    phase: DrainPhase | None  # the last step recorded; None: not recorded, or a bad record
    started: float | None  # bastion epoch time the drain began
    problem: str | None = None  # why the record cannot be used; None: it can
    fenced: bool = False  # every LB drops what the gateway sends (ops.hostcmd.fence)
    evicted: bool = False  # the guard's eviction, not an operator's drain


@dataclass(frozen=True, slots=True)
class LockRecord:
    """An operation holding the service lock on a load balancer right now (or that died)."""

    operator: str
    action: str
    since: float | None
    problem: str | None = None  # why its owner file cannot be read; the lock is held anyway
    file: str | None = None  # the owner file on the LB; None: not listed (older captures)
    site: str | None = None  # the site its operation acts on, when it said (several loaded)


# --- the director pair: what one LB says of its part in it ---------------------------------

# A VRRP instance's state as keepalived names it (vrrp.h: INIT 0, BACKUP 1, MASTER 2, FAULT 3;
# STOP covers its stopping and deleted states).
VrrpState = Literal["INIT", "BACKUP", "MASTER", "FAULT", "STOP"]
VRRP_STATES: tuple[VrrpState, ...] = get_args(VrrpState)
# Where keepalived's VRRP state was read: the JSON dump it writes on its JSON signal
# (`keepalived --signum=JSON`, builds with JSON support), or the text dump it writes on
# SIGUSR1 (every build).
KeepalivedSource = Literal["json", "data"]
SyncRole = Literal["master", "backup"]


@dataclass(frozen=True, slots=True)
class VrrpInstance:
    """One `vrrp_instance` as keepalived itself reports it."""

    name: str
    state: VrrpState
    priority: int  # effective priority (base plus tracking), as VRRP advertises it
    base_priority: int
    vrid: int
    interface: str
    vips: tuple[str, ...]  # the virtual addresses (no prefix length), as keepalived lists them


@dataclass(frozen=True, slots=True)
class KeepalivedRealServer:
    endpoint: Endpoint
    weight: int  # keepalived's default: 1
    inhibit_on_failure: bool  # a failed check sets weight 0 instead of deleting the dest


@dataclass(frozen=True, slots=True)
class KeepalivedVirtualServer:
    """A `virtual_server ADDRESS PORT` block of keepalived's config: what a reload applies."""

    protocol: str  # lowercased; keepalived's default: tcp
    vip: Endpoint
    scheduler: str | None  # lb_algo; None: not given
    flags: int  # ServiceFlag bits given (sh-fallback, sh-port)
    real_servers: tuple[KeepalivedRealServer, ...]  # in the config's order


@dataclass(frozen=True, slots=True)
class KeepalivedReport:
    """What keepalived reported on one LB (None on the observation: none runs there)."""

    source: KeepalivedSource
    instances: tuple[VrrpInstance, ...]
    config_path: str | None  # the config file it was started with
    # Its config's virtual_servers; None: the config could not be read (see problem).
    virtual_servers: tuple[KeepalivedVirtualServer, ...] | None
    # The config has `include` lines, which are not followed: a virtual_server may be there.
    config_includes: bool = False
    problem: str | None = None  # what could not be read (the rest stands)


@dataclass(frozen=True, slots=True)
class SyncDaemon:
    """One IPVS connection-sync daemon (`ipvsadm -Ln --daemon`)."""

    role: SyncRole
    interface: str
    syncid: int  # 0-255 (a byte in the kernel's sync messages)
    # The multicast group and port (the kernel's defaults when ipvsadm prints none).
    group: str = "224.0.0.81"
    port: int = 8848
    # The largest sync message it sends or, a backup, reads (bytes of UDP payload); None:
    # not printed (a kernel before 4.3 derived it from the interface's MTU).
    maxlen: int | None = None


@dataclass(frozen=True, slots=True)
class IpvsTimeouts:
    """`ipvsadm -L --timeout`, seconds."""

    tcp: int
    tcp_fin: int
    udp: int


@dataclass(frozen=True, slots=True)
class VsSysctls:
    """net.ipv4.vs.* as the kernel reports them, by name (the set varies by kernel), text
    values as read (whitespace collapsed: sync_threshold is two numbers)."""

    values: tuple[tuple[str, str], ...]  # sorted by name

    def get(self, name: str) -> str | None:
        for key, value in self.values:
            if key == name:
                return value
        return None

    def number(self, name: str) -> int | None:
        value = self.get(name)
        if value is None or not value.lstrip("-").isdigit():
            return None
        return int(value)

    @property
    def sync_threshold(self) -> tuple[int, int] | None:
        """(threshold, period): an entry is synced at its `threshold`th packet, then every
        `period` packets."""
        parts = (self.get("sync_threshold") or "").split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            return None
        return int(parts[0]), int(parts[1])


@dataclass(frozen=True, slots=True)
class LbObservation:
    host: str  # inventory name
    clock: float  # the LB's own epoch time when it was read
    services: tuple[IpvsService, ...]
    conns: tuple[IpvsConn, ...]
    expire_nodest_conn: bool | None  # None: could not be read
    drain_records: tuple[DrainRecord, ...] = ()
    locks: tuple[LockRecord, ...] = ()
    # The director pair. None: not read (a capture made before these were read, or a
    # transport that cannot: see poll.transport.netlink).
    addresses: tuple[str, ...] | None = None  # every local address, no prefix length
    sync_daemons: tuple[SyncDaemon, ...] | None = None  # () none runs
    timeouts: IpvsTimeouts | None = None
    sysctls: VsSysctls | None = None
    keepalived: KeepalivedReport | None = None  # None: no keepalived runs (or not read)
    # Director facts that could not be read (each a parser's message): the LB's poll stands,
    # these facts are unknown (keepalived running but its dump unreadable is one).
    director_problems: tuple[str, ...] = ()
    # keepalived runs there (or whether it does could not be read) but its report could not be
    # read: `keepalived` is None without meaning that none runs.
    keepalived_unknown: bool = False


@dataclass(frozen=True, slots=True)
class WgPeer:
    public_key: str
    has_preshared_key: bool
    endpoint: Endpoint | None
    allowed_ips: tuple[str, ...]
    latest_handshake: int  # epoch seconds on the gateway's clock, 0 = never
    rx_bytes: int
    tx_bytes: int
    keepalive: int  # 0 = off


@dataclass(frozen=True, slots=True)
class WgInterface:
    """`wg show IF dump` without the private key, plus the link state."""

    name: str
    public_key: str
    listen_port: int
    fwmark: int  # 0 = off
    peers: tuple[WgPeer, ...]


@dataclass(frozen=True, slots=True)
class GatewayObservation:
    host: str  # inventory name
    clock: float  # the gateway's own epoch time when it was read
    link_up: bool | None  # None: the interface does not exist
    interface: WgInterface | None  # None: down or missing (see error)
    error: str | None = None

    @classmethod
    def missing(cls, host: str, clock: float, interface: str) -> GatewayObservation:
        """A gateway that answered but has no such WireGuard interface."""
        return cls(host, clock, None, None, f"interface {interface} does not exist")


HostRole = Literal["lb", "gateway"]
# Why a host did not answer, where the transport told it apart from any other failure: its
# SSH host key is not in known_hosts, or differs from the one there (not a network fault:
# someone else may be answering for the host).
HostErrorKind = Literal["host-key-unknown", "host-key-changed"]


@dataclass(frozen=True, slots=True)
class HostStatus:
    name: str
    role: HostRole
    reachable: bool
    error: str | None = None
    last_success: float | None = None  # bastion epoch time of the last good poll
    poll_seconds: float | None = None  # duration of the last poll
    error_kind: HostErrorKind | None = None  # None: answered, or failed in another way
