"""Connections: the LB's IPVS table, filtered and sorted, with expiries counting down.

50,000 entries stay usable: the table holds only a window of the filtered, sorted list
(rows are built for that window only), which moves along as the cursor does.
"""

from __future__ import annotations

from wgconsole.tui.widgets.colours import ThemeColours
from wgconsole.tui.widgets.tableview import TableView
from wgconsole.view.rows.connections import CONN_COLUMNS, ConnIndex
from wgconsole.view.snapshot import ConsoleSnapshot


class ConnectionsView(TableView):
    natural_order = "in kernel order"
    noun = "LB entries"

    def __init__(self, id: str | None = None) -> None:
        super().__init__(CONN_COLUMNS, "conn-table", id=id)
        self.index: ConnIndex | None = None
        self.now = 0.0

    def show(
        self, snapshot: ConsoleSnapshot, now: float, colours: ThemeColours, *, restyle: bool
    ) -> None:
        self.index = snapshot.conns
        self.colours = colours
        self.now = now
        self._apply(restyle=restyle)

    def tick(self, now: float) -> None:
        """Expiry counts down between polls."""
        self.now = now
        self._apply(restyle=False)

    def redraw(self) -> None:
        self._apply(restyle=False)

    def _apply(self, *, restyle: bool) -> None:
        if self.index is None or self.colours is None:
            return
        rows = self.index.rows(self.table_query, self.now)
        self.show_rows(rows, len(self.index.conns), restyle=restyle)
