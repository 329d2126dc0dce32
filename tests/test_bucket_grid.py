"""The picture of two directors' sh tables: which buckets it marks, how it is laid out at a
width, its symbols (colour is never alone) and the per-gateway colours from the theme files."""

from __future__ import annotations

import re

import pytest
from rich.text import Text

from wgconsole.config.themes import PACKAGE_DIR, load_themes
from wgconsole.core.records import Endpoint
from wgconsole.core.sched import TAB_SIZE, ShDest, build_table
from wgconsole.tui.app import textual_theme
from wgconsole.tui.widgets.buckets import layout, lines_needed, render_grid
from wgconsole.tui.widgets.colours import GATEWAY_VARIABLES, ThemeColours
from wgconsole.view.buckets import DIFFERS, DROPPED, BucketGrid, GridSide, bucket_grid

GW1, GW2, GW3 = "wg-gateway-01", "wg-gateway-02", "wg-gateway-03"
RS = {GW1: Endpoint("10.0.0.1", 1), GW2: Endpoint("10.0.0.2", 1), GW3: Endpoint("10.0.0.3", 1)}


def table(*dests: tuple[str, int]) -> tuple[str | None, ...]:
    """The 256 buckets' gateways of dests (name, weight) in kernel order, as the kernel fills
    them (core.sched.build_table)."""
    names = [n for n, _ in dests]
    owners = build_table([ShDest(RS[n], w) for n, w in dests])
    return tuple(None if i is None else names[i] for i in owners)


def grid(left: tuple[str | None, ...], right: tuple[str | None, ...] | None) -> BucketGrid:
    return bucket_grid(
        GridSide((("wg-lb-1", ""),), left), GridSide((("wg-lb-2", ""),), right), (GW1, GW2, GW3)
    )


def colours() -> ThemeColours:
    spec = load_themes([PACKAGE_DIR])["dark"]
    theme = textual_theme(spec)
    variables = {**theme.to_color_system().generate(), **dict(spec.variables)}
    return ThemeColours(variables)


def cells(text: Text, per_row: int, side: int) -> list[str]:
    """The 256 two-character cells of grid `side` (0 left, 1 right) as rendered."""
    rows = text.plain.split("\n")
    found: list[str] = []
    for line in rows:
        match = re.match(r"^[ \d]{2}\d ", line)  # a row starts with its first bucket
        if match is None:
            continue
        width = 4 + per_row * 2
        part = line[side * (width + 2) : side * (width + 2) + width]
        found += [part[4 + 2 * i : 6 + 2 * i] for i in range(per_row)]
    return found


def test_a_planted_mismatch_marks_exactly_the_buckets_that_differ() -> None:
    holder = table((GW2, 1), (GW1, 1), (GW3, 1))
    # The backup's gateway-01 was deleted and re-added: it moved to the head of the order.
    backup = table((GW1, 1), (GW2, 1), (GW3, 1))
    expected = {b for b in range(TAB_SIZE) if holder[b] != backup[b]}
    assert 0 < len(expected) < TAB_SIZE  # gateway-03's buckets agree
    g = grid(holder, backup)
    assert {b for b in range(TAB_SIZE) if g.differing[b]} == expected
    assert g.count == len(expected)
    for width in (160, 80):
        per_row, side_by_side = layout(width)
        assert side_by_side
        text = render_grid(g, colours(), width)
        for side, shown in enumerate((holder, backup)):
            drawn = cells(text, per_row, side)
            assert len(drawn) == TAB_SIZE
            marked = {b for b, cell in enumerate(drawn) if cell.endswith(DIFFERS)}
            assert marked == expected
            # Each bucket shows its own gateway's symbol: 1, 2, 3 in inventory order.
            assert [cell[0] for cell in drawn] == [str((GW1, GW2, GW3).index(n) + 1) for n in shown]


def test_identical_tables_mark_nothing() -> None:
    same = table((GW2, 1), (GW1, 1))
    g = grid(same, same)
    assert g.count == 0
    rows = render_grid(g, colours(), 160).plain.split("\n")[:-1]  # the legend names it
    assert not [row for row in rows if DIFFERS in row]


def test_a_weight_zero_dest_drops_its_buckets_and_a_missing_table_differs_everywhere() -> None:
    holder = table((GW2, 1), (GW1, 1))
    # No sh-fallback modelled here: the kernel drops a client whose bucket's dest is at weight 0.
    dropped = tuple(None if n == GW1 else n for n in holder)
    g = grid(holder, dropped)
    text = render_grid(g, colours(), 160)
    drawn = cells(text, 32, 1)
    assert [c[0] == DROPPED for c in drawn] == [n is None for n in dropped]
    assert g.count == holder.count(GW1)
    assert grid(holder, None).count == TAB_SIZE


def test_layout_follows_the_width() -> None:
    assert layout(160) == (32, True)
    assert lines_needed(160) == 1 + 8 + 1
    assert layout(78) == (16, True)
    assert lines_needed(78) == 1 + 16 + 1
    assert layout(50) == (16, False)
    assert lines_needed(50) == 2 * (1 + 16) + 1
    text = render_grid(grid(table((GW1, 1)), table((GW2, 1))), colours(), 78)
    assert max(len(line) for line in text.plain.split("\n")) <= 78


def test_the_legend_names_each_symbol() -> None:
    text = render_grid(grid(table((GW1, 1)), table((GW2, 1))), colours(), 160).plain
    legend = text.split("\n")[-1]
    assert legend.startswith(f"1 {GW1}  2 {GW2}  3 {GW3}  {DROPPED} dropped  {DIFFERS} differs")


def test_a_name_no_gateway_has_gets_the_next_symbol() -> None:
    odd = tuple("10.9.9.9:51280" if b % 2 else GW1 for b in range(TAB_SIZE))
    g = grid(table((GW1, 1)), odd)
    assert g.gateways == (GW1, GW2, GW3, "10.9.9.9:51280")
    assert render_grid(g, colours(), 160).plain.count("4≠") == TAB_SIZE // 2


def test_a_table_of_another_size_is_refused() -> None:
    with pytest.raises(ValueError, match="256 buckets"):
        grid((GW1,) * 255, None)


@pytest.mark.parametrize("name", ["dark", "light", "high-contrast"])
def test_each_theme_file_gives_distinct_gateway_colours(name: str) -> None:
    spec = load_themes([PACKAGE_DIR])[name]
    assert {f"gateway-{i}" for i in range(1, 9)} <= set(spec.variables)
    p = ThemeColours({"background": spec.colours["background"], **dict(spec.variables)})
    backgrounds = [s.bgcolor for s in p.gateways]
    assert len(p.gateways) == 8
    assert len(set(backgrounds)) == 8
    # The text on each is black or white, whichever contrasts.
    assert {str(s.color.name) for s in p.gateways} <= {"#000000", "#ffffff"}  # type: ignore[union-attr]
    assert p.gateway(8) == p.gateway(0)  # they repeat


def test_a_theme_without_gateway_colours_lends_its_named_ones() -> None:
    p = ThemeColours({"background": "#000000", "primary": "#ff0000", "accent": "#00ff00"})
    assert [s.bgcolor.name for s in p.gateways] == ["#ff0000", "#00ff00"]  # type: ignore[union-attr]
    assert not set(GATEWAY_VARIABLES) & {"primary", "accent"}
