"""The derived fleet: one immutable snapshot built from one poll of every host (`FleetBuilder`).

Pure: no I/O and no clock reads. The bastion's time of the poll comes in as `taken_at`;
handshake ages are computed against each gateway's own clock (`GatewayObservation.clock`),
because `latest_handshake` is epoch seconds on that gateway's clock and bastion/gateway
clocks may disagree by far more than the WireGuard timers we compare against.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from itertools import compress, repeat
from operator import attrgetter
from typing import Any, NamedTuple, cast

from wgconsole.core.bulk import Columns, gc_paused
from wgconsole.core.director import Failover, Pair, director_views, failover_of, pair_of
from wgconsole.core.findings import ClientFindingsOrder, client_findings, derive_findings
from wgconsole.core.fleet import (
    REJECT_AFTER_TIME,
    REKEY_AFTER_TIME,
    ClientStatus,
    ClientView,
    Finding,
    Fleet,
    GatewayView,
    PeerOnGateway,
    ProbeView,
    RealServerState,
    RealServerView,
    ServiceView,
    gateways_by_real_server,
    matching_service,
    normalize_endpoint,
)
from wgconsole.core.inventory import Gateway, Inventory
from wgconsole.core.rebalance import ShChoice, sh_choice
from wgconsole.core.records import (
    Endpoint,
    GatewayObservation,
    HostStatus,
    IpvsConn,
    IpvsDest,
    IpvsService,
    LbObservation,
    WgPeer,
)


def build_fleet(
    inventory: Inventory,
    lbs: Mapping[str, LbObservation | None],
    gateways: Mapping[str, GatewayObservation | None],
    hosts: Sequence[HostStatus],
    taken_at: float,
) -> Fleet:
    """One fleet, built from nothing remembered: for a caller that builds one (a test, a
    replayed capture). Successive polls of one fleet go through one `FleetBuilder`."""
    return FleetBuilder().build(inventory, lbs, gateways, hosts, taken_at)


class FleetBuilder:
    """Builds the fleet of each poll, using again what did not change since its last build.

    Between two polls most clients do not change (idle or offline ones: their peers' dump
    lines and LB entries are the records of the previous poll, see bulk.LineMemo), and a
    client made from the same fields gives the same view and findings: those are used
    again, and the previous order is kept so that only new clients are sorted in. That is
    what keeps a poll of 10,000 clients cheap. What it remembers is one build's, replaced
    whole by the next, so one builder serves one sequence of polls (a collector's): two
    collectors in one process (a console and an exporter, two sites) each hold their own.
    A build in another thread with the same builder (a command's fresh fleet) only finds
    less to use again.
    """

    def __init__(self) -> None:
        # The latest build's clients, by public key, in the order shown.
        self._latest_clients: dict[str, _Made] = {}
        # Each gateway's latest peers and its views of them, in the same order.
        self._latest_peer_views: dict[str, tuple[tuple[WgPeer, ...], list[PeerOnGateway]]] = {}
        self._findings_order = ClientFindingsOrder()
        # The latest build's sh choice: an equal one is this very object, so that each
        # client's checks compare by identity.
        self._latest_choice: ShChoice | None = None

    def build(
        self,
        inventory: Inventory,
        lbs: Mapping[str, LbObservation | None],
        gateways: Mapping[str, GatewayObservation | None],
        hosts: Sequence[HostStatus],
        taken_at: float,
    ) -> Fleet:
        with gc_paused():
            return self._build(inventory, lbs, gateways, hosts, taken_at)

    def _build(
        self,
        inventory: Inventory,
        lbs: Mapping[str, LbObservation | None],
        gateways: Mapping[str, GatewayObservation | None],
        hosts: Sequence[HostStatus],
        taken_at: float,
    ) -> Fleet:
        pair = pair_of(inventory, lbs)
        services = _services_on_lbs(inventory, lbs, pair.reference)
        primary = services[0] if services else None
        conns = _service_conns(*primary) if primary else ()
        rs_index = gateways_by_real_server(inventory)
        gw_obs = {gw.name: gateways.get(gw.name) for gw in inventory.gateways}
        lb_answered = any(lbs.get(lb.name) is not None for lb in inventory.load_balancers)
        service = _service_view(*primary) if primary else None
        # The LB table only proves a bypass when the service was found on an answering LB.
        checks = _Checks(
            lb_has_service=service is not None,
            lists_clients=bool(inventory.clients),
            failover_lb=pair.failover_lb,
            sh_choice=self._choice(inventory, primary),
        )
        clients, found, probes = self._clients(
            inventory, gw_obs, services, conns, rs_index, checks, pair
        )
        synced = {} if pair.failover_lb is None else {pair.failover_lb: _count_synced(clients)}
        reachable = {h.name: h.reachable for h in hosts}
        draft = Fleet(
            taken_at=taken_at,
            service=service,
            real_servers=_real_servers(inventory, primary, conns, gw_obs, lb_answered=lb_answered),
            clients=clients,
            gateways=tuple(
                _gateway_view(gw, gw_obs[gw.name], hosts, taken_at) for gw in inventory.gateways
            ),
            hosts=tuple(hosts),
            findings=(),
            conns=conns,
            load_balancers=director_views(pair, inventory, reachable, synced),
            vip_holder=pair.reference,
            failover_lb=pair.failover_lb,
            probes=probes,
        )
        findings = derive_findings(
            draft, inventory, lbs, gateways, found, order=self._findings_order
        )
        return replace(draft, findings=findings)

    def _choice(
        self, inventory: Inventory, primary: tuple[LbObservation, IpvsService] | None
    ) -> ShChoice | None:
        choice = sh_choice(inventory, None if primary is None else primary[1])
        if choice is not None and choice == self._latest_choice:
            choice = self._latest_choice
        self._latest_choice = choice
        return choice

    def _clients(
        self,
        inventory: Inventory,
        gw_obs: Mapping[str, GatewayObservation | None],
        services: Sequence[tuple[LbObservation, IpvsService]],
        conns: tuple[IpvsConn, ...],
        rs_index: Mapping[Endpoint, Gateway],
        checks: _Checks,
        pair: Pair,
    ) -> tuple[tuple[ClientView, ...], list[Finding], tuple[ProbeView, ...]]:
        """The client views, sorted, and their findings (in the same order); the probers'
        peers."""
        peers_by_key, any_interface, endpoints = self._peers_by_key(gw_obs)
        # A probe's peer is a prober's identity, not a client: no row, no client findings.
        probes = tuple(
            ProbeView(p.name, p.public_key, tuple(peers_by_key.pop(p.public_key, ())))
            for p in inventory.probes
        )
        # With a VIP holder known, its entries are the clients' traffic: another director's
        # are the sync daemon's copies (or stale), not where the client goes now.
        holder_known = pair.vip_known and len(inventory.load_balancers) > 1
        conn_index = _conn_index(services[:1] if holder_known else services, conns, endpoints)
        failover = _failover(pair, inventory, endpoints)
        # An inventory client configured on no gateway is worth showing, but only when some
        # gateway's interface was read: otherwise every client would look unconfigured.
        if any_interface:
            for client in inventory.clients:
                peers_by_key.setdefault(client.public_key, [])
        inventory_clients = {c.public_key: c for c in inventory.clients}
        latest = self._latest_clients
        # The latest build's clients first, in their (sorted) order: the sort below then
        # finds them in order and only places the new ones.
        keys = [key for key in latest if key in peers_by_key]
        keys += [key for key in peers_by_key if key not in latest]
        made: list[_Made | None] = []
        changed: list[tuple[Any, ...]] = []
        for key in keys:
            peers = peers_by_key[key]
            inv = inventory_clients.get(key)
            address = _host_part(inv.address) if inv and inv.address else _first_host_route(peers)
            name = inv.name if inv else None
            fields = _client_fields(
                key, name, address, tuple(peers), conn_index, rs_index, failover
            )
            previous = latest.get(key)
            if previous is not None and previous.fields == fields and previous.checks == checks:
                made.append(previous)
            else:
                made.append(None)
                changed.append(fields)
        fresh = iter(_make_clients(changed, checks))
        done = [next(fresh) if m is None else m for m in made]
        done.sort(key=_SORT_KEY)
        self._latest_clients = {m.view.public_key: m for m in done}
        return tuple(map(_VIEW, done)), [f for m in done for f in m.findings], probes

    def _peers_by_key(
        self, gw_obs: Mapping[str, GatewayObservation | None]
    ) -> tuple[dict[str, list[PeerOnGateway]], bool, set[tuple[str, int]]]:
        """Every peer's view on each gateway, by key; whether any interface was read; and
        the (address, port) of every endpoint the gateways know."""
        peers: dict[str, list[PeerOnGateway]] = {}
        endpoints: set[tuple[str, int]] = set()
        any_interface = False
        for name, obs in gw_obs.items():
            if obs is None or obs.interface is None:
                continue
            any_interface = True
            wg_peers = obs.interface.peers
            views_here = self._peers_on_gateway(name, obs)
            for key, view in zip(map(_PEER_KEY, wg_peers), views_here, strict=True):
                views = peers.get(key)
                if views is None:
                    peers[key] = [view]
                else:
                    views.append(view)
            endpoints.update(
                (e.address, e.port) for e in map(_PEER_ENDPOINT, wg_peers) if e is not None
            )
        return peers, any_interface, endpoints

    def _peers_on_gateway(self, gateway: str, obs: GatewayObservation) -> list[PeerOnGateway]:
        """`_peer_on_gateway` of every peer of the gateway: the latest build's view of a
        peer if it came from the very same peer record and the handshake age is the same,
        else new."""
        assert obs.interface is not None
        peers = obs.interface.peers
        clock = obs.clock
        # handshake_age(clock, h), inline: it runs for every peer of every gateway and poll.
        ages = [None if h <= 0 else max(0.0, clock - h) for h in map(_PEER_HANDSHAKE, peers)]
        latest_peers, latest_views = self._latest_peer_views.get(gateway, ((), []))
        views: list[PeerOnGateway | None] = [None] * len(peers)
        if latest_peers:
            # Looked up by the identity of the peer record: the latest peers are still alive
            # (held here), so an id among theirs is one of them.
            by_id = dict(zip(map(id, latest_peers), latest_views, strict=True))
            views = [
                old if old is not None and old.handshake_age == age else None
                for old, age in zip(map(by_id.get, map(id, peers)), ages, strict=True)
            ]
        new = [i for i, view in enumerate(views) if view is None]
        if new:
            changed = [peers[i] for i in new]
            built = _PEER_ON_GATEWAY.build(
                repeat(gateway, len(new)),
                map(_PEER_ENDPOINT, changed),
                [ages[i] for i in new],
                map(_PEER_RX, changed),
                map(_PEER_TX, changed),
                map(_PEER_ALLOWED, changed),
                map(_PEER_KEEPALIVE, changed),
            )
            for i, view in zip(new, built, strict=True):
                views[i] = view
        done = cast(list[PeerOnGateway], views)  # no None left
        self._latest_peer_views[gateway] = (peers, done)
        return done


def _services_on_lbs(
    inventory: Inventory, lbs: Mapping[str, LbObservation | None], first: str | None = None
) -> list[tuple[LbObservation, IpvsService]]:
    """(LB, service) for every answering LB that has the service: LB `first`'s (the VIP
    holder's), then the others in inventory order.

    The first is the one shown; an LB that answered without the service does not hide
    the service on the next one (that LB gets its own real-server-missing finding).
    """
    found = []
    for lb in inventory.load_balancers:
        obs = lbs.get(lb.name)
        if obs is None:
            continue
        service = matching_service(inventory, obs)
        if service is not None:
            found.append((obs, service))
    found.sort(key=lambda pair: pair[0].host != first)  # stable: the rest keep their order
    return found


def _failover(pair: Pair, inventory: Inventory, endpoints: set[tuple[str, int]]) -> Failover | None:
    """The backup's entries (those of sources the gateways know) and table."""
    if pair.failover_lb is None:
        return None
    obs = pair.observations.get(pair.failover_lb)
    service = pair.services.get(pair.failover_lb)
    entries: ConnIndex = {}
    if obs is not None and service is not None:
        entries = _conn_index([(obs, service)], _service_conns(obs, service), endpoints)
    return failover_of(pair, inventory, entries)


def _count_synced(clients: Sequence[ClientView]) -> int:
    return sum(map(bool, map(_FAILOVER_SYNCED, clients)))


_FAILOVER_SYNCED = attrgetter("failover_synced")


_VIRTUAL = attrgetter("virtual")
_PROTOCOL = attrgetter("protocol")
_DEST = attrgetter("dest")
_CLIENT_ADDRESS = attrgetter("client.address")


def _service_conns(lb: LbObservation, service: IpvsService) -> tuple[IpvsConn, ...]:
    protocol = service.protocol.lower()
    conns = lb.conns
    # Usually every entry is the service's (one virtual service on the LB): then the table
    # is taken as it is, after comparing each distinct virtual endpoint and protocol once
    # (the parser shares those objects; distinct objects are compared by id, in C loops).
    virtuals = list(map(_VIRTUAL, conns))
    distinct = dict(zip(map(id, virtuals), virtuals, strict=True)).values()
    if all(v == service.vip for v in distinct) and all(
        p.lower() == protocol for p in set(map(_PROTOCOL, conns))
    ):
        return conns
    return tuple(c for c in conns if c.virtual == service.vip and c.protocol.lower() == protocol)


def _count_endpoints(endpoints: Iterable[Endpoint]) -> Counter[Endpoint]:
    """Counter(endpoints), hashing each distinct object once rather than every item.

    The LB table's 50,000 entries share a few dest objects; Endpoint's hash is Python code.
    """
    objects = list(endpoints)
    by_id = Counter(map(id, objects))
    first = dict(zip(map(id, objects), objects, strict=True))
    counts: Counter[Endpoint] = Counter()
    for ident, count in by_id.items():
        counts[first[ident]] += count
    return counts


def _service_view(lb: LbObservation, service: IpvsService) -> ServiceView:
    return ServiceView(
        lb=lb.host,
        protocol=service.protocol.lower(),
        vip=service.vip.address,
        port=service.vip.port,
        scheduler=service.scheduler,
        flags=tuple(service.flag_names()),
        sh_fallback=service.sh_fallback,
        sh_port=service.sh_port,
        expire_nodest_conn=lb.expire_nodest_conn,
        dests=service.dests,
        raw=service,
    )


ConnIndex = Mapping[tuple[str, int], IpvsConn]


def _conn_index(
    services: Sequence[tuple[LbObservation, IpvsService]],
    primary_conns: tuple[IpvsConn, ...],
    wanted: set[tuple[str, int]],
) -> ConnIndex:
    """LB entries keyed by client source (address, port) (masquerade keeps it), for the
    sources in `wanted` (the endpoints the gateways know; no other entry is looked up).

    The shown LB's entries win; other LBs' entries are still indexed because a client
    routed through a second LB is not bypassing the load balancing. Keyed by plain tuples
    rather than Endpoint (equal exactly when the Endpoints are): tuples hash in C, and
    there are 50,000 entries per poll.
    """
    if not wanted:
        return {}
    ordered = [*primary_conns]
    for lb, service in services[1:]:
        ordered.extend(_service_conns(lb, service))
    # Matched on the address first (its string hash is cached), then on the port.
    addresses = {address for address, _ in wanted}
    index: dict[tuple[str, int], IpvsConn] = {}
    matches = map(addresses.__contains__, map(_CLIENT_ADDRESS, ordered))
    for conn in compress(ordered, matches):
        key = (conn.client.address, conn.client.port)
        if key in wanted:
            index.setdefault(key, conn)  # the first entry for a source wins
    return index


# --- real servers ---------------------------------------------------------------------


def _real_servers(
    inventory: Inventory,
    primary: tuple[LbObservation, IpvsService] | None,
    conns: tuple[IpvsConn, ...],
    gw_obs: Mapping[str, GatewayObservation | None],
    *,
    lb_answered: bool,
) -> tuple[RealServerView, ...]:
    # With no LB answering there is no IPVS data to show: "missing" would be a false claim.
    if not lb_answered:
        return ()
    rs_index = gateways_by_real_server(inventory)
    entries = _count_endpoints(map(_DEST, conns))
    dests = primary[1].dests if primary else ()
    evicted = {r.gateway for r in primary[0].drain_records if r.evicted} if primary else set()
    rows = []
    for index, dest in enumerate(dests):
        gw = rs_index.get(dest.endpoint)
        unreachable = gw is not None and gw_obs.get(gw.name) is None
        row = _dest_row(dest, gw, index, entries[dest.endpoint], unreachable=unreachable)
        if gw is not None and gw.name in evicted and dest.weight == 0:
            row = replace(row, state="evicted")
        rows.append(row)
    present = {d.endpoint for d in dests}
    for gw in inventory.gateways:
        if normalize_endpoint(gw.real_server) not in present:
            rows.append(_missing_row(gw))
    return tuple(rows)


def _dest_state(dest: IpvsDest, lb_entries: int, *, unreachable: bool) -> RealServerState:
    if unreachable:
        return "unreachable"
    if dest.weight > 0:
        return "active"
    # Weight 0 never moves an existing UDP flow: entries left mean clients still there.
    return "quiescent" if lb_entries else "drained"


def _dest_row(
    dest: IpvsDest, gw: Gateway | None, index: int, lb_entries: int, *, unreachable: bool
) -> RealServerView:
    return RealServerView(
        gateway=None if gw is None else gw.name,
        address=dest.endpoint,
        weight=dest.weight,
        forward=dest.forward,
        active_conns=dest.active_conns,
        inactive_conns=dest.inactive_conns,
        lb_entries=lb_entries,
        conns=dest.conns,
        in_packets=dest.in_packets,
        out_packets=dest.out_packets,
        in_bytes=dest.in_bytes,
        out_bytes=dest.out_bytes,
        state=_dest_state(dest, lb_entries, unreachable=unreachable),
        kernel_index=index,
    )


def _missing_row(gw: Gateway) -> RealServerView:
    return RealServerView(
        gateway=gw.name,
        address=gw.real_server,
        weight=None,
        forward=None,
        active_conns=0,
        inactive_conns=0,
        lb_entries=0,
        conns=0,
        in_packets=0,
        out_packets=0,
        in_bytes=0,
        out_bytes=0,
        state="missing",
        kernel_index=None,
    )


# --- gateways -------------------------------------------------------------------------


def _gateway_view(
    gw: Gateway, obs: GatewayObservation | None, hosts: Sequence[HostStatus], taken_at: float
) -> GatewayView:
    if obs is None:
        status = next((h for h in hosts if h.name == gw.name), None)
        return GatewayView(
            name=gw.name,
            reachable=False,
            link_up=None,
            public_key=None,
            listen_port=None,
            peer_count=None,
            clock_skew=None,
            error=None if status is None else status.error,
        )
    iface = obs.interface
    return GatewayView(
        name=gw.name,
        reachable=True,
        link_up=obs.link_up,
        public_key=None if iface is None else iface.public_key,
        listen_port=None if iface is None else iface.listen_port,
        peer_count=None if iface is None else len(iface.peers),
        clock_skew=obs.clock - taken_at,
        error=obs.error,
    )


# --- clients --------------------------------------------------------------------------


class _Checks(NamedTuple):
    """What a client's findings depend on besides its view."""

    lb_has_service: bool  # the LB table can prove a bypass
    lists_clients: bool  # the inventory lists clients: a peer not in it is unknown
    failover_lb: str | None = None  # the director that would take over (its name is shown)
    sh_choice: ShChoice | None = None  # the current table's gateway per bucket


class _Made(NamedTuple):
    """A client's view and findings as a FleetBuilder made them, and what they came from."""

    fields: tuple[Any, ...]  # the view's fields but its findings, in _CLIENT_FIELDS order
    checks: _Checks
    sort_key: tuple[int, int, int, str, str]
    view: ClientView
    findings: tuple[Finding, ...]


_SORT_KEY = attrgetter("sort_key")
_VIEW = attrgetter("view")
_CODE = attrgetter("code")
_ADDRESS = attrgetter("address")
_BIG_ENDIAN = partial(int.from_bytes, byteorder="big")


def _make_clients(rows: list[tuple[Any, ...]], checks: _Checks) -> list[_Made]:
    """Views and findings of clients from their fields (`_client_fields`), built column-wise:
    10,000 of them on a first poll."""

    if not rows:
        return []
    columns = list(zip(*rows, strict=True))
    # The findings are derived from the view itself, which then gets their codes.
    views = _CLIENT_VIEWS.build(*columns, repeat((), len(rows)))
    found = client_findings(
        views,
        lb_has_service=checks.lb_has_service,
        inventory_lists_clients=checks.lists_clients,
        failover_lb=checks.failover_lb,
        sh_choice=checks.sh_choice,
    )
    _CLIENT_VIEWS.fill(views, "findings", _codes(found))
    return list(map(_Made, rows, repeat(checks), _client_sort_keys(views), views, found))


def _codes(found: list[tuple[Finding, ...]]) -> list[tuple[str, ...]]:
    """Each client's finding codes, once each. Most clients have one of a few sets of
    codes: equal ones are one shared tuple (fewer objects for the cyclic GC to walk)."""
    shared: dict[tuple[str, ...], tuple[str, ...]] = {}
    codes = []
    for client in found:
        raw = tuple(map(_CODE, client))
        unique = shared.get(raw)
        if unique is None:
            unique = shared[raw] = tuple(dict.fromkeys(raw))
        codes.append(unique)
    return codes


_PEER_ON_GATEWAY = Columns(
    PeerOnGateway,
    ("gateway", "endpoint", "handshake_age", "rx_bytes", "tx_bytes", "allowed_ips", "keepalive"),
)
_CLIENT_VIEWS = Columns(
    ClientView,
    (
        "public_key",
        "name",
        "address",
        "endpoint",
        "per_gateway",
        "lb_gateway",
        "lb_entry",
        "handshake_gateway",
        "handshake_age",
        "status",
        "failover_gateway",
        "failover_synced",
        "findings",
    ),
)
_PEER_KEY = attrgetter("public_key")
_PEER_ENDPOINT = attrgetter("endpoint")
_PEER_HANDSHAKE = attrgetter("latest_handshake")
_PEER_RX = attrgetter("rx_bytes")
_PEER_TX = attrgetter("tx_bytes")
_PEER_ALLOWED = attrgetter("allowed_ips")
_PEER_KEEPALIVE = attrgetter("keepalive")


def handshake_age(gateway_clock: float, latest_handshake: int) -> float | None:
    """Seconds since the handshake, on the gateway's own clock; None if it never happened."""
    if latest_handshake <= 0:
        return None
    # Whole-second handshake stamps can sit a fraction after a clock read taken earlier.
    return max(0.0, gateway_clock - latest_handshake)


def client_status(age: float | None) -> ClientStatus:
    if age is None:
        return "never"
    if age < REKEY_AFTER_TIME:
        return "fresh"
    if age <= REJECT_AFTER_TIME:
        return "ageing"
    return "stale"


def _freshest(peers: Iterable[PeerOnGateway]) -> PeerOnGateway | None:
    best: PeerOnGateway | None = None
    for peer in peers:
        if peer.handshake_age is None:
            continue
        if best is None or best.handshake_age is None or peer.handshake_age < best.handshake_age:
            best = peer
    return best


def _candidate_endpoints(
    peers: Sequence[PeerOnGateway], freshest: PeerOnGateway | None
) -> list[Endpoint]:
    """Endpoints to look up in the LB table, the most trustworthy first.

    Gateways can disagree (one saw the client before it moved), so every distinct one is
    tried, starting with the gateway that has the freshest handshake.
    """
    ordered = [freshest, *peers] if freshest else list(peers)
    return list(dict.fromkeys(p.endpoint for p in ordered if p.endpoint is not None))


def _client_fields(
    key: str,
    name: str | None,
    address: str | None,
    peers: tuple[PeerOnGateway, ...],
    conn_index: ConnIndex,
    rs_index: Mapping[Endpoint, Gateway],
    failover: Failover | None = None,
) -> tuple[Any, ...]:
    """A ClientView's fields but its findings, in _CLIENT_VIEWS order."""
    freshest = _freshest(peers)
    candidates = _candidate_endpoints(peers, freshest)
    entry = None
    for candidate in candidates:
        entry = conn_index.get((candidate.address, candidate.port))
        if entry is not None:
            break
    lb_gw = None if entry is None else rs_index.get(entry.dest)
    age = None if freshest is None else freshest.handshake_age
    if failover is None:
        failover_gateway, synced = None, None
    else:
        # Where the LB sees it from (masquerade keeps the source): its entry's, else the
        # endpoint the gateways saw last.
        source = entry.client if entry is not None else (candidates[0] if candidates else None)
        failover_gateway, synced = failover.gateway(source)
    return (
        key,
        name,
        address,
        str(candidates[0]) if candidates else None,
        peers,
        None if lb_gw is None else lb_gw.name,
        entry,
        None if freshest is None else freshest.gateway,
        age,
        client_status(age),
        failover_gateway,
        synced,
    )


def _host_part(text: str) -> str:
    """'10.255.0.2/32' -> '10.255.0.2'; anything that is not a host route is kept as is."""
    address, slash, prefix = text.partition("/")
    if not slash:
        return text
    if prefix == ("128" if ":" in address else "32"):
        return address
    return text


def _first_host_route(peers: Iterable[PeerOnGateway]) -> str | None:
    for peer in peers:
        for allowed in peer.allowed_ips:
            host = _host_part(allowed)
            if host != allowed:
                return host
    return None


def _client_sort_keys(views: Sequence[ClientView]) -> list[tuple[int, int, int, str, str]]:
    """`_client_sort_key` of each view, with IPv4 addresses (the usual ones) converted in
    one pass."""
    try:
        packed = map(socket.inet_pton, repeat(socket.AF_INET), map(_ADDRESS, views))
        numbers = list(map(_BIG_ENDIAN, packed))
    except (OSError, TypeError, ValueError):  # an IPv6 or no address among them
        return list(map(_client_sort_key, views))
    return list(zip(repeat(0), repeat(4), numbers, repeat(""), map(_PEER_KEY, views)))


def _client_sort_key(view: ClientView) -> tuple[int, int, int, str, str]:
    if view.address is None:
        return (2, 0, 0, "", view.public_key)
    number = _address_number(view.address)
    if number is None:
        return (1, 0, 0, view.address, view.public_key)
    return (0, *number, "", view.public_key)


def _address_number(address: str) -> tuple[int, int] | None:
    """(IP version, integer value) for sorting; inet_pton because ipaddress is ~20x slower."""
    for family, version in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
        try:
            return (version, int.from_bytes(socket.inet_pton(family, address), "big"))
        except OSError:
            continue
    return None
