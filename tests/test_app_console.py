"""Pilot tests of every view and key, over a collector replaying polls captured from the lab."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Static, TabbedContent

from tests.console_support import (
    GW2_UNREACHABLE,
    NORMAL,
    WEIGHT0,
    WG_DOWN,
    SteppedCollector,
    console,
    show_view,
    step,
    utc,  # noqa: F401 - autouse: clock texts in UTC
    wait_for,
)
from wgconsole.config.themes import ThemeError
from wgconsole.core.fleet import Fleet
from wgconsole.poll.collector import PollResult
from wgconsole.tui.app import ConsoleApp, run_console
from wgconsole.tui.options import ConsoleOptions
from wgconsole.tui.screens.detail import ClientScreen, DetailScreen, GatewayScreen
from wgconsole.tui.screens.help import HelpScreen
from wgconsole.tui.widgets.connections import ConnectionsView
from wgconsole.tui.widgets.eventlog import EventLog
from wgconsole.tui.widgets.header import ConsoleHeader
from wgconsole.tui.widgets.keyed_table import KeyedTable
from wgconsole.tui.widgets.tableview import TableView

GW1 = "wg-gateway-01"
GW2 = "wg-gateway-02"
C0 = "2PDPKED1+KY8MSAdi/slE3jlZ+sMQ+doYffvk+RrMik="
C1 = "tXhMWx9PuLvP3iYgcDAow4fBWyjdA1JNkH9f45dMIT4="


def table(app: ConsoleApp, table_id: str) -> KeyedTable:
    return app.screen.query_one(f"#{table_id}", KeyedTable)


def shown(app: ConsoleApp, table_id: str) -> list[list[str]]:
    """What the DataTable holds, in display order (not our cache of it)."""
    t = table(app, table_id)
    return [[cell.plain for cell in t.get_row_at(i)] for i in range(t.row_count)]


def column(app: ConsoleApp, table_id: str, label: str) -> list[str]:
    t = table(app, table_id)
    index = [c.label for c in t.spec].index(label)
    return [row[index] for row in shown(app, table_id)]


def static_text(app: ConsoleApp, widget_id: str) -> str:
    return str(app.screen.query_one(f"#{widget_id}", Static).render())


async def started(pilot: Any, app: ConsoleApp) -> None:
    await wait_for(pilot, lambda: app.applied >= 1)
    await pilot.pause()


# --- overview -------------------------------------------------------------------------------


async def test_overview_shows_service_real_servers_hosts_and_findings() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        service = static_text(app, "service")
        assert "udp 10.77.255.1:51280 on wg-lb" in service
        assert "scheduler sh" in service
        assert "flags none ⚠ no sh-fallback" in service
        assert "expire_nodest_conn=0 ⚠" in service
        servers = {row[0]: row for row in shown(app, "servers")}
        assert servers[GW1][1:5] == ["10.77.0.11:51280", "1", "✔ active", "2"]
        assert servers[GW2][3] == "✔ active"
        hosts = {row[0]: row for row in shown(app, "hosts")}
        assert set(hosts) == {"wg-lb", GW1, GW2}
        assert all(row[2] == "✔ up" and row[3] == "0s" for row in hosts.values())
        codes = column(app, "findings", "Code")
        assert codes == ["expire-nodest-off", "sh-no-fallback", "single-director"]
        header = str(app.screen.query_one("#title", Static).render())
        assert "udp 10.77.255.1:51280 sh · 2 gw · 2 clients" in header


async def test_number_keys_switch_views() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app)
        tabs = app.query_one(TabbedContent)
        for key, view in (("2", "clients"), ("3", "connections"), ("4", "log"), ("1", "overview")):
            await pilot.press(key)
            assert tabs.active == view
        await pilot.press("2")
        assert isinstance(app.focused, KeyedTable)
        assert app.focused.id == "client-table"


# --- clients ------------------------------------------------------------------------------


async def test_clients_show_gateways_and_handshake_ages() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(160, 30)) as pilot:
        await started(pilot, app)
        await pilot.press("2")
        rows = shown(app, "client-table")
        assert [r[:5] for r in rows] == [
            ["wg-client-0", "10.255.0.2", GW1, GW1, "✔ fresh 84s"],
            ["wg-client-1", "10.255.0.3", GW1, GW1, "✔ fresh 84s"],
        ]
        assert column(app, "client-table", "Key") == ["2PDPKED1…", "tXhMWx9P…"]
        assert column(app, "client-table", "Endpoint") == ["10.77.1.10:46552", "10.77.1.11:50772"]


async def test_clients_sort_by_any_column_and_filter() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot, app)
        await pilot.press("2")
        assert column(app, "client-table", "Client") == ["wg-client-0", "wg-client-1"]
        await pilot.press("s")  # by Client
        await pilot.press("S")  # reversed
        assert column(app, "client-table", "Client") == ["wg-client-1", "wg-client-0"]
        status = str(app.screen.query_one("#client-table-status").render())
        assert "by Client ↓" in status
        await pilot.press("s")  # next column: Address, still reversed
        assert column(app, "client-table", "Address") == ["10.255.0.3", "10.255.0.2"]
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"client-0")
        assert column(app, "client-table", "Client") == ["wg-client-0"]
        assert "1 of 2 clients" in str(app.screen.query_one("#client-table-status").render())
        await pilot.press("enter")  # keep the filter, back to the table
        assert isinstance(app.focused, KeyedTable)
        assert column(app, "client-table", "Client") == ["wg-client-0"]
        await pilot.press("escape")
        assert len(shown(app, "client-table")) == 2


async def test_header_click_sorts_and_reverses() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(160, 30)) as pilot:
        await started(pilot, app)
        await pilot.press("2")
        view = app.query_one("#clients-view", TableView)
        t = table(app, "client-table")
        t.post_message(
            DataTable.HeaderSelected(t, t.ordered_columns[0].key, 0, t.ordered_columns[0].label)
        )
        await pilot.pause()
        assert (view.sort_column, view.sort_reverse) == (0, False)
        t.post_message(
            DataTable.HeaderSelected(t, t.ordered_columns[0].key, 0, t.ordered_columns[0].label)
        )
        await pilot.pause()
        assert (view.sort_column, view.sort_reverse) == (0, True)
        assert column(app, "client-table", "Client") == ["wg-client-1", "wg-client-0"]


async def test_rows_are_updated_in_place_and_the_cursor_stays() -> None:
    app, _ = console([NORMAL, WG_DOWN, GW2_UNREACHABLE, NORMAL])
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot, app)
        await show_view(pilot, app, "2")
        await pilot.press("down")
        clients = table(app, "client-table")
        assert clients.cursor_key() == C1
        # Sort so that the cursor's row moves: the cursor must follow the key.
        await pilot.press("s", "S")
        assert clients.cursor_key() == C1
        row_objects = dict(clients.rows)
        cleared: list[str] = []
        for t in app.query(KeyedTable):
            t.clear = lambda *a, _id=t.id, **k: cleared.append(_id or "")
        for _ in range(3):
            await step(pilot, app)
            assert clients.cursor_key() == C1
        assert cleared == []
        # Same Row objects: nothing was removed and re-added.
        assert dict(clients.rows) == row_objects
        assert all(clients.rows[k] is row_objects[k] for k in row_objects)
        assert clients.keys == [C1, C0]


async def test_only_changed_cells_are_written() -> None:
    app, _ = console([NORMAL, NORMAL])
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot, app)
        writes: list[tuple[str, str]] = []
        for t in app.query(KeyedTable):
            original = t.update_cell

            def spy(row: Any, col: Any, value: Any, *, _o: Any = original, **kw: Any) -> None:
                writes.append((str(row), str(col)))
                _o(row, col, value, **kw)

            t.update_cell = spy
        await step(pilot, app)
        # The same frame again: only the rates appear (first sample had none).
        changed_columns = {col for _, col in writes}
        assert changed_columns <= {"rx", "tx", "pps", "bps", "trend"}


# --- staleness and events -------------------------------------------------------------------


async def test_unreachable_host_is_stale_not_current() -> None:
    app, collector = console([NORMAL, GW2_UNREACHABLE])
    async with app.run_test(size=(160, 40)) as pilot:
        await started(pilot, app)
        await step(pilot, app)
        hosts = {row[0]: row for row in shown(app, "hosts")}
        assert hosts[GW2][2] == "✖ down"
        assert hosts[GW2][3] == "stale 13s"
        assert hosts[GW1][3] == "0s"
        assert "connection refused" in hosts[GW2][6]
        servers = {row[0]: row for row in shown(app, "servers")}
        assert servers[GW2][3] == "✖ unreachable"
        # Ages grow with the clock between polls, each host its own.
        collector.stepped_clock.advance(10)
        app._tick()
        await pilot.pause()
        hosts = {row[0]: row for row in shown(app, "hosts")}
        assert hosts[GW2][3] == "stale 23s"
        assert hosts[GW1][3] == "10s"
        assert "poll 10s ago" in str(app.query_one("#poll-status", Static).render())


async def test_log_pane_records_events() -> None:
    app, _ = console([NORMAL, WG_DOWN, GW2_UNREACHABLE, NORMAL])
    async with app.run_test(size=(160, 30)) as pilot:
        await started(pilot, app)
        for _ in range(3):
            await step(pilot, app)
        await pilot.press("4")
        log = app.query_one(EventLog)
        kinds = [e.kind for e in log.events]
        assert kinds[0] == "poll"
        for kind in ("interface-down", "host-lost", "interface-up", "host-back"):
            assert kind in kinds
        lines = [line.text for line in log.lines]
        assert any("✖ host-lost" in line and GW2 in line for line in lines)
        assert lines[0].startswith("03:43:10 ")


async def test_weight_zero_shows_quiescent_and_the_finding() -> None:
    app, _ = console([NORMAL, WEIGHT0])
    async with app.run_test(size=(160, 40)) as pilot:
        await started(pilot, app)
        await step(pilot, app)
        servers = {row[0]: row for row in shown(app, "servers")}
        assert servers[GW1][2:4] == ["0", "◐ quiescent"]
        assert column(app, "findings", "Severity")[0] == "✖ critical"
        assert "server-state" in [e.kind for e in app.query_one(EventLog).events]


# --- details ------------------------------------------------------------------------------


async def test_enter_on_a_real_server_opens_its_gateway() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        servers = table(app, "servers")
        servers.focus()
        index = servers.keys.index("10.77.0.11:51280")
        servers.move_cursor(row=index)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GatewayScreen))
        await pilot.pause()
        info = static_text(app, "gw-info")
        assert GW1 in info
        assert "✔ answering" in info
        assert "wg0 ✔ up" in info
        drain = static_text(app, "gw-drain")
        assert "128/256 buckets" in drain
        assert "✖ 128 dropped" in drain
        assert "never move (expire_nodest_conn=0)" in drain
        peers = shown(app, "peers")
        assert [p[0] for p in peers] == ["wg-client-0", "wg-client-1"]
        assert all(p[4].startswith("✔ fresh") and p[5] == "yes" for p in peers)
        assert shown(app, "drift") == []
        await pilot.press("escape")
        assert not isinstance(app.screen, GatewayScreen)


async def test_gateway_detail_of_a_lost_gateway_shows_its_last_data_stale() -> None:
    app, _ = console([NORMAL, GW2_UNREACHABLE])
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await step(pilot, app)
        hosts = table(app, "hosts")
        hosts.focus()
        hosts.move_cursor(row=hosts.keys.index(GW2))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GatewayScreen))
        await pilot.pause()
        info = static_text(app, "gw-info")
        assert "✖ not answering" in info
        assert "showing its last data, stale 13s" in info
        assert "last known, stale 13s" in str(app.screen.query_one("#peers-title").render())
        assert len(shown(app, "peers")) == 2


async def test_enter_on_a_client_opens_its_detail_and_follows_polls() -> None:
    app, _ = console([NORMAL, GW2_UNREACHABLE])
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await show_view(pilot, app, "2")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ClientScreen))
        await pilot.pause()
        info = static_text(app, "client-info")
        assert "wg-client-0 · 10.255.0.2" in info
        assert C0 in info
        assert "LB entry: udp 10.77.1.10:46552 → 10.77.255.1:51280 → 10.77.0.11:51280" in info
        sides = {row[0]: row[1:] for row in shown(app, "sides")}
        assert sides["Data"] == ["✔ current", "✔ current"]
        assert sides["Handshake"][0] == "✔ fresh 84s"
        assert sides["LB sends here"] == ["✔ yes", "no"]
        outcomes = {row[0]: row[1:] for row in shown(app, "outcomes")}
        assert outcomes["now"][0] == GW1
        assert outcomes[f"drain {GW1} (weight 0)"][0] == "✖ dropped"
        assert outcomes[f"remove {GW1}"][0] == GW2
        # The detail follows the next poll: gateway-02 is now stale, not current.
        await step(pilot, app)
        sides = {row[0]: row[1:] for row in shown(app, "sides")}
        assert sides["Data"] == ["✔ current", "✖ stale 13s"]
        await pilot.press("1")
        assert not isinstance(app.screen, ClientScreen)
        assert app.query_one(TabbedContent).active == "overview"


async def test_status_words_agree_across_views() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(160, 40)) as pilot:
        await started(pilot, app)
        await pilot.press("2")
        in_table = column(app, "client-table", "Handshake")[0]
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ClientScreen))
        await pilot.pause()
        sides = {row[0]: row[1:] for row in shown(app, "sides")}
        assert sides["Handshake"][0] == in_table == "✔ fresh 84s"
        assert "Handshake ✔ fresh 84s on wg-gateway-01" in static_text(app, "client-info")


# --- connections ---------------------------------------------------------------------------


async def test_connections_filter_sort_window_and_countdown() -> None:
    app, collector = console([NORMAL])
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot, app)
        await pilot.press("3")
        assert column(app, "conn-table", "Client") == ["10.77.1.11:50772", "10.77.1.10:46552"]
        assert column(app, "conn-table", "Gateway") == [GW1, GW1]
        assert column(app, "conn-table", "Expires") == ["292s", "292s"]
        await pilot.press("s")
        assert column(app, "conn-table", "Client") == ["10.77.1.10:46552", "10.77.1.11:50772"]
        view = app.query_one(ConnectionsView)
        view.table.window = 1
        view.redraw()
        await pilot.pause()
        assert len(shown(app, "conn-table")) == 1
        status = str(app.screen.query_one("#conn-table-status").render())
        assert status.startswith("row 1 of 2 · 2 LB entries")
        # The window follows the cursor over the whole selection.
        await pilot.press("down")
        assert column(app, "conn-table", "Client") == ["10.77.1.11:50772"]
        status = str(app.screen.query_one("#conn-table-status").render())
        assert status.startswith("row 2 of 2 · 2 LB entries")
        await pilot.press("slash", *"50772", "enter")
        assert column(app, "conn-table", "Client") == ["10.77.1.11:50772"]
        collector.stepped_clock.advance(5)
        app._tick()
        await pilot.pause()
        assert column(app, "conn-table", "Expires") == ["287s"]


async def test_enter_on_a_connection_opens_its_client() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot, app)
        await show_view(pilot, app, "3")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ClientScreen))
        assert isinstance(app.screen, ClientScreen)
        assert app.screen.public_key == C1


# --- help, palette, themes, read-only, quit -------------------------------------------------


async def test_help_lists_every_key() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(100, 50)) as pilot:
        await started(pilot, app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.plain_text()

        for binding in [*ConsoleApp.BINDINGS, *TableView.BINDINGS, *DetailScreen.BINDINGS]:
            assert binding.tooltip in text  # type: ignore[union-attr]
        assert "Actions" in text
        assert "ctrl+p" in text
        await pilot.press("question_mark")
        assert not isinstance(app.screen, HelpScreen)


async def test_read_only_is_in_the_header_and_help() -> None:
    app, _ = console([NORMAL], read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app)
        assert str(app.query_one("#read-only", Static).render()) == "READ-ONLY"
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.plain_text()
        assert "read-only (--read-only): no action can run" in text


async def test_not_read_only_has_no_badge() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app)
        assert not app.query("#read-only")


async def test_themes_load_switch_and_restyle() -> None:
    app, _ = console([NORMAL], theme="high-contrast")
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot, app)
        assert app.theme == "high-contrast"
        assert {"dark", "light", "high-contrast"} <= set(app.available_themes)
        before = app.colours.style("good")
        cell = table(app, "servers").get_row_at(0)[3]
        app.set_theme("light")
        await pilot.pause()
        assert app.theme == "light"
        assert app.colours.style("good") != before
        restyled = table(app, "servers").get_row_at(0)[3]
        assert restyled.style != cell.style
        assert restyled.plain == cell.plain
    with pytest.raises(ThemeError, match="no theme 'nope'"):
        console([NORMAL], theme="nope")


async def test_command_palette_switches_views() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"View: Connections")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.query_one(TabbedContent).active == "connections")


async def test_q_quits_and_closes_every_connection() -> None:
    app, collector = console([NORMAL])
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app)
        await pilot.press("q")
        await pilot.pause()
    assert collector.closed
    assert app.return_code == 0


async def test_the_clock_tick_while_textual_takes_the_screens_down_does_nothing() -> None:
    # Textual stops running, then removes the widgets one by one; the 1-second tick (its own
    # timer task) can fire in between and once found the header gone (CI: NoMatches).
    app, _ = console([NORMAL])
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app)
        app._running = False  # what App._shutdown sets first
        try:
            await app.query_one(ConsoleHeader).remove()
            app._tick()
        finally:
            app._running = True


# --- polling behaviour ---------------------------------------------------------------------


class CountingCollector(SteppedCollector):
    """Records how many polls run at once; each one takes a while."""

    def __init__(self) -> None:
        super().__init__([NORMAL])
        self.running = 0
        self.most = 0
        self.polls = 0
        self.lock = threading.Lock()

    def poll(self, roles: tuple[str, ...] = ("lb", "gateway")) -> PollResult:  # type: ignore[override]
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.03)
            return super().poll(roles)
        finally:
            with self.lock:
                self.running -= 1
                self.polls += 1


async def test_polls_never_overlap_and_input_stays_live() -> None:
    collector = CountingCollector()
    app = ConsoleApp(collector.inventory, collector, interval=0.0, clock=collector.stepped_clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: collector.polls >= 5)
        for key in ("2", "3", "1", "r", "r"):
            await pilot.press(key)  # keys work while polls run back to back
        await wait_for(pilot, lambda: collector.polls >= 10)
        assert app.query_one(TabbedContent).active == "overview"
    assert collector.most == 1
    # Snapshots never queue: each poll waits until the UI applied the last one.
    assert app.applied >= collector.polls - 1


class FailingCollector(SteppedCollector):
    def fleet(self, poll: PollResult) -> Fleet:
        raise RuntimeError("parser exploded")


async def test_a_failing_poll_is_shown_not_fatal() -> None:
    collector = FailingCollector([NORMAL])
    app = ConsoleApp(collector.inventory, collector, interval=3600, clock=collector.stepped_clock)
    async with app.run_test(size=(120, 24)) as pilot:
        await wait_for(pilot, lambda: app.poll_error is not None)
        await pilot.pause()
        status = str(app.query_one("#poll-status", Static).render())
        assert "✖ poll failed: RuntimeError: parser exploded" in status
        await pilot.press("2")
        assert app.query_one(TabbedContent).active == "clients"


def test_run_console_refuses_an_unknown_theme(capsys: pytest.CaptureFixture[str]) -> None:
    collector = SteppedCollector([NORMAL])
    options = ConsoleOptions(
        theme="nope", interval=2.0, read_only=True, accept_new_host_keys=False, timeout=5.0
    )
    assert run_console(options, collector.inventory) == 2
    assert "no theme 'nope'; available: dark, high-contrast, light" in capsys.readouterr().err
    collector.close()


async def test_a_hidden_table_catches_up_when_shown() -> None:
    app, _ = console([NORMAL, GW2_UNREACHABLE])
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot, app)
        await step(pilot, app)  # while the overview is shown
        await pilot.press("2")
        assert column(app, "client-table", "Handshake") == ["✔ fresh 6s", "✔ fresh 6s"]
        await pilot.press("3")
        assert column(app, "conn-table", "Expires") == ["294s", "294s"]


async def test_enter_on_a_finding_opens_its_subject_or_shows_it_whole() -> None:
    app, _ = console([NORMAL, GW2_UNREACHABLE])
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await step(pilot, app)
        findings = table(app, "findings")
        findings.focus()
        findings.move_cursor(row=0)  # host-unreachable, about wg-gateway-02
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GatewayScreen))
        assert isinstance(app.screen, GatewayScreen)
        assert app.screen.gateway == GW2
        await pilot.press("escape")
        findings.move_cursor(row=column(app, "findings", "Code").index("sh-no-fallback"))
        await pilot.press("enter")
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any("uses sh without sh-fallback" in m and "Fix: ipvsadm" in m for m in messages)


async def test_operator_actions_go_to_the_log() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot, app)
        app.record_action(GW1, "drain started by alice")
        await pilot.press("4")
        log = app.query_one(EventLog)
        assert log.events[-1].kind == "action"
        assert "drain started by alice" in log.lines[-1].text


async def test_any_exit_closes_every_connection() -> None:
    # Not only `q`: an exit Textual itself winds down (a palette Quit, ctrl+c, an error) must
    # close the collector too. Its flag once shared a name with Textual's own closing state,
    # so the unmount found it already set and closed nothing.
    app, collector = console([NORMAL])
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app)
        app.exit(0)
        await pilot.pause()
    assert collector.closed
