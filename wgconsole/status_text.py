"""`wgconsole status` for people: the fleet snapshot as a few plain tables."""

from __future__ import annotations

import sys

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from wgconsole.model import Fleet

SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
STATUS_STYLE = {"fresh": "green", "ageing": "yellow", "stale": "bold red", "never": "dim"}


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def render(fleet: Fleet) -> RenderableType:
    parts: list[RenderableType] = []
    svc = fleet.service
    if svc is None:
        parts.append(Text("service: not found on any answering load balancer", style="bold red"))
    else:
        flags = ",".join(svc.flags) or "no flags"
        expire = {True: "1", False: "0", None: "?"}[svc.expire_nodest_conn]
        parts.append(
            Text(
                f"service {svc.protocol} {svc.vip}:{svc.port} on {svc.lb}"
                f"  scheduler {svc.scheduler} ({flags})  expire_nodest_conn={expire}",
                style="bold",
            )
        )
    rs = Table(title="real servers", title_justify="left", expand=False)
    for col in ("gateway", "address", "weight", "state", "LB entries", "in pkts", "out pkts"):
        rs.add_column(col, overflow="fold")
    for r in fleet.real_servers:
        rs.add_row(
            r.gateway or "?",
            str(r.address),
            "-" if r.weight is None else str(r.weight),
            r.state,
            str(r.lb_entries),
            str(r.in_packets),
            str(r.out_packets),
        )
    parts.append(rs)
    cl = Table(title="clients", title_justify="left")
    for col in ("client", "address", "endpoint", "LB gateway", "handshake gw", "age", "findings"):
        cl.add_column(col, overflow="fold")
    for c in fleet.clients:
        cl.add_row(
            c.label,
            c.address or "-",
            c.endpoint or "-",
            c.lb_gateway or "-",
            c.handshake_gateway or "-",
            Text(f"{_age(c.handshake_age)} {c.status}", style=STATUS_STYLE.get(c.status, "")),
            ",".join(c.findings),
        )
    parts.append(cl)
    hosts = Table(title="hosts", title_justify="left")
    for col in ("host", "role", "reachable", "last answer", "error"):
        hosts.add_column(col, overflow="fold")
    for h in fleet.hosts:
        last = "now" if h.reachable else "never"
        if not h.reachable and h.last_success is not None:
            last = _age(max(0.0, fleet.taken_at - h.last_success)) + " ago"
        hosts.add_row(
            h.name,
            h.role,
            Text("yes" if h.reachable else "NO", style="" if h.reachable else "bold red"),
            last,
            h.error or "",
        )
    parts.append(hosts)
    if fleet.findings:
        ft = Table(title="findings", title_justify="left")
        for col in ("severity", "code", "subject", "message"):
            ft.add_column(col, overflow="fold")
        for f in fleet.findings:
            ft.add_row(
                Text(f.severity, style=SEVERITY_STYLE[f.severity]), f.code, f.subject, f.message
            )
        parts.append(ft)
    else:
        parts.append(Text("no findings", style="green"))
    return Group(*parts)


def print_status(fleet: Fleet, console: Console | None = None) -> None:
    if console is None:
        # Piped output is read by people and grep alike: no ellipsis-truncated names there.
        console = Console() if sys.stdout.isatty() else Console(width=200)
    console.print(render(fleet))
