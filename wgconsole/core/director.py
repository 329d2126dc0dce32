"""The director pair: which LB holds the VIP, each LB's own 256-bucket sh table, how far a
backup's table is from the holder's, and where each client would land if the backup took over.

Pure, like the rest of `core`. The reference every other LB is compared with is the VIP
holder: the one LB whose addresses include the service's VIP; when none or several do, the
one VRRP MASTER; else the LB whose service the fleet shows (the first in inventory order). The
LB that would take over (`failover_lb`) is, among the other answering LBs, the one with the
highest VRRP priority (inventory order on a tie or without keepalived).

A client's failover gateway is where its next packet would go once the VIP moved: its synced
entry's gateway on the backup (the sync daemon's copy, `failover_synced`), else the backup's
sh choice for its source address (availability and sh-fallback as `sched` models them), else
None (dropped: the bucket's dest is unavailable without sh-fallback, or the backup has no
service). With one LB there is nothing to fail over to: every client's is None.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wgconsole.core.fleet import (
    DirectorView,
    Finding,
    Fleet,
    Table,
    gateways_by_real_server,
    matching_service,
    normalize_endpoint,
)
from wgconsole.core.inventory import Gateway, Inventory
from wgconsole.core.records import (
    Endpoint,
    IpvsConn,
    IpvsService,
    KeepalivedVirtualServer,
    LbObservation,
    VrrpInstance,
)
from wgconsole.core.sched import TAB_SIZE, ShTable


@dataclass(frozen=True, slots=True)
class Failover:
    """What the model needs per client: the backup's entries and table, looked up by source."""

    lb: str
    entries: Mapping[tuple[str, int], IpvsConn]  # the backup's, by client (address, port)
    model: ShTable | None  # the backup's sh service; None: none (every client dropped)
    gateways: Mapping[Endpoint, Gateway]

    def gateway(self, source: Endpoint | None) -> tuple[str | None, bool]:
        """(failover gateway, synced) for a client seen from `source` (None: unknown)."""
        if source is None:
            return None, False
        synced = self.entries.get((source.address, source.port))
        if synced is not None:
            return _name(synced.dest, self.gateways), True
        if self.model is None:
            return None, False
        try:
            dest = self.model.pick(source.address, source.port).dest
        except ValueError:  # not an address the hash takes
            return None, False
        return (None if dest is None else _name(dest, self.gateways)), False


@dataclass(frozen=True, slots=True)
class Pair:
    """The directors of one poll, before the clients are known."""

    reference: str | None  # the VIP holder (see the module's docstring)
    failover_lb: str | None
    observations: Mapping[str, LbObservation | None]
    services: Mapping[str, IpvsService | None]
    models: Mapping[str, ShTable | None]
    tables: Mapping[str, Table | None]
    vip_known: bool  # every answering LB's addresses were read: holds_vip is a fact


def _name(dest: Endpoint, gateways: Mapping[Endpoint, Gateway]) -> str:
    gw = gateways.get(dest)
    return str(dest) if gw is None else gw.name


def _overloaded(service: IpvsService) -> frozenset[Endpoint]:
    """Dests over their upper threshold (the kernel's overload flag is not shown anywhere)."""
    return frozenset(
        d.endpoint
        for d in service.dests
        if d.u_threshold > 0 and d.active_conns + d.inactive_conns >= d.u_threshold
    )


def sh_model(service: IpvsService | None) -> ShTable | None:
    if service is None or service.scheduler != "sh":
        return None
    try:
        return ShTable.from_service(service, _overloaded(service))
    except ValueError:  # a weight out of the kernel's range: not a table the kernel has
        return None


def table_of(model: ShTable, gateways: Mapping[Endpoint, Gateway]) -> Table:
    names: dict[Endpoint | None, str | None] = {None: None}
    for dest in model.dests:
        names[dest.key] = _name(dest.key, gateways)
    return tuple(names[model.resolved(bucket)] for bucket in range(TAB_SIZE))


def buckets_differing(a: Table, b: Table) -> int:
    return sum(x != y for x, y in zip(a, b, strict=True))


def vrrp_instance(obs: LbObservation, vip: str) -> VrrpInstance | None:
    """keepalived's instance that carries the VIP; its only one when none lists it (the VIP
    may be in `virtual_ipaddress_excluded`, which the dump lists apart); None when several
    run and none lists it: another instance's state and priority are not the VIP's, and
    which one is the VIP's is then unknown, never guessed."""
    if obs.keepalived is None or not obs.keepalived.instances:
        return None
    for instance in obs.keepalived.instances:
        if vip in instance.vips:
            return instance
    if len(obs.keepalived.instances) == 1:
        return obs.keepalived.instances[0]
    return None


