"""`wgconsole trace`: one client's packets across the LBs and the gateways, and what they mean.

Pure: the captured packets come in as records (poll.parsers.tcpdump makes them from the hosts'
tcpdump output), the client and what the poll knew about it as a `TraceTarget`; out come each
packet's hop and WireGuard message kind, the timeline on the bastion's clock, and a verdict
with what to do. Nothing is decrypted: a packet is known by its addresses, the first byte of
its UDP payload (the message type) and its length (docs/domain/wireguard.md); an initiation's
mac1 is checked against the gateways' public key by a function the caller passes in (the
BLAKE2s code lives with the prober, probe.handshake, a layer above this one).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from wgconsole.core.fleet import ClientView, Fleet
from wgconsole.core.inventory import Inventory
from wgconsole.core.records import Endpoint, IpvsService
from wgconsole.core.whereis import WhereIsError, parse_source, proposed_table

Role = Literal["lb", "gateway"]
# What one capture on a host looks for: the handshake messages (types 1-3, up to mac1), the
# data messages (type 4, their 16-byte header only), the tunnel address on the WireGuard
# interface (IP and transport headers only).
CaptureKind = Literal["handshake", "data", "tunnel"]
CAPTURE_KINDS: tuple[CaptureKind, ...] = get_args(CaptureKind)
Direction = Literal["in", "out"]
MessageKind = Literal["initiation", "response", "cookie", "data", "keepalive", "malformed", "inner"]
HopKind = Literal[
    "client-to-vip",  # LB, in: the client's packet to the VIP
    "lb-to-gateway",  # LB, out: the same after IPVS's DNAT, to a real server
    "gateway-to-lb",  # LB, in: a gateway's answer, before the reverse NAT
    "vip-to-client",  # LB, out: the answer from the VIP, after the reverse NAT
    "client-to-gateway-address",  # LB: the client sends to a gateway's own address (roamed)
    "gateway-to-client-unnatted",  # LB, out: a gateway's answer forwarded without reverse NAT
    "gateway-in",  # gateway: from the client (outer)
    "gateway-out",  # gateway: to the client (outer)
    "tunnel-in",  # gateway's WireGuard interface: decrypted, from the client's tunnel address
    "tunnel-out",  # gateway's WireGuard interface: to the client's tunnel address
    "other",  # the client's packet, seen where no hop above applies
]
HOP_KINDS: tuple[HopKind, ...] = get_args(HopKind)
VerdictCode = Literal[
    "ok",
    "no-packets-at-lb",
    "dropped-at-lb",
    "lost-between-lb-and-gateway",
    "wrong-server-key",
    "unknown-peer",
    "reply-bypasses-lb",
    "stale-session",
    "inconclusive",
]
VERDICT_CODES: tuple[VerdictCode, ...] = get_args(VerdictCode)
Mac1 = Literal["ok", "wrong", "not-captured"]

# The message types and sizes (drivers/net/wireguard/messages.h; docs/domain/wireguard.md).
TYPE_INITIATION = 1
TYPE_RESPONSE = 2
TYPE_COOKIE = 3
TYPE_DATA = 4
INITIATION_SIZE = 148
RESPONSE_SIZE = 92
COOKIE_SIZE = 64
DATA_HEADER = 16  # type, receiver index, counter: what a data message shows in clear
KEEPALIVE_SIZE = 32  # a data message of an empty payload: header + the 16-byte tag
MAC1_END = 132  # an initiation's bytes up to and with mac1 (116 + 16)
# A session's keys are unusable after REJECT_AFTER_TIME (180 s): no handshake since is none.
REJECT_AFTER_TIME = 180.0


@dataclass(frozen=True, slots=True)
class Packet:
    """One captured packet as its host's tcpdump showed it (nothing decrypted)."""

    host: str
    capture: CaptureKind
    time: float  # epoch seconds on the host's own clock
    interface: str
    direction: Direction | None  # None: tcpdump said neither In nor Out (B, M, P)
    src: Endpoint  # port 0 when not UDP
    dst: Endpoint
    length: int  # the UDP payload's length (outer), the IP packet's (tunnel)
    head: bytes = field(default=b"", repr=False)  # the captured start of the UDP payload


