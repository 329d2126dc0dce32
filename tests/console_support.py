"""Shared by the console tests: a collector replaying lab captures under a settable clock."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.fleet import Fleet
from wgconsole.core.inventory import Inventory
from wgconsole.poll.collector import FleetCollector, PollResult
from wgconsole.poll.replay import capture_time, replay_factory
from wgconsole.probe.prober import ProbeResult

LAB = Path(__file__).parent / "fixtures" / "lab"
NORMAL = LAB / "normal"
WG_DOWN = LAB / "gw1-wg-down"
WEIGHT0 = LAB / "gw1-weight0"
GW2_UNREACHABLE = LAB / "gw2-unreachable"


class SteppedClock:
    """The bastion clock of a replay: each poll moves it to the capture time of its frame.

    Between polls it stays frozen, so every age on screen is deterministic; `advance`
    moves it by hand (to see ages grow or data go stale).
    """

    def __init__(self, frames: Sequence[Path]) -> None:
        self.times = [capture_time(f) for f in frames]
        self.polls = 0
        self.offset = 0.0
        self.now = self.times[0]

    def __call__(self) -> float:
        return self.now + self.offset

    def on_poll(self) -> None:
        self.now = self.times[min(self.polls, len(self.times) - 1)]
        self.polls += 1

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class SteppedCollector(FleetCollector):
    """A FleetCollector over replayed frames whose clock follows the frame being polled."""

    def __init__(self, frames: Sequence[Path], inventory: Inventory | None = None) -> None:
        self.stepped_clock = SteppedClock(frames)
        super().__init__(
            inventory or load_inventory(frames[0] / "inventory.yaml"),
            transport_factory=replay_factory(list(frames)),
            clock=self.stepped_clock,
            read_only=True,
        )
        self.closed = False

    def poll(self, roles: tuple[str, ...] = ("lb", "gateway")) -> PollResult:  # type: ignore[override]
        self.stepped_clock.on_poll()
        result = super().poll(roles)
        # Durations are real time; zeroed so that screenshots are deterministic.
        return replace(
            result, seconds=0.0, hosts=tuple(replace(h, seconds=0.0) for h in result.hosts)
        )

    def close(self) -> None:
        self.closed = True
        super().close()


def fleets(frames: Sequence[Path]) -> list[Fleet]:
    collector = SteppedCollector(frames)
    try:
        return [collector.read_fleet() for _ in frames]
    finally:
        collector.close()


async def wait_for(pilot: Any, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Let the app run until `condition` holds (the poll worker is a real thread).

    The bound only stops a hung test: it is generous because a loaded CI machine renders a
    screen of 100,000-character host strings (tests/test_hostile_text.py) in seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the console")
        await pilot.pause(0.01)


_VIEW_KEYS = {"1": "overview", "2": "clients", "3": "connections", "4": "log"}


async def show_view(pilot: Any, app: Any, key: str) -> None:
    """Press a view's key and wait until the view has the focus: Textual moves the focus
    after the key is handled (call_later), and a key typed before that would go to the
    previous view's table."""
    await pilot.press(key)
    pane = app.query_one(f"#{_VIEW_KEYS[key]}")
    await wait_for(pilot, lambda: app.focused is not None and pane in app.focused.ancestors)


async def step(pilot: Any, app: Any) -> None:
    """Poll the next replayed frame now and wait until the views show it."""
    before = app.applied
    app.action_poll_now()
    await wait_for(pilot, lambda: app.applied > before)
    await pilot.pause()


class ReplayedProbes:
    """Rounds of probe results, one per poll (the last one again past the end): what the
    prober's verdicts look like to the console, without sending anything anywhere."""

    def __init__(self, rounds: Sequence[tuple[ProbeResult, ...]]) -> None:
        self.rounds = list(rounds)
        self.calls = 0

    def round(
        self, inventory: Inventory, told_keys: Iterable[str | None]
    ) -> tuple[ProbeResult, ...]:
        result = self.rounds[min(self.calls, len(self.rounds) - 1)]
        self.calls += 1
        return result


def console(frames: Sequence[Path], **kwargs: Any) -> tuple[Any, SteppedCollector]:
    """A ConsoleApp over a replaying collector; it polls once at start, then on `step`."""
    from wgconsole.tui.app import ConsoleApp

    collector = SteppedCollector(frames)
    app = ConsoleApp(
        collector.inventory,
        collector,
        interval=3600,
        clock=collector.stepped_clock,
        **kwargs,
    )
    return app, collector


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    """Clock texts rendered in UTC, whatever the machine's zone (snapshots compare them)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()
