"""Clients: one row per peer, the LB gateway and handshake gateway side by side."""

from __future__ import annotations

from wgconsole.tui.widgets.colours import ThemeColours
from wgconsole.tui.widgets.tableview import TableView
from wgconsole.view.rows.clients import CLIENT_COLUMNS
from wgconsole.view.rows.selection import RowIndex
from wgconsole.view.snapshot import ConsoleSnapshot


class ClientsView(TableView):
    natural_order = "by address"
    noun = "clients"

    def __init__(self, id: str | None = None) -> None:
        super().__init__(CLIENT_COLUMNS, "client-table", id=id)
        self.index: RowIndex | None = None

    def show(self, snapshot: ConsoleSnapshot, colours: ThemeColours, *, restyle: bool) -> None:
        self.index = snapshot.clients
        self.colours = colours
        self._apply(restyle=restyle)

    def redraw(self) -> None:
        self._apply(restyle=False)

    def _apply(self, *, restyle: bool) -> None:
        if self.index is None or self.colours is None:
            return
        self.show_rows(self.index.select(self.table_query), len(self.index), restyle=restyle)