def pair_of(inventory: Inventory, lbs: Mapping[str, LbObservation | None]) -> Pair:
    vip = normalize_endpoint(inventory.service.endpoint).address
    gateways = gateways_by_real_server(inventory)
    names = [lb.name for lb in inventory.load_balancers]
    obs = {name: lbs.get(name) for name in names}
    services = {n: (None if o is None else matching_service(inventory, o)) for n, o in obs.items()}
    models = {name: sh_model(svc) for name, svc in services.items()}
    tables = {n: (None if m is None else table_of(m, gateways)) for n, m in models.items()}
    answered = {n: o for n, o in obs.items() if o is not None}  # in inventory order
    answering = list(answered)
    vip_known = bool(answered) and all(o.addresses is not None for o in answered.values())
    holders = [n for n, o in answered.items() if vip in (o.addresses or ())]
    instances = {n: vrrp_instance(o, vip) for n, o in answered.items()}
    reference: str | None = None
    if len(holders) == 1:
        reference = holders[0]
    else:
        masters = [n for n, i in instances.items() if i is not None and i.state == "MASTER"]
        if len(masters) == 1:
            reference = masters[0]
        else:
            reference = next((n for n in answering if services[n] is not None), None)
    failover_lb = None
    others = [n for n in answering if n != reference]
    if len(names) > 1 and others:

        def rank(name: str) -> tuple[int, int]:
            """Highest VRRP priority first (an instance in FAULT cannot take over), then
            inventory order."""
            i = instances[name]
            usable = i is not None and i.state not in ("FAULT", "STOP")
            return (i.priority if usable and i is not None else -1, -others.index(name))

        failover_lb = max(others, key=rank)
    return Pair(reference, failover_lb, obs, services, models, tables, vip_known)


def failover_of(
    pair: Pair, inventory: Inventory, entries: Mapping[tuple[str, int], IpvsConn]
) -> Failover | None:
    """The per-client lookup for the backup (None: no LB to fail over to)."""
    if pair.failover_lb is None:
        return None
    return Failover(
        pair.failover_lb,
        entries,
        pair.models.get(pair.failover_lb),
        gateways_by_real_server(inventory),
    )


def director_views(
    pair: Pair, inventory: Inventory, reachable: Mapping[str, bool], synced: Mapping[str, int]
) -> tuple[DirectorView, ...]:
    vip = normalize_endpoint(inventory.service.endpoint).address
    reference_table = None if pair.reference is None else pair.tables.get(pair.reference)
    views = []
    for lb in inventory.load_balancers:
        obs = pair.observations.get(lb.name)
        service = pair.services.get(lb.name)
        table = pair.tables.get(lb.name)
        is_reference = lb.name == pair.reference
        differing: int | None = None
        if is_reference:
            differing = 0 if obs is not None else None
        elif obs is not None and reference_table is not None:
            # No sh service here: no bucket would send a client where the holder's does.
            differing = TAB_SIZE if table is None else buckets_differing(reference_table, table)
        instance = None if obs is None else vrrp_instance(obs, vip)
        ka_service, managed = _keepalived_service(obs, inventory)
        views.append(
            DirectorView(
                name=lb.name,
                reachable=obs is not None and reachable.get(lb.name, True),
                holds_vip=None if obs is None or obs.addresses is None else vip in obs.addresses,
                is_reference=is_reference,
                vrrp_instance=None if instance is None else instance.name,
                vrrp_state=None if instance is None else instance.state,
                vrrp_priority=None if instance is None else instance.priority,
                vrrp_source=None
                if obs is None or obs.keepalived is None
                else obs.keepalived.source,
                sync_daemons=None if obs is None else obs.sync_daemons,
                sysctls=None if obs is None else obs.sysctls,
                timeouts=None if obs is None else obs.timeouts,
                expire_nodest_conn=None if obs is None else obs.expire_nodest_conn,
                service=service,
                table=table,
                buckets_differing=differing,
                synced_clients=None if is_reference else synced.get(lb.name),
                keepalived_service=ka_service,
                keepalived_managed=managed,
                problems=() if obs is None else obs.director_problems,
                keepalived_unknown=obs is not None and obs.keepalived_unknown,
            )
        )
    return tuple(views)


