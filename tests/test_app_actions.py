"""Operations from the console: a key, a preview, a typed confirmation, visible steps.

Over the replayed lab captures: planning reads the (replayed) hosts; executing meets the
replay transport, which refuses every mutating command, so a run must end in a failure shown
on screen and in the log, never a crash.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, Input, Static

from tests.console_support import NORMAL, SteppedCollector, console, show_view, wait_for
from wgconsole.config.inventory_edit import add_client, remove_client
from wgconsole.config.inventory_file import load_inventory
from wgconsole.ops import catalog
from wgconsole.tui.app import ConsoleApp
from wgconsole.tui.screens.action import ActionScreen
from wgconsole.tui.screens.detail import ClientScreen, GatewayScreen
from wgconsole.tui.screens.help import HelpScreen
from wgconsole.tui.widgets.eventlog import EventLog
from wgconsole.tui.widgets.keyed_table import KeyedTable

GW1 = "wg-gateway-01"
GW2 = "wg-gateway-02"


@pytest.fixture(autouse=True)
def audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "audit.jsonl"
    monkeypatch.setenv("WGCONSOLE_AUDIT_LOG", str(path))
    return path


async def started(pilot: Any, app: ConsoleApp) -> None:
    await wait_for(pilot, lambda: app.applied >= 1)
    await pilot.pause()


def text(screen: Any, widget_id: str) -> str:
    return str(screen.query_one(f"#{widget_id}", Static).render())


async def planned(pilot: Any, app: ConsoleApp) -> ActionScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, ActionScreen))
    screen = app.screen
    assert isinstance(screen, ActionScreen)
    await wait_for(pilot, lambda: screen.state in ("confirming", "refused"))
    await pilot.pause()
    return screen


def log_text(app: ConsoleApp) -> str:
    return app.screen_stack[0].query_one(EventLog).plain_text()  # type: ignore[no-any-return, attr-defined]


async def test_drain_key_previews_the_selected_gateway() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        servers = app.query_one("#servers", KeyedTable)
        servers.focus()
        servers.move_cursor(row=0)
        expected = app.selected_gateway()
        assert expected in (GW1, GW2)
        await pilot.press("D")
        screen = await planned(pilot, app)
        assert screen.state == "confirming", text(screen, "action-plan")
        assert screen.planned is not None
        assert screen.planned.target == expected
        assert expected in text(screen, "action-plan")


async def test_undrain_and_weight_keys_in_a_gateway_detail() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        app.open_gateway(GW2)
        await pilot.pause()
        assert isinstance(app.screen, GatewayScreen)
        await pilot.press("U")
        screen = await planned(pilot, app)
        assert screen.title_text == f"undrain {GW2}"
        if screen.state == "confirming":
            assert screen.planned is not None
            assert screen.planned.target == GW2
        await pilot.press("escape")
        assert isinstance(app.screen, GatewayScreen)

        await pilot.press("W")
        await wait_for(pilot, lambda: isinstance(app.screen, ActionScreen))
        screen = app.screen  # type: ignore[assignment]
        assert isinstance(screen, ActionScreen)
        assert screen.state == "asking"
        await pilot.press("1", "2", "enter")  # the field has the focus: typed, not a view key
        screen = await planned(pilot, app)
        assert screen.state == "confirming", text(screen, "action-plan")
        assert screen.planned is not None
        assert screen.planned.target == GW2
        assert "12" in text(screen, "action-plan")


async def test_remove_key_on_a_client_row_and_in_its_detail() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await pilot.press("2")
        await pilot.pause()
        key = app.selected_client()
        assert key is not None
        label = app.snapshot.fleet.client(key).label
        await pilot.press("X")
        screen = await planned(pilot, app)
        assert screen.state == "confirming", text(screen, "action-plan")
        assert screen.planned is not None
        assert screen.planned.target == label
        await pilot.press("escape")

        app.open_client(key)
        await pilot.pause()
        assert isinstance(app.screen, ClientScreen)
        await pilot.press("X")
        screen = await planned(pilot, app)
        assert screen.planned is not None
        assert screen.planned.target == label


async def test_keys_without_a_selection_say_what_to_select() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await pilot.press("3")  # Connections: neither a gateway nor a client row
        await pilot.press("D")
        await pilot.press("X")
        await pilot.pause()
        assert not isinstance(app.screen, ActionScreen)
        messages = [n.message for n in app._notifications]
        assert any("select a gateway" in m for m in messages)
        assert any("select a client" in m for m in messages)


async def test_run_is_enabled_only_by_the_exact_name_and_escape_sends_nothing(
    audit: Path,
) -> None:
    app, _ = console([NORMAL])
    recorded: list[tuple[str, str]] = []
    record = app.record_action
    app.record_action = lambda s, m: (recorded.append((s, m)), record(s, m))
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        app.open_action(catalog.Drain(GW1))
        screen = await planned(pilot, app)
        run = screen.query_one("#action-run", Button)
        assert run.disabled
        for typed in ("wg-gateway", "wg-gateway-0", "WG-GATEWAY-01", GW2, GW1 + "x"):
            screen.query_one("#action-confirm", Input).value = typed
            await pilot.pause()
            assert run.disabled, typed
        screen.query_one("#action-confirm", Input).value = GW1
        await pilot.pause()
        assert not run.disabled
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ActionScreen)
        assert screen.state == "confirming"  # never ran
    assert not audit.exists() or audit.read_text() == ""
    assert recorded == [(GW1, f"drain {GW1}: cancelled: nothing was sent")]


async def test_read_only_keys_refuse_and_plan_nothing() -> None:
    app, collector = console([NORMAL], read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        app.query_one("#servers", KeyedTable).focus()
        planners: list[str] = []
        read_fleet = collector.read_fleet
        collector.read_fleet = lambda: (planners.append("x"), read_fleet())[1]  # type: ignore[method-assign]
        for key in ("D", "U", "W", "A"):
            await pilot.press(key)
        await pilot.press("2", "X")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ActionScreen)
        messages = [n.message for n in app._notifications]
        assert messages.count("read-only: no action can run") == 5
        assert planners == []
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "no action can run" in app.screen.plain_text()


async def test_help_and_palette_list_the_actions() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 50)) as pilot:
        await started(pilot, app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_text = app.screen.plain_text(width=140)
        for tip in ("drain the selected gateway", "set the selected gateway's weight"):
            assert tip in help_text
        from wgconsole.tui.commands import ConsoleCommands

        names = [name for name, _, _ in ConsoleCommands(app.screen, None)._commands()]
        assert f"Drain: {GW1}" in names
        assert f"Weight: {GW2}" in names
        assert "Add a peer" in names
        assert any(n.startswith("Remove peer: ") for n in names)


async def test_running_against_the_replay_fails_clearly_and_is_logged(audit: Path) -> None:
    app, _ = console([NORMAL])
    recorded: list[str] = []
    record = app.record_action
    app.record_action = lambda s, m: (recorded.append(m), record(s, m))
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        app.open_gateway(GW1)
        await pilot.pause()
        await pilot.press("D")
        screen = await planned(pilot, app)
        assert screen.state == "confirming", text(screen, "action-plan")
        await pilot.press(*GW1, "enter")
        await wait_for(pilot, lambda: screen.state == "done")
        await pilot.pause()
        assert screen.failed
        outcome = text(screen, "action-outcome")
        assert "FAILED" in outcome
        assert "cannot run mutating commands" in outcome
        assert isinstance(app.screen, ActionScreen)  # stays until dismissed
        await pilot.press("escape")
        assert isinstance(app.screen, GatewayScreen)
        await pilot.press("escape", "4")
        await pilot.pause()
        log = app.query_one(EventLog)
        shown = "\n".join(strip.text for strip in log.lines)
        assert f"drain {GW1}: FAILED" in shown
    assert recorded[0] == f"drain {GW1}: started"
    assert recorded[1].startswith(f"drain {GW1}: FAILED: ")


async def test_add_peer_asks_for_an_output_file_for_a_generated_key(tmp_path: Path) -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await pilot.press("A")
        await wait_for(pilot, lambda: isinstance(app.screen, ActionScreen))
        screen = app.screen
        assert isinstance(screen, ActionScreen)
        await pilot.press(*"laptop-9", "enter")
        screen = await planned(pilot, app)
        assert screen.state == "refused"
        assert "output file" in text(screen, "action-plan")
        output = tmp_path / "laptop-9.conf"
        screen.query_one("#field-output", Input).value = str(output)
        screen.query_one("#field-name", Input).focus()
        await pilot.press("enter")
        screen = await planned(pilot, app)
        assert screen.state == "confirming", text(screen, "action-plan")
        assert screen.planned is not None
        assert screen.planned.target == "laptop-9"
        await pilot.press(*"laptop-9", "enter")
        await wait_for(pilot, lambda: screen.state == "done")
        assert screen.failed
        assert "FAILED" in text(screen, "action-outcome")


async def test_action_letters_typed_in_the_filter_stay_text() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await show_view(pilot, app, "2")
        await pilot.press("slash", "D", "U", "W", "X", "A")
        await pilot.pause()
        assert not isinstance(app.screen, ActionScreen)
        assert app.screen.query_one("#clients-view Input", Input).value == "DUWXA"


async def test_steps_are_shown_as_they_end() -> None:
    from collections.abc import Mapping
    from dataclasses import dataclass

    from wgconsole.core.fleet import Fleet
    from wgconsole.ops.machinery.context import OpContext
    from wgconsole.ops.machinery.errors import OpError
    from wgconsole.ops.machinery.operation import Field, Outcome, Planned

    @dataclass(frozen=True)
    class TestOp:
        title: str = "test op"
        subject: str = "t"
        fields: tuple[Field, ...] = ()
        changes_clients: bool = False

        def precheck(self, ctx: OpContext, values: Mapping[str, str]) -> None:
            return None

        def plan(self, ctx: OpContext, fleet: Fleet, values: Mapping[str, str]) -> Planned:
            def execute() -> Outcome:
                with ctx.step("weight 0 on wg-lb"):
                    pass
                ctx.warn("a warning")
                with ctx.step("interface down"):
                    raise OpError("wg-gateway-01: no route")
                return Outcome("unreachable")

            return Planned(("plan line",), "t", execute)

    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        app.open_action(TestOp())
        screen = await planned(pilot, app)
        await pilot.press("t", "enter")
        await wait_for(pilot, lambda: screen.state == "done")
        await pilot.pause()
        steps = text(screen, "action-steps").splitlines()
        assert steps[0].startswith("✔ weight 0 on wg-lb (")
        assert steps[1] == "⚠ a warning"
        assert steps[2].startswith("✖ interface down: wg-gateway-01: no route (")
        assert len(steps) == 3
        assert "FAILED: wg-gateway-01: no route" in text(screen, "action-outcome")


async def test_clients_added_to_the_inventory_are_named_from_the_next_poll(
    tmp_path: Path,
) -> None:
    # What a peer add from the console does to the inventory file, then to the views.
    path = str(tmp_path / "inventory.yaml")
    shutil.copy(NORMAL / "inventory.yaml", path)
    listed = load_inventory(path)
    client = next(c for c in listed.clients if c.name == "wg-client-1")
    remove_client(path, client.public_key)
    collector = SteppedCollector([NORMAL], load_inventory(path))
    app = ConsoleApp(collector.inventory, collector, interval=3600, clock=collector.stepped_clock)

    def shown() -> tuple[str, tuple[str, ...]]:
        assert app.snapshot is not None
        view = app.snapshot.fleet.client(client.public_key)
        assert view is not None
        return view.label, view.findings

    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        assert "unknown-peer" in shown()[1]
        add_client(path, client)
        before = app.applied
        app.reread_clients()
        await wait_for(pilot, lambda: app.applied > before)
        assert shown() == ("wg-client-1", ())
        assert collector.inventory.clients == load_inventory(path).clients
