"""The Connections table: the LB's IPVS entries, indexed for filter and sort off the UI."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from wgconsole.core.fleet import Fleet
from wgconsole.core.records import Endpoint, IpvsConn
from wgconsole.view.present import PLAIN, WARN
from wgconsole.view.rows.cells import (
    Cell,
    Row,
    columns_of,
    endpoint_sort_key,
)
from wgconsole.view.rows.selection import TableQuery
from wgconsole.view.subjects import ClientSubject, LbEntrySubject

# The virtual address is the same on every row of a one-service console: last.
CONN_COLUMNS = columns_of(
    ("client", "Client"),
    ("gateway", "Gateway"),
    ("dest", "Real server"),
    ("expires", "Expires"),
    ("state", "State"),
    ("virtual", "Virtual"),
)


# An LB entry as a client's is matched: (client, virtual, real server).
EntryKey = tuple[Endpoint, Endpoint, Endpoint]


class ConnIndex:
    """The LB table with its search text, sorted views computed on demand and cached.

    Built in the poll worker for 50,000 entries; the UI reads a window of the filtered,
    sorted table (`rows`). Sorting 50,000 entries by address takes ~0.3 s: `prepare` lets
    the worker compute the selection the UI currently shows, so that a refresh on the UI
    thread only reads the cache. Rows are built only for the window, as they are read:
    their expiry counts down with the clock.
    """

    __slots__ = (
        "_keys",
        "_order",
        "_selected",
        "clients",
        "conns",
        "names",
        "search",
        "taken_at",
    )

    def __init__(
        self,
        conns: Sequence[IpvsConn],
        names: Mapping[Endpoint, str],
        taken_at: float,
        clients: Mapping[EntryKey, str] | None = None,
    ):
        """`clients`: the public key of the client whose LB entry each is (entry_clients)."""
        self.conns = conns
        self.names = names
        self.taken_at = taken_at
        self.clients: Mapping[EntryKey, str] = clients or {}
        self.search = tuple(
            f"{c.client} {c.dest} {names.get(c.dest, '')} {c.state}".lower() for c in conns
        )
        self._order: dict[int, list[int]] = {}
        self._selected: dict[TableQuery, list[int]] = {}
        self._keys: dict[str, int] | None = None

    def _sort_key(self, column: int) -> Callable[[int], Any]:
        conns, names = self.conns, self.names
        getters: dict[int, Callable[[int], Any]] = {
            0: lambda i: endpoint_sort_key(conns[i].client),
            1: lambda i: (names.get(conns[i].dest, "~"), endpoint_sort_key(conns[i].client)),
            2: lambda i: endpoint_sort_key(conns[i].dest),
            3: lambda i: conns[i].expires,
            4: lambda i: conns[i].state,
            5: lambda i: endpoint_sort_key(conns[i].virtual),
        }
        return getters[column]

    def order(self, column: int | None) -> list[int]:
        if column is None:
            return list(range(len(self.conns)))
        cached = self._order.get(column)
        if cached is None:
            cached = sorted(range(len(self.conns)), key=self._sort_key(column))
            self._order[column] = cached
        return cached

    def prepare(self, query: TableQuery | None) -> None:
        """Compute (in the worker) the selection the UI is expected to ask for."""
        if query is not None:
            self.select(query)

    def select(self, query: TableQuery) -> list[int]:
        """Indexes of every matching entry, in the chosen order."""
        cached = self._selected.get(query)
        if cached is None:
            text, column, reverse = query
            cached = self._select(text, column, reverse=reverse)
            self._selected = {query: cached}  # only the latest: the view shows one at a time
        return cached

    def _select(self, query: str, column: int | None, *, reverse: bool) -> list[int]:
        order = self.order(column)
        if reverse:
            order = order[::-1]
        words = query.lower().split()
        if not words:
            return order
        search = self.search
        return [i for i in order if all(w in search[i] for w in words)]

    def rows(self, query: TableQuery, now: float) -> ConnRows:
        """The selection as rows, their expiry as of `now`."""
        return ConnRows(self, self.select(query), now)

    def index_of(self, key: str) -> int | None:
        if self._keys is None:
            # Only when a view's cursor entry left its window: built on first use.
            self._keys = {conn_key(c): i for i, c in enumerate(self.conns)}
        return self._keys.get(key)

    def row(self, index: int, now: float) -> Row:
        conn = self.conns[index]
        name = self.names.get(conn.dest)
        left = conn.expires - max(0.0, now - self.taken_at)
        expires = max(0, int(left))
        cells = (
            Cell(str(conn.client)),  # sorted by ConnIndex.order, not by the table
            Cell(name or "(unknown)", PLAIN if name else WARN),
            Cell(str(conn.dest)),
            Cell(f"{expires}s", WARN if expires < 30 else PLAIN, expires),
            Cell(conn.state),
            Cell(str(conn.virtual)),
        )
        public_key = self.clients.get((conn.client, conn.virtual, conn.dest))
        subject = LbEntrySubject(None if public_key is None else ClientSubject(public_key))
        return Row(conn_key(conn), cells, self.search[index], subject)


class ConnRows:
    """A selection of the LB table as a RowSource: rows built for the window read."""

    __slots__ = ("hits", "index", "now")

    def __init__(self, index: ConnIndex, hits: list[int], now: float) -> None:
        self.index = index
        self.hits = hits
        self.now = now

    def __len__(self) -> int:
        return len(self.hits)

    def window(self, start: int, stop: int) -> Sequence[Row]:
        index, now = self.index, self.now
        return [index.row(i, now) for i in self.hits[start:stop]]

    def position(self, key: str) -> int | None:
        i = self.index.index_of(key)
        if i is None:
            return None
        try:
            return self.hits.index(i)
        except ValueError:
            return None


def conn_key(conn: IpvsConn) -> str:
    return f"{conn.protocol} {conn.client} {conn.virtual} {conn.dest}"


def entry_clients(fleet: Fleet) -> dict[EntryKey, str]:
    """Each client's LB entry, to its public key (the first client listed, if two claim one)."""
    found: dict[EntryKey, str] = {}
    for c in fleet.clients:
        e = c.lb_entry
        if e is not None:
            found.setdefault((e.client, e.virtual, e.dest), c.public_key)
    return found