def message_kind(packet: Packet) -> MessageKind:
    """The WireGuard message a packet carries, by its first byte and its length."""
    if packet.capture == "tunnel":
        return "inner"
    if not packet.head:
        return "malformed"
    kind = packet.head[0]
    sizes = {
        TYPE_INITIATION: (INITIATION_SIZE, "initiation"),
        TYPE_RESPONSE: (RESPONSE_SIZE, "response"),
        TYPE_COOKIE: (COOKIE_SIZE, "cookie"),
    }
    if kind in sizes:
        size, name = sizes[kind]
        return name if packet.length == size else "malformed"  # type: ignore[return-value]
    if kind == TYPE_DATA:
        if packet.length == KEEPALIVE_SIZE:
            return "keepalive"
        # A data message is the header, a padded payload (a multiple of 16) and the tag.
        return "data" if packet.length > KEEPALIVE_SIZE and packet.length % 16 == 0 else "malformed"
    return "malformed"


@dataclass(frozen=True, slots=True)
class TraceTarget:
    """The client to trace and what the poll knew about it."""

    label: str  # its name, or its short key, or the address the operator gave
    public_key: str | None
    tunnel_address: str | None
    source: Endpoint | None  # its outer address as the LB sees it (port 0: any port)
    vip: Endpoint
    real_servers: Mapping[str, Endpoint]  # every gateway's, by name
    lb_gateway: str | None  # the gateway of its LB entry
    sh_gateway: str | None  # where sh sends a new flow of its address (None: dropped/unknown)
    sh_dropped: bool  # the model says sh drops a new flow of its address
    sh_reason: str | None  # why, in words (weight 0 without sh-fallback, no dests...)
    handshake_gateway: str | None
    handshake_ages: Mapping[str, float | None]  # per gateway: its session's age (None: never)
    wg_interfaces: Mapping[str, str]  # each gateway's WireGuard interface
    # The gateways that any LB entry from its address points to (other source ports: a flow
    # the client left, or the one it uses now when the client is not known to any gateway).
    entry_gateways: tuple[str, ...] = ()

    @property
    def traced_gateways(self) -> tuple[str, ...]:
        """The gateways the client can reach: its entry's, its sh choice, its handshake's, and
        those its address's other entries name; every gateway when none is known."""
        named = [self.lb_gateway, self.sh_gateway, self.handshake_gateway, *self.entry_gateways]
        chosen = tuple(dict.fromkeys(g for g in named if g is not None and g in self.real_servers))
        return chosen or tuple(self.real_servers)

    def to_json(self) -> dict[str, object]:
        return {
            "label": self.label,
            "public_key": self.public_key,
            "tunnel_address": self.tunnel_address,
            "source": None if self.source is None else _endpoint_text(self.source),
            "vip": str(self.vip),
            "lb_gateway": self.lb_gateway,
            "sh_gateway": self.sh_gateway,
            "handshake_gateway": self.handshake_gateway,
            "traced_gateways": list(self.traced_gateways),
        }


def _endpoint_text(e: Endpoint) -> str:
    return e.address if e.port == 0 else str(e)


@dataclass(frozen=True, slots=True)
class Hop:
    """One packet on the timeline."""

    at: float  # seconds since the trace began, on the bastion's clock (skew corrected)
    host: str
    role: Role
    hop: HopKind
    message: MessageKind
    src: Endpoint
    dst: Endpoint
    length: int
    gateway: str | None  # the gateway this packet goes to or comes from, when known
    mac1: Mac1 | None  # initiations only

    def to_json(self) -> dict[str, object]:
        return {
            "at": round(self.at, 6),
            "host": self.host,
            "role": self.role,
            "hop": self.hop,
            "message": self.message,
            "src": str(self.src),
            "dst": str(self.dst),
            "length": self.length,
            "gateway": self.gateway,
            "mac1": self.mac1,
        }


CaptureState = Literal["pending", "running", "done", "failed"]


