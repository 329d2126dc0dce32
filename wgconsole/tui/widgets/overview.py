"""Overview: the service line, the directors (a pair), real servers with the balance, hosts
with the age of their data, findings, and the picture of the directors' sh tables (a pair).

A pair's scrolls when it holds more than the terminal (80x24): its tables and the picture take
the focus in turn (Tab), and the focused one is scrolled into view."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Static

from wgconsole.tui.widgets.buckets import BucketGridView
from wgconsole.tui.widgets.colours import ThemeColours
from wgconsole.tui.widgets.keyed_table import KeyedTable
from wgconsole.tui.widgets.windowed_table import WindowedTable
from wgconsole.view.buckets import Line
from wgconsole.view.directors import DIRECTOR_COLUMNS
from wgconsole.view.freshness import host_ages
from wgconsole.view.probes import host_probe_cells
from wgconsole.view.rows.overview import (
    FINDING_COLUMNS,
    HOST_COLUMNS,
    SERVER_COLUMNS,
    host_rows,
    service_line,
)
from wgconsole.view.rows.selection import RowList
from wgconsole.view.snapshot import ConsoleSnapshot


class OverviewView(Vertical):
    _note: Line | None = None  # the Real servers title's tail shown
    _service: Line | None = None  # the service line shown

    def compose(self) -> ComposeResult:
        yield Static("", id="service")
        # A pair's: hidden with one LB (its single-director finding says so).
        # Hidden until a snapshot shows a pair, so that the focus starts on the real servers.
        yield Label("Directors", classes="section-title pair", id="directors-title")
        directors = KeyedTable(DIRECTOR_COLUMNS, id="directors")
        directors.add_class("pair")
        yield directors
        # The title says when clients are not where sh sends them (R: rebalance).
        yield Label("Real servers", classes="section-title", id="servers-title")
        yield KeyedTable(SERVER_COLUMNS, id="servers")
        yield Label("Hosts", classes="section-title", id="hosts-title")
        yield KeyedTable(HOST_COLUMNS, id="hosts")
        yield Label("Findings", classes="section-title", id="findings-title")
        # A stale fleet has a finding per client: thousands of rows, held a window at a time.
        yield WindowedTable(FINDING_COLUMNS, id="findings")
        yield Label(
            "sh tables: the VIP holder's and the backup's, bucket by bucket",
            classes="section-title pair",
            id="buckets-title",
        )
        yield BucketGridView(id="buckets")

    def show(
        self, snapshot: ConsoleSnapshot, now: float, colours: ThemeColours, *, restyle: bool
    ) -> None:
        fleet = snapshot.fleet
        line = service_line(fleet, snapshot.kept, now)
        if restyle or line != self._service:
            self._service = line
            service = self.query_one("#service", Static)
            service.update(colours.line(line))
            # Textual 8.2 counts a widget's layouts only when none is pending, and caches its
            # box model by that count: an update made while an earlier layout of it is still
            # pending kept the previous text's height (one line of two, now and then, on a
            # loaded machine). Once that layout is done, another one sizes the new text.
            self.call_after_refresh(service.refresh, layout=True)
        pair = bool(snapshot.directors)
        self.set_class(pair, "-pair")
        if pair:
            self.query_one("#directors", KeyedTable).apply(
                snapshot.directors, colours, restyle=restyle
            )
        self.query_one("#buckets", BucketGridView).show(snapshot.buckets, colours, restyle=restyle)
        note = snapshot.balance_note
        if restyle or note != self._note:  # an update re-lays out the Overview
            self._note = note
            title = colours.line((("Real servers", ""), *note))
            self.query_one("#servers-title", Label).update(title)
        self.query_one("#servers", KeyedTable).apply(snapshot.servers, colours, restyle=restyle)
        findings = snapshot.findings
        self.query_one("#findings-title", Label).update(
            # The fleet's count: many clients' findings of one code show as one row.
            f"Findings ({len(snapshot.fleet.findings):,}, worst first)"
            if findings
            else "Findings: none"
        )
        self.query_one("#findings", WindowedTable).show(RowList(findings), colours, restyle=restyle)
        self.tick(snapshot, now, colours, restyle=restyle)

    def tick(
        self, snapshot: ConsoleSnapshot, now: float, colours: ThemeColours, *, restyle: bool = False
    ) -> None:
        """Host data ages grow between polls: recomputed every second."""
        probes = host_probe_cells(snapshot.probes, snapshot.fleet)
        rows = host_rows(host_ages(snapshot.fleet.hosts, now), probes)
        self.query_one("#hosts", KeyedTable).apply(rows, colours, restyle=restyle)
