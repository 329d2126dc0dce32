"""KeyedTable: a DataTable kept equal to keyed rows in place (order, cursor, bulk removal)."""

from __future__ import annotations

from textual.app import App, ComposeResult

from wgconsole.tui.widgets.colours import ThemeColours
from wgconsole.tui.widgets.keyed_table import KeyedTable
from wgconsole.view.rows.cells import Cell, Column, Row

COLUMNS = (Column("name", "Name"), Column("value", "Value"))


def rows(keys: list[int], value: str = "v") -> list[Row]:
    return [Row(f"k{k}", (Cell(f"name {k}"), Cell(f"{value}{k}"))) for k in keys]


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS, id="t")


def shown(table: KeyedTable) -> list[list[str]]:
    return [[c.plain for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_apply_adds_orders_updates_and_removes_in_place() -> None:
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one(KeyedTable)
        colours = ThemeColours(app.get_css_variables())
        table.apply(rows(list(range(100))), colours)
        await pilot.pause()
        table.move_cursor(row=40)
        assert table.cursor_key() == "k40"
        first_rows = dict(table.rows)
        # 60 rows go (one pass, not 60 remove_row calls), the rest reverse, two change.
        kept = [k for k in range(100) if k % 5 == 0 or k > 90]
        wanted = rows(kept[::-1])
        wanted[0] = Row(wanted[0].key, (wanted[0].cells[0], Cell("changed")))
        table.apply(wanted, colours)
        await pilot.pause()
        assert table.keys == [r.key for r in wanted]
        assert shown(table) == [[c.text for c in r.cells] for r in wanted]
        assert table.cursor_key() == "k40"  # followed its row to its new place
        assert table.cursor_row == table.keys.index("k40")
        assert all(table.rows[k] is first_rows[k] for k in table.rows)
        # New rows come back at their place in the order.
        again = rows([1000, *kept[::-1], 1001])
        table.apply(again, colours)
        await pilot.pause()
        assert table.keys == [r.key for r in again]
        assert shown(table)[0] == ["name 1000", "v1000"]
        assert table.cursor_key() == "k40"


async def test_a_few_removals_and_columns_that_grow() -> None:
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one(KeyedTable)
        colours = ThemeColours(app.get_css_variables())
        table.apply(rows([1, 2, 3]), colours)
        await pilot.pause()
        width = table.columns[table.ordered_columns[1].key].content_width
        table.apply(rows([1, 3], value="a much longer value "), colours)
        await pilot.pause()
        assert table.keys == ["k1", "k3"]
        assert table.columns[table.ordered_columns[1].key].content_width > width
        assert shown(table)[1] == ["name 3", "a much longer value 3"]


async def test_new_rows_widen_their_columns_at_once_not_when_idle() -> None:
    # A busy console (or a screenshot) paints before DataTable's idle measuring: the
    # widths must already fit the cells that apply() added.
    app = TableApp()
    async with app.run_test():
        table = app.query_one(KeyedTable)
        colours = ThemeColours(app.get_css_variables())
        table.apply([Row("a", (Cell("✖ critical"), Cell("x" * 30)))], colours)
        widths = [table.columns[c.key].content_width for c in table.ordered_columns]
        assert widths == [len("✖ critical"), 30]


async def test_restyle_rewrites_every_cell_with_the_new_palette() -> None:
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one(KeyedTable)
        colours = ThemeColours(app.get_css_variables())
        good = [Row("a", (Cell("x", "good"), Cell("y", "bad")))]
        table.apply(good, colours)
        await pilot.pause()
        light = ThemeColours({**app.get_css_variables(), "error": "#123456"})
        table.apply(good, light, restyle=True)
        await pilot.pause()
        cell = table.get_row_at(0)[1]
        assert cell.style == light.style("bad") != colours.style("bad")
