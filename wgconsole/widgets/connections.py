"""Connections: the LB's IPVS table, filtered and sorted, shown through a window.

A DataTable of 50,000 rows costs seconds to fill and hundreds of megabytes; nobody reads
50,000 rows either. The view shows the first WINDOW entries of the filtered, sorted
table with the count of all matches, and the expiry of each counting down between polls.
"""

from __future__ import annotations

from collections.abc import Callable

from wgconsole.rows import CONN_COLUMNS, ConnIndex, ConnView
from wgconsole.snapshot import ConsoleSnapshot
from wgconsole.widgets.palette import Palette
from wgconsole.widgets.tableview import TableView

WINDOW = 1000


class ConnectionsView(TableView):
    natural_order = "in kernel order"
    noun = "LB entries"

    def __init__(self, id: str | None = None) -> None:
        super().__init__(CONN_COLUMNS, "conn-table", id=id)
        self.index: ConnIndex | None = None
        self.now = 0.0
        self.window = WINDOW
        self.on_view: Callable[[ConnView], None] | None = None  # the app prepares it next poll

    def show(self, snapshot: ConsoleSnapshot, now: float, palette: Palette, restyle: bool) -> None:
        self.index = snapshot.conns
        self.palette = palette
        self.now = now
        self._apply(restyle)

    def tick(self, now: float) -> None:
        """Expiry counts down between polls."""
        self.now = now
        self._apply(False)

    def redraw(self) -> None:
        self._apply(False)

    def _apply(self, restyle: bool) -> None:
        if self.index is None or self.palette is None:
            return
        view: ConnView = (self.query_text, self.sort_column, self.sort_reverse, self.window)
        if self.on_view is not None:
            self.on_view(view)
        picked, matched = self.index.select(*view)
        rows = [self.index.row(i, self.now) for i in picked]
        self.table.apply(rows, self.palette, restyle=restyle)
        total = len(self.index.conns)
        text = self.status_text(matched, total)
        if len(picked) < matched:
            text = f"first {len(picked)} of " + text
        self.set_status(text)
