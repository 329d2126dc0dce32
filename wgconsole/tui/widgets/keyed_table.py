"""A DataTable kept equal to a list of keyed rows by changing only what changed.

Rows are keyed by identity; on each snapshot new keys are added, vanished keys removed,
and only changed cells updated, so there is no flicker and the cursor stays on the same
row (by key, not by position) with the scroll position kept. Each row's subject (what it is
about, wgconsole.view.subjects) is kept with it: `cursor_subject` is what is selected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self, cast

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.color import Color
from textual.css.styles import RenderStyles
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

from wgconsole.core.text import printable
from wgconsole.tui import textual_compat
from wgconsole.tui.textual_compat import SegmentLines
from wgconsole.tui.widgets.colours import ThemeColours, plain
from wgconsole.view.rows.cells import Cell, Column, Row
from wgconsole.view.subjects import Subject

# Up to this many removals go through DataTable.remove_row; above, one pass (remove_rows).
_FEW = 16
# Rendered lines and cells kept (all of them dropped when full: they are cheap to redo).
_LINES_KEPT = 4_000
_CELLS_KEPT = 20_000


class KeyedTable(DataTable[Text]):
    # Rows, not columns: the cursor selects rows here (DataTable's ctrl+home/end do the same).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("home", "scroll_top", "First row", show=False),
        Binding("end", "scroll_bottom", "Last row", show=False),
    ]

    _deferred: bool | None = None  # not None while apply() runs: is a layout needed?

    def __init__(self, columns: Sequence[Column], *, id: str | None = None) -> None:
        # Before DataTable's __init__: its reactives' watchers clear these (_clear_caches).
        self._versions: dict[str, int] = {}  # row key -> serial of its last change
        self._serial = 0
        self._lines: dict[tuple[Any, ...], Strip] = {}
        self._cells: dict[tuple[Any, ...], tuple[object, SegmentLines]] = {}
        self._pass: tuple[Any, ...] = ()  # what every line of one render pass depends on
        self._pass_style: Style | None = None
        self._pass_backgrounds: tuple[Color, Color] | None = None
        self._pass_components: dict[tuple[str, ...], _PassStyles] = {}
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.spec = tuple(columns)
        self._applied: dict[str, tuple[Cell, ...]] = {}
        self._subjects: dict[str, Subject | None] = {}
        self._order: list[str] = []
        self._column_keys = [c.key for c in self.spec]
        self._column_objects = [ColumnKey(c.key) for c in self.spec]
        for column in self.spec:
            # Text, not a str: DataTable reads a str label as markup (a gateway's name is one).
            self.add_column(plain(column.label), key=column.key)

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

    def subject_of(self, key: str) -> Subject | None:
        """What the row of `key` is about (None: nothing the console acts on)."""
        return self._subjects.get(key)

    def cursor_subject(self) -> Subject | None:
        """What the row under the cursor is about."""
        key = self.cursor_key()
        return None if key is None else self._subjects.get(key)

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

    def apply(self, rows: Sequence[Row], colours: ThemeColours, *, restyle: bool = False) -> None:
        """Show exactly `rows`, in their order. `restyle` re-renders every cell (new theme)."""
        self._deferred = False
        try:
            self._apply(rows, colours, restyle=restyle)
        finally:
            layout, self._deferred = self._deferred, None
            self.refresh(layout=layout)

    def _apply(self, rows: Sequence[Row], colours: ThemeColours, *, restyle: bool) -> None:
        keep_cursor = self.cursor_key()
        incoming = {row.key: row for row in rows}
        gone = [k for k in self._order if k not in incoming]
        if gone:
            self._remove(gone)
        order = self._order
        added: list[Row] = []
        for row in rows:
            old = self._applied.get(row.key)
            if old is None:
                first, *rest = row.cells
                self.add_row(
                    colours.keyed(first, row.key), *(colours.text(c) for c in rest), key=row.key
                )
                order.append(row.key)
                self._touch(row.key)
                added.append(row)
            elif restyle or old != row.cells:
                self._update(row, old, colours, restyle=restyle)
            self._applied[row.key] = row.cells
            self._subjects[row.key] = row.subject
        if added:
            self._widen(added)
        wanted = [row.key for row in rows]
        if wanted != order:
            rank = {key: i for i, key in enumerate(wanted)}
            self.sort(self._column_keys[0], key=lambda cell: rank[cell.row_key])  # KeyedText
            self._order = wanted
        if keep_cursor is not None and keep_cursor in incoming:
            index = rank_of(self._order, keep_cursor)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False, scroll=False)

    def _update(
        self, row: Row, old: tuple[Cell, ...], colours: ThemeColours, *, restyle: bool
    ) -> None:
        row_key = RowKey(row.key)  # made once per row, not once per cell by update_cell
        self._touch(row.key)
        for i, (before, after) in enumerate(zip(old, row.cells, strict=True)):
            if before == after and not restyle:
                continue
            value = colours.keyed(after, row.key) if i == 0 else colours.text(after)
            # update_width=True would re-measure the whole column whenever the new text is
            # narrower than the widest: quadratic over a refresh of 5,000 rows. Columns
            # only grow here, which is all update_width would do for us.
            self.update_cell(row_key, self._column_objects[i], value)
            shown = value.plain  # printable: an escape is wider than what it stands for
            if len(shown) > len(before.text):
                self._grow(i, cell_len(shown))

    def _widen(self, added: list[Row]) -> None:
        # DataTable measures new rows when it is next idle; a screen painted before that
        # (a busy console, a screenshot) showed a column narrower than its cells. Measured
        # now, as _update does for changed cells, the width never depends on timing.
        for i in range(len(self._column_objects)):
            self._grow(i, max(cell_len(printable(row.cells[i].text)) for row in added))

    def _grow(self, index: int, width: int) -> None:
        column = self.columns[self._column_objects[index]]
        if width > column.content_width:
            column.content_width = width
            textual_compat.update_dimensions_when_idle(self)

    def _remove(self, keys: list[str]) -> None:
        doomed = set(keys)
        remaining = [k for k in self._order if k not in doomed]
        if len(keys) <= _FEW:
            for key in keys:
                self.remove_row(key)
        else:
            # remove_row rebuilds DataTable's whole row index once per row removed.
            textual_compat.remove_rows(self, doomed, remaining)
        for key in keys:
            del self._applied[key]
            self._subjects.pop(key, None)
            self._versions.pop(key, None)
        self._order = remaining

    # --- rendering ----------------------------------------------------------------------
    # DataTable keys its render caches on one counter that any change anywhere bumps: a
    # refresh that changes one cell in every row re-renders every cell on screen through
    # Rich (~0.1 ms each). Here a line is cached by its row's own version and a cell by its
    # value (ThemeColours shares one Text per distinct cell), so only what changed is rendered.
    # What else a line depends on is DataTable's own cache keys, less its update counter
    # (textual_compat.LINE_CACHE_KEY, ROW_CACHE_KEY, CELL_CACHE_KEY). The private methods
    # overridden here are listed in textual_compat.OVERRIDDEN.

    def _touch(self, key: str) -> None:
        self._serial += 1
        self._versions[key] = self._serial

    def _clear_render_caches(self) -> None:
        self._lines.clear()
        self._cells.clear()

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._clear_render_caches()

    def notify_style_update(self) -> None:
        self._clear_render_caches()
        super().notify_style_update()

    @property
    def rich_style(self) -> Style:
        # Asked once per line by DataTable.render_line, and it walks every ancestor's styles:
        # computed once per render pass instead.
        if self._pass_style is not None:
            return self._pass_style
        return super().rich_style

    @property
    def background_colors(self) -> tuple[Color, Color]:
        if self._pass_backgrounds is not None:
            return self._pass_backgrounds
        return super().background_colors

    def get_component_styles(self, *names: str) -> RenderStyles:
        # DataTable asks for its zebra and header styles once per row rendered, each a walk
        # of every ancestor's styles: once per render pass here.
        if self._pass_style is None:
            return super().get_component_styles(*names)
        styles = self._pass_components.get(names)
        if styles is None:
            styles = _PassStyles(super().get_component_styles(*names))
            self._pass_components[names] = styles
        return cast(RenderStyles, styles)

    def render_lines(self, crop: Region) -> list[Strip]:
        style = self.rich_style
        self._pass = (
            style,
            self.size.width,
            self.get_pseudo_class_state(),
            tuple(column.get_render_width(self) for column in self.ordered_columns),
            self.cursor_type,
            self.show_cursor,
            textual_compat.hover_cursor_shown(self),
            self.show_header,
            self.header_height,
            self.fixed_rows,
            self.fixed_columns,
            self.zebra_stripes,
        )
        self._pass_components = {}
        self._pass_backgrounds = self.background_colors
        self._pass_style = style
        try:
            return super().render_lines(crop)
        finally:
            self._pass_style = None
            self._pass_backgrounds = None

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        row_key = textual_compat.row_of_line(self, y)
        if row_key is None:
            return super()._render_line(y, x1, x2, base_style)
        header = row_key is textual_compat.header_row_key(self)
        if self.cursor_type == "row" and not header:
            row = y - self.header_height if self.show_header else y
            cursor: object = self.cursor_row == row
            hover: object = self.hover_row == row
        else:
            cursor, hover = self.cursor_coordinate, self.hover_coordinate
        version = 0 if header else self._versions.get(row_key.value or "", -1)
        key = (y, x1, x2, base_style, row_key, version, cursor, hover, self._pass)
        strip = self._lines.get(key)
        if strip is None:
            strip = super()._render_line(y, x1, x2, base_style)
            if len(self._lines) >= _LINES_KEPT:
                self._lines.clear()
            self._lines[key] = strip
        return strip

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,  # noqa: FBT001, FBT002 - DataTable._render_cell's signature
        hover: bool = False,  # noqa: FBT001, FBT002 - DataTable._render_cell's signature
    ) -> SegmentLines:
        if row_index < 0 or column_index < 0:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        value = textual_compat.cell_value(self, row_index, column_index)
        if value is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        key = (
            row_index,
            column_index,
            id(value),
            base_style,
            width,
            cursor,
            hover,
            textual_compat.hover_cursor_shown(self),
            self.show_cursor,
            textual_compat.pass_pseudo_classes(self),
        )
        cached = self._cells.get(key)
        if cached is not None and cached[0] is value:
            return cached[1]
        lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        if len(self._cells) >= _CELLS_KEPT:
            self._cells.clear()
        self._cells[key] = (value, lines)  # the value kept alive: its id stays its own
        return lines


class _PassStyles:
    """A component's styles, with its Rich style computed once (for one render pass)."""

    __slots__ = ("_styles", "rich_style")

    def __init__(self, styles: RenderStyles) -> None:
        self._styles = styles
        self.rich_style = styles.rich_style

    def __getattr__(self, name: str) -> Any:
        return getattr(self._styles, name)


def rank_of(order: list[str], key: str) -> int:
    return order.index(key)