@dataclass(frozen=True, slots=True)
class CaptureStatus:
    """One capture on one host: whether it ran, and why not."""

    host: str
    role: Role
    capture: CaptureKind
    state: CaptureState
    error: str | None = None  # printable already (the capture layer made it so)
    packets: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "host": self.host,
            "role": self.role,
            "capture": self.capture,
            "state": self.state,
            "error": self.error,
            "packets": self.packets,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    code: VerdictCode
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def classify(
    packet: Packet,
    role: Role,
    target: TraceTarget,
    mac1_ok: Callable[[bytes], bool] | None,
) -> Hop | None:
    """`packet`'s hop, or None when it is not the client's (another interface's copy of a
    tunnel address, say). `mac1_ok` says whether an initiation's first 132 bytes carry a
    mac1 made for the gateways' key (None: no key known)."""
    by_address = {rs.address: name for name, rs in target.real_servers.items()}
    hop: HopKind
    gateway: str | None = None
    vip = target.vip.address
    if packet.capture == "tunnel":
        if packet.interface != target.wg_interfaces.get(packet.host):
            return None
        if packet.src.address == target.tunnel_address:
            hop = "tunnel-in"
        elif packet.dst.address == target.tunnel_address:
            hop = "tunnel-out"
        else:
            return None
        gateway = packet.host
    elif role == "lb":
        src, dst = packet.src.address, packet.dst.address
        if dst == vip and packet.direction != "out":
            hop = "client-to-vip"
        elif src == vip and packet.direction != "in":
            hop = "vip-to-client"
        elif (
            dst in by_address
            and packet.direction == "out"
            and packet.dst.port == (target.real_servers[by_address[dst]].port)
        ):
            hop, gateway = "lb-to-gateway", by_address[dst]
        elif dst in by_address and packet.direction == "in":
            hop, gateway = "client-to-gateway-address", by_address[dst]
        elif src in by_address and packet.direction == "in":
            hop, gateway = "gateway-to-lb", by_address[src]
        elif src in by_address and packet.direction == "out":
            hop, gateway = "gateway-to-client-unnatted", by_address[src]
        else:
            hop = "other"
    else:
        gateway = packet.host
        if target.source is not None and packet.src.address == target.source.address:
            hop = "gateway-in"
        elif target.source is not None and packet.dst.address == target.source.address:
            hop = "gateway-out"
        else:
            hop = "other"
    message = message_kind(packet)
    mac1: Mac1 | None = None
    if message == "initiation":
        if len(packet.head) < MAC1_END or mac1_ok is None:
            mac1 = "not-captured"
        else:
            mac1 = "ok" if mac1_ok(packet.head[:MAC1_END]) else "wrong"
    return Hop(
        at=packet.time,
        host=packet.host,
        role=role,
        hop=hop,
        message=message,
        src=packet.src,
        dst=packet.dst,
        length=packet.length,
        gateway=gateway,
        mac1=mac1,
    )


def timeline(
    packets: Iterable[Packet],
    roles: Mapping[str, Role],
    target: TraceTarget,
    *,
    started: float,
    skews: Mapping[str, float],
    mac1_ok: Callable[[bytes], bool] | None,
) -> tuple[Hop, ...]:
    """Every packet of the client as a hop, in time order on the bastion's clock: a host's
    time minus its skew (its clock minus the bastion's, from the poll's clock readings),
    minus `started` (the bastion's epoch time when the trace began)."""
    hops = []
    for p in packets:
        role = roles.get(p.host)
        if role is None:
            continue
        hop = classify(p, role, target, mac1_ok)
        if hop is None:
            continue
        at = p.time - skews.get(p.host, 0.0) - started
        hops.append(_with_time(hop, at))
    hops.sort(key=lambda h: (h.at, h.host))
    return tuple(hops)


