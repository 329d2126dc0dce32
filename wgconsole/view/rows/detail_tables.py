"""The detail screens' tables: a gateway's peers and drift, a client's state per gateway."""

from __future__ import annotations

from collections.abc import Sequence

from wgconsole.core.drift import Drift
from wgconsole.core.fleet import (
    ClientView,
    Fleet,
    PeerOnGateway,
    short_key,
)
from wgconsole.core.fleet_builder import client_status
from wgconsole.view import present
from wgconsole.view.freshness import Kept
from wgconsole.view.present import BAD, GOOD, MUTED, PLAIN, STALE, WARN
from wgconsole.view.rows.cells import (
    Cell,
    Row,
    columns_of,
    number_key,
    search_text,
)

PEER_COLUMNS = columns_of(
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
DRIFT_COLUMNS = columns_of(
    ("what", "Differs"),
    ("subject", "Subject"),
    ("here", "Here"),
    ("others", "Other gateways"),
)


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
        Cell(hs_text, hs_tone, number_key(age)),
        Cell("yes" if here else "no", GOOD if here else MUTED),
        Cell(present.count(peer.rx_bytes), PLAIN, peer.rx_bytes),
        Cell(present.count(peer.tx_bytes), PLAIN, peer.tx_bytes),
        Cell(f"{peer.keepalive}s" if peer.keepalive else "off"),
    ]
    if stale_age is not None:
        cells = [Cell(c.text, STALE, c.sort) for c in cells]
    return Row(key, tuple(cells), search_text(*(c.text for c in cells), key))


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
        rows.append(Row(f"{i}|{d.what}|{d.subject}", cells, search_text(d.what, d.subject)))
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
