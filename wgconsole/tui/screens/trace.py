"""`t` on a client: its packets across the LBs and the gateways, filling in live, then the
verdict. The trace runs in a worker thread that posts immutable `TraceReport` snapshots as
messages and never touches a widget; Escape stops it early (every capture ends on its host),
and once it ended, goes back. A trace only observes: it runs under --read-only too."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static

from wgconsole.core.text import printable
from wgconsole.core.trace import Hop, TraceError, TraceReport
from wgconsole.trace.session import TraceCollector, TraceSession

# The timeline shows its latest packets: a screen holds a few dozen lines.
SHOWN_HOPS = 40


class TraceUpdate(Message):
    def __init__(self, report: TraceReport) -> None:
        super().__init__()
        self.report = report


class TraceFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


def hop_text(h: Hop) -> str:
    mac1 = f"  mac1 {h.mac1}" if h.mac1 else ""
    return printable(
        f"{h.at:+8.3f}  {h.host:<14} {h.hop:<27} {h.message:<10} {h.length:>5}  "
        f"{h.src} > {h.dst}{mac1}"
    )


def report_lines(report: TraceReport) -> tuple[str, str, str]:
    """The captures and hop counts, the timeline's latest packets, and the verdict, as text."""
    t = report.target
    head = [
        printable(
            f"{t.label}: from {t.source} to the VIP {t.vip}, {report.seconds:g} s; "
            f"gateways {', '.join(t.traced_gateways)}"
        )
    ]
    for c in report.captures:
        said = c.state if c.error is None else f"failed: {c.error}"
        head.append(printable(f"  {c.host:<16} {c.capture:<10} {said:<10} {c.packets} packets"))
    for hop, per in report.counts().items():
        kinds = ", ".join(f"{n} {kind}" for kind, n in per.items())
        head.append(printable(f"  {hop:<27} {kinds}"))
    hops = report.hops[-SHOWN_HOPS:]
    timeline = "\n".join(hop_text(h) for h in hops) or "(no packet of the client yet)"
    if report.verdict is None:
        verdict = "capturing… (Escape stops)"
    else:
        stopped = " (stopped early)" if report.stopped_early else ""
        verdict = printable(f"{report.verdict.code}{stopped}: {report.verdict.message}")
    return "\n".join(head), timeline, verdict


class TraceScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop_or_back", "Stop / back", tooltip="stop the trace; then back"),
    ]

    def __init__(self, collector: TraceCollector, query: str, label: str) -> None:
        super().__init__()
        self.collector = collector
        self.query_text = query
        self.label = label
        self.session: TraceSession | None = None
        self.report: TraceReport | None = None
        self.failed: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(printable(f"Trace {self.label}"), id="trace-title")
        with VerticalScroll(id="trace-body"):
            yield Static("resolving the client from a fresh poll…", id="trace-captures")
            yield Static("", id="trace-timeline")
        yield Static("", id="trace-verdict")
        yield Footer()

    def on_mount(self) -> None:
        self._run()

    @work(thread=True, exclusive=True, group="trace", exit_on_error=False)
    def _run(self) -> None:
        try:
            session = TraceSession(self.collector, self.query_text)
            self.session = session
            session.resolve()

            def post(report: TraceReport) -> None:
                self.post_message(TraceUpdate(report))

            session.run(post)
        except TraceError as exc:
            self.post_message(TraceFailed(str(exc)))
        except Exception as exc:  # the console stays up; the trace says why it ended
            self.post_message(TraceFailed(f"{type(exc).__name__}: {exc}"))

    @on(TraceUpdate)
    def _update(self, message: TraceUpdate) -> None:
        self.report = message.report
        captures, timeline, verdict = report_lines(message.report)
        self.query_one("#trace-captures", Static).update(Text(captures))
        self.query_one("#trace-timeline", Static).update(Text(timeline))
        verdict_widget = self.query_one("#trace-verdict", Static)
        verdict_widget.update(Text(verdict))
        if message.report.verdict is not None:
            verdict_widget.set_class(message.report.verdict.code != "ok", "-problem")
            verdict_widget.set_class(message.report.verdict.code == "ok", "-ok")

    @on(TraceFailed)
    def _failed(self, message: TraceFailed) -> None:
        self.failed = message.error
        self.query_one("#trace-verdict", Static).update(
            Text(printable(f"cannot trace: {message.error}"))
        )
        self.query_one("#trace-verdict", Static).set_class(True, "-problem")  # noqa: FBT003

    @property
    def running(self) -> bool:
        return self.failed is None and (self.report is None or self.report.verdict is None)

    def action_stop_or_back(self) -> None:
        if self.running and self.session is not None and not self.session.stop.is_set():
            self.session.stop.set()
            self.query_one("#trace-verdict", Static).update("stopping the captures…")
            return
        if self.session is not None:
            self.session.stop.set()
        self.app.pop_screen()

    def on_unmount(self) -> None:
        if self.session is not None:
            self.session.stop.set()