def _with_time(hop: Hop, at: float) -> Hop:
    return Hop(
        at, hop.host, hop.role, hop.hop, hop.message, hop.src, hop.dst, hop.length,
        hop.gateway, hop.mac1,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Seen:
    hops: Sequence[Hop]

    def of(self, *kinds: HopKind, gateway: str | None = None) -> list[Hop]:
        return [
            h for h in self.hops if h.hop in kinds and (gateway is None or h.gateway == gateway)
        ]


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def verdict(
    target: TraceTarget,
    hops: Sequence[Hop],
    captures: Sequence[CaptureStatus],
    seconds: float,
) -> Verdict:
    """What the hops say, the first that applies in the order a packet travels."""
    seen = _Seen(hops)
    ran = {(c.host, c.capture) for c in captures if c.state in ("running", "done")}
    lbs_ran = any(c.role == "lb" and (c.host, c.capture) in ran for c in captures)
    failed = [c for c in captures if c.state == "failed"]
    caveat = ""
    if failed:
        hosts = sorted({c.host for c in failed})
        caveat = f" (no capture on {', '.join(hosts)}: see the captures)"

    def gateway_ran(name: str) -> bool:
        return (name, "handshake") in ran and (name, "data") in ran

    inbound = seen.of("client-to-vip")
    forwarded = seen.of("lb-to-gateway")
    direct = seen.of("client-to-gateway-address")
    at_gateways = seen.of("gateway-in")
    from_gateways = seen.of("gateway-out")
    back_at_lb = seen.of("gateway-to-lb")
    to_client = seen.of("vip-to-client")
    unnatted = seen.of("gateway-to-client-unnatted")
    initiations = [h for h in hops if h.message == "initiation" and h.hop in _FROM_CLIENT]
    answers = [h for h in from_gateways + back_at_lb if h.message in ("response", "cookie")]

    if not lbs_ran:
        return Verdict(
            "inconclusive",
            "no capture ran on any load balancer: nothing can be said about the client's "
            "packets" + caveat,
        )
    if direct or (not inbound and at_gateways):
        where = sorted({h.gateway for h in direct + at_gateways if h.gateway})
        return Verdict(
            "reply-bypasses-lb",
            f"the client sends to {', '.join(where)}'s own address, not to the VIP: it roamed "
            "after an answer reached it without the LB's reverse NAT. Fix the gateway's route "
            f"back to {_source(target)} (through the LB), then point the client back at "
            f"{target.vip} (or restart its tunnel)" + caveat,
        )
    if not inbound:
        hint = ""
        if target.source is None:
            hint = " (its outer address is not known: give ADDR[:PORT])"
        return Verdict(
            "no-packets-at-lb",
            f"nothing from {_source(target)} reached the VIP in {seconds:g} s{hint}: check the "
            "client's side (tunnel up, Endpoint = "
            f"{target.vip}, the path to the VIP, firewalls); a keepalive-only client sends "
            "every PersistentKeepalive seconds: make it send during the trace" + caveat,
        )
    if not forwarded:
        why = target.sh_reason or "no real server is available for its bucket"
        return Verdict(
            "dropped-at-lb",
            f"{_count(len(inbound), 'packet')} from the client reached the VIP and none was "
            f"forwarded to a gateway: {why}. Turn sh-fallback on, or give the gateway its "
            "weight back (wgconsole undrain)" + caveat,
        )
    wrong = [h for h in initiations if h.mac1 == "wrong"]
    right = [h for h in initiations if h.mac1 == "ok"]
    # One initiation is seen at every hop it crosses: counted where the most were seen.
    n_wrong, n_right = _per_hop(wrong), _per_hop(right)
    if wrong and not right and not answers:
        return Verdict(
            "wrong-server-key",
            f"{_count(n_wrong, 'initiation')} whose mac1 does not match the gateways' public "
            "key: the client's config names another server key. Give it the gateways' "
            "public key ([Peer] PublicKey)" + caveat,
        )
    gateways_sent = sorted({h.gateway for h in forwarded if h.gateway})
    silent = [g for g in gateways_sent if gateway_ran(g) and not seen.of("gateway-in", gateway=g)]
    if silent and not at_gateways:
        return Verdict(
            "lost-between-lb-and-gateway",
            f"the LB forwarded {_count(len(forwarded), 'packet')} to {', '.join(silent)}, which "
            "received none: check the path between them (routes, firewalls, the real "
            "server's address)" + caveat,
        )
    if right and not answers:
        return Verdict(
            "unknown-peer",
            f"{_count(n_right, 'initiation')} made for the gateways' key reached "
            f"{', '.join(gateways_sent)} and none was answered: the client's public key is not "
            "a peer there (wgconsole peer add), or its initiations are replays (its clock "
            "went back)" + caveat,
        )
    if from_gateways and not back_at_lb:
        where = sorted({h.gateway for h in from_gateways if h.gateway})
        return Verdict(
            "reply-bypasses-lb",
            f"{', '.join(where)} answered the client ({_count(len(from_gateways), 'packet')}) "
            "but no answer came back through the LB: the gateway's route to "
            f"{_source(target)} bypasses the LB's reverse NAT, so the client roams to the "
            "gateway's own address or drops the answers. Route the client's addresses via "
            "the LB" + caveat,
        )
    if unnatted and not to_client:
        return Verdict(
            "reply-bypasses-lb",
            f"the LB forwarded {_count(len(unnatted), 'answer')} of the gateways to the client "
            "without the reverse NAT (no IPVS entry for it): the client sees them from the "
            "gateway's own address and roams there" + caveat,
        )
    if back_at_lb and not to_client:
        return Verdict(
            "dropped-at-lb",
            f"{_count(len(back_at_lb), 'answer')} of the gateways reached the LB and none "
            "went on to the client from the VIP: check the LB's IPVS entry and its route "
            "to the client" + caveat,
        )
    stale = _stale(target, seen, gateways_sent, initiations, gateway_ran)
    if stale is not None:
        return Verdict("stale-session", stale + caveat)
    if to_client:
        return Verdict(
            "ok",
            f"packets both ways through the VIP: {_count(len(inbound), 'packet')} in, "
            f"{_count(len(to_client), 'packet')} back, via {', '.join(gateways_sent)}" + caveat,
        )
    return Verdict(
        "ok",
        f"the client's {_count(len(inbound), 'packet')} reached {', '.join(gateways_sent)} "
        "through the VIP and its session there is fresh; nothing needed an answer "
        "(keepalives)" + caveat,
    )


def _per_hop(hops: Sequence[Hop]) -> int:
    """How many packets the busiest hop saw: a packet is counted once per hop it crosses."""
    per: dict[tuple[str, HopKind], int] = {}
    for h in hops:
        per[(h.host, h.hop)] = per.get((h.host, h.hop), 0) + 1
    return max(per.values(), default=0)


_FROM_CLIENT: frozenset[HopKind] = frozenset(
    ("client-to-vip", "lb-to-gateway", "gateway-in", "client-to-gateway-address")
)


def _stale(
    target: TraceTarget,
    seen: _Seen,
    gateways: Sequence[str],
    initiations: Sequence[Hop],
    gateway_ran: Callable[[str], bool],
) -> str | None:
    """Data from the client reaching a gateway that has no session for it, and no handshake
    during the trace: the gateway drops it silently (WireGuard answers nothing it cannot
    decrypt), and the client only re-handshakes at its own timers."""
    if initiations:
        return None
    for g in gateways:
        if not gateway_ran(g):
            continue
        arrived = [
            h for h in seen.of("gateway-in", gateway=g) if h.message in ("data", "keepalive")
        ]
        if not arrived:
            continue
        age = target.handshake_ages.get(g)
        no_session = age is None or age > REJECT_AFTER_TIME
        data = [h for h in arrived if h.message == "data"]
        undecrypted = (
            bool(data)
            and not seen.of("tunnel-in", gateway=g)
            and not (seen.of("gateway-out", gateway=g))
        )
        if no_session or undecrypted:
            said = "never" if age is None else f"{age:.0f} s ago"
            return (
                f"{_count(len(arrived), 'data packet')} from the client reached {g}, which has "
                f"no session for it (last handshake there: {said}) and nobody re-handshook: "
                "the client re-initiates only at its own timers (up to 2-3 minutes for a "
                "keepalive-only client). Restart the client's tunnel, or have the gateway "
                "initiate (wgconsole rebalance kicks a moved client)"
            )
    return None


def _source(target: TraceTarget) -> str:
    return "the client" if target.source is None else _endpoint_text(target.source)


@dataclass(frozen=True, slots=True)
class TraceReport:
    """A trace, whole or as far as it went (the console shows each as it fills in)."""

    target: TraceTarget
    seconds: float
    hops: tuple[Hop, ...]
    captures: tuple[CaptureStatus, ...]
    verdict: Verdict | None  # None while the trace runs
    finished: bool = False
    stopped_early: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "client": self.target.to_json(),
            "seconds": self.seconds,
            "stopped_early": self.stopped_early,
            "captures": [c.to_json() for c in self.captures],
            "hops": [h.to_json() for h in self.hops],
            "verdict": None if self.verdict is None else self.verdict.to_json(),
        }

    def counts(self) -> dict[HopKind, dict[MessageKind, int]]:
        """How many packets of each message kind each hop saw, hops in travel order."""
        out: dict[HopKind, dict[MessageKind, int]] = {}
        for kind in HOP_KINDS:
            of_kind = [h for h in self.hops if h.hop == kind]
            if not of_kind:
                continue
            per: dict[MessageKind, int] = {}
            for h in of_kind:
                per[h.message] = per.get(h.message, 0) + 1
            out[kind] = per
        return out


