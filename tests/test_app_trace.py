"""`t` on a client in the console: the trace screen fills in live from the session's
snapshots (a replayed lab capture), Escape stops the captures and shows the verdict, a second
Escape goes back; under --read-only too (a trace only observes)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from textual.widgets import Static

from tests.console_support import NORMAL, console, wait_for
from tests.test_trace import _captures, _hops, _target
from wgconsole.core.trace import TraceReport, Verdict
from wgconsole.tui.app import ConsoleApp
from wgconsole.tui.screens import trace as trace_screen
from wgconsole.tui.screens.trace import TraceScreen


class ReplayedSession:
    """A trace session over the lab's recorded `ok` capture: half its hops at once, then,
    once stopped, all of them with the verdict (as the real session reports them)."""

    made: list[ReplayedSession] = []  # noqa: RUF012 (the test's record of the sessions)

    def __init__(self, collector: object, query: str) -> None:
        self.query = query
        self.stop = threading.Event()
        ReplayedSession.made.append(self)

    def resolve(self) -> None:
        pass

    def run(self, post: Callable[[TraceReport], None]) -> TraceReport:
        target = _target("ok", label="wg-client-0\x1b[2J")
        hops = tuple(_hops("ok"))
        captures = tuple(_captures("ok"))
        post(TraceReport(target, 4, hops[: len(hops) // 2], captures, None))
        self.stop.wait(30)
        ok = Verdict("ok", "packets both ways through the VIP")
        final = TraceReport(target, 4, hops, captures, ok, finished=True, stopped_early=True)
        post(final)
        return final


def _text(app: ConsoleApp, widget: str) -> str:
    return str(app.screen.query_one(widget, Static).render())


@pytest.mark.parametrize("read_only", [False, True])
async def test_t_traces_the_selected_client_live_and_escape_stops_it(
    monkeypatch: pytest.MonkeyPatch, *, read_only: bool
) -> None:
    ReplayedSession.made.clear()
    monkeypatch.setattr(trace_screen, "TraceSession", ReplayedSession)
    app, _ = console([NORMAL], read_only=read_only)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, lambda: app.applied >= 1)
        await pilot.press("2")
        await pilot.pause()
        key = app.selected_client()
        assert key is not None
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TraceScreen))
        screen = app.screen
        assert isinstance(screen, TraceScreen)
        # The first snapshot: hops on screen, no verdict yet.
        await wait_for(pilot, lambda: "client-to-vip" in _text(app, "#trace-timeline"))
        assert "capturing" in _text(app, "#trace-verdict")
        [session] = ReplayedSession.made
        assert session.query == key
        # A host's text is shown as text: the escape sequence's control byte never reaches it.
        assert "\x1b" not in _text(app, "#trace-captures")
        # Escape stops the captures; the final report shows the verdict, the screen stays.
        await pilot.press("escape")
        assert session.stop.is_set()
        await wait_for(pilot, lambda: "ok (stopped early)" in _text(app, "#trace-verdict"))
        assert isinstance(app.screen, TraceScreen)
        assert "vip-to-client" in _text(app, "#trace-captures")
        # Then Escape goes back to the console.
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, TraceScreen))


async def test_t_without_a_client_selected_says_what_to_select(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ReplayedSession.made.clear()
    monkeypatch.setattr(trace_screen, "TraceSession", ReplayedSession)
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.applied >= 1)
        await pilot.press("3")  # Connections: no client row
        await pilot.press("t")
        await pilot.pause()
        assert not isinstance(app.screen, TraceScreen)
        assert any("select a client" in n.message for n in app._notifications)
        assert ReplayedSession.made == []
