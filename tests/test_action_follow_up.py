"""The console offers an outcome's follow-up (after an undrain: a rebalance), as the CLI does:
a button on the finished action, opening the follow-up as an action of its own (planned
afresh, previewed, confirmed)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, Static

from tests.console_support import NORMAL, console, wait_for
from wgconsole.core.fleet import Fleet
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.operation import Field, FollowUp, Outcome, Planned
from wgconsole.tui.screens.action import ActionScreen


@pytest.fixture(autouse=True)
def audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "audit.jsonl"
    monkeypatch.setenv("WGCONSOLE_AUDIT_LOG", str(path))
    return path


@dataclass(frozen=True)
class _Op:
    """An operation that changes nothing and ends well, offering `follow_up`."""

    title: str
    follow_up: FollowUp | None = None
    subject: str = "t"
    fields: tuple[Field, ...] = ()
    changes_clients: bool = False
    ran: list[str] = field(default_factory=list, compare=False)

    def precheck(self, ctx: OpContext, values: Mapping[str, str]) -> None:
        return None

    def plan(self, ctx: OpContext, fleet: Fleet, values: Mapping[str, str]) -> Planned:
        def execute() -> Outcome:
            self.ran.append(self.title)
            return Outcome(f"{self.title} done", follow_up=self.follow_up)

        return Planned((f"{self.title} plan",), "t", execute)


async def _run_to_done(pilot: Any, app: Any) -> ActionScreen:
    screen = app.screen
    assert isinstance(screen, ActionScreen)
    await wait_for(pilot, lambda: screen.state == "confirming")
    await pilot.press("t", "enter")
    await wait_for(pilot, lambda: screen.state == "done")
    await pilot.pause()
    return screen


async def test_a_follow_up_is_offered_and_opens_as_its_own_action() -> None:
    rebalance = _Op("rebalance")
    undrain = _Op("undrain gw", FollowUp("rebalance", rebalance, "clients are elsewhere"))
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.applied >= 1)
        app.open_action(undrain)
        await wait_for(pilot, lambda: isinstance(app.screen, ActionScreen))
        screen = await _run_to_done(pilot, app)
        assert screen.follow_up is not None
        assert screen.follow_up.operation is rebalance
        outcome = str(screen.query_one("#action-outcome", Static).render())
        assert "undrain gw done" in outcome
        assert "next: rebalance? clients are elsewhere" in outcome
        offer = screen.query_one("#action-follow-up", Button)
        assert offer.display
        assert not offer.disabled
        assert "Rebalance" in str(offer.label)
        offer.press()
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, ActionScreen) and app.screen.op is rebalance,
        )
        second = await _run_to_done(pilot, app)
        assert rebalance.ran == ["rebalance"]
        assert undrain.ran == ["undrain gw"]
        assert second.follow_up is None
        assert not second.query_one("#action-follow-up", Button).display


async def test_no_follow_up_no_offer() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.applied >= 1)
        app.open_action(_Op("weight gw"))
        await wait_for(pilot, lambda: isinstance(app.screen, ActionScreen))
        screen = await _run_to_done(pilot, app)
        assert not screen.query_one("#action-follow-up", Button).display
        assert "next:" not in str(screen.query_one("#action-outcome", Static).render())
