"""Where the sh model sends a client now and after a drain, for the console's detail views.

Built on `whereis.proposed_table` (the kernel's dest order and weights, edited the way
ipvsadm edits them). Scheduling only decides NEW connections: an existing UDP entry stays
on its gateway through a weight-0 drain, and moves on deletion only with
expire_nodest_conn=1 — the notes say so, because that is what an operator gets wrong.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from wgconsole.core.fleet import ClientView, Fleet, ServiceView, gateways_by_real_server
from wgconsole.core.inventory import Inventory
from wgconsole.core.records import Endpoint
from wgconsole.core.sched import TAB_SIZE, ShTable
from wgconsole.core.whereis import WhereIsError, parse_source, proposed_table


@dataclass(frozen=True, slots=True)
class Outcome:
    scenario: str  # "now", "drain NAME (weight 0)", "remove NAME"
    gateway: str | None  # None: the kernel drops the packet
    bucket: int
    note: str


@dataclass(frozen=True, slots=True)
class DrainPreview:
    gateway: str
    lb_clients: int  # clients whose LB entry points to this gateway now
    buckets: int  # buckets whose new clients go to this gateway now
    weight0_new: Mapping[str | None, int]  # those buckets with weight 0: gateway (None dropped)
    removed_clients: Mapping[str | None, int]  # its clients' next pick if the dest is deleted
    entries_move_on_remove: bool | None  # expire_nodest_conn: None = unknown


def client_source(client: ClientView) -> Endpoint | None:
    """The address the LB hashes for this client: its LB entry's source, else its endpoint."""
    if client.lb_entry is not None:
        return client.lb_entry.client
    if client.endpoint is None:
        return None
    try:
        return parse_source(client.endpoint)
    except WhereIsError:
        return None


def _name(names: Mapping[Endpoint, str], dest: Endpoint | None) -> str | None:
    return None if dest is None else names.get(dest, str(dest))


def _names(inventory: Inventory) -> dict[Endpoint, str]:
    return {rs: gw.name for rs, gw in gateways_by_real_server(inventory).items()}


def _present(inventory: Inventory, service: ServiceView) -> list[str]:
    names = _names(inventory)
    return [names[d.endpoint] for d in service.dests if d.endpoint in names]


def client_outcomes(
    inventory: Inventory, service: ServiceView | None, client: ClientView
) -> tuple[Outcome, ...]:
    """Now, then each gateway drained (weight 0) and removed, for one client."""
    source = client_source(client)
    if service is None or source is None or service.scheduler != "sh":
        return ()
    names = _names(inventory)
    try:
        now = proposed_table(inventory, service.raw)
    except WhereIsError:
        return ()
    pick = now.pick(source.address, source.port)
    current = _name(names, pick.dest)
    if client.lb_gateway is None:
        note = "no LB entry now"
    elif client.lb_gateway == current:
        note = "its LB entry agrees"
    else:
        note = f"its LB entry is on {client.lb_gateway}, set before the table changed"
    outcomes = [Outcome("now", current, pick.bucket, note)]
    for gw in _present(inventory, service):
        drained = proposed_table(inventory, service.raw, weights={gw: 0})
        d = drained.pick(source.address, source.port)
        note = ""
        if client.lb_gateway == gw:
            note = f"its entry stays on {gw} while keepalives refresh it"
        outcomes.append(Outcome(f"drain {gw} (weight 0)", _name(names, d.dest), d.bucket, note))
        removed = proposed_table(inventory, service.raw, removed=[gw])
        r = removed.pick(source.address, source.port)
        note = ""
        if client.lb_gateway == gw:
            note = _removal_note(expire_nodest=service.expire_nodest_conn)
        outcomes.append(Outcome(f"remove {gw}", _name(names, r.dest), r.bucket, note))
    return tuple(outcomes)


def _removal_note(*, expire_nodest: bool | None) -> str:
    if expire_nodest:
        return "its entry expires on its next packet and is scheduled anew"
    if expire_nodest is None:
        return "moves only if expire_nodest_conn=1 (unknown here)"
    return "its entry never moves: expire_nodest_conn=0"


def drain_preview(inventory: Inventory, fleet: Fleet, gateway: str) -> DrainPreview | None:
    """What draining or removing `gateway` would do, from the live table and LB entries."""
    service = fleet.service
    if service is None or service.scheduler != "sh" or gateway not in _present(inventory, service):
        return None
    names = _names(inventory)
    now = proposed_table(inventory, service.raw)
    drained = proposed_table(inventory, service.raw, weights={gateway: 0})
    removed = proposed_table(inventory, service.raw, removed=[gateway])
    here = [b for b in range(TAB_SIZE) if _name(names, now.resolved(b)) == gateway]
    weight0 = Counter(_name(names, drained.resolved(b)) for b in here)
    clients = [c for c in fleet.clients if c.lb_gateway == gateway]
    moved = Counter(_next_pick(removed, names, c) for c in clients)
    return DrainPreview(
        gateway=gateway,
        lb_clients=len(clients),
        buckets=len(here),
        weight0_new=dict(weight0),
        removed_clients=dict(moved),
        entries_move_on_remove=service.expire_nodest_conn,
    )


def _next_pick(model: ShTable, names: Mapping[Endpoint, str], client: ClientView) -> str | None:
    source = client_source(client)
    if source is None:
        return None
    return _name(names, model.pick(source.address, source.port).dest)
