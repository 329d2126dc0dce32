"""A peer added and removed from the console itself (headless), on the real lab over SSH.

What an operator sees afterwards matters as much as the change: the new client must be
named in the console's views from the next poll (the console re-reads the inventory's
clients), not shown as an unknown peer until a restart. The lab is shared: the test works
on a copy of the lab's inventory and removes the peer it adds, whatever happens.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Static

from tests.console_support import wait_for
from tests.lab.conftest import Lab
from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.keys import generate_keypair
from wgconsole.ops import catalog
from wgconsole.ops.machinery.audit import AuditLog
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.procedures.peers.plan import plan_peer_remove
from wgconsole.ops.procedures.peers.remove import execute_peer_remove
from wgconsole.poll.collector import FleetCollector
from wgconsole.tui.app import ConsoleApp
from wgconsole.tui.screens.action import ActionScreen

pytestmark = pytest.mark.lab

NAME = "wg-client-console"


async def _run_action(
    pilot: Any, app: ConsoleApp, start: Callable[[], None], fill: dict[str, str]
) -> str:
    """Opens an action, fills its fields, confirms it by its target's name, runs it;
    returns what the screen says of the outcome."""
    start()
    await wait_for(pilot, lambda: isinstance(app.screen, ActionScreen), timeout=30)
    screen = app.screen
    assert isinstance(screen, ActionScreen)
    if fill:
        first = f"#field-{next(iter(fill))}"
        await wait_for(pilot, lambda: bool(screen.query(first)), timeout=30)
        for field, value in fill.items():
            screen.query_one(f"#field-{field}", Input).value = value
        screen.query_one(first, Input).focus()
        await pilot.press("enter")
    await wait_for(pilot, lambda: screen.state in ("confirming", "refused"), timeout=120)
    plan = str(screen.query_one("#action-plan", Static).render())
    assert screen.state == "confirming", plan
    assert screen.planned is not None
    await pilot.press(*screen.planned.target, "enter")
    await wait_for(pilot, lambda: screen.state == "done", timeout=300)
    outcome = str(screen.query_one("#action-outcome", Static).render())
    assert not screen.failed, outcome
    await pilot.press("escape")
    return outcome


async def test_a_peer_added_from_the_console_is_named_at_once_then_removed(
    lab: Lab, tmp_path: Path
) -> None:
    path = tmp_path / "inventory.yaml"
    shutil.copy(lab.inventory_path, path)
    inventory = load_inventory(path)
    public = generate_keypair().public_key  # the client's private half stays unused here
    collector = FleetCollector(inventory, timeout=30.0)
    app = ConsoleApp(
        inventory, collector, interval=2.0, audit_path=tmp_path / "audit.jsonl", op_timeout=60
    )

    def view() -> Any:
        return None if app.snapshot is None else app.snapshot.fleet.client(public)

    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await wait_for(pilot, lambda: app.applied >= 1, timeout=120)
            outcome = await _run_action(
                pilot,
                app,
                lambda: app.open_action(catalog.PeerAdd()),
                {"name": NAME, "public_key": public},
            )
            print(outcome)
            # Named from the next poll, on every gateway, with no unknown-peer finding.
            await wait_for(pilot, lambda: view() is not None and view().name == NAME, 60)
            added = view()
            assert {p.gateway for p in added.per_gateway} == {g.name for g in inventory.gateways}
            assert "unknown-peer" not in added.findings
            assert any(c.name == NAME for c in app.inventory.clients)

            outcome = await _run_action(
                pilot, app, lambda: app.open_action(app.peer_remove(public)), {}
            )
            print(outcome)
            await wait_for(pilot, lambda: app.applied > 0 and view() is None, 60)
            assert not any(c.public_key == public for c in app.inventory.clients)
            assert not any(c.public_key == public for c in load_inventory(path).clients)
    finally:
        _remove_if_left(path, public)


def _remove_if_left(path: Path, public: str) -> None:
    """The lab is shared: a peer this test added never outlives it."""
    inventory = load_inventory(path)
    collector = FleetCollector(inventory, timeout=30.0)
    try:
        fleet = collector.read_fleet()
        if fleet.client(public) is None:
            return
        ctx = OpContext(
            inventory, collector.transports, AuditLog(path.with_name("cleanup.jsonl")), print, 60
        )
        execute_peer_remove(ctx, plan_peer_remove(inventory, fleet, public))
    finally:
        collector.close()
