"""Shared by the console tests: a collector replaying lab captures under a settable clock."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from wgconsole.collect import FleetCollector
from wgconsole.inventory import load_inventory
from wgconsole.inventory_types import Inventory
from wgconsole.model import Fleet
from wgconsole.replay import capture_time, replay_factory

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

    def poll(self, roles: tuple[str, ...] = ("lb", "gateway")):  # type: ignore[no-untyped-def]
        self.stepped_clock.on_poll()
        return super().poll(roles)

    def close(self) -> None:
        self.closed = True
        super().close()


def fleets(frames: Sequence[Path]) -> list[Fleet]:
    collector = SteppedCollector(frames)
    try:
        return [collector.snapshot() for _ in frames]
    finally:
        collector.close()
