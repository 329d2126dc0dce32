"""Big views hold a window of their rows: the operator still reaches every row.

A synthesized fleet (benchmarks/bench_console.py's, through the real model) of more clients
and findings than a window holds; snapshots are applied as the poll worker would post them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from textual.widgets import Label

from benchmarks.bench_console import IdleCollector, World
from tests.console_support import utc  # noqa: F401 - autouse: clock texts in UTC
from wgconsole.tui.app import ConsoleApp
from wgconsole.tui.screens.detail import GatewayScreen
from wgconsole.tui.widgets.overview import OverviewView
from wgconsole.tui.widgets.tableview import TableView
from wgconsole.tui.widgets.windowed_table import WindowedTable

CLIENTS = 600
SIZE = (120, 30)


class Console:
    def __init__(self, world: World, app: ConsoleApp, pilot: Any) -> None:
        self.world, self.app, self.pilot = world, app, pilot

    async def refresh(self) -> None:
        """One poll later, as the poll worker posts it."""
        self.world.advance()
        self.app.apply_snapshot(self.app.builder.build(self.world.fleet(), 0.1))
        await self.pilot.pause()

    def table(self, table_id: str) -> WindowedTable:
        return self.app.query_one(f"#{table_id}", WindowedTable)

    def expected(self, view_id: str) -> list[str]:
        """Keys of the whole selection the view shows, in its order."""
        view = self.app.query_one(f"#{view_id}", TableView)
        assert self.app.snapshot is not None
        selection = self.app.snapshot.clients.select(view.table_query)
        return [row.key for row in selection.window(0, len(selection))]

    def status(self, table_id: str) -> str:
        return str(self.app.query_one(f"#{table_id}-status").render())


@pytest.fixture
async def big() -> AsyncIterator[Console]:
    world = World.create(clients=CLIENTS, conns=CLIENTS + 400)
    app = ConsoleApp(world.inv, IdleCollector(world.inv), interval=3600, clock=lambda: world.clock)  # type: ignore[arg-type]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.apply_snapshot(app.builder.build(world.fleet(), 0.1))
        await pilot.pause()
        yield Console(world, app, pilot)
        await pilot.press("q")


def name_of(console: Console, key: str | None) -> str:
    assert console.app.snapshot is not None
    assert key is not None
    client = console.app.snapshot.fleet.client(key)
    assert client is not None
    return client.label


async def test_the_cursor_reaches_the_last_client_past_the_window(big: Console) -> None:
    await big.pilot.press("2")
    table = big.table("client-table")
    assert 0 < table.row_count < CLIENTS  # a window, not the fleet
    order = big.expected("clients-view")
    held = table.row_count
    # Down, key after key, across the window's end: the window slides along.
    table.move_cursor(row=held - 3)
    await big.pilot.pause()
    for _ in range(8):
        await big.pilot.press("down")
    assert table.position == held + 5
    assert table.cursor_key() == order[held + 5]
    assert table.start > 0
    assert table.row_count == held
    assert big.status("client-table").startswith(f"row {held + 6} of {CLIENTS} · ")
    # A page at a time, to the end of the list.
    for _ in range(CLIENTS // 20):
        await big.pilot.press("pagedown")
    assert table.cursor_key() == order[-1]
    await big.pilot.press("home")
    assert (table.position, table.cursor_key()) == (0, order[0])
    await big.pilot.press("end")
    assert (table.position, table.cursor_key()) == (CLIENTS - 1, order[-1])
    assert name_of(big, table.cursor_key()) == "client-0599"  # in address order, the last
    for _ in range(CLIENTS // 20):
        await big.pilot.press("pageup")
    assert table.cursor_key() == order[0]


async def test_scrolling_past_the_window_slides_it(big: Console) -> None:
    await big.pilot.press("2")
    table = big.table("client-table")
    for _ in range(4):
        table.scroll_to(y=table.max_scroll_y, animate=False, immediate=True)
        await big.pilot.pause()
    assert table.start > 0
    # What is on screen is the whole list's rows at those positions.
    order = big.expected("clients-view")
    top = int(table.scroll_y)
    assert table.keys[top] == order[table.start + top]


async def test_a_refresh_keeps_the_cursor_on_its_client_deep_in_the_list(big: Console) -> None:
    await big.pilot.press("2")
    table = big.table("client-table")
    await big.pilot.press("end", *(["pageup"] * 8))
    key, position = table.cursor_key(), table.position
    assert position is not None
    assert position < CLIENTS - table.row_count
    await big.refresh()
    assert (table.cursor_key(), table.position) == (key, position)
    # Sorted by handshake age, which every refresh moves: the cursor follows its client.
    await big.pilot.press(*(["s"] * 5))
    assert table.cursor_key() == key
    await big.refresh()
    assert table.cursor_key() == key
    assert big.expected("clients-view")[table.position or 0] == key


async def test_the_filter_finds_a_client_outside_the_window(big: Console) -> None:
    await big.pilot.press("2")
    table = big.table("client-table")
    assert "client-0555" not in [name_of(big, k) for k in table.keys]
    await big.pilot.press("slash", *"client-0555", "enter")
    assert [name_of(big, k) for k in table.keys] == ["client-0555"]
    assert big.status("client-table").startswith(f"1 of {CLIENTS} clients")
    await big.pilot.press("escape")
    assert table.row_count < CLIENTS


async def test_sort_keys_order_the_whole_list(big: Console) -> None:
    await big.pilot.press("2")
    table = big.table("client-table")
    assert name_of(big, table.cursor_key()) == "client-0000"
    await big.pilot.press("s", "S")  # by name, reversed
    order = big.expected("clients-view")
    assert name_of(big, order[0]) == "client-0599"
    # The cursor stayed on its client, now the last of the list, out of the first window.
    assert table.cursor_key() == order[-1]
    assert table.position == CLIENTS - 1
    await big.pilot.press("home")
    assert table.keys[0] == table.cursor_key() == order[0]


async def test_hidden_views_wait_until_shown(big: Console) -> None:
    overview = big.app.query_one(OverviewView)
    shown: list[int] = []
    original = overview.show

    def spy(*args: Any, **kwargs: Any) -> None:
        shown.append(1)
        original(*args, **kwargs)

    overview.show = spy  # type: ignore[method-assign]
    await big.pilot.press("2")
    await big.refresh()
    await big.refresh()
    assert shown == []
    findings = big.table("findings")
    findings.window = 10
    await big.pilot.press("1")
    assert shown == [1]  # once, with the latest snapshot
    assert big.app.snapshot is not None
    rows = big.app.snapshot.findings
    # Many clients' findings of a code are one row (finding_groups): few rows here.
    assert (findings.count, findings.row_count) == (len(rows), min(len(rows), 10))
    findings.focus()
    await big.pilot.press("end")
    assert findings.cursor_key() == rows[-1].key


async def test_many_clients_findings_of_a_code_are_one_row_that_lists_them(big: Console) -> None:
    from wgconsole.view.finding_groups import FindingGroup, fold_findings

    assert big.app.snapshot is not None
    fleet = big.app.snapshot.fleet
    shown = fold_findings(fleet.findings)
    groups = [(i, f) for i, f in enumerate(shown) if isinstance(f, FindingGroup)]
    assert groups, "the synthesized fleet has many clients with one finding"
    assert len(big.app.snapshot.findings) == len(shown) < len(fleet.findings)
    title = str(big.app.query_one("#findings-title").render())
    assert f"Findings ({len(fleet.findings):,}" in title
    index, group = groups[0]
    table = big.table("findings")
    table.focus()
    table.move_cursor(row=index)
    await big.pilot.pause()
    await big.pilot.press("enter")
    await big.pilot.pause()
    view = big.app.query_one("#clients-view", TableView)
    assert view.query_text == group.code
    assert "filter “" + group.code in big.status("client-table")
    listed = set(big.expected("clients-view"))
    assert {f.client_key for f in group.findings} <= listed


# --- the gateway detail --------------------------------------------------------------------


async def open_gateway(big: Console, name: str) -> GatewayScreen:
    big.app.open_gateway(name)
    await big.pilot.pause()
    screen = big.app.screen
    assert isinstance(screen, GatewayScreen)
    return screen


def screen_table(big: Console, table_id: str) -> WindowedTable:
    return big.app.screen.query_one(f"#{table_id}", WindowedTable)


def title(big: Console, widget_id: str) -> str:
    return str(big.app.screen.query_one(f"#{widget_id}", Label).render())


async def test_the_gateway_detail_peers_table_is_a_window_over_every_peer(big: Console) -> None:
    gateway = big.world.inv.gateways[0].name
    await open_gateway(big, gateway)
    peers = screen_table(big, "peers")
    assert 0 < peers.row_count < CLIENTS  # a window, not the fleet
    assert peers.count == CLIENTS
    assert big.app.snapshot is not None
    order = [c.public_key for c in big.app.snapshot.fleet.clients if c.on(gateway)]
    assert len(order) == CLIENTS
    peers.focus()
    await big.pilot.press("end")
    assert (peers.position, peers.cursor_key()) == (CLIENTS - 1, order[-1])
    assert f"Peers as it sees them ({CLIENTS}) · row {CLIENTS} of {CLIENTS}" in title(
        big, "peers-title"
    )
    await big.pilot.press("home")
    assert (peers.position, peers.cursor_key()) == (0, order[0])
    assert peers.page < 20  # below the drain preview and the drift: a short table
    for _ in range(CLIENTS // peers.page + 1):
        await big.pilot.press("pagedown")
    assert peers.cursor_key() == order[-1]
    # What the window holds is the whole list's rows at those positions.
    assert peers.keys[0] == order[peers.start]


async def test_a_refresh_keeps_the_detail_cursor_on_its_peer(big: Console) -> None:
    gateway = big.world.inv.gateways[0].name
    await open_gateway(big, gateway)
    # The poll worker prepares the open gateway's detail with the next snapshots.
    assert big.app.builder.detail_gateways == (gateway,)
    peers = screen_table(big, "peers")
    peers.focus()
    await big.pilot.press("end", *(["pageup"] * 8))
    key, position = peers.cursor_key(), peers.position
    assert position is not None
    assert position < CLIENTS - peers.row_count
    await big.refresh()
    assert (peers.cursor_key(), peers.position) == (key, position)
    big.app.pop_screen()
    await big.refresh()
    assert big.app.builder.detail_gateways == ()  # type: ignore[comparison-overlap]


async def test_drift_of_hundreds_of_peers_is_a_window_of_it(big: Console) -> None:
    first, second = (g.name for g in big.world.inv.gateways[:2])
    fleet = big.world.fleet()
    lacking = {c.public_key for c in fleet.clients[::2]}  # the second gateway lacks half
    clients = tuple(
        replace(c, per_gateway=tuple(p for p in c.per_gateway if p.gateway != second))
        if c.public_key in lacking
        else c
        for c in fleet.clients
    )
    big.app.apply_snapshot(big.app.builder.build(replace(fleet, clients=clients), 0.1))
    await big.pilot.pause()
    await open_gateway(big, first)
    drift = screen_table(big, "drift")
    assert drift.count == len(lacking)
    assert 0 < drift.row_count < len(lacking)
    assert title(big, "drift-title").startswith(
        f"Config drift against the other gateways ({len(lacking)}) · row 1 of "
    )
    drift.focus()
    await big.pilot.press("end")
    assert drift.position == len(lacking) - 1
    assert big.app.snapshot is not None
    last = [c for c in clients if c.public_key in lacking][-1]
    row = drift.get_row_at(drift.cursor_row)
    assert [str(cell) for cell in row] == [
        "extra peer",
        last.label,
        "present",
        f"absent on {second}",
    ]
    assert f"row {len(lacking)} of {len(lacking)}" in title(big, "drift-title")
