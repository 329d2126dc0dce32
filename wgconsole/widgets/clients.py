"""Clients: one row per peer, the LB gateway and handshake gateway side by side."""

from __future__ import annotations

from wgconsole.rows import CLIENT_COLUMNS, Row, filter_rows, sort_rows
from wgconsole.snapshot import ConsoleSnapshot
from wgconsole.widgets.palette import Palette
from wgconsole.widgets.tableview import TableView


class ClientsView(TableView):
    natural_order = "by address"
    noun = "clients"

    def __init__(self, id: str | None = None) -> None:
        super().__init__(CLIENT_COLUMNS, "client-table", id=id)
        self.rows: tuple[Row, ...] = ()

    def show(self, snapshot: ConsoleSnapshot, palette: Palette, restyle: bool) -> None:
        self.rows = snapshot.clients
        self.palette = palette
        self._apply(restyle)

    def redraw(self) -> None:
        self._apply(False)

    def _apply(self, restyle: bool) -> None:
        if self.palette is None:
            return
        shown = sort_rows(
            filter_rows(self.rows, self.query_text), self.sort_column, self.sort_reverse
        )
        self.table.apply(shown, self.palette, restyle=restyle)
        self.set_status(self.status_text(len(shown), len(self.rows)))
