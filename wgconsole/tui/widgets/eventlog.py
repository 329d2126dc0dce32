"""The log pane: fleet events and operator actions, newest at the bottom."""

from __future__ import annotations

import time
from collections.abc import Iterable

from rich.text import Text
from textual.widgets import RichLog

from wgconsole.core.text import printable
from wgconsole.tui.widgets.colours import ThemeColours
from wgconsole.view import present
from wgconsole.view.events import Event

MAX_LINES = 5000


def event_line(event: Event, colours: ThemeColours) -> Text:
    stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
    mark, tone = present.SEVERITY.get(event.severity, ("?", present.MUTED))
    line = Text(no_wrap=True, end="")
    line.append(f"{stamp} ", colours.style(present.MUTED))
    line.append(f"{mark} {event.kind:<16}", colours.style(tone))
    line.append(f" {printable(event.message)}")
    return line


class EventLog(RichLog):
    def __init__(self, id: str | None = None) -> None:
        super().__init__(max_lines=MAX_LINES, wrap=False, markup=False, auto_scroll=True, id=id)
        self.events: list[Event] = []

    def add(self, events: Iterable[Event], colours: ThemeColours) -> None:
        for event in events:
            self.events.append(event)
            self.write(event_line(event, colours))
        del self.events[:-MAX_LINES]
