"""The Overview's tables: real servers, hosts, findings, and the service line."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from wgconsole.core.fleet import (
    REAL_SERVER_STATES,
    Finding,
    Fleet,
    RealServerView,
)
from wgconsole.view import present
from wgconsole.view.finding_groups import FindingGroup
from wgconsole.view.freshness import HostAge, Kept
from wgconsole.view.present import BAD, GOOD, MUTED, PLAIN, STALE, WARN
from wgconsole.view.rates import FleetRates
from wgconsole.view.rows.cells import (
    Cell,
    Row,
    columns_of,
    endpoint_sort_key,
    number_key,
    search_text,
)
from wgconsole.view.subjects import (
    ClientSubject,
    DirectorSubject,
    FindingSubject,
    GatewaySubject,
)

SERVER_COLUMNS = columns_of(
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
HOST_COLUMNS = columns_of(
    ("host", "Host"),
    ("role", "Role"),
    ("reachable", "Reachable"),
    ("age", "Data age"),
    ("poll", "Poll"),
    ("handshake", "Handshake probe"),
    ("error", "Error"),
)
FINDING_COLUMNS = columns_of(
    ("severity", "Severity"),
    ("code", "Code"),
    ("subject", "Subject"),
    ("message", "Message"),
)
SPARK_WIDTH = 12


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
        Cell("-" if rs.weight is None else str(rs.weight), PLAIN, number_key(rs.weight)),
        Cell(state_text, state_tone, _STATE_ORDER.get(rs.state, 99)),
        Cell(present.count(rs.lb_entries), PLAIN, rs.lb_entries),
        clients,
        buckets,
        Cell(pps, PLAIN, number_key(r.in_pps)),
        Cell(present.byte_rate(r.total_bps), PLAIN, number_key(r.total_bps)),
        Cell(present.sparkline(r.history, SPARK_WIDTH), GOOD if r.history else MUTED),
    ]
    # A row of the LB's kept (stale) data stands for no gateway the console acts on.
    subject = GatewaySubject(rs.gateway) if rs.gateway and stale_age is None else None
    if stale_age is not None:
        cells[3] = Cell(f"{state_text} · {present.stale_note(stale_age)}", STALE)
        cells = [Cell(c.text, STALE, c.sort) for c in cells]
    search = search_text(*(c.text for c in cells))
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


# A host's probe cell when no probe ran (no probe key, or not a target).
NOT_PROBED = Cell("-", MUTED)


def host_rows(ages: Sequence[HostAge], probes: Mapping[str, Cell] | None = None) -> tuple[Row, ...]:
    """`probes`: each host's probe cell (view.probes); a host without one shows "-"."""
    shown = probes or {}
    rows = []
    for h in ages:
        ok_text, ok_tone = present.reachable(ok=h.reachable)
        if h.reachable:
            age_cell = Cell(present.age(h.age), PLAIN, number_key(h.age))
        else:
            age_cell = Cell(present.stale_note(h.age), STALE, number_key(h.age))
        poll = "-" if h.poll_seconds is None else f"{h.poll_seconds:.2f}s"
        cells = (
            Cell(h.name),
            Cell(h.role),
            Cell(ok_text, ok_tone),
            age_cell,
            Cell(poll, PLAIN, number_key(h.poll_seconds)),
            shown.get(h.name, NOT_PROBED),
            Cell(h.error or "", BAD if h.error else PLAIN),
        )
        subject = GatewaySubject(h.name) if h.role == "gateway" else DirectorSubject(h.name)
        rows.append(Row(h.name, cells, search_text(*(c.text for c in cells)), subject))
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
        search = search_text(text, f.code, f.subject, f.message)
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
