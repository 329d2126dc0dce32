"""Findings: what an operator should look at, derived from one fleet snapshot.

One small function per finding code. Each returns the findings it found (possibly none),
so a new check is one more function and one more line in `derive_findings`.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from operator import attrgetter, is_
from typing import Any

from wgconsole.core.bulk import Columns
from wgconsole.core.director import director_findings
from wgconsole.core.fleet import (
    REJECT_AFTER_TIME,
    SEVERITIES,
    SEVERITY_RANK,
    ClientView,
    Finding,
    Fleet,
    Severity,
    gateways_by_real_server,
    is_unavailable,
    matching_service,
    service_label,
    short_key,
)
from wgconsole.core.inventory import Inventory, LoadBalancer
from wgconsole.core.op_checks import DrainCheck, describe_lock, drain_checks, way_out
from wgconsole.core.rebalance import ShChoice, fleet_choice
from wgconsole.core.records import (
    GatewayObservation,
    HostStatus,
    IpvsService,
    LbObservation,
    WgInterface,
    WgPeer,
)

# How many differing keys a config-drift message names before "and N more".
EXAMPLES = 3


def derive_findings(
    fleet: Fleet,
    inventory: Inventory,
    lbs: Mapping[str, LbObservation | None],
    gateways: Mapping[str, GatewayObservation | None],
    clients_found: Sequence[Finding] | None = None,
    order: ClientFindingsOrder | None = None,
) -> tuple[Finding, ...]:
    """Every finding for the snapshot, worst first, then by code and subject.

    `clients_found`: the findings of `fleet.clients`, in client order, if already derived
    (`client_findings`, as a FleetBuilder does); `order`: what sorted the previous poll's
    client findings (its FleetBuilder's), to use its work again.
    """
    found: list[Finding] = [
        *host_unreachable(fleet.hosts, inventory, lbs, gateways, fleet.taken_at),
        *interface_down(inventory, gateways, drained(inventory, lbs, gateways)),
        *config_drift(inventory, gateways),
        *half_done_operations(inventory, lbs, gateways, fleet.taken_at),
        *evictions(inventory, lbs),
        *director_findings(fleet, inventory),
    ]
    for lb in inventory.load_balancers:
        obs = lbs.get(lb.name)
        if obs is not None:
            found.extend(_lb_findings(inventory, lb, obs))
    if clients_found is None:
        # The LB table only proves a bypass when the service was found on an answering LB.
        per_client = client_findings(
            fleet.clients,
            lb_has_service=fleet.service is not None,
            inventory_lists_clients=bool(inventory.clients),
            failover_lb=fleet.failover_lb,
            sh_choice=fleet_choice(inventory, fleet),
        )
        clients_found = [f for client in per_client for f in client]
    if order is None:
        order = ClientFindingsOrder()
    ordered = order.worst_first(list(clients_found))
    # The few others are placed among them, each before its equals: the order of one
    # stable sort of all of them, others first.
    for finding in reversed(_worst_first(found)):
        bisect.insort_left(ordered, finding, key=_ORDER)
    return tuple(ordered)


def _worst_first(found: list[Finding]) -> list[Finding]:
    """`found` in Finding.sort_key order (stable), sorted in C: there can be tens of
    thousands."""
    found = sorted(found, key=_TEXT_ORDER)
    return [f for severity in SEVERITIES for f in found if f.severity == severity]


_TEXT_ORDER = attrgetter("code", "subject", "message")
_ORDER = Finding.sort_key


class ClientFindingsOrder:
    """Sorts one poll's client findings after another's, remembering the latest: when a
    poll's client findings are the very same records (nothing changed), the sort is not
    done again. Held by a FleetBuilder, for its sequence of polls."""

    def __init__(self) -> None:
        # The latest client findings as they came, and sorted; replaced whole.
        self._latest: tuple[list[Finding], list[Finding]] = ([], [])

    def worst_first(self, found: list[Finding]) -> list[Finding]:
        """`found` in Finding.sort_key order (stable), as a new list."""
        given, ordered = self._latest
        if len(given) != len(found) or not all(map(is_, given, found)):
            ordered = _worst_first(found)
            self._latest = (found, ordered)
        return list(ordered)


def _lb_findings(inventory: Inventory, lb: LoadBalancer, obs: LbObservation) -> list[Finding]:
    found = list(expire_nodest_off(lb, obs))
    service = matching_service(inventory, obs)
    if service is None:
        return [*found, *service_missing(inventory, lb)]
    return [
        *found,
        *sh_no_fallback(lb, service),
        *real_server_missing(inventory, lb, service),
        *unknown_real_server(inventory, lb, service),
    ]


def client_findings(
    clients: Sequence[ClientView],
    *,
    lb_has_service: bool,
    inventory_lists_clients: bool,
    failover_lb: str | None = None,
    sh_choice: ShChoice | None = None,
) -> list[tuple[Finding, ...]]:
    """The findings of each client, in the order of `clients`.

    `lb_has_service`: the service was found on an answering LB, so that the LB table can
    prove a bypass; `inventory_lists_clients`: a peer not in the inventory is unknown;
    `failover_lb`: the director that would take over the VIP (None: one LB);
    `sh_choice`: the current sh table's gateway per bucket (None: no sh service to compare
    the clients' LB entries with).
    """
    # A first poll of 10,000 clients has tens of thousands of findings. Each check runs
    # over all the clients at once (a comprehension, not a call per client and check) and
    # the findings are built column-wise (parsers.bulk), then handed to their clients.
    labels = list(map(_LABEL, clients))
    checks: list[tuple[str, Severity, _Flagged]] = []  # code, severity, what it flagged
    if lb_has_service:
        checks.append(("bypassing-lb", "critical", bypassing_lb(clients, labels)))
    checks.append(("split", "warning", split(clients, labels)))
    on = _On(clients)  # both checks below name a client's gateways: joined once
    checks.append(("never", "info", never(clients, labels, on)))
    checks.append(("stale", "warning", stale(clients, labels)))
    if inventory_lists_clients:
        checks.append(("unknown-peer", "info", unknown_peer(clients, labels, on)))
    if failover_lb is not None:
        checks.append(("failover-moves", "warning", failover_moves(clients, labels, failover_lb)))
        checks.append(("no-synced-entry", "info", no_synced_entry(clients, labels, failover_lb)))
    if sh_choice is not None:
        checks.append(("not-on-sh-choice", "info", not_on_sh_choice(clients, labels, sh_choice)))
    # The check Finding.__post_init__ would make (the severities are this module's own).
    unknown = {severity for _, severity, _ in checks} - SEVERITY_RANK.keys()
    if unknown:
        raise ValueError(f"unknown severity {sorted(unknown)[0]!r}")
    # One row per finding, check by check; `owner` is the index of its client.
    owner = [i for _, _, (flagged, _) in checks for i in flagged]
    built = _FINDINGS.build(
        [code for code, _, (flagged, _) in checks for _ in flagged],
        [severity for _, severity, (flagged, _) in checks for _ in flagged],
        map(labels.__getitem__, owner),
        [message for _, _, (_, messages) in checks for message in messages],
        [clients[i].public_key for i in owner],
    )
    # Each client's findings in the order of the checks above, as they were built.
    per_client: list[list[Finding]] = [[] for _ in clients]
    for i, finding in zip(owner, built, strict=True):
        per_client[i].append(finding)
    return list(map(tuple, per_client))


# What one check flagged: the indexes of its clients (in order) and a message for each.
_Flagged = tuple[list[int], list[str]]
_FINDINGS = Columns(Finding, ("code", "severity", "subject", "message", "client_key"))
_LABEL = attrgetter("label")


# --- hosts and interfaces -------------------------------------------------------------


def host_unreachable(
    hosts: Sequence[HostStatus],
    inventory: Inventory,
    lbs: Mapping[str, LbObservation | None],
    gateways: Mapping[str, GatewayObservation | None],
    now: float | None = None,
) -> list[Finding]:
    found = []
    for host in hosts:
        if not host.reachable:
            error = f": {host.error}" if host.error else ""
            message = f"{host.role} {host.name} did not answer this poll{error}."
            if now is not None:
                message += " " + _last_answer(host.last_success, now)
            code = "host-unreachable"
            if host.error_kind == "host-key-changed":
                # Not a network fault: someone else may be answering for this host.
                code = "host-key-changed"
                message += " It is not polled until known_hosts is fixed."
            found.append(Finding(code, "critical", host.name, message))
    reported = {h.name for h in hosts if not h.reachable}
    # A host with no observation but no failed status either must not vanish silently.
    silent = [lb.name for lb in inventory.load_balancers if lbs.get(lb.name) is None]
    silent += [gw.name for gw in inventory.gateways if gateways.get(gw.name) is None]
    for name in silent:
        if name not in reported:
            message = f"{name} returned no observation this poll."
            found.append(Finding("host-unreachable", "critical", name, message))
    return found


def _last_answer(last_success: float | None, now: float) -> str:
    if last_success is None:
        return "No answer from it yet."
    return f"Last answer {max(0.0, now - last_success):.0f} s ago; its data shown is that old."


def drained(
    inventory: Inventory,
    lbs: Mapping[str, LbObservation | None],
    gateways: Mapping[str, GatewayObservation | None],
) -> frozenset[str]:
    """Gateways a finished drain took out, as every answering LB's record and state show."""
    checks = list(drain_checks(inventory, lbs, gateways))
    done = {c.gateway for c in checks if not c.half_done}
    return frozenset(done - {c.gateway for c in checks if c.half_done})


def interface_down(
    inventory: Inventory,
    gateways: Mapping[str, GatewayObservation | None],
    drained: frozenset[str] = frozenset(),
) -> list[Finding]:
    found = []
    for gw in inventory.gateways:
        obs = gateways.get(gw.name)
        if obs is None or (obs.interface is not None and obs.link_up is True):
            continue
        if gw.name in drained and obs.link_up is False:
            message = (
                f"{gw.interface} on {gw.name} is down: it is drained (weight 0 on every LB, "
                f"sh-fallback on); `wgconsole undrain {gw.name}` returns it to service."
            )
            found.append(Finding("interface-down", "info", gw.name, message))
            continue
        state = "does not exist" if obs.link_up is None else "is down"
        error = f" ({obs.error})" if obs.error else ""
        message = (
            f"{gw.interface} on {gw.name} {state}{error}: clients the LB sends there get no answer."
        )
        found.append(Finding("interface-down", "critical", gw.name, message))
    return found


# --- the guard's evictions -------------------------------------------------------------


def evictions(inventory: Inventory, lbs: Mapping[str, LbObservation | None]) -> list[Finding]:
    """A gateway the guard evicted (its record on an answering LB): an incident someone must
    look at, whatever the gateway's host says now."""
    found = []
    names = {gw.name for gw in inventory.gateways}
    seen: set[str] = set()
    for lb in inventory.load_balancers:
        obs = lbs.get(lb.name)
        for record in obs.drain_records if obs is not None else ():
            if not record.evicted or record.gateway not in names or record.gateway in seen:
                continue
            seen.add(record.gateway)
            when = (
                ""
                if record.started is None
                else time.strftime(" at %Y-%m-%d %H:%M:%S UTC", time.gmtime(record.started))
            )
            message = (
                f"{record.gateway} was evicted by the guard{when}: weight 0 and fenced on the "
                f"LBs. Once it answers again, `wgconsole undrain {record.gateway}` returns it "
                "(its interface re-created, the fence lifted)."
            )
            found.append(Finding("gateway-evicted", "warning", record.gateway, message))
    return found


# --- operations cut short -------------------------------------------------------------


def half_done_operations(
    inventory: Inventory,
    lbs: Mapping[str, LbObservation | None],
    gateways: Mapping[str, GatewayObservation | None],
    now: float,
) -> list[Finding]:
    """Drains (or undrains) that did not get to their end, and service locks left held."""
    found = []
    by_gateway: dict[str, list[DrainCheck]] = {}
    for check in drain_checks(inventory, lbs, gateways):
        if check.half_done:
            by_gateway.setdefault(check.gateway, []).append(check)
    for gateway, checks in by_gateway.items():
        where = "; ".join(f"on {c.lb}: {', '.join(c.problems)}" for c in checks)
        phase = checks[0].record.phase
        step = f" (last recorded step: {phase})" if phase else ""
        lock = next((c.lock for c in checks if c.lock is not None), None)
        held = ""
        if lock is not None:
            held = (
                f" The service lock is held by {describe_lock(lock, now)}: if that operation "
                "is no longer running, add --break-lock."
            )
        out = way_out(gateway, bad_record=any(c.record.problem is not None for c in checks))
        message = f"A drain of {gateway} did not finish{step}: {where}. {out}.{held}"
        found.append(Finding("half-done-drain", "warning", gateway, message))
    label = service_label(inventory.service.protocol, inventory.service.endpoint)
    explained = {c.lb for checks in by_gateway.values() for c in checks}
    for lb in inventory.load_balancers:
        obs = lbs.get(lb.name)
        if obs is None or not obs.locks or lb.name in explained:
            continue
        message = (
            f"The service lock on {lb.name} is held by {describe_lock(obs.locks[0], now)}. "
            "If no operation is running, it was cut short: check `wgconsole status` for "
            "half-done changes; the next operation needs --break-lock."
        )
        found.append(Finding("service-locked", "info", label, message))
    return found


# --- load balancer --------------------------------------------------------------------


def expire_nodest_off(lb: LoadBalancer, obs: LbObservation) -> list[Finding]:
    if obs.expire_nodest_conn is not False:
        return []
    message = (
        f"net.ipv4.vs.expire_nodest_conn is 0 on {lb.name}: flows to a deleted real server "
        "never move to another gateway; set it to 1."
    )
    return [Finding("expire-nodest-off", "warning", lb.name, message)]


def sh_no_fallback(lb: LoadBalancer, service: IpvsService) -> list[Finding]:
    if service.scheduler != "sh" or service.sh_fallback:
        return []
    label = service_label(service.protocol, service.vip)
    unavailable = [str(d.endpoint) for d in service.dests if is_unavailable(d)]
    flags = ",".join(["sh-fallback", *(["sh-port"] if service.sh_port else [])])
    fix = f"ipvsadm -E --{service.protocol.lower()}-service {service.vip} -s sh -b {flags}"
    message = (
        f"{label} on {lb.name} uses sh without sh-fallback: a weight-0 or overloaded gateway "
        "black-holes the new clients hashed to it (measured: about half of new clients "
        "dropped with 2 gateways)."
    )
    severity: Severity = "warning"
    if unavailable:
        severity = "critical"
        message += (
            f" Unavailable right now: {', '.join(unavailable)}; "
            "new clients hashed there are dropped."
        )
    return [Finding("sh-no-fallback", severity, label, f"{message} Fix: {fix}")]


def service_missing(inventory: Inventory, lb: LoadBalancer) -> list[Finding]:
    label = service_label(inventory.service.protocol, inventory.service.endpoint)
    message = f"The virtual service {label} does not exist on {lb.name}: it balances nothing."
    return [Finding("real-server-missing", "critical", label, message)]


def real_server_missing(
    inventory: Inventory, lb: LoadBalancer, service: IpvsService
) -> list[Finding]:
    present = {d.endpoint for d in service.dests}
    label = service_label(service.protocol, service.vip)
    found = []
    for real_server, gw in gateways_by_real_server(inventory).items():
        if real_server in present:
            continue
        message = (
            f"{gw.name}'s real server {real_server} is not a dest of {label} on {lb.name}: "
            "the LB sends it no clients."
        )
        found.append(Finding("real-server-missing", "critical", gw.name, message))
    return found


def unknown_real_server(
    inventory: Inventory, lb: LoadBalancer, service: IpvsService
) -> list[Finding]:
    known = gateways_by_real_server(inventory)
    label = service_label(service.protocol, service.vip)
    found = []
    for dest in service.dests:
        if dest.endpoint in known:
            continue
        message = (
            f"{label} on {lb.name} has real server {dest.endpoint} (weight {dest.weight}) "
            "that is no gateway in the inventory."
        )
        found.append(Finding("real-server-missing", "warning", label, message))
    return found


# --- configuration drift --------------------------------------------------------------


def config_drift(
    inventory: Inventory, gateways: Mapping[str, GatewayObservation | None]
) -> list[Finding]:
    """The gateways must carry one identical wg0: any difference breaks failover for someone."""
    ifaces: list[tuple[str, WgInterface]] = []
    for gw in inventory.gateways:
        obs = gateways.get(gw.name)
        if obs is not None and obs.interface is not None:
            ifaces.append((gw.name, obs.interface))
    if len(ifaces) < 2:
        return []
    subject = ", ".join(name for name, _ in ifaces)
    messages = [
        _drift_public_key(ifaces),
        _drift_listen_port(ifaces),
        _drift_peer_set(ifaces),
        _drift_peer_field(ifaces, "allowed IPs", _ALLOWED_IPS, _ignore_order, _render_allowed_ips),
        _drift_peer_field(ifaces, "keepalives", _KEEPALIVE, _as_is, _render_keepalive),
    ]
    return [Finding("config-drift", "critical", subject, m) for m in messages if m]


def _drift_public_key(ifaces: Sequence[tuple[str, WgInterface]]) -> str | None:
    if len({i.public_key for _, i in ifaces}) < 2:
        return None
    values = ", ".join(f"{name} {short_key(i.public_key)}" for name, i in ifaces)
    return (
        f"Interface public keys differ ({values}): clients moved to another gateway "
        "cannot handshake with it."
    )


def _drift_listen_port(ifaces: Sequence[tuple[str, WgInterface]]) -> str | None:
    if len({i.listen_port for _, i in ifaces}) < 2:
        return None
    values = ", ".join(f"{name} {i.listen_port}" for name, i in ifaces)
    return f"Listen ports differ ({values}): the real servers' ports must match wg0."


def _drift_peer_set(ifaces: Sequence[tuple[str, WgInterface]]) -> str | None:
    keys = {name: {p.public_key for p in i.peers} for name, i in ifaces}
    everywhere = set.intersection(*keys.values())
    partial = sorted(set.union(*keys.values()) - everywhere)
    if not partial:
        return None
    examples = [
        f"{short_key(k)} missing on {', '.join(n for n, ks in keys.items() if k not in ks)}"
        f" (on {', '.join(n for n, ks in keys.items() if k in ks)})"
        for k in partial[:EXAMPLES]
    ]
    return (
        f"Peer sets differ: {len(partial)} peer(s) not on every gateway "
        f"({'; '.join(examples)}{_more(len(partial))}): they cannot fail over. "
        "If a `peer add` or `peer remove` was cut short, running it again finishes it "
        "(`peer add NAME --public-key KEY` adds it where missing; for a prober, `probe "
        "setup` on its machine); `peer remove KEY` removes it everywhere."
    )


def _drift_peer_field(
    ifaces: Sequence[tuple[str, WgInterface]],
    what: str,
    value: Callable[[WgPeer], Hashable],
    normalize: Callable[[Any], Hashable],
    render: Callable[[WgPeer], str],
) -> str | None:
    """Peers whose `normalize(value(peer))` differs between gateways, if any.

    This runs on every poll over every peer of every gateway. Gateways that agree (the
    usual case) have equal {key: value} maps, which C code builds and compares; equal raw
    values are equal once normalized. Only otherwise is each peer compared with the first
    normalized value seen for its key.
    """
    keyed = (zip(map(_PUBLIC_KEY, i.peers), map(value, i.peers), strict=True) for _, i in ifaces)
    maps = [dict(pairs) for pairs in keyed]
    if all(len(m) == len(i.peers) for m, (_, i) in zip(maps, ifaces, strict=True)) and all(
        m == maps[0] for m in maps[1:]
    ):
        return None
    first: dict[str, Hashable] = {}
    differing: set[str] = set()
    for _, iface in ifaces:
        for peer in iface.peers:
            v = normalize(value(peer))
            if first.setdefault(peer.public_key, v) != v:
                differing.add(peer.public_key)
    if not differing:
        return None
    shown = sorted(differing)
    examples = [_peer_values(key, ifaces, render) for key in shown[:EXAMPLES]]
    return f"Peer {what} differ on {len(shown)} peer(s) ({'; '.join(examples)}{_more(len(shown))})."


def _peer_values(
    key: str, ifaces: Sequence[tuple[str, WgInterface]], render: Callable[[WgPeer], str]
) -> str:
    parts = [
        f"{name}: {render(peer)}"
        for name, iface in ifaces
        for peer in iface.peers
        if peer.public_key == key
    ]
    return f"{short_key(key)} " + ", ".join(parts)


_PUBLIC_KEY = attrgetter("public_key")
_ALLOWED_IPS = attrgetter("allowed_ips")
_KEEPALIVE = attrgetter("keepalive")


def _ignore_order(allowed_ips: tuple[str, ...]) -> frozenset[str]:
    return frozenset(allowed_ips)


def _as_is(value: Hashable) -> Hashable:
    return value


def _render_allowed_ips(peer: WgPeer) -> str:
    return ", ".join(sorted(peer.allowed_ips)) or "(none)"


def _render_keepalive(peer: WgPeer) -> str:
    return f"{peer.keepalive} s" if peer.keepalive else "off"


def _more(count: int) -> str:
    return f"; and {count - EXAMPLES} more" if count > EXAMPLES else ""


# --- clients --------------------------------------------------------------------------


def bypassing_lb(clients: Sequence[ClientView], labels: Sequence[str]) -> _Flagged:
    """Clients with a recent handshake from an endpoint but no LB entry (critical)."""
    flagged: list[int] = []
    messages: list[str] = []
    for i in [i for i, client in enumerate(clients) if client.lb_entry is None]:
        direct = [
            p
            for p in clients[i].per_gateway
            if p.endpoint is not None
            and p.handshake_age is not None
            and p.handshake_age <= REJECT_AFTER_TIME
        ]
        if direct:
            where = ", ".join(f"{p.gateway} from {p.endpoint}" for p in direct)
            flagged.append(i)
            messages.append(
                f"{labels[i]} has a recent handshake ({where}) but no LB entry: it talks to "
                "the gateway directly, bypassing the VIP, and will not fail over."
            )
    return flagged, messages


def split(clients: Sequence[ClientView], labels: Sequence[str]) -> _Flagged:
    """Clients the LB sends to another gateway than their freshest handshake's (warning)."""
    flagged = [
        i
        for i, c in enumerate(clients)
        if c.lb_gateway is not None
        and c.handshake_gateway is not None
        and c.lb_gateway != c.handshake_gateway
    ]
    messages = [
        f"The LB sends {labels[i]} to {c.lb_gateway} but its freshest handshake "
        f"({_age(c.handshake_age)} ago) is on {c.handshake_gateway}: {c.lb_gateway} has no "
        "session for it until it re-handshakes."
        for i, c in zip(flagged, map(clients.__getitem__, flagged), strict=True)
    ]
    return flagged, messages


def stale(clients: Sequence[ClientView], labels: Sequence[str]) -> _Flagged:
    """Clients whose freshest handshake is past REJECT_AFTER_TIME (warning)."""
    flagged = [
        i
        for i, c in enumerate(clients)
        if c.handshake_age is not None and c.handshake_age > REJECT_AFTER_TIME
    ]
    messages = [
        f"{labels[i]}'s freshest handshake is {_age(c.handshake_age)} old "
        f"(on {c.handshake_gateway}), past REJECT_AFTER_TIME ({REJECT_AFTER_TIME:.0f} s): "
        "it has no usable session."
        for i, c in zip(flagged, map(clients.__getitem__, flagged), strict=True)
    ]
    return flagged, messages


def never(clients: Sequence[ClientView], labels: Sequence[str], on: _On) -> _Flagged:
    """Clients with no handshake on any gateway (info)."""
    flagged = [i for i, c in enumerate(clients) if c.handshake_age is None]
    messages = [
        f"{labels[i]} has no handshake on any answering gateway ({on[i]})."
        if c.per_gateway
        else f"{labels[i]} is in the inventory but configured on no answering gateway."
        for i, c in zip(flagged, map(clients.__getitem__, flagged), strict=True)
    ]
    return flagged, messages


def unknown_peer(clients: Sequence[ClientView], labels: Sequence[str], on: _On) -> _Flagged:
    """Peers that are not in the inventory's clients (info; only when it lists clients)."""
    flagged = [i for i, c in enumerate(clients) if c.name is None]
    # A client without a name is labelled by its short key.
    messages = [f"Peer {labels[i]} on {on[i]} is not in the inventory's clients." for i in flagged]
    return flagged, messages


def failover_moves(clients: Sequence[ClientView], labels: Sequence[str], backup: str) -> _Flagged:
    """Clients that a failover to `backup` would send to another gateway (warning)."""
    flagged = [
        i
        for i, c in enumerate(clients)
        if c.lb_gateway is not None
        and c.failover_synced is not None
        and c.failover_gateway != c.lb_gateway
    ]
    messages = []
    for i in flagged:
        c = clients[i]
        target = c.failover_gateway or "nowhere (dropped: its bucket's gateway is unavailable)"
        if c.failover_synced:
            why = f"its entry synced to {backup} points there (an old copy; a later sync fixes it)"
        else:
            why = (
                f"it has no synced entry on {backup}, whose sh table sends it there: align "
                f"{backup}'s table with the VIP holder's (finding backup-table-differs)"
            )
        messages.append(
            f"If {backup} took over now, {labels[i]} would go to {target} instead of "
            f"{c.lb_gateway}: {why}. There it has no session until it handshakes again "
            "(~15 s when it sends data, up to ~2 min keepalive-only); and what "
            f"{c.lb_gateway} still sends it (keepalives, replies) would pass {backup} without "
            "reverse NAT, so it would roam to that gateway's own address and bypass the VIP. "
            "`wgconsole failover` makes the old gateway forget it first."
        )
    return flagged, messages


def no_synced_entry(clients: Sequence[ClientView], labels: Sequence[str], backup: str) -> _Flagged:
    """Clients with an LB entry but no synced copy on `backup` (info: a keepalive-only client
    is re-sent rarely, see docs/domain/director-pair.md)."""
    flagged = [
        i for i, c in enumerate(clients) if c.lb_entry is not None and c.failover_synced is False
    ]
    messages = [
        f"{labels[i]} has no synced entry on {backup}: a failover schedules it by {backup}'s "
        f"own sh table (to {clients[i].failover_gateway or 'nowhere: dropped'}). Its entry is "
        "synced after net.ipv4.vs.sync_threshold packets (or sync_refresh_period)."
        for i in flagged
    ]
    return flagged, messages


def not_on_sh_choice(
    clients: Sequence[ClientView], labels: Sequence[str], choice: ShChoice
) -> _Flagged:
    """Clients whose LB entry points to another gateway than the one the current sh table
    picks for them (info): the entry was made before the table changed, and keepalives keep
    it there. One the table would drop is not flagged: it has nowhere better to go."""
    flagged: list[int] = []
    messages: list[str] = []
    for i, c in enumerate(clients):
        entry = c.lb_entry
        if entry is None or c.lb_gateway is None:
            continue
        sh = choice.gateway(entry.client)
        if sh is None or sh == c.lb_gateway:
            continue
        flagged.append(i)
        messages.append(
            f"{labels[i]}'s LB entry is on {c.lb_gateway}, but the sh table now sends it to "
            f"{sh}: the entry was made before the table changed (an undrain, a weight change, "
            "a gateway added) and its keepalives keep it there. `wgconsole rebalance` moves "
            "such clients, and only them."
        )
    return flagged, messages


class _On(dict[int, str]):
    """The gateways that carry clients[i], as a message names them; made on first use."""

    def __init__(self, clients: Sequence[ClientView]) -> None:
        super().__init__()
        self._clients = clients

    def __missing__(self, i: int) -> str:
        value = self[i] = ", ".join(map(_GATEWAY, self._clients[i].per_gateway))
        return value


_GATEWAY = attrgetter("gateway")


def _age(age: float | None) -> str:
    return "never" if age is None else f"{age:.0f} s"