def _keepalived_service(
    obs: LbObservation | None, inventory: Inventory
) -> tuple[KeepalivedVirtualServer | None, bool | None]:
    if obs is None or obs.keepalived is None or obs.keepalived.virtual_servers is None:
        return None, None
    protocol = inventory.service.protocol.lower()
    vip = normalize_endpoint(inventory.service.endpoint)
    for server in obs.keepalived.virtual_servers:
        if server.protocol == protocol and normalize_endpoint(server.vip) == vip:
            return server, True
    # Not in the main file: an included one may still have it.
    return None, None if obs.keepalived.config_includes else False


def kernel_order_commands(service: IpvsService, lb: str) -> str:
    """Shell commands that give `service`'s dests, weights and kernel order to another LB's
    copy: every dest deleted, then added oldest first (each add goes to the head)."""
    flag = {"udp": "-u", "tcp": "-t", "sctp": "--sctp-service"}.get(service.protocol, "-u")
    forward = {"masq": "-m", "route": "-g", "tunnel": "-i"}
    vip = str(service.vip)
    deletes = [f"ipvsadm -d {flag} {vip} -r {d.endpoint}" for d in service.dests]
    adds = [
        f"ipvsadm -a {flag} {vip} -r {d.endpoint} {forward.get(d.forward, '-m')} -w {d.weight}"
        for d in reversed(service.dests)
    ]
    return f"on {lb}: " + "; ".join([*deletes, *adds])


def dests_of(service: IpvsService | None) -> Sequence[Endpoint]:
    return () if service is None else [d.endpoint for d in service.dests]


# --- findings -------------------------------------------------------------------------------

# How many clients a director finding names before "and N more".
NAMED = 3
_RECONNECT = (
    "it has no session there and is cut off until it handshakes again (~15 s when it sends "
    "data, up to ~2 min keepalive-only)"
)


def director_findings(fleet: Fleet, inventory: Inventory) -> list[Finding]:
    """The pair's findings (the per-client ones are `client_findings`')."""
    views = {v.name: v for v in fleet.load_balancers}
    if len(inventory.load_balancers) == 1:
        only = inventory.load_balancers[0].name
        return [
            Finding(
                "single-director",
                "info",
                only,
                f"{only} is the only load balancer: it is a single point of failure and no "
                "client has a failover gateway. A second director with keepalived (VRRP for "
                "the VIP) and the IPVS sync daemon removes it.",
            ),
            *_problems(views),
        ]
    return [
        *_vip_holders(fleet, inventory, views),
        *_table_differs(fleet, views),
        *_sync_daemons(fleet, views),
        *_director_drift(fleet, views),
        *_keepalived_drift(views),
        *_problems(views),
    ]


def _named(labels: Sequence[str]) -> str:
    shown = ", ".join(labels[:NAMED])
    more = len(labels) - NAMED
    return f"{shown} and {more:,} more" if more > 0 else shown


def _vip_holders(
    fleet: Fleet, inventory: Inventory, views: Mapping[str, DirectorView]
) -> list[Finding]:
    answering = [v for v in views.values() if v.reachable]
    if not answering or any(v.holds_vip is None for v in answering):
        return []
    vip = inventory.service.endpoint.address
    holders = [v.name for v in answering if v.holds_vip]
    if len(holders) > 1:
        message = (
            f"The VIP {vip} is on {len(holders)} load balancers at once ({', '.join(holders)}): "
            "clients are split between them by the network's ARP caches, and each director "
            "schedules its share alone. VRRP is not working between them (split brain): check "
            "that their VRRP adverts reach each other (same virtual_router_id, interface, "
            "multicast or unicast_peer), then `ip addr del` the VIP where VRRP is not MASTER."
        )
        return [Finding("vip-held-twice", "critical", vip, message)]
    if not holders:
        names = ", ".join(v.name for v in answering)
        message = (
            f"No answering load balancer holds the VIP {vip} ({names}): clients reach no "
            "director. Check keepalived on each (its VRRP state, FAULT reasons in its log) "
            "or add the address where the service should run."
        )
        return [Finding("vip-held-by-none", "critical", vip, message)]
    return []


