"""The console acts on what is selected, typed: the row under the cursor carries its subject
(wgconsole.view.subjects), and the keys blocked above an operation derive from the bindings."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.widgets import Input

from tests.console_support import (
    GW2_UNREACHABLE,
    LAB,
    NORMAL,
    console,
    show_view,
    step,
    wait_for,
)
from wgconsole.ops import catalog
from wgconsole.tui.app import (
    ACTION_BINDINGS,
    BLOCKED_IN_ACTION,
    VIEW_BINDINGS,
    ConsoleApp,
    binding_actions,
)
from wgconsole.tui.screens.action import ActionScreen
from wgconsole.tui.screens.detail import ClientScreen, GatewayScreen
from wgconsole.tui.widgets.keyed_table import KeyedTable
from wgconsole.view.subjects import (
    ClientSubject,
    DirectorSubject,
    FindingSubject,
    GatewaySubject,
    LbEntrySubject,
)

GW1 = "wg-gateway-01"
GW2 = "wg-gateway-02"


async def started(pilot: Any, app: ConsoleApp) -> None:
    await wait_for(pilot, lambda: app.applied >= 1)
    await pilot.pause()


async def _select(pilot: Any, app: ConsoleApp, table_id: str, row: int) -> KeyedTable:
    table = app.query_one(f"#{table_id}", KeyedTable)
    table.focus()
    table.move_cursor(row=row)
    await wait_for(pilot, lambda: app.focused is table)
    return table


# --- the blocked keys ---------------------------------------------------------------------


def test_the_keys_blocked_above_an_operation_derive_from_the_bindings() -> None:
    assert {
        "view",
        "help",
        "poll_now",
        "drain",
        "undrain",
        "weight",
        "peer_remove",
        "peer_add",
        "rebalance",
        "trace",
    } == BLOCKED_IN_ACTION
    assert {b.action for b in ACTION_BINDINGS} <= BLOCKED_IN_ACTION
    assert binding_actions(VIEW_BINDINGS) <= BLOCKED_IN_ACTION
    # Every key of the console but quit: the app's own bindings are those two lists and it.
    own = [b for b in ConsoleApp.BINDINGS if isinstance(b, Binding)]
    assert binding_actions(own) - BLOCKED_IN_ACTION == {"quit"}


def test_binding_actions_names_an_action_without_its_parameters() -> None:
    bindings = [
        Binding("1", "view('overview')", "Overview"),
        Binding("E", "evict", "Evict"),
        Binding("2", "view('clients')", "Clients"),
    ]
    assert binding_actions(bindings) == {"view", "evict"}
    assert binding_actions([]) == frozenset()


async def test_above_an_operation_only_quit_stays() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        for action in BLOCKED_IN_ACTION:
            assert app.check_action(action, ())
        app.open_action(catalog.Drain(GW1))
        await wait_for(pilot, lambda: isinstance(app.screen, ActionScreen))
        screen = app.screen
        assert isinstance(screen, ActionScreen)
        await wait_for(pilot, lambda: screen.state in ("confirming", "refused"))
        for action in BLOCKED_IN_ACTION:
            assert not app.check_action(action, ()), action
        assert app.check_action("quit", ())
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ActionScreen))
        assert all(app.check_action(action, ()) for action in BLOCKED_IN_ACTION)


# --- the selected row's subject -------------------------------------------------------------


async def test_each_overview_table_selects_its_row_s_subject() -> None:
    app, _ = console([NORMAL, GW2_UNREACHABLE])
    async with app.run_test(size=(120, 50)) as pilot:
        await started(pilot, app)
        await step(pilot, app)  # wg-gateway-02 lost: a finding about it
        assert app.snapshot is not None
        fleet = app.snapshot.fleet
        gateway_of = {str(rs.address): rs.gateway for rs in fleet.real_servers}
        servers = app.query_one("#servers", KeyedTable)
        for row, key in enumerate(servers.keys):
            await _select(pilot, app, "servers", row)
            assert app.selected() == GatewaySubject(gateway_of[key] or "")
            assert app.selected_gateway() == gateway_of[key]
            assert app.selected_client() is None
        hosts = app.query_one("#hosts", KeyedTable)
        expected = {"wg-lb": DirectorSubject("wg-lb"), GW1: GatewaySubject(GW1)}
        expected[GW2] = GatewaySubject(GW2)
        for row, key in enumerate(hosts.keys):
            await _select(pilot, app, "hosts", row)
            assert app.selected() == expected[key]
            assert app.selected_gateway() == (None if key == "wg-lb" else key)
        findings = app.query_one("#findings", KeyedTable)
        seen = []
        for row in range(len(findings.keys)):
            await _select(pilot, app, "findings", row)
            subject = app.selected()
            assert isinstance(subject, FindingSubject)
            assert app.selected_gateway() is None  # D acts on gateways' rows only
            seen.append((subject.code, subject.about))
        assert ("host-unreachable", GatewaySubject(GW2)) in seen
        assert ("single-director", None) in seen


async def test_a_client_row_selects_its_client_from_its_table_or_its_filter() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await show_view(pilot, app, "2")
        table = app.query_one("#client-table", KeyedTable)
        for row, key in enumerate(table.keys):
            table.move_cursor(row=row)
            assert app.selected() == ClientSubject(key)
            assert app.selected_client() == key
            assert app.selected_gateway() is None
        app.query_one("#clients-view Input", Input).focus()
        await pilot.pause()
        assert app.selected() == ClientSubject(table.keys[-1])


async def test_an_lb_entry_row_selects_its_client_behind_it_and_enter_opens_it() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        assert app.snapshot is not None
        by_entry = {
            f"{c.lb_entry.client} {c.lb_entry.virtual} {c.lb_entry.dest}": c.public_key
            for c in app.snapshot.fleet.clients
            if c.lb_entry is not None
        }
        await show_view(pilot, app, "3")
        table = app.query_one("#conn-table", KeyedTable)
        assert len(table.keys) == 2
        for row, key in enumerate(table.keys):
            table.move_cursor(row=row)
            public_key = by_entry[key.split(" ", 1)[1]]
            assert app.selected() == LbEntrySubject(ClientSubject(public_key))
            assert app.selected_client() is None  # X acts on Clients rows only
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ClientScreen))
        screen = app.screen
        assert isinstance(screen, ClientScreen)
        assert screen.public_key == public_key


async def test_a_detail_screen_is_what_is_selected() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        app.open_gateway(GW2)
        await wait_for(pilot, lambda: isinstance(app.screen, GatewayScreen))
        await pilot.pause()
        assert app.selected() == GatewaySubject(GW2)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, GatewayScreen))
        assert app.snapshot is not None
        key = app.snapshot.fleet.clients[1].public_key
        app.open_client(key)
        await wait_for(pilot, lambda: isinstance(app.screen, ClientScreen))
        await pilot.pause()
        assert app.selected() == ClientSubject(key)
        assert app.selected_gateway() is None


async def test_the_log_selects_nothing() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await show_view(pilot, app, "4")
        assert app.selected() is None


async def test_a_directors_row_selects_its_lb_not_a_gateway() -> None:
    app, _ = console([LAB / "pair-normal"])
    async with app.run_test(size=(120, 50)) as pilot:
        await started(pilot, app)
        directors = app.query_one("#directors", KeyedTable)
        await wait_for(pilot, lambda: len(directors.keys) == 2)
        for row, key in enumerate(directors.keys):
            await _select(pilot, app, "directors", row)
            assert app.selected() == DirectorSubject(key)
            assert app.selected_gateway() is None
