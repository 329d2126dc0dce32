"""A table view with a `/` filter and sorting by any column (keys and header clicks).

Its table holds a window of the filtered, sorted rows (WindowedTable); the whole list is
the snapshot's, selected in the core (wgconsole.view.rows) and prepared by the poll worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Label

from wgconsole.core.text import PRINTABLE_ONLY, printable
from wgconsole.tui.widgets.colours import ThemeColours, plain
from wgconsole.tui.widgets.windowed_table import WindowedTable
from wgconsole.view.rows.cells import Column
from wgconsole.view.rows.selection import RowSource, TableQuery


class TableView(Vertical):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", key_display="/", tooltip="filter rows by words"),
        Binding("s", "sort_next", "Sort", tooltip="sort by the next column"),
        Binding("S", "sort_reverse", "Reverse", show=False, tooltip="reverse the order"),
        Binding("escape", "clear_filter", "Clear filter", show=False, tooltip="clear the filter"),
    ]
    noun = "rows"
    natural_order = "unsorted"

    def __init__(self, columns: tuple[Column, ...], table_id: str, id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns = columns
        self.table_id = table_id
        self.query_text = ""
        self.sort_column: int | None = None
        self.sort_reverse = False
        self.colours: ThemeColours | None = None
        self.total = 0  # rows before the filter
        # Told which selection the view shows: the poll worker prepares it with each snapshot.
        self.on_query: Callable[[TableQuery], None] | None = None

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="filter: words to match, Enter to keep, Esc to clear",
            compact=True,
            classes="filter",
            id=f"{self.table_id}-filter",
            restrict=PRINTABLE_ONLY,  # a paste with control characters is refused
        )
        # It repeats the filter as typed: never read as markup (see colours.plain).
        yield Label("", classes="view-status", id=f"{self.table_id}-status", markup=False)
        yield WindowedTable(self.columns, id=self.table_id)

    @property
    def table(self) -> WindowedTable:
        return self.query_one(f"#{self.table_id}", WindowedTable)

    @property
    def table_query(self) -> TableQuery:
        return (self.query_text, self.sort_column, self.sort_reverse)

    def sort_label(self) -> str:
        if self.sort_column is None:
            return self.natural_order + (", reversed" if self.sort_reverse else "")
        arrow = "↓" if self.sort_reverse else "↑"
        return f"by {self.columns[self.sort_column].label} {arrow}"

    def status_text(self, shown: int, total: int) -> str:
        text = f"{shown} of {total} {self.noun}" if shown != total else f"{total} {self.noun}"
        text += f" · {self.sort_label()}"
        if self.query_text:
            text += f" · filter “{self.query_text}”"
        return text

    def set_status(self, text: str) -> None:
        self.query_one(f"#{self.table_id}-status", Label).update(plain(text))

    def show_rows(self, source: RowSource, total: int, *, restyle: bool) -> None:
        """Show `source` (the selection for `table_query`) out of `total` rows."""
        if self.on_query is not None:
            self.on_query(self.table_query)
        assert self.colours is not None
        self.total = total
        self.table.show(source, self.colours, restyle=restyle)
        self._update_status()

    def _update_status(self) -> None:
        table = self.table
        text = self.status_text(table.count, self.total)
        where = table.where()
        self.set_status(text if where is None else f"{where} · {text}")

    @on(WindowedTable.Moved)
    @on(DataTable.RowHighlighted)
    def _cursor_moved(self, event: WindowedTable.Moved | DataTable.RowHighlighted) -> None:
        if self.table.row_count < self.table.count:
            self._update_status()

    def redraw(self) -> None:
        """Re-apply the current rows with the current filter and sort."""

    # --- keys -------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one(Input)
        box.add_class("-active")
        box.value = self.query_text
        box.focus()

    def set_filter(self, text: str) -> None:
        """Show the rows matching `text`, with the filter box open to change it."""
        box = self.query_one(Input)
        box.add_class("-active")
        box.value = text = printable(text)  # as if typed: the box shows its value as it is
        self.query_text = text.strip()
        self.redraw()
        self.table.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one(Input)
        box.remove_class("-active")
        if self.query_text:
            self.query_text = ""
            box.value = ""
            self.redraw()
        self.table.focus()

    def action_sort_next(self) -> None:
        count = len(self.columns)
        self.sort_column = 0 if self.sort_column is None else (self.sort_column + 1) % count
        self.redraw()

    def action_sort_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.redraw()

    @on(DataTable.HeaderSelected)
    def _header(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        if self.sort_column == event.column_index:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = event.column_index, False
        self.redraw()

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        self.query_text = event.value.strip()
        self.redraw()

    @on(Input.Submitted)
    def _done(self, event: Input.Submitted) -> None:
        event.stop()
        if not self.query_text:
            event.input.remove_class("-active")
        self.table.focus()
