"""Clients against the current sh table: who is not where the table sends it, and the balance.

An IPVS entry keeps its gateway for as long as its client sends (a keepalive refreshes it), so
after an undrain, a weight change or a gateway added, existing clients stay where the old table
put them: one gateway can carry everyone while the table gives the others half the buckets.
This module says, from one fleet snapshot, which clients' LB entries disagree with the gateway
the current table picks for them (`misplaced`: the `not-on-sh-choice` finding, and the moves a
rebalance plans), and the balance per gateway that the console's Overview shows (`balance`).

Pure: built on `whereis.proposed_table` (the live dest list in kernel order, weights, flags).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wgconsole.core.fleet import ClientView, Fleet, gateways_by_real_server
from wgconsole.core.inventory import Inventory
from wgconsole.core.records import Endpoint, IpvsService
from wgconsole.core.sched import TAB_SIZE, bucket_of
from wgconsole.core.whereis import WhereIsError, proposed_table


@dataclass(frozen=True, slots=True)
class ShChoice:
    """The gateway a new packet from each bucket goes to under the current table (after
    weight-0 and fallback), by name; None where the kernel would drop it. Equal choices are
    equal objects' worth: a FleetBuilder compares one per poll."""

    gateways: tuple[str | None, ...]  # TAB_SIZE entries, indexed by the initial bucket
    port_hashing: bool

    def gateway(self, source: Endpoint) -> str | None:
        """Where the table sends a new connection from `source` (an LB entry's client)."""
        try:
            bucket = bucket_of(source.address, source.port if self.port_hashing else 0)
        except ValueError:
            return None
        return self.gateways[bucket]


def sh_choice(inventory: Inventory, service: IpvsService | None) -> ShChoice | None:
    """The choice of `service`'s live table; None when there is no sh service to model."""
    if service is None or service.scheduler != "sh":
        return None
    try:
        model = proposed_table(inventory, service)
    except (WhereIsError, ValueError):
        # ValueError: a dest list the kernel cannot hold (a duplicate, a weight out of range)
        # read from a damaged listing: there is no table to compare clients with.
        return None
    names = {rs: gw.name for rs, gw in gateways_by_real_server(inventory).items()}
    resolved = (model.resolved(b) for b in range(TAB_SIZE))
    gateways = tuple(None if d is None else names.get(d, str(d)) for d in resolved)
    return ShChoice(gateways, model.port_hashing)


@dataclass(frozen=True, slots=True)
class Misplaced:
    """A client whose LB entry is on `now` while the current table sends it to `sh`."""

    client: ClientView
    source: Endpoint  # its LB entry's client address and port (what the LB hashes)
    now: str
    sh: str


def misplaced(clients: Sequence[ClientView], choice: ShChoice | None) -> list[Misplaced]:
    """The clients whose LB entry points to another gateway than the table's choice, in their
    order. A client the table would drop (no available gateway for its bucket) is not one: it
    has nowhere better to go."""
    if choice is None:
        return []
    found = []
    for client in clients:
        entry = client.lb_entry
        if entry is None or client.lb_gateway is None:
            continue
        sh = choice.gateway(entry.client)
        if sh is not None and sh != client.lb_gateway:
            found.append(Misplaced(client, entry.client, client.lb_gateway, sh))
    return found


def fleet_choice(inventory: Inventory, fleet: Fleet) -> ShChoice | None:
    service = fleet.service
    return None if service is None else sh_choice(inventory, service.raw)


@dataclass(frozen=True, slots=True)
class GatewayBalance:
    """One gateway's load against its share of the table, for the Overview's imbalance.

    `clients`: clients whose LB entry points to it now; `clients_after`: those of the same
    clients that the current table sends to it (what a rebalance leaves); `buckets`: of the
    256, those whose new clients it receives now (weight 0 and fallback applied).
    """

    gateway: str
    clients: int
    clients_after: int
    buckets: int

    @property
    def share(self) -> float:
        """Its fraction of the table's buckets, 0..1."""
        return self.buckets / TAB_SIZE


def balance(inventory: Inventory, fleet: Fleet) -> tuple[GatewayBalance, ...]:
    """Per inventory gateway (in inventory order): clients now and after a rebalance, and
    buckets. Empty when the service is not an sh service on an answering LB."""
    choice = fleet_choice(inventory, fleet)
    if choice is None:
        return ()
    now = Counter(c.lb_gateway for c in fleet.clients if c.lb_entry is not None)
    after: Counter[str | None] = Counter()
    for c in fleet.clients:
        if c.lb_entry is None:
            continue
        sh = choice.gateway(c.lb_entry.client)
        # A client the table would drop stays where it is.
        after[sh if sh is not None else c.lb_gateway] += 1
    buckets = Counter(choice.gateways)
    return tuple(
        GatewayBalance(gw.name, now[gw.name], after[gw.name], buckets[gw.name])
        for gw in inventory.gateways
    )


def imbalance_note(rows: Sequence[GatewayBalance]) -> str | None:
    """One line for the Overview when clients are not where the table sends them: `N clients
    not where sh sends them: `wgconsole rebalance``; None when balanced."""
    moving = sum(abs(r.clients - r.clients_after) for r in rows) // 2
    if not moving:
        return None
    return f"{moving:,} client(s) not where sh sends them: `wgconsole rebalance` moves them"


def share_text(rows: Sequence[GatewayBalance]) -> Mapping[str, str]:
    """Per gateway: `clients now -> after (bucket share)`, as the rebalance preview prints it."""
    return {
        r.gateway: f"{r.clients:>5} -> {r.clients_after:<5} ({r.buckets} of {TAB_SIZE} buckets, "
        f"{r.share:.0%})"
        for r in rows
    }