def _table_differs(fleet: Fleet, views: Mapping[str, DirectorView]) -> list[Finding]:
    reference = views.get(fleet.vip_holder or "")
    if reference is None or reference.table is None:
        return []
    found = []
    movers = [c for c in fleet.clients if c.failover_synced is False and c.lb_gateway]
    for view in views.values():
        if view.is_reference or not view.buckets_differing:
            continue
        message = (
            f"{view.name}'s sh table differs from {reference.name}'s (the VIP holder's) in "
            f"{view.buckets_differing}/{TAB_SIZE} buckets: after a failover to {view.name}, new "
            "clients and clients without a synced entry hashed there go to another gateway."
        )
        if view.name == fleet.failover_lb:
            moving = [c.label for c in movers if c.failover_gateway != c.lb_gateway]
            if moving:
                message += (
                    f" {len(moving):,} client(s) without a synced entry would change gateway "
                    f"now ({_named(moving)}): {_RECONNECT}."
                )
        if view.service is None:
            message += f" {view.name} has no copy of the service at all: create it."
        elif reference.service is not None:
            message += (
                f" Fix: `wgconsole lb align {view.name}` gives it the holder's dests, weights "
                "and kernel order with the fewest changes, then checks the tables (the backup "
                "carries no traffic while it is not the VIP holder); by hand: "
                + kernel_order_commands(reference.service, view.name)
                + "."
            )
        found.append(Finding("backup-table-differs", "warning", view.name, message))
    return found


def _sync_daemons(fleet: Fleet, views: Mapping[str, DirectorView]) -> list[Finding]:
    holder = views.get(fleet.vip_holder or "")
    backup = views.get(fleet.failover_lb or "")
    if holder is None or backup is None:
        return []
    if holder.sync_daemons is None or backup.sync_daemons is None:
        return []
    master = next((d for d in holder.sync_daemons if d.role == "master"), None)
    receiver = next((d for d in backup.sync_daemons if d.role == "backup"), None)
    start = (
        "Start them: `ipvsadm --start-daemon master --mcast-interface IF --syncid N` on the "
        "holder and `... backup ...` with the same syncid on the backup (or keepalived's "
        "`lvs_sync_daemon IF INSTANCE` on both)."
    )
    effect = (
        "on failover every client is scheduled by the backup's own table, and any whose "
        "gateway differs there loses its session"
    )
    if master is None and receiver is None:
        message = f"No IPVS sync daemon runs on {holder.name} or {backup.name}: {effect}. {start}"
    elif master is None:
        message = (
            f"{holder.name} (the VIP holder) runs no master sync daemon: {backup.name} "
            f"receives no entries, and {effect}. {start}"
        )
    elif receiver is None:
        message = (
            f"{backup.name} runs no backup sync daemon: the entries {holder.name} sends are "
            f"not received, and {effect}. {start}"
        )
    elif receiver.syncid not in (0, master.syncid):
        # A backup with syncid 0 takes every syncid (ip_vs_sync.c, ip_vs_process_message).
        message = (
            f"The sync daemons' syncids differ ({holder.name} master {master.syncid}, "
            f"{backup.name} backup {receiver.syncid}): the backup drops every message; {effect}."
            " Restart one with the other's syncid."
        )
    elif (master.group, master.port) != (receiver.group, receiver.port):
        message = (
            f"The sync daemons use different multicast groups ({holder.name} master sends to "
            f"{master.group}:{master.port}, {backup.name} backup listens on "
            f"{receiver.group}:{receiver.port}): the backup receives nothing; {effect}. "
            "Restart one with the other's --mcast-group and --mcast-port."
        )
    elif (
        master.maxlen is not None
        and receiver.maxlen is not None
        and (master.maxlen > receiver.maxlen)
    ):
        # A backup reads at most its maxlen of a datagram and drops a message whose size
        # field says more ("bogus message size").
        message = (
            f"{holder.name}'s master sync daemon sends messages of up to {master.maxlen} bytes "
            f"and {backup.name}'s backup reads at most {receiver.maxlen}: its longer messages "
            f"are dropped, and for the entries in them {effect}. Give both the same "
            "--sync-maxlen (or interfaces with the same MTU)."
        )
    else:
        return []
    return [Finding("sync-daemon-missing", "warning", backup.name, message)]


# Sysctls sized by the kernel from the machine's memory: they may differ and mean nothing.
_SIZED_SYSCTLS = frozenset({"sync_qlen_max", "amemthresh", "est_cpulist", "est_nice"})


