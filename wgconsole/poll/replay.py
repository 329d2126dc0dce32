"""Replaying polls captured from the lab: the collector runs its real parsers on recorded text.

A capture directory holds `inventory.yaml` and one `<host>.txt` per host (the raw output of
that host's poll script); a host without a file is unreachable. A sequence of directories
replays as successive polls, the last one repeating. Nothing mutating can run on a replay.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from wgconsole.core.inventory import Host
from wgconsole.core.lb_state import NO_RECORD_STATUS, STATE_DIR
from wgconsole.poll.transport.base import (
    CommandResult,
    ReadOnlyViolation,
    Transport,
    TransportError,
)


class ReplayTransport:
    def __init__(self, name: str, frames: Sequence[Path]) -> None:
        self.name = name
        self.frames = list(frames)
        self.position = 0

    def run(self, command: str, timeout: float, *, mutating: bool = False) -> CommandResult:
        if mutating:
            raise ReadOnlyViolation(f"{self.name}: a replay cannot run mutating commands")
        frame = self.frames[min(self.position, len(self.frames) - 1)]
        self.position += 1
        path = frame / f"{self.name}.txt"
        if not path.exists():
            raise TransportError(f"cannot connect to {self.name}: connection refused (replayed)")
        if f"[ -f {STATE_DIR}/" in command:
            # An operation reading a record on an LB: a capture holds polls, never a record to
            # read, as a lab in its normal state has none.
            return CommandResult("", "", NO_RECORD_STATUS, 0.0, 0)
        text = path.read_text()
        return CommandResult(text, "", 0, 0.0, len(text))

    def close(self) -> None:
        pass


def replay_factory(frames: Sequence[Path]) -> Callable[[Host], Transport]:
    """A transport factory for FleetCollector that replays `frames` for every host."""

    def factory(host: Host) -> Transport:
        return ReplayTransport(host.name, frames)

    return factory


def capture_time(frame: Path) -> float:
    """When the frame was captured (bastion clock), to freeze the replay's clock there."""
    meta = json.loads((frame / "meta.json").read_text())
    return float(meta["taken_at"])
