"""Sorting, filtering and windows: what a table view shows of its rows, selected off the UI."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from wgconsole.view.rows.cells import (
    Cell,
    Row,
)


def cell_sort_key(cell: Cell) -> Any:
    return cell.text.lower() if cell.sort is None else cell.sort


def sort_rows(rows: Sequence[Row], column: int | None, *, reverse: bool = False) -> list[Row]:
    """Rows ordered by one column (stable: ties keep the snapshot's order)."""
    if column is None:
        return list(reversed(rows)) if reverse else list(rows)
    return sorted(rows, key=lambda r: cell_sort_key(r.cells[column]), reverse=reverse)


def filter_rows(rows: Iterable[Row], query: str) -> list[Row]:
    """Rows whose text contains every word of `query` (case-insensitive)."""
    words = query.lower().split()
    if not words:
        return list(rows)
    return [r for r in rows if all(w in r.search for w in words)]


def matches(search: str, query: str) -> bool:
    return all(w in search for w in query.lower().split())


# What a table view asks for: (filter, sort column or None, reversed).
TableQuery = tuple[str, int | None, bool]


class RowSource(Protocol):
    """A table's rows in the order its view shows them, read a window at a time.

    Views of thousands of rows hold only a window of them in their widget: a refresh then
    costs what is on screen, not what is in the fleet.
    """

    def __len__(self) -> int: ...

    def window(self, start: int, stop: int) -> Sequence[Row]: ...

    def position(self, key: str) -> int | None: ...


class RowList:
    """Rows already built, as a RowSource."""

    __slots__ = ("_positions", "rows")

    def __init__(self, rows: Sequence[Row]) -> None:
        self.rows = rows
        self._positions: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def window(self, start: int, stop: int) -> Sequence[Row]:
        return self.rows[start:stop]

    def position(self, key: str) -> int | None:
        # Asked only when a view's cursor row left its window: built on first use.
        if self._positions is None:
            self._positions = {row.key: i for i, row in enumerate(self.rows)}
        return self._positions.get(key)


class RowIndex:
    """A table's rows with the filtered, sorted selection its view shows, cached.

    `prepare` lets the poll worker compute the selection the view currently shows, so that
    a refresh on the UI thread only reads it; another filter or sort is computed on demand.
    """

    __slots__ = ("_selected", "rows")

    def __init__(self, rows: tuple[Row, ...]) -> None:
        self.rows = rows
        self._selected: dict[TableQuery, RowList] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def select(self, query: TableQuery) -> RowList:
        cached = self._selected.get(query)
        if cached is None:
            text, column, reverse = query
            cached = RowList(sort_rows(filter_rows(self.rows, text), column, reverse=reverse))
            self._selected = {query: cached}  # only the latest: the view shows one at a time
        return cached

    def prepare(self, query: TableQuery | None) -> None:
        if query is not None:
            self.select(query)