def _director_drift(fleet: Fleet, views: Mapping[str, DirectorView]) -> list[Finding]:
    reference = views.get(fleet.vip_holder or "")
    if reference is None or reference.service is None:
        return []
    ref = reference.service
    found = []
    for view in views.values():
        if view.is_reference or not view.reachable:
            continue
        parts: list[str] = []
        svc = view.service
        if svc is None:
            parts.append("it has no copy of the service")
        else:
            if svc.scheduler != ref.scheduler:
                parts.append(f"scheduler {svc.scheduler} (holder: {ref.scheduler})")
            if svc.flags != ref.flags:
                parts.append(
                    f"flags {','.join(svc.flag_names()) or 'none'} "
                    f"(holder: {','.join(ref.flag_names()) or 'none'})"
                )
            mine = {d.endpoint: d.weight for d in svc.dests}
            theirs = {d.endpoint: d.weight for d in ref.dests}
            if mine.keys() != theirs.keys():
                parts.append(
                    f"dests {', '.join(map(str, sorted(mine, key=str))) or 'none'} "
                    f"(holder: {', '.join(map(str, sorted(theirs, key=str))) or 'none'})"
                )
            weights = [
                f"{e} {mine[e]} (holder: {theirs[e]})"
                for e in theirs
                if e in mine and mine[e] != theirs[e]
            ]
            if weights:
                parts.append("weights " + ", ".join(weights))
        if view.expire_nodest_conn != reference.expire_nodest_conn and None not in (
            view.expire_nodest_conn,
            reference.expire_nodest_conn,
        ):
            parts.append(
                f"expire_nodest_conn {int(bool(view.expire_nodest_conn))} "
                f"(holder: {int(bool(reference.expire_nodest_conn))})"
            )
        if view.sysctls is not None and reference.sysctls is not None:
            mine_s = dict(view.sysctls.values)
            theirs_s = dict(reference.sysctls.values)
            for name in sorted(theirs_s.keys() & mine_s.keys()):
                if name in _SIZED_SYSCTLS or name == "expire_nodest_conn":
                    continue
                if mine_s[name] != theirs_s[name]:
                    parts.append(f"net.ipv4.vs.{name} {mine_s[name]} (holder: {theirs_s[name]})")
        t, r = view.timeouts, reference.timeouts
        if t is not None and r is not None and t != r:
            parts.append(
                f"timeouts tcp/tcpfin/udp {t.tcp}/{t.tcp_fin}/{t.udp} "
                f"(holder: {r.tcp}/{r.tcp_fin}/{r.udp})"
            )
        if parts:
            message = (
                f"{view.name} differs from {reference.name} (the VIP holder): "
                + "; ".join(parts)
                + f". After a failover {view.name} runs the service this way: make it the "
                "same (`ipvsadm -E`/`-e`, `sysctl -w net.ipv4.vs.NAME=VALUE`, `ipvsadm --set`)."
            )
            found.append(Finding("director-drift", "warning", view.name, message))
    return found


def _keepalived_drift(views: Mapping[str, DirectorView]) -> list[Finding]:
    found = []
    for view in views.values():
        ka = view.keepalived_service
        if ka is None or view.service is None:
            continue
        kernel = {d.endpoint: d.weight for d in view.service.dests}
        config = {normalize_endpoint(r.endpoint): r.weight for r in ka.real_servers}
        parts = []
        missing = [str(e) for e in config if e not in kernel]
        extra = [str(e) for e in kernel if e not in config]
        weights = [
            f"{e} {kernel[e]} -> {w}" for e, w in config.items() if e in kernel and kernel[e] != w
        ]
        if missing:
            parts.append(f"adds {', '.join(missing)} (at the head of the kernel order)")
        if extra:
            parts.append(f"does not manage {', '.join(extra)}")
        if weights:
            parts.append(f"sets weights {', '.join(weights)}")
        if ka.flags != (view.service.flags & 0x18):
            parts.append("has other sh flags")
        if ka.scheduler is not None and ka.scheduler != view.service.scheduler:
            parts.append(f"uses scheduler {ka.scheduler}")
        if parts:
            message = (
                f"keepalived owns this service on {view.name} (virtual_server in its config) "
                f"and its kernel state differs from that config: a keepalived reload "
                f"{'; '.join(parts)}. Make the config say what the kernel should keep, or make "
                "the kernel match it, before anything reloads keepalived."
            )
            found.append(Finding("keepalived-drift", "warning", view.name, message))
    return found


def _problems(views: Mapping[str, DirectorView]) -> list[Finding]:
    return [
        Finding(
            "director-unread",
            "warning",
            v.name,
            f"Part of {v.name}'s director state could not be read ({'; '.join(v.problems)}): "
            "what depends on it is unknown (VRRP state, sync daemon, timeouts or sysctls).",
        )
        for v in views.values()
        if v.problems
    ]
