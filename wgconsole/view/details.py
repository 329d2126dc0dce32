"""The text of the gateway and client detail views (lines of (text, tone) parts, and rows).

Kept out of the UI so the same words and tones apply as in the tables, and so they are
tested without a terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from wgconsole.core.drift import gateway_drift
from wgconsole.core.fleet import ClientView, Fleet, short_key
from wgconsole.core.inventory import Inventory
from wgconsole.core.whatif import DrainPreview, Outcome, client_source, drain_preview
from wgconsole.view import present
from wgconsole.view.directors import failover_line
from wgconsole.view.freshness import Kept, host_ages
from wgconsole.view.present import BAD, GOOD, MUTED, PLAIN, STALE, WARN
from wgconsole.view.rows.cells import Cell, Column, Row
from wgconsole.view.rows.detail_tables import PeerRows, drift_rows, gateway_peers
from wgconsole.view.rows.selection import RowList

Line = tuple[tuple[str, str], ...]

OUTCOME_COLUMNS = (
    Column("scenario", "If"),
    Column("gateway", "New flows go to"),
    Column("bucket", "Bucket"),
    Column("note", "Existing LB entry"),
)


def gateway_lines(
    inventory: Inventory, fleet: Fleet, kept: Kept, name: str, now: float
) -> list[Line]:
    gw_inv = next((g for g in inventory.gateways if g.name == name), None)
    rs = next((r for r in fleet.real_servers if r.gateway == name), None)
    lines: list[Line] = []
    head: list[tuple[str, str]] = [(name, present.ACCENT)]
    if gw_inv is not None:
        head.append(
            (f" · ssh {gw_inv.host}:{gw_inv.ssh.port} · real server {gw_inv.real_server}", PLAIN)
        )
    if rs is not None:
        state, tone = present.server_state(rs.state)
        weight = "-" if rs.weight is None else str(rs.weight)
        head += [(f" · weight {weight} · ", PLAIN), (state, tone)]
        head.append((f" · {present.count(rs.lb_entries)} LB entries", PLAIN))
    lines.append(tuple(head))
    age = next((a for a in host_ages(fleet.hosts, now) if a.name == name), None)
    view = fleet.gateway(name)
    old = kept.gateway(name)
    if age is not None and not age.reachable:
        note = present.stale_note(age.age)
        what = f"showing its last data, {note}" if old else "no data yet"
        lines.append(
            (("✖ not answering", BAD), (f" — {what}", STALE), (f" · {age.error or ''}", BAD))
        )
    elif age is not None:
        poll = "-" if age.poll_seconds is None else f"{age.poll_seconds:.2f}s"
        lines.append(
            (("✔ answering", GOOD), (f" · data {present.age(age.age)} old · poll {poll}", PLAIN))
        )
    shown = old.view if old is not None else view
    if shown is not None and (shown.reachable or old is not None):
        interface = gw_inv.interface if gw_inv else "wg"
        link, tone = present.link_state(up=shown.link_up)
        tone = STALE if old is not None else tone
        base = STALE if old is not None else PLAIN
        parts: list[tuple[str, str]] = [(f"{interface} ", base), (link, tone)]
        if shown.public_key:
            parts.append((f" · key {short_key(shown.public_key)}", base))
        if shown.listen_port is not None:
            parts.append((f" · port {shown.listen_port}", base))
        if shown.peer_count is not None:
            parts.append((f" · {shown.peer_count} peers", base))
        parts.append((f" · clock skew {present.signed_seconds(shown.clock_skew)}", base))
        if shown.error:
            parts.append((f" · {shown.error}", BAD))
        lines.append(tuple(parts))
    return lines


def drain_lines(preview: DrainPreview | None) -> list[Line]:
    if preview is None:
        return [(("no sh preview: the service is not on an answering LB or is not sh", MUTED),)]
    parts: list[tuple[str, str]] = [("Drain (weight 0): ", PLAIN)]
    if preview.buckets:
        parts.append((f"{preview.buckets}/256 buckets of new clients ", PLAIN))
    else:
        parts.append(("no new client comes here now ", PLAIN))
    for target, n in sorted(
        preview.weight0_new.items(), key=lambda kv: (kv[0] is None, kv[0] or "")
    ):
        if target is None:
            parts.append((f"✖ {n} dropped (no available gateway, no sh-fallback) ", BAD))
        else:
            parts.append((f"→ {target} {n} ", GOOD))
    parts.append(
        (
            f"· its {preview.lb_clients} LB entries stay while refreshed",
            WARN if preview.lb_clients else PLAIN,
        )
    )
    removal: list[tuple[str, str]] = [("Remove: ", PLAIN)]
    if not preview.lb_clients:
        removal.append(("no client has an LB entry here", PLAIN))
    elif preview.entries_move_on_remove:
        removal.append((f"its {preview.lb_clients} clients move on their next packet: ", PLAIN))
        for target, n in sorted(
            preview.removed_clients.items(), key=lambda kv: (kv[0] is None, kv[0] or "")
        ):
            removal.append((f"→ {target or '✖ dropped'} {n} ", BAD if target is None else GOOD))
    else:
        why = "=0" if preview.entries_move_on_remove is False else " unknown"
        removal.append(
            (f"✖ its {preview.lb_clients} entries never move (expire_nodest_conn{why})", BAD)
        )
    return [tuple(parts), tuple(removal)]


@dataclass(frozen=True, slots=True)
class GatewayDetail:
    """A gateway's detail below its header lines, as of one snapshot."""

    name: str
    drain: tuple[Line, ...]
    drift: RowList
    peers: PeerRows


