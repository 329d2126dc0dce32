"""Table rows for the console, built from a snapshot: text, tone and sort value per cell.

Everything a view shows in a table is decided here, outside the UI, so that the words
and tones agree across views and the work can run in the poll worker: the UI only diffs
these rows into its tables. Rows are keyed by identity (real server address, peer
public key, host name, connection 4-tuple), which is what keeps the cursor in place, and
carry their subject (wgconsole.view.subjects): what the console acts on when one is selected.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from wgconsole.core.drift import Drift
from wgconsole.core.fleet import (
    REAL_SERVER_STATES,
    ClientView,
    Finding,
    Fleet,
    PeerOnGateway,
    RealServerView,
    short_key,
)
from wgconsole.core.model import client_status
from wgconsole.core.records import Endpoint, IpvsConn
from wgconsole.view import present
from wgconsole.view.finding_groups import FindingGroup
from wgconsole.view.freshness import HostAge, Kept
from wgconsole.view.present import BAD, GOOD, MUTED, PLAIN, STALE, WARN
from wgconsole.view.rates import FleetRates
from wgconsole.view.subjects import (
    ClientSubject,
    DirectorSubject,
    FindingSubject,
    GatewaySubject,
    LbEntrySubject,
    Subject,
)


class Cell(NamedTuple):
    text: str
    tone: str = PLAIN
    sort: Any = None  # comparable within its column; None sorts by the text


class Row(NamedTuple):
    key: str
    cells: tuple[Cell, ...]
    search: str = ""  # lower-case text the `/` filter matches
    subject: Subject | None = None  # what the row is about; None: nothing to act on


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str


def _cols(*pairs: tuple[str, str]) -> tuple[Column, ...]:
    return tuple(Column(k, label) for k, label in pairs)


# The operator's questions first (which gateway, how fresh), details to the right: an
# 80-column terminal shows the first six.
CLIENT_COLUMNS = _cols(
    ("client", "Client"),
    ("address", "Address"),
    ("lb", "LB gateway"),
    ("hs", "HS gateway"),
    ("handshake", "Handshake"),
    ("findings", "Findings"),
    ("rx", "rx/s"),
    ("tx", "tx/s"),
    ("key", "Key"),
    ("endpoint", "Endpoint"),
)
SERVER_COLUMNS = _cols(
    ("gateway", "Gateway"),
    ("address", "Address"),
    ("weight", "Wt"),
    ("state", "State"),
    ("entries", "LB entries"),
    # The balance: clients whose LB entry is on it (→ after a rebalance), its sh buckets.
    ("clients", "Clients"),
    ("buckets", "sh buckets"),
    ("pps", "in/out p/s"),
    ("bps", "bytes/s"),
    ("trend", "Trend"),
)
HOST_COLUMNS = _cols(
    ("host", "Host"),
    ("role", "Role"),
    ("reachable", "Reachable"),
    ("age", "Data age"),
    ("poll", "Poll"),
    ("error", "Error"),
)
FINDING_COLUMNS = _cols(
    ("severity", "Severity"),
    ("code", "Code"),
    ("subject", "Subject"),
    ("message", "Message"),
)
# The virtual address is the same on every row of a one-service console: last.
CONN_COLUMNS = _cols(
    ("client", "Client"),
    ("gateway", "Gateway"),
    ("dest", "Real server"),
    ("expires", "Expires"),
    ("state", "State"),
    ("virtual", "Virtual"),
)
PEER_COLUMNS = _cols(
    ("client", "Client"),
    ("key", "Key"),
    ("endpoint", "Endpoint"),
    ("allowed", "Allowed IPs"),
    ("handshake", "Handshake"),
    ("lb", "LB sends here"),
    ("rx", "rx bytes"),
    ("tx", "tx bytes"),
    ("keepalive", "Keepalive"),
)
DRIFT_COLUMNS = _cols(
    ("what", "Differs"),
    ("subject", "Subject"),
    ("here", "Here"),
    ("others", "Other gateways"),
)
SPARK_WIDTH = 12
_MISSING_LAST = (1, 0.0)
_TONE_RANK = {BAD: 0, WARN: 1, present.ACCENT: 2, MUTED: 3, STALE: 4, GOOD: 5, PLAIN: 6}


def ip_sort_key(text: str | None) -> tuple[int, int, str]:
    """Addresses in numeric order, v4 before v6, anything else after, by text."""
    if not text:
        return (9, 0, "")
    host = text.split("/", 1)[0]
    for family, rank in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
        try:
            return (rank, int.from_bytes(socket.inet_pton(family, host), "big"), "")
        except OSError:
            continue
    return (8, 0, text)


def endpoint_sort_key(endpoint: Endpoint) -> tuple[int, int, int]:
    rank, number, _ = ip_sort_key(endpoint.address)
    return (rank, number, endpoint.port)


def _num(value: float | None) -> tuple[int, float]:
    return _MISSING_LAST if value is None else (0, value)


def _search(*parts: str | None) -> str:
    return " ".join(p for p in parts if p).lower()


# --- sorting, filtering, windows ---------------------------------------------------------


def cell_sort_key(cell: Cell) -> Any:
    return cell.text.lower() if cell.sort is None else cell.sort


def sort_rows(rows: Sequence[Row], column: int | None, reverse: bool = False) -> list[Row]:
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
            cached = RowList(sort_rows(filter_rows(self.rows, text), column, reverse))
            self._selected = {query: cached}  # only the latest: the view shows one at a time
        return cached

    def prepare(self, query: TableQuery | None) -> None:
        if query is not None:
            self.select(query)


# --- clients -----------------------------------------------------------------------------


def _kept_handshake(
    client: ClientView, kept: Kept, now: float
) -> tuple[str, PeerOnGateway, float] | None:
    """The freshest handshake an unreachable gateway last reported for the client, aged."""
    best: tuple[str, PeerOnGateway, float] | None = None
    for name, gw in kept.gateways.items():
        peer = gw.peers.get(client.public_key)
        if peer is None:
            continue
        data_age = max(0.0, now - gw.as_of)
        if best is None or (
            peer.handshake_age is not None
            and (best[1].handshake_age is None or peer.handshake_age < best[1].handshake_age)
        ):
            best = (name, peer, data_age)
    return best


def client_row(client: ClientView, rates: FleetRates, kept: Kept, now: float) -> Row:
    hs_text, hs_tone = present.handshake(client.status, client.handshake_age)
    hs_sort: tuple[int, float] = _num(client.handshake_age)
    hs_gateway = client.handshake_gateway
    lb_text, lb_tone = client.lb_gateway or "-", PLAIN if client.lb_gateway else MUTED
    if kept.gateways:
        old = _kept_handshake(client, kept, now)
        lb_stale = client.lb_gateway in kept.gateways
        if old is not None:
            name, peer, data_age = old
            fresher = peer.handshake_age is not None and (
                client.handshake_age is None or peer.handshake_age + data_age < client.handshake_age
            )
            if fresher or lb_stale:
                # What the unreachable gateway last said may be the client's real state;
                # shown, but as old data, never as current.
                age = None if peer.handshake_age is None else peer.handshake_age + data_age
                text, _ = present.handshake(client_status(age), age)
                hs_text = f"{text} · {present.stale_note(data_age)}"
                hs_tone = STALE
                hs_gateway = name
                hs_sort = _num(age)
        if lb_stale:
            lb_text, lb_tone = f"{client.lb_gateway} (down)", STALE
    rate = rates.client(client.public_key)
    codes = client.findings
    tone = min(
        (present.CLIENT_FINDING_TONE.get(code, PLAIN) for code in codes),
        key=_TONE_RANK.__getitem__,
        default=PLAIN,
    )
    address = client.address or "-"
    cells = (
        Cell(client.label),
        Cell(address, PLAIN, ip_sort_key(client.address)),
        Cell(lb_text, lb_tone),
        Cell(hs_gateway or "-", PLAIN if hs_gateway else MUTED),
        Cell(hs_text, hs_tone, hs_sort),
        Cell(",".join(codes), tone),
        Cell(present.byte_rate(rate.rx_bps), PLAIN, _num(rate.rx_bps)),
        Cell(present.byte_rate(rate.tx_bps), PLAIN, _num(rate.tx_bps)),
        Cell(short_key(client.public_key), MUTED),
        Cell(client.endpoint or "-", PLAIN, ip_sort_key(client.endpoint)),
    )
    search = _search(
        client.label,
        client.address,
        client.public_key,
        client.endpoint,
        lb_text,
        hs_gateway,
        hs_text,
        *codes,
    )
    return Row(client.public_key, cells, search, ClientSubject(client.public_key))


def client_rows(fleet: Fleet, rates: FleetRates, kept: Kept, now: float) -> tuple[Row, ...]:
    return tuple(client_row(c, rates, kept, now) for c in fleet.clients)


# --- overview ----------------------------------------------------------------------------


_STATE_ORDER = {state: i for i, state in enumerate(REAL_SERVER_STATES)}


def server_row(
    rs: RealServerView,
    rates: FleetRates,
    stale_age: float | None = None,
    balance: tuple[Cell, Cell] | None = None,
) -> Row:
    """`balance`: its clients and sh buckets cells (view.directors.balance_cells)."""
    r = rates.server(rs.address)
    clients, buckets = balance or (Cell("-", MUTED), Cell("-", MUTED))
    state_text, state_tone = present.server_state(rs.state)
    pps = (
        "-"
        if r.in_pps is None or r.out_pps is None
        else f"{present.packet_rate(r.in_pps)}/{present.packet_rate(r.out_pps)}"
    )
    cells = [
        Cell(rs.gateway or "(not in inventory)", PLAIN if rs.gateway else WARN),
        Cell(str(rs.address), PLAIN, endpoint_sort_key(rs.address)),
        Cell("-" if rs.weight is None else str(rs.weight), PLAIN, _num(rs.weight)),
        Cell(state_text, state_tone, _STATE_ORDER.get(rs.state, 99)),
        Cell(present.count(rs.lb_entries), PLAIN, rs.lb_entries),
        clients,
        buckets,
        Cell(pps, PLAIN, _num(r.in_pps)),
        Cell(present.byte_rate(r.total_bps), PLAIN, _num(r.total_bps)),
        Cell(present.sparkline(r.history, SPARK_WIDTH), GOOD if r.history else MUTED),
    ]
    # A row of the LB's kept (stale) data stands for no gateway the console acts on.
    subject = GatewaySubject(rs.gateway) if rs.gateway and stale_age is None else None
    if stale_age is not None:
        cells[3] = Cell(f"{state_text} · {present.stale_note(stale_age)}", STALE)
        cells = [Cell(c.text, STALE, c.sort) for c in cells]
    search = _search(*(c.text for c in cells))
    return Row(str(rs.address), tuple(cells), search, subject)


def server_rows(
    fleet: Fleet,
    rates: FleetRates,
    kept: Kept,
    now: float,
    balance: Mapping[str, tuple[Cell, Cell]] | None = None,
) -> tuple[Row, ...]:
    """`balance`: per gateway name, its balance cells (none for kept rows: no current data)."""
    if kept.lb is not None and not fleet.real_servers:
        age = max(0.0, now - kept.lb.as_of)
        return tuple(server_row(rs, rates, age) for rs in kept.lb.real_servers)
    cells = balance or {}
    return tuple(
        server_row(rs, rates, None, cells.get(rs.gateway or "")) for rs in fleet.real_servers
    )


def host_rows(ages: Sequence[HostAge]) -> tuple[Row, ...]:
    rows = []
    for h in ages:
        ok_text, ok_tone = present.reachable(h.reachable)
        if h.reachable:
            age_cell = Cell(present.age(h.age), PLAIN, _num(h.age))
        else:
            age_cell = Cell(present.stale_note(h.age), STALE, _num(h.age))
        poll = "-" if h.poll_seconds is None else f"{h.poll_seconds:.2f}s"
        cells = (
            Cell(h.name),
            Cell(h.role),
            Cell(ok_text, ok_tone),
            age_cell,
            Cell(poll, PLAIN, _num(h.poll_seconds)),
            Cell(h.error or "", BAD if h.error else PLAIN),
        )
        subject = GatewaySubject(h.name) if h.role == "gateway" else DirectorSubject(h.name)
        rows.append(Row(h.name, cells, _search(*(c.text for c in cells)), subject))
    return tuple(rows)


def finding_rows(
    items: Sequence[Finding | FindingGroup],
    fleet: Fleet | None = None,
    gateways: Collection[str] = (),
) -> tuple[Row, ...]:
    """One row an item of `fold_findings` (many clients' findings of a code are one), in
    its order. Each is about its client if `fleet` has it, else about its subject if that
    is one of `gateways` (names), else about nothing but its text."""
    rows = []
    seen: dict[str, int] = {}
    clients = {c.public_key for c in fleet.clients} if fleet is not None else set()
    for f in items:
        # A group keeps its row (and the cursor on it) while its count changes.
        base = (
            f"{f.code}|{f.severity}|clients"
            if isinstance(f, FindingGroup)
            else f"{f.code}|{f.subject}"
        )
        n = seen.get(base, 0)
        seen[base] = n + 1
        text, tone = present.severity(f.severity)
        cells = (
            Cell(text, tone, f.rank),
            Cell(f.code),
            Cell(f.subject),
            Cell(f.message),
        )
        search = _search(text, f.code, f.subject, f.message)
        rows.append(Row(f"{base}|{n}", cells, search, _finding_subject(f, clients, gateways)))
    return tuple(rows)


def _finding_subject(
    f: Finding | FindingGroup, clients: Collection[str], gateways: Collection[str]
) -> FindingSubject:
    if isinstance(f, FindingGroup):
        return FindingSubject(f.code, f.severity, f.message, group=True)
    about: GatewaySubject | ClientSubject | None = None
    if f.client_key is not None and f.client_key in clients:
        about = ClientSubject(f.client_key)
    elif f.subject in gateways:
        about = GatewaySubject(f.subject)
    return FindingSubject(f.code, f.severity, f.message, about)


def service_line(fleet: Fleet, kept: Kept, now: float) -> tuple[tuple[str, str], ...]:
    """The service with its flags, and the service-level findings next to what they concern."""
    service = fleet.service
    stale: str | None = None
    if service is None and kept.lb is not None and kept.lb.service is not None:
        service = kept.lb.service
        stale = present.stale_note(now - kept.lb.as_of)
    if service is None:
        return (("✖ service not found on any answering load balancer", BAD),)
    base = STALE if stale else PLAIN
    codes = {f.code: f for f in fleet.findings}
    parts: list[tuple[str, str]] = [
        (f"{service.protocol} {service.vip}:{service.port}", base or present.ACCENT),
        (f" on {service.lb}", base),
        (f" · scheduler {service.scheduler}", base),
        (f" · flags {','.join(service.flags) or 'none'}", base),
    ]
    if "sh-no-fallback" in codes:
        f = codes["sh-no-fallback"]
        parts.append((f" {_mark(f)} no sh-fallback", _tone(f)))
    expire = {True: "1", False: "0", None: "?"}[service.expire_nodest_conn]
    parts.append((f" · expire_nodest_conn={expire}", base))
    if "expire-nodest-off" in codes:
        f = codes["expire-nodest-off"]
        parts.append((f" {_mark(f)} deleted gateways keep their flows", _tone(f)))
    if stale:
        parts.append((f" · {stale}", STALE))
    return tuple(parts)


def _tone(finding: Finding) -> str:
    return present.SEVERITY[finding.severity][1]


def _mark(finding: Finding) -> str:
    return present.SEVERITY[finding.severity][0]


# --- connections -------------------------------------------------------------------------


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
            cached = self._select(*query)
            self._selected = {query: cached}  # only the latest: the view shows one at a time
        return cached

    def _select(self, query: str, column: int | None, reverse: bool) -> list[int]:
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


# An LB entry as a client's is matched: (client, virtual, real server).
EntryKey = tuple[Endpoint, Endpoint, Endpoint]


def entry_clients(fleet: Fleet) -> dict[EntryKey, str]:
    """Each client's LB entry, to its public key (the first client listed, if two claim one)."""
    found: dict[EntryKey, str] = {}
    for c in fleet.clients:
        e = c.lb_entry
        if e is not None:
            found.setdefault((e.client, e.virtual, e.dest), c.public_key)
    return found


# --- details -----------------------------------------------------------------------------


PeerEntry = tuple[ClientView | None, str, PeerOnGateway]  # (its client, public key, peer)


def peer_row(entry: PeerEntry, gateway: str, stale_age: float | None) -> Row:
    """One peer as `gateway` sees it; `stale_age`: the age of kept data, None if current."""
    client, key, peer = entry
    age = peer.handshake_age
    if stale_age is not None and age is not None:
        age += stale_age
    hs_text, hs_tone = present.handshake(client_status(age), age)
    here = client is not None and client.lb_gateway == gateway
    cells = [
        Cell(client.label if client else short_key(key)),
        Cell(short_key(key), MUTED),
        Cell("-" if peer.endpoint is None else str(peer.endpoint)),
        Cell(", ".join(peer.allowed_ips) or "(none)"),
        Cell(hs_text, hs_tone, _num(age)),
        Cell("yes" if here else "no", GOOD if here else MUTED),
        Cell(present.count(peer.rx_bytes), PLAIN, peer.rx_bytes),
        Cell(present.count(peer.tx_bytes), PLAIN, peer.tx_bytes),
        Cell(f"{peer.keepalive}s" if peer.keepalive else "off"),
    ]
    if stale_age is not None:
        cells = [Cell(c.text, STALE, c.sort) for c in cells]
    return Row(key, tuple(cells), _search(*(c.text for c in cells), key))


class PeerRows:
    """A gateway's peers as a RowSource: rows built for the window read.

    A gateway of 10,000 peers is shown a window at a time; building every row costs
    ~30 ms a poll, the window's a fraction of one.
    """

    __slots__ = ("_positions", "entries", "gateway", "stale_age")

    def __init__(self, entries: Sequence[PeerEntry], gateway: str, stale_age: float | None):
        self.entries = entries
        self.gateway = gateway
        self.stale_age = stale_age
        self._positions: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def window(self, start: int, stop: int) -> Sequence[Row]:
        gateway, stale_age = self.gateway, self.stale_age
        return [peer_row(entry, gateway, stale_age) for entry in self.entries[start:stop]]

    def position(self, key: str) -> int | None:
        if self._positions is None:
            # Asked only when the cursor's peer left the window: built on first use.
            self._positions = {entry[1]: i for i, entry in enumerate(self.entries)}
        return self._positions.get(key)


def gateway_peers(fleet: Fleet, gateway: str, kept: Kept, now: float) -> PeerRows:
    """A gateway's peers as it sees them; from its kept data (stale) if it stopped answering."""
    old = kept.gateway(gateway)
    entries: list[PeerEntry] = []
    if old is not None:
        by_key = {c.public_key: c for c in fleet.clients}
        entries = [(by_key.get(key), key, peer) for key, peer in old.peers.items()]
        return PeerRows(entries, gateway, max(0.0, now - old.as_of))
    for view in fleet.clients:
        peer = view.on(gateway)
        if peer is not None:
            entries.append((view, view.public_key, peer))
    return PeerRows(entries, gateway, None)


def peer_rows(
    fleet: Fleet, gateway: str, kept: Kept, now: float
) -> tuple[tuple[Row, ...], float | None]:
    """A gateway's peers as it sees them, and the data's age if it comes from kept data."""
    peers = gateway_peers(fleet, gateway, kept, now)
    return tuple(peers.window(0, len(peers))), peers.stale_age


def drift_rows(drifts: Sequence[Drift]) -> tuple[Row, ...]:
    rows = []
    for i, d in enumerate(drifts):
        cells = (Cell(d.what, WARN), Cell(d.subject), Cell(d.here), Cell(d.others))
        rows.append(Row(f"{i}|{d.what}|{d.subject}", cells, _search(d.what, d.subject)))
    return tuple(rows)


CLIENT_FIELDS: tuple[str, ...] = (
    "Data",
    "Endpoint",
    "Handshake",
    "rx bytes",
    "tx bytes",
    "Allowed IPs",
    "Keepalive",
    "LB sends here",
)


def client_gateway_rows(
    fleet: Fleet, client: ClientView, kept: Kept, now: float, gateways: Sequence[str]
) -> tuple[Row, ...]:
    """The client on every gateway side by side: one row per field, one column per gateway."""
    columns: list[list[Cell]] = []
    for name in gateways:
        old = kept.gateway(name)
        peer: PeerOnGateway | None
        stale_age: float | None = None
        if old is not None:
            peer = old.peers.get(client.public_key)
            stale_age = max(0.0, now - old.as_of)
        else:
            peer = client.on(name)
        here = client.lb_gateway == name
        if old is not None:
            data = Cell(f"✖ {present.stale_note(stale_age)}", STALE)
        elif fleet.gateway(name) is None or not _reachable(fleet, name):
            data = Cell("✖ no data", BAD)
        else:
            data = Cell("✔ current", GOOD)
        if peer is None:
            cells = [data] + [Cell("not configured", MUTED)] * (len(CLIENT_FIELDS) - 2)
        else:
            age = peer.handshake_age
            if stale_age is not None and age is not None:
                age += stale_age
            hs = present.handshake(client_status(age), age)
            cells = [
                data,
                Cell("-" if peer.endpoint is None else str(peer.endpoint)),
                Cell(hs[0], hs[1]),
                Cell(present.count(peer.rx_bytes)),
                Cell(present.count(peer.tx_bytes)),
                Cell(", ".join(peer.allowed_ips) or "(none)"),
                Cell(f"{peer.keepalive}s" if peer.keepalive else "off"),
            ]
            if stale_age is not None:
                cells = [cells[0], *(Cell(c.text, STALE) for c in cells[1:])]
        cells.append(Cell("✔ yes" if here else "no", GOOD if here else MUTED))
        columns.append(cells)
    rows = []
    for i, field in enumerate(CLIENT_FIELDS):
        line = (Cell(field, MUTED), *(col[i] for col in columns))
        rows.append(Row(field, line, field.lower()))
    return tuple(rows)


def _reachable(fleet: Fleet, name: str) -> bool:
    gw = fleet.gateway(name)
    return gw is not None and gw.reachable
