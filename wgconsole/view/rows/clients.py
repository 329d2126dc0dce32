"""The Clients table: one row per client, its gateways and handshake freshness."""

from __future__ import annotations

from wgconsole.core.fleet import (
    ClientView,
    Fleet,
    PeerOnGateway,
    short_key,
)
from wgconsole.core.fleet_builder import client_status
from wgconsole.view import present
from wgconsole.view.freshness import Kept
from wgconsole.view.present import MUTED, PLAIN, STALE
from wgconsole.view.rates import FleetRates
from wgconsole.view.rows.cells import (
    TONE_RANK,
    Cell,
    Row,
    columns_of,
    ip_sort_key,
    number_key,
    search_text,
)
from wgconsole.view.subjects import ClientSubject

# The operator's questions first (which gateway, how fresh), details to the right: an
# 80-column terminal shows the first six.
CLIENT_COLUMNS = columns_of(
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
    hs_sort: tuple[int, float] = number_key(client.handshake_age)
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
                hs_sort = number_key(age)
        if lb_stale:
            lb_text, lb_tone = f"{client.lb_gateway} (down)", STALE
    rate = rates.client(client.public_key)
    codes = client.findings
    tone = min(
        (present.CLIENT_FINDING_TONE.get(code, PLAIN) for code in codes),
        key=TONE_RANK.__getitem__,
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
        Cell(present.byte_rate(rate.rx_bps), PLAIN, number_key(rate.rx_bps)),
        Cell(present.byte_rate(rate.tx_bps), PLAIN, number_key(rate.tx_bps)),
        Cell(short_key(client.public_key), MUTED),
        Cell(client.endpoint or "-", PLAIN, ip_sort_key(client.endpoint)),
    )
    search = search_text(
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
