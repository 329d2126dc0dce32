"""A DataTable kept equal to a list of keyed rows by changing only what changed.

Rows are keyed by identity; on each snapshot new keys are added, vanished keys removed,
and only changed cells updated, so there is no flicker and the cursor stays on the same
row (by key, not by position) with the scroll position kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

from rich.cells import cell_len
from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.geometry import Region
from textual.widgets import DataTable
from textual.widgets._data_table import ColumnKey, RowKey

from wgconsole.rows import Cell, Column, Row
from wgconsole.widgets.palette import Palette

# Up to this many removals go through DataTable.remove_row; above, one pass (see below).
_FEW = 16


class KeyedTable(DataTable[Text]):
    _deferred: bool | None = None  # not None while apply() runs: is a layout needed?

    def __init__(self, columns: Sequence[Column], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.spec = tuple(columns)
        self._applied: dict[str, tuple[Cell, ...]] = {}
        self._order: list[str] = []
        self._column_keys = [c.key for c in self.spec]
        self._column_objects = [ColumnKey(c.key) for c in self.spec]
        for column in self.spec:
            self.add_column(column.label, key=column.key)

    # --- reading ----------------------------------------------------------------------

    @property
    def keys(self) -> list[str]:
        """Row keys in display order."""
        return list(self._order)

    def cursor_key(self) -> str | None:
        if not self._order or not 0 <= self.cursor_row < len(self._order):
            return None
        return self._order[self.cursor_row]

    def cells_of(self, key: str) -> tuple[Cell, ...] | None:
        return self._applied.get(key)

    # --- writing ----------------------------------------------------------------------

    def refresh(
        self,
        *regions: Region,
        repaint: bool = True,
        layout: bool = False,
        recompose: bool = False,
    ) -> Self:
        # update_cell refreshes the widget once per cell (~25 us each, mostly locating the
        # widget on screen); during apply() one refresh at the end does for all of them.
        if self._deferred is not None and not regions and not recompose:
            self._deferred = self._deferred or layout
            return self
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def apply(self, rows: Sequence[Row], palette: Palette, *, restyle: bool = False) -> None:
        """Show exactly `rows`, in their order. `restyle` re-renders every cell (new theme)."""
        self._deferred = False
        try:
            self._apply(rows, palette, restyle)
        finally:
            layout, self._deferred = self._deferred, None
            self.refresh(layout=layout)

    def _apply(self, rows: Sequence[Row], palette: Palette, restyle: bool) -> None:
        keep_cursor = self.cursor_key()
        incoming = {row.key: row for row in rows}
        gone = [k for k in self._order if k not in incoming]
        if gone:
            self._remove(gone)
        order = self._order
        for row in rows:
            old = self._applied.get(row.key)
            if old is None:
                first, *rest = row.cells
                self.add_row(
                    palette.keyed(first, row.key), *(palette.text(c) for c in rest), key=row.key
                )
                order.append(row.key)
            elif restyle or old != row.cells:
                self._update(row, old, palette, restyle)
            self._applied[row.key] = row.cells
        wanted = [row.key for row in rows]
        if wanted != order:
            rank = {key: i for i, key in enumerate(wanted)}
            self.sort(self._column_keys[0], key=lambda cell: rank[cell.row_key])  # KeyedText
            self._order = wanted
        if keep_cursor is not None and keep_cursor in incoming:
            index = rank_of(self._order, keep_cursor)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False, scroll=False)

    def _update(self, row: Row, old: tuple[Cell, ...], palette: Palette, restyle: bool) -> None:
        row_key = RowKey(row.key)  # made once per row, not once per cell by update_cell
        for i, (before, after) in enumerate(zip(old, row.cells, strict=True)):
            if before == after and not restyle:
                continue
            value = palette.keyed(after, row.key) if i == 0 else palette.text(after)
            # update_width=True would re-measure the whole column whenever the new text is
            # narrower than the widest: quadratic over a refresh of 5,000 rows. Columns
            # only grow here, which is all update_width would do for us.
            self.update_cell(row_key, self._column_objects[i], value)
            if len(after.text) > len(before.text):
                self._grow(i, cell_len(after.text))

    def _grow(self, index: int, width: int) -> None:
        column = self.columns[self._column_objects[index]]
        if width > column.content_width:
            column.content_width = width
            self._require_update_dimensions = True
            self.check_idle()

    def _remove(self, keys: list[str]) -> None:
        doomed = set(keys)
        if len(keys) <= _FEW:
            for key in keys:
                self.remove_row(key)
        else:
            self._remove_many(doomed)
        for key in keys:
            del self._applied[key]
        self._order = [k for k in self._order if k not in doomed]

    def _remove_many(self, doomed: set[str]) -> None:
        # DataTable.remove_row rebuilds its whole row-index map for every call: removing
        # k of n rows costs k*n (seconds for a changing 1,000-row connection window).
        # This does what remove_row does, for all of them in one pass.
        for key in doomed:
            row_key = RowKey(key)
            del self.rows[row_key]
            del self._data[row_key]
        self._updated_cells = {c for c in self._updated_cells if c.row_key.value not in doomed}
        self._new_rows = {k for k in self._new_rows if k.value not in doomed}
        remaining = [k for k in self._order if k not in doomed]
        self._row_locations = TwoWayDict({RowKey(k): i for i, k in enumerate(remaining)})
        self._require_update_dimensions = True
        self._update_count += 1
        self.cursor_coordinate = self.cursor_coordinate
        self.hover_coordinate = self.hover_coordinate
        self.refresh(layout=True)
        self.check_idle()


def rank_of(order: list[str], key: str) -> int:
    return order.index(key)