class TraceError(ValueError):
    """The trace cannot be made (no such client, nothing to capture): says why."""


def _is_key(text: str) -> bool:
    return len(text) == 44 and text.endswith("=") and not any(c in text for c in ":. ")


def resolve_target(
    inventory: Inventory, fleet: Fleet, query: str, *, port: int | None = None
) -> TraceTarget:
    """The client that `query` names (an inventory name, a public key, its tunnel address,
    or its outer ADDR[:PORT] as the LB sees it), with what the poll knows of it. An outer
    address that matches no known client is traced as an anonymous client."""
    if fleet.service is None:
        raise TraceError("the service was not found on any answering load balancer")
    client: ClientView | None = None
    source: Endpoint | None = None
    if any(c.name == query for c in fleet.clients):
        client = next(c for c in fleet.clients if c.name == query)
    elif _is_key(query):
        client = fleet.client(query)
        if client is None:
            raise TraceError(f"no client has the public key {query}")
    else:
        try:
            given = parse_source(query)
        except WhereIsError:
            raise TraceError(
                f"{query!r} is not a client's name, public key, or ADDR[:PORT]"
            ) from None
        in_tunnel = _in_network(given.address, inventory.tunnel.network)
        for c in fleet.clients:
            if in_tunnel and c.address == given.address:
                client = c
                break
            if not in_tunnel and c.lb_entry is not None and _same(c.lb_entry.client, given):
                client = c
                break
        if client is None and in_tunnel:
            raise TraceError(f"no client has the tunnel address {given.address}")
        if not in_tunnel:
            source = given
    if source is None and client is not None:
        source = _outer_source(client)
    svc = fleet.service
    real_servers = {gw.name: gw.real_server for gw in inventory.gateways}
    sh_gateway, dropped, reason = _sh_choice(inventory, svc.raw, source)
    if client is not None:
        label = client.label
    elif source is not None:
        label = _endpoint_text(source)
    else:
        label = query
    return TraceTarget(
        label=label,
        public_key=None if client is None else client.public_key,
        tunnel_address=None if client is None else client.address,
        source=source,
        vip=Endpoint(svc.vip, svc.port),
        real_servers=real_servers,
        lb_gateway=None if client is None else client.lb_gateway,
        sh_gateway=sh_gateway,
        sh_dropped=dropped,
        sh_reason=reason,
        handshake_gateway=None if client is None else client.handshake_gateway,
        handshake_ages={}
        if client is None
        else {p.gateway: p.handshake_age for p in client.per_gateway},
        wg_interfaces={gw.name: gw.interface for gw in inventory.gateways},
        entry_gateways=_entry_gateways(inventory, fleet, source),
    )


