"""`?`: every key of every view, read from the bindings themselves so none is forgotten."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import ClassVar

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

_KEY_WIDTH = 17


def _keys(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    rows = []
    for b in bindings:
        if isinstance(b, Binding):
            key = b.key_display or b.key
            key = key.replace("question_mark", "?").replace("slash", "/")
            rows.append((key, b.tooltip or b.description))
    return rows


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", key_display="?"),
        Binding("q", "dismiss", "Close"),
    ]

    def __init__(
        self,
        sections: Sequence[tuple[str, Sequence[BindingType]]],
        *,
        read_only: bool,
        actions: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__()
        self.sections = sections
        self.read_only = read_only
        self.actions = actions

    def plain_text(self, width: int = 100) -> str:
        console = Console(width=width, record=True, file=io.StringIO())
        console.print(self.table())
        return console.export_text()

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Static("Keys — Esc or ? to close", id="help-title")
            yield Static(self.table())

    def table(self) -> Group:
        parts: list[Table | Text] = []

        def section(title: str, rows: Iterable[tuple[str, str]]) -> None:
            grid = Table.grid(padding=(0, 2))
            grid.add_column(style="bold", no_wrap=True, width=_KEY_WIDTH)
            grid.add_column()
            for key, description in rows:
                grid.add_row(key, description)
            parts.extend((Text(title, style="underline"), grid))

        for title, bindings in self.sections:
            section(title, _keys(bindings))
        actions = list(self.actions)
        if self.read_only:
            actions.insert(0, ("-", "read-only (--read-only): no action can run"))
        elif not actions:
            actions.append(("-", "none"))
        section("Actions", actions)
        section(
            "Anywhere",
            [("ctrl+p", "command palette: views, gateways, clients, actions, themes, poll now")],
        )
        return Group(*parts)
