"""The two directors' sh tables side by side: one cell per bucket, coloured by gateway.

Laid out at the widget's width: 32 buckets a row (8 rows) where both grids fit that way,
else 16 a row (16 rows), side by side where two fit, else one above the other. Each row
starts with its first bucket's number. A cell is two characters, its gateway's symbol and
`≠` where the tables differ (wgconsole.view.buckets), in the theme's colour for that gateway
(ThemeColours.gateway): colour is never the only sign.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.widget import Widget

from wgconsole.core.text import printable
from wgconsole.tui.widgets.colours import ThemeColours
from wgconsole.view.buckets import TAB_SIZE, BucketGrid, GridSide
from wgconsole.view.present import MUTED, WARN

CELL = 2  # characters per bucket
AXIS = 4  # "255 "
GAP = 2  # between the two grids
_BOLD = Style(bold=True)


def grid_width(per_row: int) -> int:
    return AXIS + per_row * CELL


def layout(width: int) -> tuple[int, bool]:
    """(buckets per row, side by side) for a content `width`."""
    if width >= 2 * grid_width(32) + GAP:
        return 32, True
    return 16, width >= 2 * grid_width(16) + GAP


def lines_needed(width: int) -> int:
    per_row, side_by_side = layout(width)
    rows = TAB_SIZE // per_row
    # Title and rows per grid, then the legend.
    return (1 + rows) * (1 if side_by_side else 2) + 1


class BucketGridView(Widget, can_focus=True):
    """Shows a BucketGrid (or nothing: `display` off when there is no pair to compare).

    It takes the focus (Tab) so that a keyboard scrolls the Overview down to it."""

    DEFAULT_CSS = """
    BucketGridView {
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.grid: BucketGrid | None = None
        self.colours: ThemeColours | None = None
        self.display = False  # until a pair's snapshot: nothing to focus before

    def show(
        self, grid: BucketGrid | None, colours: ThemeColours, *, restyle: bool = False
    ) -> None:
        self.display = grid is not None
        if grid == self.grid and colours is self.colours and not restyle:
            return  # an update re-lays out the Overview
        self.grid = grid
        self.colours = colours
        self.refresh(layout=True)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return 0 if self.grid is None else lines_needed(width)

    def render(self) -> Text:
        grid, colours = self.grid, self.colours
        if grid is None or colours is None:
            return Text("")
        return render_grid(grid, colours, self.content_size.width)


def render_grid(grid: BucketGrid, colours: ThemeColours, width: int) -> Text:
    per_row, side_by_side = layout(width)
    side_width = grid_width(per_row)
    sides = (grid.left, grid.right)
    blocks = [_block(grid, side, colours, per_row, side_width) for side in sides]
    lines: list[Text] = []
    if side_by_side:
        for left, right in zip(*blocks, strict=True):
            line = left.copy()
            line.append(" " * GAP)
            line.append_text(right)
            lines.append(line)
    else:
        for block in blocks:
            lines.extend(block)
    lines.append(colours.line(grid.legend()))
    out = Text("\n", no_wrap=True, end="").join(lines)
    out.no_wrap = True
    return out


def _block(
    grid: BucketGrid, side: GridSide, colours: ThemeColours, per_row: int, side_width: int
) -> list[Text]:
    """One grid's lines: its title, then its rows of buckets, each `side_width` wide."""
    title = colours.line(side.title)
    title.truncate(side_width, pad=True)
    lines = [title]
    muted = colours.style(MUTED)
    differs = colours.style(WARN)
    table = side.table
    for start in range(0, TAB_SIZE, per_row):
        line = Text(f"{start:>3} ", style=muted, no_wrap=True, end="")
        for bucket in range(start, start + per_row):
            cell = printable(grid.cell(table, bucket))
            if table is None:
                line.append(cell, differs if grid.differing[bucket] else muted)
                continue
            index = grid.index(table[bucket])
            style = muted if index is None else colours.gateway(index)
            if grid.differing[bucket]:
                style = style + _BOLD
            line.append(cell, style)
        lines.append(line)
    return lines
