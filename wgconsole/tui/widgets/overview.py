"""Overview: the service line, real servers, hosts with the age of their data, findings."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Static

from wgconsole.tui.widgets.keyed_table import KeyedTable
from wgconsole.tui.widgets.palette import Palette
from wgconsole.tui.widgets.windowed_table import WindowedTable
from wgconsole.view.freshness import host_ages
from wgconsole.view.rows import (
    FINDING_COLUMNS,
    HOST_COLUMNS,
    SERVER_COLUMNS,
    RowList,
    host_rows,
    service_line,
)
from wgconsole.view.snapshot import ConsoleSnapshot


class OverviewView(Vertical):
    def compose(self) -> ComposeResult:
        yield Static("", id="service")
        yield Label("Real servers", classes="section-title", id="servers-title")
        yield KeyedTable(SERVER_COLUMNS, id="servers")
        yield Label("Hosts", classes="section-title", id="hosts-title")
        yield KeyedTable(HOST_COLUMNS, id="hosts")
        yield Label("Findings", classes="section-title", id="findings-title")
        # A stale fleet has a finding per client: thousands of rows, held a window at a time.
        yield WindowedTable(FINDING_COLUMNS, id="findings")

    def show(self, snapshot: ConsoleSnapshot, now: float, palette: Palette, restyle: bool) -> None:
        fleet = snapshot.fleet
        self.query_one("#service", Static).update(
            palette.line(service_line(fleet, snapshot.kept, now))
        )
        self.query_one("#servers", KeyedTable).apply(snapshot.servers, palette, restyle=restyle)
        findings = snapshot.findings
        self.query_one("#findings-title", Label).update(
            # The fleet's count: many clients' findings of one code show as one row.
            f"Findings ({len(snapshot.fleet.findings):,}, worst first)"
            if findings
            else "Findings: none"
        )
        self.query_one("#findings", WindowedTable).show(RowList(findings), palette, restyle=restyle)
        self.tick(snapshot, now, palette, restyle)

    def tick(
        self, snapshot: ConsoleSnapshot, now: float, palette: Palette, restyle: bool = False
    ) -> None:
        """Host data ages grow between polls: recomputed every second."""
        rows = host_rows(host_ages(snapshot.fleet.hosts, now))
        self.query_one("#hosts", KeyedTable).apply(rows, palette, restyle=restyle)
