"""A KeyedTable over any number of rows that holds only a window of them.

A DataTable's bookkeeping grows with its rows (its row order, offsets and caches are rebuilt
on every change), and 10,000 changing rows cost far more than a refresh may. This table
holds the rows around what is on screen, taken from a RowSource that keeps the whole
filtered, sorted list; when the cursor or the scroll position nears an edge of the window,
the window moves along the list and the screen stays as it was. Home/End go to the
first and last row of the whole list.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import events
from textual.coordinate import Coordinate
from textual.message import Message

from wgconsole.tui import textual_compat
from wgconsole.tui.widgets.colours import ThemeColours
from wgconsole.tui.widgets.keyed_table import KeyedTable
from wgconsole.view.rows.cells import Column
from wgconsole.view.rows.selection import RowSource

# Rows held: this many pages of the visible height (a page up or down stays inside), and
# never fewer than MIN_WINDOW.
PAGES = 4
MIN_WINDOW = 60
_UNSIZED_PAGE = 25  # the page assumed while the table is hidden (no size yet)


class WindowedTable(KeyedTable):
    class Moved(Message):
        """The window moved along the list (its view's status says which rows it holds)."""

    def __init__(self, columns: Sequence[Column], *, id: str | None = None) -> None:
        super().__init__(columns, id=id)
        self.source: RowSource | None = None
        self.start = 0  # position in the whole list of the table's first row
        self.window: int | None = None  # rows held; None: from the visible height
        self._colours: ThemeColours | None = None
        self._check_pending = False

    # --- the window -----------------------------------------------------------------------

    @property
    def page(self) -> int:
        height = self.scrollable_content_region.height - (
            self.header_height if self.show_header else 0
        )
        return height if height > 0 else _UNSIZED_PAGE

    @property
    def window_size(self) -> int:
        return self.window if self.window is not None else max(MIN_WINDOW, PAGES * self.page)

    @property
    def count(self) -> int:
        """Rows in the whole list."""
        return 0 if self.source is None else len(self.source)

    @property
    def position(self) -> int | None:
        """The cursor's position in the whole list."""
        if self.cursor_key() is None:
            return None
        return self.start + self.cursor_row

    def where(self) -> str | None:
        """`row N of M` while the table holds a window of its list (its scrollbar then spans
        the window only, so it cannot say where the cursor is), else None."""
        position = self.position
        if self.row_count < self.count and position is not None:
            return f"row {position + 1} of {self.count}"
        return None

    def _clamp(self, offset: int) -> int:
        return max(0, min(offset, self.count - self.window_size))

    def show(self, source: RowSource, colours: ThemeColours, *, restyle: bool = False) -> None:
        """Show `source` from the current offset; the cursor's row is followed by key."""
        self.source, self._colours = source, colours
        size = self.window_size
        offset = self._clamp(self.start)
        rows = source.window(offset, offset + size)
        key = self.cursor_key()
        if key is not None and all(row.key != key for row in rows):
            # The cursor's row moved out of the window (a new sort, rows before it went):
            # follow it, at the same place on screen.
            found = source.position(key)
            if found is not None:
                offset = self._clamp(found - self.cursor_row)
                rows = source.window(offset, offset + size)
        moved = offset != self.start
        self.start = offset
        self.apply(rows, colours, restyle=restyle)
        if moved:
            self.post_message(self.Moved())

    def go(self, position: int) -> None:
        """Put the cursor on the row at `position` in the whole list, and show it."""
        if self.source is None or self._colours is None or not self.count:
            return
        position = max(0, min(position, self.count - 1))
        held = self.start <= position < self.start + self.row_count
        if not held:
            self._slide(self._clamp(position - self.window_size // 2))
        row = position - self.start
        if not held:
            # Shown where scrolling there would have put it: at the bottom going down, at
            # the top going up.
            top = row - self.page + 1 if row > self.cursor_row else row
            self.scroll_to(y=max(0, top), animate=False, immediate=True, force=True)
        self.move_cursor(row=row, animate=False)

    def _slide(self, start: int) -> None:
        """Move the window to `start`, keeping the screen as it was."""
        assert self.source is not None
        assert self._colours is not None
        delta = start - self.start
        self.start = start
        scroll_y = self.scroll_y - delta
        self.apply(self.source.window(start, start + self.window_size), self._colours)
        self.scroll_to(y=max(0.0, scroll_y), animate=False, immediate=True, force=True)
        self.post_message(self.Moved())

    def _check_later(self) -> None:
        # After the key or scroll that moved us is done (a page down scrolls, then moves the
        # cursor by an index computed before): never slide the rows under a running action.
        if not self._check_pending:
            self._check_pending = True
            self.call_later(self._check)

    def _check(self) -> None:
        self._check_pending = False
        held = self.row_count
        if self.source is None or self._colours is None or held >= self.count:
            return
        page = self.page
        margin = max(1, min(page, self.window_size // 4))
        top = int(self.scroll_y)
        bottom = top + page
        cursor = self.cursor_row
        near_top = self.start > 0 and min(top, cursor) < margin
        near_end = self.start + held < self.count and max(bottom, cursor + 1) > held - margin
        if not (near_top or near_end):
            return
        # Centre what the operator looks at: the cursor if on screen, else the screen.
        anchor = cursor if top <= cursor < bottom else top + page // 2
        offset = self._clamp(self.start + anchor - self.window_size // 2)
        if offset != self.start:
            self._slide(offset)

    # --- what moves the cursor or the screen ----------------------------------------------

    def watch_cursor_coordinate(self, old: Coordinate, new: Coordinate) -> None:
        super().watch_cursor_coordinate(old, new)
        if self.source is not None:
            self._check_later()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self.source is not None and round(old_value) != round(new_value):
            self._check_later()

    def on_resize(self, _event: events.Resize) -> None:
        if (
            self.source is not None
            and self._colours is not None
            and self.row_count != min(self.count, self.window_size)
        ):
            self.show(self.source, self._colours)

    # A key that would take the cursor past the rows held moves the window first (the
    # window slides before an edge is reached; these matter when it is a few rows only).

    def action_cursor_down(self) -> None:
        if self.row_count and self.cursor_row == self.row_count - 1:
            textual_compat.hide_hover_cursor(self)
            self.go(self.start + self.cursor_row + 1)
        else:
            super().action_cursor_down()

    def action_cursor_up(self) -> None:
        if self.row_count and self.cursor_row == 0 and self.start > 0:
            textual_compat.hide_hover_cursor(self)
            self.go(self.start - 1)
        else:
            super().action_cursor_up()

    def action_page_down(self) -> None:
        beyond = self.start + self.row_count < self.count
        if beyond and self.cursor_row + self.page >= self.row_count:
            textual_compat.hide_hover_cursor(self)
            self.go(self.start + self.cursor_row + self.page)
        else:
            super().action_page_down()

    def action_page_up(self) -> None:
        if self.start > 0 and self.cursor_row - self.page < 0:
            textual_compat.hide_hover_cursor(self)
            self.go(self.start + self.cursor_row - self.page)
        else:
            super().action_page_up()

    def action_scroll_top(self) -> None:
        textual_compat.hide_hover_cursor(self)
        self.go(0)

    def action_scroll_bottom(self) -> None:
        textual_compat.hide_hover_cursor(self)
        self.go(self.count - 1)
