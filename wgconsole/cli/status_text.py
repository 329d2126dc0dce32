"""`wgconsole status` for people: the fleet snapshot as a few plain tables.

Names, addresses, errors and findings come from the inventory and the hosts: each cell is
built as Text from its printable form. A str cell of a Rich table is read as markup (a `[/]`
raised, `[link=…]` printed a hyperlink, `[localhost]` vanished) and its control characters
would reach the terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from wgconsole.core.fleet import ClientView, Fleet
from wgconsole.core.text import printable
from wgconsole.view import present
from wgconsole.view.finding_groups import fold_findings
from wgconsole.view.sites import summarize, summary_line, unread

# The console's tones (`view.present`) as a terminal's styles: a status reads the same
# (symbol, word, tone) in `status` as in the console.
TONE_STYLE = {
    present.GOOD: "green",
    present.WARN: "yellow",
    present.BAD: "bold red",
    present.MUTED: "dim",
    present.STALE: "dim",
    present.ACCENT: "cyan",
    present.PLAIN: "",
}


def _toned(text_and_tone: tuple[str, str]) -> Text:
    text, tone = text_and_tone
    return Text(text, style=TONE_STYLE[tone])


# Rich lays a table out cell by cell, about 0.7 ms a row: 10,000 clients took 20 s. Past this
# many rows a table is printed as plain aligned columns instead, one line a row (greppable).
RICH_ROWS = 300

Cells = Sequence[str | Text]


def _text(cell: str | Text) -> Text:
    """A cell as Text: a str (a name, an address, a host's error) as printable text."""
    return cell if isinstance(cell, Text) else Text(printable(cell))


def _table(title: str, columns: Sequence[str], rows: Sequence[Cells]) -> RenderableType:
    texts = [[_text(cell) for cell in row] for row in rows]
    if len(rows) > RICH_ROWS:
        return _plain_table(title, columns, texts)
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in texts:
        table.add_row(*row)
    return table


def _plain_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Text]]) -> Text:
    widths = [len(c) for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], cell.cell_len)
    out = Text()
    out.append(f"{title} ({len(rows):,})\n", style="italic")
    out.append("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in rows:
        out.append("\n")
        for i, cell in enumerate(row):
            if i:
                out.append("  ")
            out.append_text(cell)
            if i < len(row) - 1:
                out.append(" " * (widths[i] - cell.cell_len))
    return out


def render(fleet: Fleet) -> list[RenderableType]:
    parts: list[RenderableType] = []
    svc = fleet.service
    if svc is None:
        parts.append(Text("service: not found on any answering load balancer", style="bold red"))
    else:
        flags = ",".join(svc.flags) or "no flags"
        expire = {True: "1", False: "0", None: "?"}[svc.expire_nodest_conn]
        parts.append(
            Text(
                printable(
                    f"service {svc.protocol} {svc.vip}:{svc.port} on {svc.lb}"
                    f"  scheduler {svc.scheduler} ({flags})  expire_nodest_conn={expire}"
                ),
                style="bold",
            )
        )
    parts.append(
        _table(
            "real servers",
            ("gateway", "address", "weight", "state", "LB entries", "in pkts", "out pkts"),
            [
                (
                    r.gateway or "?",
                    str(r.address),
                    "-" if r.weight is None else str(r.weight),
                    _toned(present.server_state(r.state)),
                    str(r.lb_entries),
                    str(r.in_packets),
                    str(r.out_packets),
                )
                for r in fleet.real_servers
            ],
        )
    )
    if fleet.load_balancers:
        parts.append(_directors(fleet))
    # Where each client would go if the backup director took over: only with one to take over.
    failover = fleet.failover_lb is not None
    parts.append(
        _table(
            "clients",
            (
                "client",
                "address",
                "endpoint",
                "LB gateway",
                *((f"on failover ({fleet.failover_lb})",) if failover else ()),
                "handshake gw",
                "handshake",
                "findings",
            ),
            [
                (
                    c.label,
                    c.address or "-",
                    c.endpoint or "-",
                    c.lb_gateway or "-",
                    *((_failover_cell(c),) if failover else ()),
                    c.handshake_gateway or "-",
                    _toned(present.handshake(c.status, c.handshake_age)),
                    ",".join(c.findings),
                )
                for c in fleet.clients
            ],
        )
    )
    hosts: list[Cells] = []
    for h in fleet.hosts:
        last = "now" if h.reachable else "never"
        if not h.reachable and h.last_success is not None:
            last = present.age(fleet.taken_at - h.last_success) + " ago"
        hosts.append(
            (
                h.name,
                h.role,
                _toned(present.reachable(ok=h.reachable)),
                last,
                h.error or "",
            )
        )
    parts.append(_table("hosts", ("host", "role", "reachable", "last answer", "error"), hosts))
    if fleet.findings:
        # Per-client findings of one code are folded when many: each client's own are in
        # the clients table and `status --json`.
        parts.append(
            _table(
                "findings",
                ("severity", "code", "subject", "message"),
                [
                    (
                        _toned(present.severity(f.severity)),
                        f.code,
                        f.subject,
                        f.message,
                    )
                    for f in fold_findings(fleet.findings)
                ],
            )
        )
    else:
        parts.append(Text("no findings", style="green"))
    return parts


def _failover_cell(client: ClientView) -> Text:
    if client.failover_gateway is None:
        return Text("dropped" if client.lb_entry is not None else "-", style="yellow")
    text = client.failover_gateway + (" (synced)" if client.failover_synced else "")
    moves = client.lb_gateway is not None and client.failover_gateway != client.lb_gateway
    return Text(printable(text), style="yellow" if moves else "")


def _directors(fleet: Fleet) -> RenderableType:
    """The directors in brief: VIP, VRRP as keepalived reports it, sync daemons, and how far
    each one's sh table is from the VIP holder's."""
    rows: list[Cells] = []
    for lb in fleet.load_balancers:
        vip = {True: "holds VIP", False: "-", None: "?"}[lb.holds_vip]
        vrrp = "-"
        if lb.vrrp_state is not None:
            vrrp = f"{lb.vrrp_state} prio {lb.vrrp_priority} ({lb.vrrp_source})"
        sync = "?" if lb.sync_daemons is None else "none"
        if lb.sync_daemons:
            sync = ", ".join(f"{d.role} {d.interface} id {d.syncid}" for d in lb.sync_daemons)
        if lb.is_reference:
            table = "reference"
        elif lb.buckets_differing is None:
            table = "?"
        else:
            table = f"{lb.buckets_differing}/256 differ" if lb.buckets_differing else "same"
        synced = "-" if lb.synced_clients is None else str(lb.synced_clients)
        managed = {True: "yes", False: "no", None: "?"}[lb.keepalived_managed]
        rows.append(
            (
                lb.name,
                _toned(present.reachable(ok=lb.reachable)),
                vip,
                vrrp,
                sync,
                Text(table, style="yellow" if lb.buckets_differing else ""),
                synced,
                managed,
            )
        )
    columns = ("LB", "reachable", "VIP", "VRRP", "sync daemon", "sh table", "synced", "keepalived")
    return _table("directors", columns, rows)


def print_status(fleet: Fleet, console: Console | None = None) -> None:
    if console is None:
        # Piped output is read by people and grep alike: no ellipsis-truncated names there.
        console = Console() if sys.stdout.isatty() else Console(width=200)
    for part in render(fleet):
        # Plain tables are never wrapped or cropped: one line a row, whatever the width.
        console.print(part, soft_wrap=isinstance(part, Text))


def print_sites(
    readings: Sequence[tuple[str, Fleet | None, str | None]], console: Console | None = None
) -> None:
    """Several sites: a line per site (`view.sites`), then the full text of each site with
    findings (or with no reading at all: its line says why)."""
    if console is None:
        console = Console() if sys.stdout.isatty() else Console(width=200)
    summaries = [
        summarize(name, fleet) if fleet is not None else unread(name, error or "unknown")
        for name, fleet, error in readings
    ]
    width = max(len(s.site) for s in summaries)
    console.print(Text(f"sites ({len(summaries)})", style="bold"))
    for summary in summaries:
        style = "" if not summary.findings else "yellow"
        console.print(Text(printable(summary_line(summary, width)), style=style), soft_wrap=True)
    for (name, fleet, _), summary in zip(readings, summaries, strict=True):
        if fleet is None or not summary.findings:
            continue
        console.print()
        console.print(Text(printable(f"── site {name} ──"), style="bold"))
        print_status(fleet, console)