def gateway_detail(
    inventory: Inventory, fleet: Fleet, kept: Kept, name: str, now: float
) -> GatewayDetail:
    return GatewayDetail(
        name,
        tuple(drain_lines(drain_preview(inventory, fleet, name))),
        RowList(drift_rows(gateway_drift(fleet, name))),
        gateway_peers(fleet, name, kept, now),
    )


class GatewayDetails:
    """The gateway details of one snapshot, each computed once.

    At 10,000 clients one costs ~25 ms (the sh model over the gateway's clients, the
    drift over every peer): the poll worker prepares the one whose screen is open, so a
    refresh only reads it; any other is computed on first use (opening its screen).
    """

    __slots__ = ("_done", "fleet", "inventory", "kept", "now")

    def __init__(self, inventory: Inventory, fleet: Fleet, kept: Kept, now: float) -> None:
        self.inventory = inventory
        self.fleet = fleet
        self.kept = kept
        self.now = now
        self._done: dict[str, GatewayDetail] = {}

    def get(self, name: str) -> GatewayDetail:
        done = self._done.get(name)
        if done is None:
            done = gateway_detail(self.inventory, self.fleet, self.kept, name, self.now)
            self._done[name] = done
        return done

    def prepare(self, names: Iterable[str]) -> None:
        for name in names:
            self.get(name)


def client_lines(fleet: Fleet, client: ClientView) -> list[Line]:
    lines: list[Line] = []
    head: list[tuple[str, str]] = [(client.label, present.ACCENT)]
    if client.address:
        head.append((f" · {client.address}", PLAIN))
    head.append((f" · key {client.public_key}", MUTED))
    lines.append(tuple(head))
    hs, tone = present.handshake(client.status, client.handshake_age)
    lines.append(
        (
            ("Handshake ", PLAIN),
            (hs, tone),
            (f" on {client.handshake_gateway or '-'}", PLAIN),
            (f" · LB sends it to {client.lb_gateway or '-'}", PLAIN),
        )
    )
    entry = client.lb_entry
    if entry is None:
        if fleet.service is None:
            lines.append((("LB entry: unknown (no answering LB)", STALE),))
        else:
            lines.append((("LB entry: none", WARN),))
    else:
        lines.append(
            (
                ("LB entry: ", PLAIN),
                (
                    f"{entry.protocol.lower()} {entry.client} → {entry.virtual} → {entry.dest}",
                    PLAIN,
                ),
                (
                    f" ({client.lb_gateway or 'not in inventory'})",
                    GOOD if client.lb_gateway else WARN,
                ),
                (f" · {entry.state} · expires {entry.expires}s", PLAIN),
            )
        )
    failover = failover_line(fleet, client)
    if failover is not None:
        lines.append(failover)
    source = client_source(client)
    if source is not None:
        lines.append(((f"sh hashes source {source}", MUTED),))
    for finding in fleet.findings:
        if finding.client_key == client.public_key:
            text, tone = present.severity(finding.severity)
            lines.append(((text, tone), (f" {finding.code}: {finding.message}", PLAIN)))
    return lines


def outcome_rows(outcomes: Sequence[Outcome]) -> tuple[Row, ...]:
    rows = []
    for o in outcomes:
        target = (
            Cell("✖ dropped", BAD)
            if o.gateway is None
            else Cell(o.gateway, GOOD if o.scenario == "now" else PLAIN)
        )
        cells = (
            Cell(o.scenario),
            target,
            Cell(str(o.bucket), PLAIN, o.bucket),
            Cell(o.note, MUTED),
        )
        rows.append(Row(o.scenario, cells, o.scenario.lower()))
    return tuple(rows)
