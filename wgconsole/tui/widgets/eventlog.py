"""The log pane: fleet events and operator actions, newest at the bottom."""

from __future__ import annotations

import time
from collections.abc import Iterable

from rich.text import Text
from textual.widgets import RichLog

from wgconsole.core.text import printable
from wgconsole.tui.widgets.palette import Palette
from wgconsole.view import present
from wgconsole.view.events import Event

MAX_LINES = 5000


def event_line(event: Event, palette: Palette) -> Text:
    stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
    mark, tone = present.SEVERITY.get(event.severity, ("?", present.MUTED))
    line = Text(no_wrap=True, end="")
    line.append(f"{stamp} ", palette.style(present.MUTED))
    line.append(f"{mark} {event.kind:<16}", palette.style(tone))
    line.append(f" {printable(event.message)}")
    return line


class EventLog(RichLog):
    def __init__(self, id: str | None = None) -> None:
        super().__init__(max_lines=MAX_LINES, wrap=False, markup=False, auto_scroll=True, id=id)
        self.events: list[Event] = []

    def add(self, events: Iterable[Event], palette: Palette) -> None:
        for event in events:
            self.events.append(event)
            self.write(event_line(event, palette))
        del self.events[:-MAX_LINES]
