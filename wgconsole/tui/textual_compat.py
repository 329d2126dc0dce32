"""The one module that touches Textual's internals: private modules, attributes and methods.

Textual may change its private names in any release. The console needs a few of DataTable's to
stay fast at the size of a fleet (README, "Console", "Rendering"): KeyedTable caches what
DataTable renders by what changed, measures rows as they are added, and removes many rows at
once. Each private name it needs is used here only, behind a named function, with why it is
needed. Where KeyedTable must override a private method, the override stays in KeyedTable (it
is half of its render caches) and is listed in OVERRIDDEN with the signature it must have.

What pins all of it: pyproject.toml's `textual>=8.2,<8.3` (PIN, the minor version these were
checked against) and tests/test_textual_compat.py, which fails if the installed Textual no
longer has a name listed here with the signature or type recorded here, if DataTable's render
cache keys or remove_row change, or if a module of wgconsole.tui other than this one imports a
private Textual module or uses a private Textual name not listed here. How the console behaves
on top of them is pinned by tests/test_app_keyed_table.py, tests/test_app_windowed.py and the
SVG snapshots (tests/test_app_snapshots.py). To move to another Textual: raise PIN and the pin
in pyproject.toml together, run those tests, and read each entry below against the new DataTable.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from typing import Any, TypeAlias, TypeVar

from rich.segment import Segment

# DataTable's row index (row key <-> position) is a TwoWayDict; remove_rows builds a new one.
from textual._two_way_dict import TwoWayDict
from textual.widget import PseudoClasses
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

PIN = "textual>=8.2,<8.3"

CellT = TypeVar("CellT")

# What DataTable._render_cell returns: textual._types.SegmentLines, a private module's alias,
# spelt out here instead (mypy checks KeyedTable's override against DataTable's).
SegmentLines: TypeAlias = list[list[Segment]]

# DataTable's private methods that KeyedTable overrides, with the signature each has in the
# Textual pinned (as inspect.signature prints it). Each override calls the method it overrides.
# Checked by test_the_private_methods_overridden_and_called_keep_their_signatures; what they
# render, by the SVG snapshots (tests/test_app_snapshots.py).
OVERRIDDEN: dict[str, str] = {
    # Called whenever DataTable drops its render caches, including from its __init__ (its
    # reactives' watchers): KeyedTable drops its own with them, so it sets them up before
    # calling DataTable.__init__.
    "_clear_caches": "(self) -> 'None'",
    # One line of the table, cached by DataTable on its update counter, which any change to
    # any row bumps: KeyedTable puts in front a cache keyed on the row's own version.
    "_render_line": "(self, y: 'int', x1: 'int', x2: 'int', base_style: 'Style') -> 'Strip'",
    # One cell, cached by DataTable on the same counter: KeyedTable caches it by its value.
    "_render_cell": (
        "(self, row_index: 'int', column_index: 'int', base_style: 'Style', width: 'int',"
        " cursor: 'bool' = False, hover: 'bool' = False) -> 'SegmentLines'"
    ),
}

# DataTable's private methods called here, with their signatures in the Textual pinned
# (checked by the same test).
CALLED: dict[str, str] = {
    "_get_offsets": "(self, y: 'int') -> 'tuple[RowKey, int]'",  # row_of_line
    "_set_hover_cursor": "(self, active: 'bool') -> 'None'",  # hide_hover_cursor
}

# DataTable's private attributes used here, with their types in the Textual pinned (checked
# by test_the_private_attributes_used_keep_their_types).
ATTRIBUTES: dict[str, type] = {
    "_data": dict,  # cell_value, remove_rows
    "_row_locations": TwoWayDict,  # cell_value, remove_rows
    "_column_locations": TwoWayDict,  # cell_value
    "_updated_cells": set,  # remove_rows
    "_new_rows": set,  # remove_rows
    "_require_update_dimensions": bool,  # update_dimensions_when_idle, remove_rows
    "_update_count": int,  # remove_rows
    "_header_row_key": RowKey,  # header_row_key
    "_show_hover_cursor": bool,  # hover_cursor_shown
    "_pseudo_class_state": PseudoClasses,  # pass_pseudo_classes
}

# DataTable's render cache keys, as its source writes them. KeyedTable's caches stand in front
# of these, so each must depend on everything these do but DataTable's update counter: a line
# on what its line and row keys hold, a cell on what its cell key holds. If Textual adds to
# one, a line or a cell depends on something more, and KeyedTable's keys must add it too
# (checked by test_datatable_render_caches_depend_on_what_keyed_table_accounts_for).
LINE_CACHE_KEY = (  # DataTable._render_line's cache_key
    "y",
    "x1",
    "x2",
    "width",
    "self.cursor_coordinate",
    "self.hover_coordinate",
    "base_style",
    "self.cursor_type",
    "self._show_hover_cursor",
    "self._update_count",
    "self._pseudo_class_state",
)
ROW_CACHE_KEY = (  # DataTable._render_line_in_row's cache_key
    "row_key",
    "line_no",
    "base_style",
    "cursor_location",
    "hover_location",
    "cursor_type",
    "show_cursor",
    "self._show_hover_cursor",
    "self._update_count",
    "self._pseudo_class_state",
)
CELL_CACHE_KEY = (  # DataTable._render_cell's cell_cache_key
    "row_key",
    "column_key",
    "base_style",
    "cursor",
    "hover",
    "self._show_hover_cursor",
    "self._update_count",
    "self._pseudo_class_state",
)

# What DataTable.remove_row reads or changes on the table (self.<name> in its source):
# remove_rows does the same for many rows at once, so it must follow any change to these
# (checked by test_remove_rows_does_all_that_remove_row_does).
REMOVE_ROW_USES = frozenset(
    {
        "_row_locations",
        "_require_update_dimensions",
        "check_idle",
        "_data",
        "_updated_cells",
        "rows",
        "cursor_coordinate",
        "hover_coordinate",
        "_update_count",
        "refresh",
    }
)

# Private Textual names used outside this module other than OVERRIDDEN, each with where and why
# it stays there. The test tolerates only these.
LEFT_IN_PLACE: dict[str, str] = {}


def row_of_line(table: DataTable[Any], y: int) -> RowKey | None:
    """The row shown on line `y` (the header's key on a header line), None below the rows.

    KeyedTable's line cache is keyed on the row a line belongs to; DataTable has no public way
    from a line to its row when rows may be taller than one line. Uses DataTable._get_offsets;
    relied on by every table line in the SVG snapshots.
    """
    try:
        row_key, _ = table._get_offsets(y)
    except LookupError:
        return None
    return row_key


def header_row_key(table: DataTable[Any]) -> RowKey:
    """The key row_of_line gives the header's lines (the header is not one of `rows`): its
    lines are cached apart from the rows'. Relied on by the headers in the SVG snapshots."""
    return table._header_row_key


def cell_value(table: DataTable[CellT], row_index: int, column_index: int) -> CellT | None:
    """The value at a cell's position, None where there is no such row or column.

    KeyedTable caches a rendered cell by its value, asked once per cell rendered: straight from
    DataTable's row and column indexes and data, without get_cell_at's checks and Coordinate.
    Relied on by every cell in the SVG snapshots.
    """
    row_key = table._row_locations.get_key(row_index)
    column_key = table._column_locations.get_key(column_index)
    if row_key is None or column_key is None:
        return None
    return table._data[row_key][column_key]


def hover_cursor_shown(table: DataTable[Any]) -> bool:
    """Whether the hover cursor shows: part of what DataTable renders a line and a cell by, so
    part of KeyedTable's cache keys (LINE_CACHE_KEY, CELL_CACHE_KEY)."""
    return table._show_hover_cursor


def pass_pseudo_classes(table: DataTable[Any]) -> PseudoClasses:
    """The pseudo-classes (focus, hover, enabled) DataTable took at the start of this render
    pass and renders every cell by, so part of KeyedTable's cell cache key (CELL_CACHE_KEY)."""
    return table._pseudo_class_state


def hide_hover_cursor(table: DataTable[Any]) -> None:
    """Hide the mouse's hover cursor, as DataTable does when its own cursor keys are used:
    for the keys WindowedTable handles itself (past its window) instead. There is no public
    way to do it. Exercised by tests/test_app_windowed.py's keys past the window."""
    table._set_hover_cursor(active=False)


def update_dimensions_when_idle(table: DataTable[Any]) -> None:
    """Have DataTable recompute its size from its columns' widths when next idle.

    KeyedTable sets a column's content_width itself as it adds and changes cells; DataTable
    only recomputes its size when this flag of its own is set. Relied on by
    tests/test_app_keyed_table.py (test_a_few_removals_and_columns_that_grow).
    """
    table._require_update_dimensions = True
    table.check_idle()


def remove_rows(table: DataTable[Any], doomed: Set[str], remaining: Sequence[str]) -> None:
    """Remove the rows `doomed`, `remaining` being the rows left in display order.

    DataTable.remove_row rebuilds its whole row index on every call: removing k of n rows costs
    k*n (a sliding window removes many at once). This does what remove_row does (see
    REMOVE_ROW_USES), for all of them in one pass. The rows measured or changed since DataTable
    was last idle are forgotten too, for its idle pass looks them up. Relied on by
    tests/test_app_keyed_table.py (test_apply_adds_orders_updates_and_removes_in_place) and
    tests/test_app_windowed.py (a window sliding along the list).
    """
    for key in doomed:
        row_key = RowKey(key)
        del table.rows[row_key]
        del table._data[row_key]
    table._updated_cells = {c for c in table._updated_cells if c.row_key.value not in doomed}
    table._new_rows = {k for k in table._new_rows if k.value not in doomed}
    table._row_locations = TwoWayDict({RowKey(k): i for i, k in enumerate(remaining)})
    table._require_update_dimensions = True
    table._update_count += 1
    table.cursor_coordinate = table.cursor_coordinate
    table.hover_coordinate = table.hover_coordinate
    table.refresh(layout=True)
    table.check_idle()
