"""Gateway and client detail screens: they follow the live snapshot like the main views."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Static

from wgconsole.core.inventory import Inventory
from wgconsole.core.whatif import client_outcomes
from wgconsole.tui.widgets.colours import ThemeColours, plain
from wgconsole.tui.widgets.header import ConsoleHeader
from wgconsole.tui.widgets.keyed_table import KeyedTable
from wgconsole.tui.widgets.windowed_table import WindowedTable
from wgconsole.view.details import (
    OUTCOME_COLUMNS,
    Line,
    client_lines,
    gateway_lines,
    outcome_rows,
)
from wgconsole.view.rows.cells import Column
from wgconsole.view.rows.detail_tables import DRIFT_COLUMNS, PEER_COLUMNS, client_gateway_rows
from wgconsole.view.snapshot import ConsoleSnapshot

BACK: list[BindingType] = [
    Binding("escape", "app.pop_screen", "Back", tooltip="back to the views"),
    Binding("backspace", "app.pop_screen", "Back", show=False, tooltip="back to the views"),
]


class DetailScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = BACK

    class Ready(Message):
        """Mounted: the app fills it from the current snapshot."""

        def __init__(self, screen: DetailScreen) -> None:
            super().__init__()
            self.screen = screen

    def __init__(self, inventory: Inventory, *, read_only: bool) -> None:
        super().__init__()
        self.inventory = inventory
        self.read_only = read_only
        self._shown: dict[str, list[Line]] = {}

    def on_mount(self) -> None:
        self.post_message(self.Ready(self))

    def show(
        self, snapshot: ConsoleSnapshot, now: float, colours: ThemeColours, *, restyle: bool
    ) -> None:
        self.query_one(ConsoleHeader).show(snapshot, now, colours)

    def _lines(
        self, widget_id: str, lines: list[Line], colours: ThemeColours, *, restyle: bool = False
    ) -> None:
        if not restyle and self._shown.get(widget_id) == lines:
            return  # an update re-lays out the screen
        self._shown[widget_id] = lines
        text = colours.line(())
        for i, line in enumerate(lines):
            if i:
                text.append("\n")
            text.append_text(colours.line(line))
        widget = self.query_one(f"#{widget_id}", Static)
        widget.update(text)
        # As the Overview's service line (OverviewView.show): sized again once any layout
        # pending when it was updated is done, or it may keep the previous text's height.
        self.call_after_refresh(widget.refresh, layout=True)


class GatewayScreen(DetailScreen):
    def __init__(self, inventory: Inventory, gateway: str, *, read_only: bool) -> None:
        super().__init__(inventory, read_only=read_only)
        self.gateway = gateway
        self._peers_title = ""
        self._shown_titles: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield ConsoleHeader(read_only=self.read_only)
        with Vertical(id="detail"):
            yield Static("", id="gw-info", classes="info")
            yield Label("If drained", classes="section-title")
            yield Static("", id="gw-drain", classes="info")
            yield Label(
                "Config drift against the other gateways", classes="section-title", id="drift-title"
            )
            # Both hold a window of their rows: a gateway has thousands of peers, and as
            # many may differ from the other gateways'.
            yield WindowedTable(DRIFT_COLUMNS, id="drift")
            yield Label("Peers as it sees them", classes="section-title", id="peers-title")
            yield WindowedTable(PEER_COLUMNS, id="peers")
        yield Footer()

    def show(
        self, snapshot: ConsoleSnapshot, now: float, colours: ThemeColours, *, restyle: bool
    ) -> None:
        super().show(snapshot, now, colours, restyle=restyle)
        fleet = snapshot.fleet
        self._lines(
            "gw-info",
            gateway_lines(self.inventory, fleet, snapshot.kept, self.gateway, now),
            colours,
            restyle=restyle,
        )
        detail = snapshot.gateways.get(self.gateway)
        self._lines("gw-drain", list(detail.drain), colours, restyle=restyle)
        self.query_one("#drift", WindowedTable).show(detail.drift, colours, restyle=restyle)
        peers = detail.peers
        title = f"Peers as it sees them ({len(peers)})"
        if peers.stale_age is not None:
            title += f" — last known, stale {int(peers.stale_age)}s"
        self._peers_title = title
        self.query_one("#peers", WindowedTable).show(peers, colours, restyle=restyle)
        self._titles()

    @on(WindowedTable.Moved)
    @on(DataTable.RowHighlighted)
    def _cursor_moved(self, _event: WindowedTable.Moved | DataTable.RowHighlighted) -> None:
        self._titles()

    def _titles(self) -> None:
        drift = self.query_one("#drift", WindowedTable)
        title = "Config drift against the other gateways"
        title += f" ({drift.count}){_where(drift)}" if drift.count else ": none"
        self._title("drift-title", title)
        peers = self.query_one("#peers", WindowedTable)
        self._title("peers-title", self._peers_title + _where(peers))

    def _title(self, widget_id: str, text: str) -> None:
        if self._shown_titles.get(widget_id) != text:
            self._shown_titles[widget_id] = text
            self.query_one(f"#{widget_id}", Label).update(plain(text))


def _where(table: WindowedTable) -> str:
    where = table.where()
    return "" if where is None else f" · {where}"


class ClientScreen(DetailScreen):
    def __init__(self, inventory: Inventory, public_key: str, *, read_only: bool) -> None:
        super().__init__(inventory, read_only=read_only)
        self.public_key = public_key
        self.gateways = [g.name for g in inventory.gateways]

    def compose(self) -> ComposeResult:
        yield ConsoleHeader(read_only=self.read_only)
        with Vertical(id="detail"):
            yield Static("", id="client-info", classes="info")
            yield Label("On every gateway", classes="section-title")
            columns = (Column("field", ""), *(Column(g, g) for g in self.gateways))
            yield KeyedTable(columns, id="sides")
            yield Label("Where the sh model sends it", classes="section-title")
            yield KeyedTable(OUTCOME_COLUMNS, id="outcomes")
        yield Footer()

    def show(
        self, snapshot: ConsoleSnapshot, now: float, colours: ThemeColours, *, restyle: bool
    ) -> None:
        super().show(snapshot, now, colours, restyle=restyle)
        fleet = snapshot.fleet
        client = fleet.client(self.public_key)
        if client is None:
            self.query_one("#client-info", Static).update(
                colours.line((("✖ this client is no longer on any answering gateway", "bad"),))
            )
            return
        self._lines("client-info", client_lines(fleet, client), colours)
        sides = client_gateway_rows(fleet, client, snapshot.kept, now, self.gateways)
        self.query_one("#sides", KeyedTable).apply(sides, colours, restyle=restyle)
        outcomes = outcome_rows(client_outcomes(self.inventory, fleet.service, client))
        self.query_one("#outcomes", KeyedTable).apply(outcomes, colours, restyle=restyle)
