"""Semantic tones (wgconsole.view.present) as Rich styles taken from the current theme's variables,
and the one way any text reaches a widget: as Rich Text, made printable.

Table cells are Rich Text, which cannot name a theme variable, so the styles are resolved
from the theme once per theme change; nothing here names a colour of its own.

Text from hosts and operators can hold `[...]` and control characters. A str handed to a
Static, a Label, a column header or a notification is parsed as markup (`[/]` raises, `[b]`
restyles, `[fe80::1]` vanishes), and a control character goes to the terminal as it is. So
every cell, line and label is built here as Text (never parsed) from `printable` text.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.style import Style
from rich.text import Text
from textual.color import Color, ColorParseError

from wgconsole.core.text import printable
from wgconsole.view.present import ACCENT, BAD, GOOD, MUTED, PLAIN, STALE, WARN
from wgconsole.view.rows.cells import Cell


def _colour(variables: Mapping[str, str], *names: str) -> Color | None:
    background = Color.parse(variables.get("background", "#000000"))
    for name in names:
        value = variables.get(name)
        if not value:
            continue
        try:
            colour = Color.parse(value)
        except ColorParseError:
            continue  # "auto 60%" and the like: try the next name
        return background + colour  # flattens any alpha onto the background
    return None


def _style(colour: Color | None, *, bold: bool = False, italic: bool = False) -> Style:
    return Style(color=None if colour is None else colour.rich_color, bold=bold, italic=italic)


_TEXT_CACHE = 20_000
# The theme files' per-gateway colours (variables gateway-1, gateway-2, ...); a theme without
# them (one of the operator's own) lends its named colours instead.
GATEWAY_VARIABLES = tuple(f"gateway-{i}" for i in range(1, 13))
_GATEWAY_FALLBACK = ("primary", "secondary", "accent", "success", "warning", "error")


def _gateway_styles(variables: Mapping[str, str]) -> tuple[Style, ...]:
    names = [n for n in GATEWAY_VARIABLES if n in variables] or list(_GATEWAY_FALLBACK)
    styles = []
    for name in names:
        colour = _colour(variables, name)
        if colour is None:
            continue
        styles.append(
            Style(bgcolor=colour.rich_color, color=colour.get_contrast_text(1.0).rich_color)
        )
    return tuple(styles) or (Style(reverse=True),)


def plain(text: str, style: Style | str = "", *, newlines: bool = False) -> Text:
    """`text` as Text to show as it is: never markup, no control character (`newlines`: line
    breaks kept, for multi-line text such as a command's output)."""
    return Text(printable(text, newlines=newlines), style=style, end="")


class KeyedText(Text):
    """A first-column cell that knows its row key, so the table can be put in any order."""

    row_key: str = ""


class ThemeColours:
    def __init__(self, variables: Mapping[str, str]) -> None:
        muted = _colour(variables, "text-muted", "foreground-muted")
        self.styles: dict[str, Style] = {
            PLAIN: Style(),
            GOOD: _style(_colour(variables, "success")),
            WARN: _style(_colour(variables, "warning")),
            BAD: _style(_colour(variables, "error"), bold=True),
            MUTED: _style(muted),
            STALE: _style(muted, italic=True),
            ACCENT: _style(_colour(variables, "accent")),
        }
        self._texts: dict[tuple[str, str], Text] = {}
        self.gateways = _gateway_styles(variables)

    def gateway(self, index: int) -> Style:
        """The style of the `index`th gateway (0-based, inventory order) in the bucket
        picture: its theme colour as the background, text in contrast; they repeat."""
        return self.gateways[index % len(self.gateways)]

    def style(self, tone: str) -> Style:
        return self.styles.get(tone, self.styles[PLAIN])

    def text(self, cell: Cell) -> Text:
        # Most cells repeat (gateway names, "✔ fresh 84s", "287s"): one Text each, shared.
        # DataTable only reads its cells, so sharing is safe.
        key = (cell.text, cell.tone)
        text = self._texts.get(key)
        if text is None:
            if len(self._texts) >= _TEXT_CACHE:
                self._texts.clear()
            text = Text(printable(cell.text), style=self.style(cell.tone), no_wrap=True, end="")
            self._texts[key] = text
        return text

    def keyed(self, cell: Cell, key: str) -> KeyedText:
        text = KeyedText(printable(cell.text), style=self.style(cell.tone), no_wrap=True, end="")
        text.row_key = key
        return text

    def line(self, parts: tuple[tuple[str, str], ...]) -> Text:
        text = Text(no_wrap=False, end="")
        for chunk, tone in parts:
            text.append(printable(chunk), self.style(tone))
        return text