def _entry_gateways(inventory: Inventory, fleet: Fleet, source: Endpoint | None) -> tuple[str, ...]:
    """The gateways that the LB entries from `source`'s address (any port when its port is
    0) point to: the kernel sends the client's packets by its entry, whatever sh would pick."""
    if source is None or fleet.service is None:
        return ()
    vip = Endpoint(fleet.service.vip, fleet.service.port)
    names = {gw.real_server: gw.name for gw in inventory.gateways}
    found = [
        names[c.dest]
        for c in fleet.conns
        if c.virtual == vip
        and c.client.address == source.address
        and source.port in (0, c.client.port)
        and c.dest in names
    ]
    return tuple(sorted(set(found)))


def _same(entry: Endpoint, given: Endpoint) -> bool:
    return entry.address == given.address and given.port in (0, entry.port)


def _in_network(address: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


def _outer_source(client: ClientView) -> Endpoint | None:
    """The client's outer address: its LB entry's, else the endpoint its handshake gateway
    (then any gateway) has for it. IPVS's masquerade leaves the source as it is, so a
    gateway sees the client's own address."""
    if client.lb_entry is not None:
        return client.lb_entry.client
    peers = sorted(
        (p for p in client.per_gateway if p.endpoint is not None),
        key=lambda p: p.gateway != client.handshake_gateway,
    )
    return peers[0].endpoint if peers else None


def _sh_choice(
    inventory: Inventory, service: IpvsService, source: Endpoint | None
) -> tuple[str | None, bool, str | None]:
    """Where sh sends a new flow of `source` (the gateway's name), whether it drops it, and
    why in words."""
    if source is None or service.scheduler != "sh":
        return None, False, None
    if not service.dests:
        return None, True, "the service has no real servers"
    model = proposed_table(inventory, service)
    pick = model.pick(source.address, source.port)
    names = {gw.real_server: gw.name for gw in inventory.gateways}
    if pick.dest is not None:
        return names.get(pick.dest, str(pick.dest)), False, None
    index = model.table[pick.bucket]
    if index is None:
        return None, True, "its sh bucket holds no real server"
    dest = model.dests[index]
    name = names.get(dest.key, str(dest.key))
    state = "weight 0" if dest.weight <= 0 else "overloaded"
    return (
        None,
        True,
        f"its sh bucket {pick.bucket} holds {name}, which is unavailable ({state}), and the "
        "service has no sh-fallback",
    )
