"""The live console: a Textual app over a FleetCollector.

One thread worker polls in a loop — never two polls at once — and builds an immutable
ConsoleSnapshot (fleet, rates, events, rows) off the UI thread. It posts the snapshot
and waits until the UI has applied it before polling again, so snapshots never queue.
The UI only diffs rows into keyed tables; every age on screen comes from `clock`, so a
test can freeze it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import ClassVar, Protocol

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.theme import Theme
from textual.widgets import DataTable, Footer, TabbedContent, TabPane
from textual.worker import get_current_worker

from wgconsole.config.inventory_file import InventoryError, load_inventory
from wgconsole.config.themes import DEFAULT_THEME, ThemeError, ThemeSpec, load_themes
from wgconsole.core.fleet import Fleet
from wgconsole.core.inventory import Inventory
from wgconsole.core.text import printable
from wgconsole.ops import catalog
from wgconsole.ops.machinery.audit import AuditLog, default_audit_path
from wgconsole.ops.machinery.context import OpContext, ProgressSink
from wgconsole.ops.machinery.operation import Operation
from wgconsole.poll.collector import FleetCollector, ParseMemos, PollResult
from wgconsole.poll.transport.base import Transport
from wgconsole.probe.fleet_probe import FleetProber, ProbeRounds
from wgconsole.tui.commands import ConsoleCommands
from wgconsole.tui.options import ConsoleOptions
from wgconsole.tui.screens.action import ActionScreen
from wgconsole.tui.screens.detail import ClientScreen, DetailScreen, GatewayScreen
from wgconsole.tui.screens.help import HelpScreen
from wgconsole.tui.screens.trace import TraceScreen
from wgconsole.tui.widgets.clients import ClientsView
from wgconsole.tui.widgets.colours import ThemeColours
from wgconsole.tui.widgets.connections import ConnectionsView
from wgconsole.tui.widgets.eventlog import EventLog
from wgconsole.tui.widgets.header import ConsoleHeader
from wgconsole.tui.widgets.keyed_table import KeyedTable
from wgconsole.tui.widgets.overview import OverviewView
from wgconsole.tui.widgets.tableview import TableView
from wgconsole.view.events import operator_action
from wgconsole.view.heap import HeapKeeper
from wgconsole.view.rows.selection import TableQuery
from wgconsole.view.snapshot import ConsoleSnapshot, SnapshotBuilder
from wgconsole.view.subjects import (
    ClientSubject,
    FindingSubject,
    GatewaySubject,
    LbEntrySubject,
    Subject,
)

# Views only updated while shown (thousands of rows each); a hidden one catches up when shown.
LAZY_VIEWS = frozenset({"overview", "clients", "connections"})
READ_ONLY_REFUSAL = "read-only: no action can run"
SELECT_GATEWAY = "select a gateway first: a real server or host row (Overview) or its detail"
SELECT_CLIENT = "select a client first: a Clients row or its detail screen"
# Operations: on the selected gateway (Overview row or its detail screen), on the selected
# client (Clients row or its detail screen), or anywhere (add).
ACTION_BINDINGS: list[Binding] = [
    Binding(
        "D",
        "drain",
        "Drain",
        show=False,
        tooltip="drain the selected gateway (preview, type its name, run)",
    ),
    Binding(
        "U",
        "undrain",
        "Undrain",
        show=False,
        tooltip="return the selected gateway to service at its recorded weight",
    ),
    Binding(
        "W", "weight", "Weight", show=False, tooltip="set the selected gateway's weight (asks N)"
    ),
    Binding(
        "X",
        "peer_remove",
        "Remove peer",
        show=False,
        tooltip="remove the selected client's peer from every gateway",
    ),
    Binding(
        "A",
        "peer_add",
        "Add peer",
        show=False,
        tooltip="add a peer on every gateway (name, key or output file, address)",
    ),
    Binding(
        "R",
        "rebalance",
        "Rebalance",
        show=False,
        tooltip="move the clients not where the sh table sends them (preview, type rebalance)",
    ),
]
# The views, help and a poll: keys of the console's own screen.
VIEW_BINDINGS: list[Binding] = [
    Binding(
        "1",
        "view('overview')",
        "Overview",
        tooltip="Overview: service, directors, real servers, hosts, findings, sh tables",
    ),
    Binding("2", "view('clients')", "Clients", tooltip="Clients: LB and handshake gateway of each"),
    Binding("3", "view('connections')", "Conns", tooltip="Connections: the LB IPVS table"),
    Binding("4", "view('log')", "Log", tooltip="Log: hosts, clients, findings, actions"),
    Binding("question_mark", "help", "Help", key_display="?", tooltip="this help"),
    Binding("r", "poll_now", "Poll now", show=False, tooltip="poll every host now"),
]
QUIT_BINDING = Binding("q", "quit", "Quit", tooltip="quit and close every SSH connection")
# A trace only observes (allowed under --read-only): not an operation.
TRACE_BINDING = Binding(
    "t",
    "trace",
    "Trace",
    show=False,
    tooltip="trace the selected client's packets across the LBs and gateways (Escape stops)",
)


def binding_actions(bindings: Iterable[Binding]) -> frozenset[str]:
    """The actions `bindings` run, by name: `view('log')` is `view` (as check_action asks)."""
    return frozenset(b.action.partition("(")[0] for b in bindings)


# Above an operation's modal screen, the views' keys and the other operations' make no sense:
# every app key but quit.
BLOCKED_IN_ACTION = binding_actions([*VIEW_BINDINGS, *ACTION_BINDINGS, TRACE_BINDING])


class Collector(Protocol):
    """What the console needs from a FleetCollector (tests inject replaying ones)."""

    inventory: Inventory
    parse_memos: ParseMemos

    @property
    def transports(self) -> Mapping[str, Transport]: ...

    def read_fleet(self) -> Fleet: ...

    def poll(self, roles: tuple[str, ...] = ...) -> PollResult: ...

    def fleet(self, poll: PollResult) -> Fleet: ...

    def close(self) -> None: ...


class SnapshotReady(Message):
    def __init__(self, snapshot: ConsoleSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class PollFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


def textual_theme(spec: ThemeSpec) -> Theme:
    c = spec.colours
    return Theme(
        name=spec.name,
        primary=c["primary"],
        secondary=c.get("secondary"),
        accent=c.get("accent"),
        warning=c.get("warning"),
        error=c.get("error"),
        success=c.get("success"),
        foreground=c.get("foreground"),
        background=c.get("background"),
        surface=c.get("surface"),
        panel=c.get("panel"),
        boost=c.get("boost"),
        dark=spec.dark,
        variables=dict(spec.variables),
    )


class ConsoleApp(App[int]):
    CSS_PATH = "console.tcss"
    TITLE = "wgconsole"
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        *VIEW_BINDINGS,
        QUIT_BINDING,
        TRACE_BINDING,
        *ACTION_BINDINGS,
    ]

    def __init__(
        self,
        inventory: Inventory,
        collector: Collector,
        *,
        interval: float = 2.0,
        read_only: bool = False,
        theme: str | None = None,
        clock: Callable[[], float] = time.time,
        themes: dict[str, ThemeSpec] | None = None,
        audit_path: Path | None = None,
        op_timeout: float = 30.0,
        prober: ProbeRounds | None = None,
        site: str | None = None,
    ) -> None:
        super().__init__()
        self.inventory = inventory
        self.site = site
        self.prober = prober
        self.collector = collector
        self.interval = interval
        self.read_only = read_only
        self.audit_path = audit_path if audit_path is not None else default_audit_path()
        self.op_timeout = op_timeout
        self.clock = clock
        self.console_themes = themes if themes is not None else load_themes()
        for spec in self.console_themes.values():
            self.register_theme(textual_theme(spec))
        wanted = theme or DEFAULT_THEME
        if wanted not in self.available_themes:
            raise ThemeError(
                f"no theme {wanted!r}; available: {', '.join(sorted(self.console_themes))}"
            )
        self.theme = wanted
        self.builder = SnapshotBuilder(inventory, clock)
        self._heap = HeapKeeper()
        self.snapshot: ConsoleSnapshot | None = None
        self.poll_error: str | None = None
        self.applied = 0  # snapshots applied to the views (tests wait on it)
        self.colours = ThemeColours(self.get_css_variables())
        self._restyle = False
        self._behind_views: set[str] = set()
        self._restyle_views: set[str] = set()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._taken = threading.Event()
        self._collector_closed = False

    # --- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield ConsoleHeader(read_only=self.read_only)
        with TabbedContent(initial="overview", id="views"):
            with TabPane("1 Overview", id="overview"):
                yield OverviewView(id="overview-view")
            with TabPane("2 Clients", id="clients"):
                yield ClientsView(id="clients-view")
            with TabPane("3 Connections", id="connections"):
                yield ConnectionsView(id="connections-view")
            with TabPane("4 Log", id="log"):
                yield EventLog(id="events")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if self.read_only:
            self.sub_title = "read-only"
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.set_interval(1.0, self._tick)
        self.query_one(ConnectionsView).on_query = self._conn_query
        self.query_one(ClientsView).on_query = self._client_query
        self._poll_loop()
        self.query_one("#servers", KeyedTable).focus()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            if command.title not in ("Quit the application", "Keys"):
                yield command
        yield SystemCommand("Quit", "Quit and close every SSH connection", self.action_quit)

    # --- polling (worker thread) ----------------------------------------------------------

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def _poll_loop(self) -> None:
        worker = get_current_worker()
        while not (worker.is_cancelled or self._stop.is_set()):
            started = time.monotonic()
            try:
                poll = self.collector.poll()
                fleet = self.collector.fleet(poll)
                # After the poll, in this worker, bounded by the probe's own timeout.
                probes = (
                    ()
                    if self.prober is None
                    else self.prober.round(self.inventory, (g.public_key for g in fleet.gateways))
                )
                snapshot = self.builder.build(fleet, poll.seconds, probes)
                self._heap.after_snapshot()
            except Exception as exc:  # a parser bug must not end the console
                if self._stop.is_set():
                    return
                self.post_message(PollFailed(f"{type(exc).__name__}: {exc}"))
            else:
                self._taken.clear()
                self.post_message(SnapshotReady(snapshot))
                # Never queue snapshots: the next poll starts once the UI took this one.
                while not self._taken.wait(0.2):
                    if self._stop.is_set() or worker.is_cancelled:
                        return
            # Short waits: the app's shutdown cancels the worker and then waits for the thread.
            until = started + self.interval
            while not (self._wake.is_set() or worker.is_cancelled or self._stop.is_set()):
                left = until - time.monotonic()
                if left <= 0:
                    break
                self._wake.wait(min(left, 0.2))
            self._wake.clear()

    def action_poll_now(self) -> None:
        self._wake.set()

    def reread_clients(self) -> None:
        """A peer added or removed from here rewrote the inventory's `clients:`: the views
        name the client from the next poll on, not as an unknown peer until a restart.
        Only the clients are taken: the hosts and service are those the console polls."""
        try:
            on_disk = load_inventory(self.inventory.path)
        except InventoryError as exc:
            self.notify(f"clients not re-read from the inventory: {exc}", severity="warning")
            return
        inventory = replace(self.inventory, clients=on_disk.clients)
        # Single assignments: the poll worker takes whichever it reads first.
        self.inventory = inventory
        self.collector.inventory = inventory
        self.builder.inventory = inventory
        self.action_poll_now()

    # --- applying snapshots (UI thread) ---------------------------------------------------

    @on(SnapshotReady)
    def _on_snapshot(self, message: SnapshotReady) -> None:
        try:
            if self._views_mounted():
                self.apply_snapshot(message.snapshot)
        finally:
            self._taken.set()

    def _views_mounted(self) -> bool:
        # Timers and late messages can arrive while the app is closing its screens, which
        # Textual removes widget by widget once it has stopped running.
        return (
            self.is_running
            and not self._collector_closed
            and bool(self.screen_stack)
            and bool(self._main.query(OverviewView))
        )

    @property
    def _main(self) -> Screen[object]:
        """The console's own screen: its views are updated whatever screen is on top."""
        return self.screen_stack[0]

    @on(PollFailed)
    def _on_poll_failed(self, message: PollFailed) -> None:
        self.poll_error = message.error
        if not self._views_mounted():
            return
        self._main.query_one(ConsoleHeader).show(
            self.snapshot, self.clock(), self.colours, message.error
        )

    def apply_snapshot(self, snapshot: ConsoleSnapshot) -> None:
        """Every view from one snapshot; cells that did not change are not touched."""
        if self.snapshot is not None:
            self.builder.retire(self.snapshot)
        self.snapshot = snapshot
        self.poll_error = None
        now = self.clock()
        restyle, self._restyle = self._restyle, False
        if restyle:
            self._restyle_views.update(LAZY_VIEWS)
        colours = self.colours
        active = self._main.query_one(TabbedContent).active
        with self.batch_update():
            self._main.query_one(ConsoleHeader).show(snapshot, now, colours)
            self._main.query_one(EventLog).add(snapshot.events, colours)
            # Views are updated only while on screen; a hidden one catches up with the
            # latest snapshot when its tab is shown.
            self._behind_views.update(LAZY_VIEWS)
            if active in LAZY_VIEWS:
                self._catch_up(active)
            for screen in self.screen_stack:
                if isinstance(screen, DetailScreen):
                    screen.show(snapshot, now, colours, restyle=restyle)
        self._detail_query()
        self.applied += 1

    def _detail_query(self) -> None:
        # Read by the poll worker: the next snapshot comes with these gateways' details.
        self.builder.detail_gateways = tuple(
            s.gateway for s in self.screen_stack if isinstance(s, GatewayScreen)
        )

    def _conn_query(self, query: TableQuery) -> None:
        # Read by the poll worker: the next snapshot comes with this selection already sorted.
        self.builder.conn_query = query

    def _client_query(self, query: TableQuery) -> None:
        self.builder.client_query = query

    def _catch_up(self, view: str) -> None:
        if self.snapshot is None or view not in self._behind_views:
            return
        restyle = view in self._restyle_views
        if view == "overview":
            self._main.query_one(OverviewView).show(
                self.snapshot, self.clock(), self.colours, restyle=restyle
            )
        elif view == "clients":
            self._main.query_one(ClientsView).show(self.snapshot, self.colours, restyle=restyle)
        else:
            self._main.query_one(ConnectionsView).show(
                self.snapshot, self.clock(), self.colours, restyle=restyle
            )
        self._behind_views.discard(view)
        self._restyle_views.discard(view)

    def _tick(self) -> None:
        snapshot = self.snapshot
        if snapshot is None or not self._views_mounted():
            return
        now = self.clock()
        with self.batch_update():
            self._main.query_one(ConsoleHeader).show(snapshot, now, self.colours, self.poll_error)
            active = self._main.query_one(TabbedContent).active
            if active == "overview" and "overview" not in self._behind_views:
                self._main.query_one(OverviewView).tick(snapshot, now, self.colours)
            elif active == "connections":
                self._main.query_one(ConnectionsView).tick(now)

    def _theme_changed(self, _theme: Theme) -> None:
        self.colours = ThemeColours(self.get_css_variables())
        if self.snapshot is not None:
            self._restyle = True
            self.apply_snapshot(self.snapshot)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification of the console, shown as text.

        Messages quote findings, hosts' errors and lock owners: read as markup, a `[/]` in one
        ended the console. So `markup` is never honoured (Widget.notify passes True unless
        told otherwise), and control characters are shown as escapes.
        """
        super().notify(
            printable(message, newlines=True),
            title=printable(title),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    def record_action(self, subject: str, message: str) -> None:
        """Log an operator action with the fleet events (the hook for console operations)."""
        # The views live on the first screen; an operation's modal may be on top.
        logs = self.screen_stack[0].query(EventLog) if self.screen_stack else None
        if logs:
            logs.first().add([operator_action(self.clock(), subject, message)], self.colours)

    def set_theme(self, name: str) -> None:
        self.theme = name

    # --- navigation -----------------------------------------------------------------------

    def action_view(self, view: str) -> None:
        while isinstance(self.screen, (DetailScreen, HelpScreen)):
            self.pop_screen()
        self.query_one(TabbedContent).active = view
        self._catch_up(view)
        self._focus_view(view)

    def _focus_view(self, view: str) -> None:
        pane = self.query_one(f"#{view}", TabPane)
        target: KeyedTable | None = (
            pane.query(TableView).first().table if pane.query(TableView) else None
        )
        if target is None:
            # The Overview's real servers: a pair's directors table above them is not where
            # the drain, undrain and weight keys act.
            tables = [t for t in pane.query(KeyedTable) if not t.has_class("pair")]
            target = tables[0] if tables else None
        if target is not None:
            target.focus()
        else:
            pane.query_one(EventLog).focus()

    @on(TabbedContent.TabActivated)
    def _tab(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id:
            self._catch_up(event.pane.id)
            self._focus_view(event.pane.id)
        if event.pane.id == "connections":
            self.query_one(ConnectionsView).tick(self.clock())

    def help_sections(self) -> list[tuple[str, list[Binding]]]:
        def own(bindings: Iterable[object]) -> list[Binding]:
            return [b for b in bindings if isinstance(b, Binding)]

        return [
            ("Everywhere", [b for b in own(self.BINDINGS) if b not in ACTION_BINDINGS]),
            ("Tables (Clients, Connections)", own(TableView.BINDINGS)),
            (
                "Any table",
                [
                    Binding("up/down/pgup/pgdn", "", "move"),
                    Binding("home/end", "", "first / last row"),
                    Binding(
                        "enter",
                        "",
                        "details of the gateway or client under the cursor; "
                        "on a finding, its subject or its whole text",
                    ),
                    Binding("click header", "", "sort by that column (again: reverse)"),
                ],
            ),
            ("Detail screens", own(DetailScreen.BINDINGS)),
        ]

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
            return
        actions = [(b.key, b.tooltip or b.description) for b in ACTION_BINDINGS]
        self.push_screen(
            HelpScreen(self.help_sections(), read_only=self.read_only, actions=actions)
        )

    def open_gateway(self, name: str) -> None:
        self.push_screen(GatewayScreen(self.inventory, name, read_only=self.read_only))

    def open_client(self, public_key: str) -> None:
        self.push_screen(ClientScreen(self.inventory, public_key, read_only=self.read_only))

    @on(DetailScreen.Ready)
    def _detail_ready(self, message: DetailScreen.Ready) -> None:
        if self.snapshot is not None:
            message.screen.show(self.snapshot, self.clock(), self.colours, restyle=False)
        self._detail_query()

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        table = event.data_table
        key = event.row_key.value
        if key is None or self.snapshot is None or not isinstance(table, KeyedTable):
            return
        self.open_subject(table.subject_of(key))

    def open_subject(self, subject: Subject | None) -> None:
        """Enter on a row: its gateway's or client's detail. A finding opens what it is about
        (a group of clients' findings lists those clients), else shows its whole text."""
        match subject:
            case GatewaySubject(name):
                self.open_gateway(name)
            case ClientSubject(public_key):
                self.open_client(public_key)
            case LbEntrySubject(client):
                if client is not None:
                    self.open_client(client.public_key)
                else:
                    self.notify("no known client behind this LB entry", severity="warning")
            case FindingSubject(group=True, code=code):
                self.action_view("clients")
                self.query_one(ClientsView).set_filter(code)
            case FindingSubject(about=GatewaySubject() | ClientSubject() as about):
                self.open_subject(about)
            case FindingSubject(code=code, severity=severity, message=message):
                level: SeverityLevel = "error" if severity == "critical" else "warning"
                self.notify(message, title=code, severity=level, timeout=15)
            case _:
                pass  # a director, a peer, a drift: nothing to open

    # --- operations ----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in BLOCKED_IN_ACTION and isinstance(self.screen, ActionScreen))

    def op_context(self, sink: ProgressSink) -> OpContext:
        """What an operation runs with: the poller's transports (they serialize per host)."""
        return OpContext(
            self.inventory,
            self.collector.transports,
            AuditLog(self.audit_path),
            sink,
            self.op_timeout,
            self.collector.parse_memos,
            site=self.site,
        )

    def open_action(self, op: Operation) -> None:
        if self.read_only:
            self.notify(READ_ONLY_REFUSAL, severity="warning")
            return
        if isinstance(self.screen, ActionScreen):
            return
        after = self.reread_clients if op.changes_clients else None
        self.push_screen(
            ActionScreen(op, self.collector.read_fleet, self.op_context, self.record_action, after)
        )

    def selected(self) -> Subject | None:
        """What the operation keys act on: the subject of the detail screen on top, or of the
        row under the cursor of the focused table (on a table view, of its table wherever
        the focus is in the view, its filter box included)."""
        screen = self.screen
        if isinstance(screen, GatewayScreen):
            return GatewaySubject(screen.gateway)
        if isinstance(screen, ClientScreen):
            return ClientSubject(screen.public_key)
        if screen is not self.screen_stack[0] or self.snapshot is None:
            return None
        focused = self.focused
        if isinstance(focused, KeyedTable):
            return focused.cursor_subject()
        pane = self.query_one(f"#{self.query_one(TabbedContent).active}", TabPane)
        views = pane.query(TableView)
        return views.first().table.cursor_subject() if views else None

    def selected_gateway(self) -> str | None:
        """The gateway of the detail screen, or of the real server / host row under focus."""
        subject = self.selected()
        return subject.name if isinstance(subject, GatewaySubject) else None

    def selected_client(self) -> str | None:
        """The public key of the client detail screen, or of the Clients row under the cursor."""
        subject = self.selected()
        return subject.public_key if isinstance(subject, ClientSubject) else None

    def _open_on(
        self,
        selected: Callable[[], str | None],
        missing: str,
        make: Callable[[str], Operation],
    ) -> None:
        """The operation on what is selected (a gateway, a client), or say what to select."""
        if self.read_only:
            self.notify(READ_ONLY_REFUSAL, severity="warning")
            return
        target = selected()
        if target is None:
            self.notify(missing, severity="warning")
            return
        self.open_action(make(target))

    def action_drain(self) -> None:
        self._open_on(self.selected_gateway, SELECT_GATEWAY, catalog.Drain)

    def action_undrain(self) -> None:
        self._open_on(self.selected_gateway, SELECT_GATEWAY, catalog.Undrain)

    def action_weight(self) -> None:
        self._open_on(self.selected_gateway, SELECT_GATEWAY, catalog.Weight)

    def action_peer_remove(self) -> None:
        self._open_on(self.selected_client, SELECT_CLIENT, self.peer_remove)

    def action_peer_add(self) -> None:
        self.open_action(catalog.PeerAdd())

    def action_rebalance(self) -> None:
        self.open_action(catalog.Rebalance())

    def action_trace(self) -> None:
        public_key = self.selected_client()
        if public_key is None:
            self.notify(SELECT_CLIENT, severity="warning")
            return
        self.open_trace(public_key)

    def open_trace(self, public_key: str) -> None:
        """A live trace of the client (TraceScreen), under --read-only too: it only reads."""
        if isinstance(self.screen, TraceScreen):
            return
        label = public_key
        if self.snapshot is not None and (c := self.snapshot.fleet.client(public_key)):
            label = c.label
        self.push_screen(TraceScreen(self.collector, public_key, label))

    def peer_remove(self, public_key: str) -> catalog.PeerRemove:
        """Removing a client, named as the console shows it."""
        label = None
        if self.snapshot is not None and (c := self.snapshot.fleet.client(public_key)):
            label = c.label
        return catalog.PeerRemove(public_key, label)

    # --- the end --------------------------------------------------------------------------

    def close_collector(self) -> None:
        if not self._collector_closed:
            self._collector_closed = True
            self._stop.set()
            self._wake.set()
            self._taken.set()
            self.collector.close()

    async def action_quit(self) -> None:
        self.close_collector()
        self.exit(0)

    def on_unmount(self) -> None:
        self.close_collector()


def run_console(options: ConsoleOptions, inventory: Inventory) -> int:
    """`wgconsole` with no command: the console on the inventory's fleet until `q`."""
    try:
        themes = load_themes()
    except ThemeError as exc:
        print(f"wgconsole: {printable(str(exc))}", file=sys.stderr)
        return 2
    theme = options.theme or DEFAULT_THEME
    if theme not in themes:
        available = printable(", ".join(sorted(themes)))
        print(f"wgconsole: no theme {theme!r}; available: {available}", file=sys.stderr)
        return 2
    collector = FleetCollector(
        inventory,
        accept_new_host_keys=options.accept_new_host_keys,
        read_only=options.read_only,
        timeout=options.timeout,
    )
    try:
        app = ConsoleApp(
            inventory,
            collector,
            interval=max(0.2, options.interval),
            read_only=options.read_only,
            theme=theme,
            themes=themes,
            audit_path=options.audit_log,
            op_timeout=options.timeout,
            prober=None if options.probe_key is None else FleetProber(options.probe_key),
            site=options.site,
        )
        app.run()
    finally:
        collector.close()
    return app.return_code or 0
