"""The one-line header: the service, fleet size, worst findings, poll age, read-only flag."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from wgconsole.core.text import printable
from wgconsole.tui.widgets.colours import ThemeColours, plain
from wgconsole.view import present
from wgconsole.view.snapshot import ConsoleSnapshot


class ConsoleHeader(Horizontal):
    def __init__(self, *, read_only: bool) -> None:
        super().__init__(id="header")
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        if self.read_only:
            yield Static("READ-ONLY", id="read-only")
        # What these show comes from the hosts: never read as markup (see colours.plain).
        yield Static("wgconsole", id="title", markup=False)
        yield Static("polling…", id="poll-status", markup=False)

    def show(
        self,
        snapshot: ConsoleSnapshot | None,
        now: float,
        colours: ThemeColours,
        error: str | None = None,
    ) -> None:
        title = self.query_one("#title", Static)
        status = self.query_one("#poll-status", Static)
        right = Text(end="")
        if snapshot is not None:
            fleet = snapshot.fleet
            svc = fleet.service
            where = f"{svc.protocol} {svc.vip}:{svc.port} {svc.scheduler}" if svc else "no service"
            size = f"{len(fleet.gateways)} gw · {len(fleet.clients)} clients"
            title.update(plain(f"wgconsole · {where} · {size}"))
            worst: dict[str, int] = {}
            for f in fleet.findings:
                worst[f.severity] = worst.get(f.severity, 0) + 1
            for level in ("critical", "warning"):
                if worst.get(level):
                    mark, tone = present.SEVERITY[level]
                    right.append(f"{mark}{worst[level]} ", colours.style(tone))
            lost = sum(1 for h in fleet.hosts if not h.reachable)
            if lost:
                right.append(f"{lost} host(s) down ", colours.style(present.BAD))
            age = max(0.0, now - fleet.taken_at)
            right.append(f"poll {present.age(age)} ago ({snapshot.poll_seconds:.1f}s)")
        if error:
            right.append(f" ✖ poll failed: {printable(error)}", colours.style(present.BAD))
        if snapshot is None and not error:
            right.append("polling…")
        status.update(right)
