"""What the poll worker hands the console after each poll: one immutable ConsoleSnapshot.

The worker does all the per-poll work here — fleet, rates, events, kept data of lost
hosts, and every table row — so that the UI thread only diffs rows into its tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wgconsole.core.fleet import Finding, Fleet, gateways_by_real_server
from wgconsole.core.inventory import Inventory
from wgconsole.probe.prober import ProbeResult
from wgconsole.view.balance import balance_note, fleet_balance
from wgconsole.view.buckets import BucketGrid, Line
from wgconsole.view.details import GatewayDetails
from wgconsole.view.directors import director_grid, director_rows, is_pair
from wgconsole.view.events import Event, fleet_events
from wgconsole.view.finding_groups import FindingGroup, fold_findings
from wgconsole.view.freshness import Keeper, Kept
from wgconsole.view.probes import probe_events
from wgconsole.view.rates import FleetRates, RateTracker
from wgconsole.view.rows.cells import Row
from wgconsole.view.rows.clients import client_rows
from wgconsole.view.rows.connections import ConnIndex, entry_clients
from wgconsole.view.rows.overview import finding_rows, server_rows
from wgconsole.view.rows.selection import RowIndex, TableQuery


@dataclass(frozen=True, slots=True, eq=False)
class ConsoleSnapshot:
    seq: int
    fleet: Fleet
    rates: FleetRates
    kept: Kept
    events: tuple[Event, ...]  # new since the previous snapshot
    poll_seconds: float
    built_at: float  # clock time the rows were built (ages in rows are as of then)
    clients: RowIndex
    servers: tuple[Row, ...]
    findings: tuple[Row, ...]
    finding_items: tuple[Finding | FindingGroup, ...]  # what each row of `findings` shows
    conns: ConnIndex
    gateways: GatewayDetails  # the open gateway detail's prepared, any other on demand
    # The director pair (empty / None with one LB): a row per LB, the two tables' picture.
    directors: tuple[Row, ...] = ()
    buckets: BucketGrid | None = None
    balance_note: Line = ()  # the Real servers title's tail when a rebalance is due
    probes: tuple[ProbeResult, ...] = ()  # the round after this poll (none: probing is off)


class SnapshotBuilder:
    """Turns successive fleets into snapshots; owned by the single poll worker."""

    def __init__(self, inventory: Inventory, clock: Callable[[], float]) -> None:
        self.inventory = inventory
        self.clock = clock
        self._rates = RateTracker()
        self._keeper = Keeper()
        self._previous: Fleet | None = None
        self._previous_probes: tuple[ProbeResult, ...] | None = None
        self._seq = 0
        self._names = {rs: gw.name for rs, gw in gateways_by_real_server(inventory).items()}
        # Set by the UI thread (one atomic assignment each), read here: which filtered,
        # sorted selection of the clients and of the LB table to prepare with the snapshot.
        self.client_query: TableQuery | None = None
        self.conn_query: TableQuery | None = None
        self.detail_gateways: tuple[str, ...] = ()  # whose detail screens are open
        # Snapshots the UI replaced: freed here, in the worker, rather than on the UI thread
        # (a snapshot of 10,000 clients is ~0.5 million objects, ~15 ms to free).
        self._retired: list[ConsoleSnapshot] = []

    def retire(self, snapshot: ConsoleSnapshot) -> None:
        """Called by the UI thread with the snapshot it no longer shows."""
        self._retired.append(snapshot)

    def build(
        self, fleet: Fleet, poll_seconds: float, probes: tuple[ProbeResult, ...] = ()
    ) -> ConsoleSnapshot:
        self._retired.clear()
        now = self.clock()
        rates = self._rates.update(fleet)
        kept = self._keeper.update(fleet)
        events = (
            *fleet_events(self._previous, fleet),
            *probe_events(self._previous_probes, probes, fleet.taken_at),
        )
        self._previous = fleet
        if probes:
            self._previous_probes = probes
        self._seq += 1
        conns = ConnIndex(fleet.conns, self._names, fleet.taken_at, entry_clients(fleet))
        conns.prepare(self.conn_query)
        clients = RowIndex(client_rows(fleet, rates, kept, now))
        clients.prepare(self.client_query)
        folded = tuple(fold_findings(fleet.findings))
        gateways = GatewayDetails(self.inventory, fleet, kept, now)
        gateways.prepare(self.detail_gateways)
        balance, misplaced = fleet_balance(self.inventory, fleet)
        return ConsoleSnapshot(
            seq=self._seq,
            fleet=fleet,
            rates=rates,
            kept=kept,
            events=events,
            poll_seconds=poll_seconds,
            built_at=now,
            clients=clients,
            servers=server_rows(fleet, rates, kept, now, balance),
            findings=finding_rows(folded, fleet, {g.name for g in self.inventory.gateways}),
            finding_items=folded,
            conns=conns,
            gateways=gateways,
            directors=director_rows(fleet) if is_pair(fleet) else (),
            buckets=director_grid(fleet, self.inventory),
            balance_note=balance_note(misplaced),
            probes=probes,
        )
