"""What the poll worker hands the console after each poll: one immutable ConsoleSnapshot.

The worker does all the per-poll work here — fleet, rates, events, kept data of lost
hosts, and every table row — so that the UI thread only diffs rows into its tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wgconsole.events import Event, fleet_events
from wgconsole.freshness import Keeper, Kept
from wgconsole.inventory_types import Inventory
from wgconsole.model import Fleet, gateways_by_real_server
from wgconsole.rates import FleetRates, RateTracker
from wgconsole.rows import ConnIndex, ConnView, Row, client_rows, finding_rows, server_rows


@dataclass(frozen=True, slots=True, eq=False)
class ConsoleSnapshot:
    seq: int
    fleet: Fleet
    rates: FleetRates
    kept: Kept
    events: tuple[Event, ...]  # new since the previous snapshot
    poll_seconds: float
    built_at: float  # clock time the rows were built (ages in rows are as of then)
    clients: tuple[Row, ...]
    servers: tuple[Row, ...]
    findings: tuple[Row, ...]
    conns: ConnIndex


class SnapshotBuilder:
    """Turns successive fleets into snapshots; owned by the single poll worker."""

    def __init__(self, inventory: Inventory, clock: Callable[[], float]) -> None:
        self.inventory = inventory
        self.clock = clock
        self._rates = RateTracker()
        self._keeper = Keeper()
        self._previous: Fleet | None = None
        self._seq = 0
        self._names = {rs: gw.name for rs, gw in gateways_by_real_server(inventory).items()}
        # Set by the UI thread (one atomic assignment), read here: which filtered, sorted
        # window of the LB table to prepare along with the snapshot.
        self.conn_view: ConnView | None = None

    def build(self, fleet: Fleet, poll_seconds: float) -> ConsoleSnapshot:
        now = self.clock()
        rates = self._rates.update(fleet)
        kept = self._keeper.update(fleet)
        events = tuple(fleet_events(self._previous, fleet))
        self._previous = fleet
        self._seq += 1
        conns = ConnIndex(fleet.conns, self._names, fleet.taken_at)
        conns.prepare(self.conn_view)
        return ConsoleSnapshot(
            seq=self._seq,
            fleet=fleet,
            rates=rates,
            kept=kept,
            events=events,
            poll_seconds=poll_seconds,
            built_at=now,
            clients=client_rows(fleet, rates, kept, now),
            servers=server_rows(fleet, rates, kept, now),
            findings=finding_rows(fleet.findings),
            conns=conns,
        )
