"""The console over a director pair and an unbalanced fleet (issues 12 and 13), from fake
observations (tests/pair_world.py): no lab.

The Overview shows the directors and the two sh tables' picture with exactly the differing
buckets marked; a VIP move, VRRP state and sync daemon changes reach the Log; a client's detail
says where it would land on failover; the balance per gateway and the rebalance key."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Label, Static

from tests.console_support import LAB, console, step, utc, wait_for  # noqa: F401 - utc: autouse
from tests.observations import (
    ALPHA_EP,
    BETA_EP,
    GW1,
    GW1_RS,
    GW2,
    GW2_RS,
    conn,
    dest,
    gw_obs,
    healthy_gateways,
    lb_obs,
    make_inventory,
    peer,
    service,
)
from tests.pair_world import (
    BACKUP_DESTS,
    GAMMA,
    HOLDER_DESTS,
    LB1,
    LB2,
    PairCollector,
    failed_over,
    steady,
)
from wgconsole.core.fleet import gateways_by_real_server
from wgconsole.core.records import Endpoint, VsSysctls
from wgconsole.core.sched import TAB_SIZE, ShDest, build_table
from wgconsole.ops import catalog
from wgconsole.tui.app import ConsoleApp
from wgconsole.tui.screens.action import ActionScreen
from wgconsole.tui.screens.detail import ClientScreen
from wgconsole.tui.widgets.buckets import BucketGridView, layout
from wgconsole.tui.widgets.eventlog import EventLog
from wgconsole.tui.widgets.keyed_table import KeyedTable
from wgconsole.tui.widgets.tableview import TableView
from wgconsole.view.buckets import DIFFERS
from wgconsole.view.present import ACCENT


@pytest.fixture(autouse=True)
def audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "audit.jsonl"
    monkeypatch.setenv("WGCONSOLE_AUDIT_LOG", str(path))
    return path


def app_over(collector: PairCollector, **kwargs: Any) -> ConsoleApp:
    return ConsoleApp(
        collector.inventory, collector, interval=3600, clock=collector.clock_, **kwargs
    )


async def started(pilot: Any, app: ConsoleApp) -> None:
    await wait_for(pilot, lambda: app.applied >= 1)
    await pilot.pause()


def rows(app: ConsoleApp, table_id: str) -> dict[str, list[str]]:
    t = app.screen.query_one(f"#{table_id}", KeyedTable)
    return {key: [c.plain for c in t.get_row(key)] for key in t.keys}


def column(app: ConsoleApp, table_id: str, label: str) -> dict[str, str]:
    t = app.screen.query_one(f"#{table_id}", KeyedTable)
    index = [c.label for c in t.spec].index(label)
    return {key: row[index] for key, row in rows(app, table_id).items()}


def log_text(app: ConsoleApp) -> str:
    return "\n".join(e.message for e in app.screen_stack[0].query_one(EventLog).events)


def kernel_table(dests: Any, names: Any = None) -> tuple[str, ...]:
    """The 256 buckets' gateways of a dest list in kernel order, filled as the kernel does
    (`names`: gateway by real server; the fake pair's by default)."""
    names = names or {GW1_RS: GW1, GW2_RS: GW2}
    owners = build_table([ShDest(d.endpoint, d.weight) for d in dests])
    return tuple(names[dests[i].endpoint] for i in owners if i is not None)


# --- the directors and their tables ---------------------------------------------------------


async def test_overview_shows_the_directors() -> None:
    app = app_over(PairCollector([steady()]))
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot, app)
        shown = rows(app, "directors")
        assert list(shown) == [LB1, LB2]
        assert shown[LB1][1:] == [
            "✔ up",
            "✔ holds it",
            "MASTER prio 150 (json)",
            "master eth0 id 1",
            "reference",
            "-",
        ]
        assert shown[LB2][1:] == [
            "✔ up",
            "no",
            "BACKUP prio 100 (json)",
            "backup eth0 id 1",
            "⚠ 128/256 differ",
            "takes over · 1/3 synced",
        ]
        assert app.query_one("#directors-title", Label).display


async def test_the_picture_marks_exactly_the_buckets_whose_gateway_differs() -> None:
    app = app_over(PairCollector([steady()]))
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot, app)
        view = app.query_one(BucketGridView)
        assert view.display
        assert view.grid is not None
        # The tables as the kernel fills them from each director's dests (kernel order).
        holder, backup = kernel_table(HOLDER_DESTS), kernel_table(BACKUP_DESTS)
        expected = {b for b in range(TAB_SIZE) if holder[b] != backup[b]}
        assert len(expected) == 128
        assert view.grid.left.table == holder
        assert view.grid.right.table == backup
        assert {b for b in range(TAB_SIZE) if view.grid.differing[b]} == expected
        # What is drawn: each grid's rows of two-character cells, the mark on exactly those.
        per_row, side_by_side = layout(view.content_size.width)
        assert (per_row, side_by_side) == (32, True)
        lines = view.render().plain.split("\n")
        assert lines[0].startswith(f"{LB1} · VIP holder")
        assert f"{LB2} · takes over · ⚠ 128/256 differ" in lines[0]
        width = 4 + 2 * per_row
        for side, table in ((0, holder), (1, backup)):
            cells = []
            for line in lines[1 : 1 + TAB_SIZE // per_row]:
                part = line[side * (width + 2) : side * (width + 2) + width][4:]
                cells += [part[i : i + 2] for i in range(0, 2 * per_row, 2)]
            assert {b for b, c in enumerate(cells) if c[1] == DIFFERS} == expected
            assert [c[0] for c in cells] == ["1" if n == GW1 else "2" for n in table]
        assert lines[-1].startswith(f"1 {GW1}  2 {GW2}")


async def test_replayed_lab_pair_reordered_backup_marks_every_bucket() -> None:
    """Lab captures of a pair (tests/fixtures/lab): the tables agree, then the backup's two
    dests are re-added in the other order (identical `ipvsadm -Ln`) and every bucket differs."""
    app, _ = console([LAB / "pair-normal", LAB / "pair-backup-reordered"])
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot, app)
        view = app.query_one(BucketGridView)
        assert view.grid is not None
        assert view.grid.count == 0
        assert column(app, "directors", "sh table") == {LB1: "reference", LB2: "✔ same"}
        await step(pilot, app)
        assert view.grid is not None
        fleet = app.snapshot.fleet
        names = {rs: gw.name for rs, gw in gateways_by_real_server(app.inventory).items()}
        holder, backup = (kernel_table(v.service.dests, names) for v in fleet.load_balancers)
        # The same dests on both: only their kernel order differs.
        dests = [{d.endpoint for d in v.service.dests} for v in fleet.load_balancers]
        assert dests[0] == dests[1]
        assert len(dests[0]) == 2
        expected = {b for b in range(TAB_SIZE) if holder[b] != backup[b]}
        assert len(expected) == TAB_SIZE
        assert {b for b in range(TAB_SIZE) if view.grid.differing[b]} == expected
        drawn = view.render().plain
        assert drawn.count(DIFFERS) == 2 * TAB_SIZE + 1  # both grids, and the legend
        assert column(app, "directors", "sh table")[LB2] == "⚠ 256/256 differ"
        assert "new finding backup-table-differs" in log_text(app)


async def test_one_lb_shows_no_directors_and_no_picture() -> None:
    app = app_over(PairCollector([{"wg-lb": lb_obs(), **healthy_gateways()}], make_inventory()))
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        assert not app.query_one("#directors", KeyedTable).display
        assert not app.query_one("#directors-title", Label).display
        assert not app.query_one(BucketGridView).display


async def test_small_terminal_scrolls_the_overview_to_the_picture() -> None:
    app = app_over(PairCollector([steady()]))
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app)
        view = app.query_one(BucketGridView)
        assert layout(view.content_size.width) == (16, True)
        overview = app.query_one("#overview-view")
        assert overview.scroll_y == 0
        assert view.region.y >= 24  # below the screen's bottom
        view.focus()
        # Focus scrolls it into view (smoothly: waited for).
        await wait_for(pilot, lambda: view.region.y < 22)
        assert overview.scroll_y > 0


# --- the Log and the client detail ----------------------------------------------------------


async def client_info(pilot: Any, screen: Any) -> str:
    """The client detail's head lines, once the snapshot filled them."""

    def text() -> str:
        found = screen.query("#client-info")
        return str(found.first(Static).render()) if found else ""

    await wait_for(pilot, lambda: "took over" in text())
    return text()


async def test_a_vip_move_vrrp_and_sync_changes_reach_the_log() -> None:
    app = app_over(PairCollector([steady(), failed_over()]))
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot, app)
        assert "VIP" not in log_text(app)
        await step(pilot, app)
        text = log_text(app)
        assert "VIP 172.16.0.1 moved: wg-lb-1 -> wg-lb-2" in text
        assert "wg-lb-1: VRRP MASTER -> BACKUP (priority 100)" in text
        assert "wg-lb-2: VRRP BACKUP -> MASTER (priority 150)" in text
        assert "wg-lb-1: sync daemon master eth0 syncid 1 -> none" in text
        kinds = {e.kind: e.severity for e in app.query_one(EventLog).events}
        assert kinds["vip-moved"] == "warning"
        assert kinds["sync-daemon"] == "warning"
        # The Overview follows: wg-lb-2 holds the VIP now.
        assert column(app, "directors", "VIP") == {LB1: "no", LB2: "✔ holds it"}


async def test_a_client_detail_says_where_it_lands_on_failover() -> None:
    app = app_over(PairCollector([steady()]))
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot, app)
        app.open_client(GAMMA)
        await wait_for(pilot, lambda: isinstance(app.screen, ClientScreen))
        screen = app.screen
        info = await client_info(pilot, screen)
        assert (
            f"If {LB2} took over now: → {GW1} ({LB2}'s sh choice: no synced entry there)"
            f" · ⚠ leaves {GW2}" in info
        )
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ClientScreen))
        alpha = next(c for c in app.snapshot.fleet.clients if c.label == "alpha")  # type: ignore[union-attr]
        app.open_client(alpha.public_key)
        await wait_for(pilot, lambda: isinstance(app.screen, ClientScreen))
        screen = app.screen
        info = await client_info(pilot, screen)
        assert f"→ {GW1} (its synced entry on {LB2}) · ✔ stays on its gateway" in info


# --- the balance and rebalance --------------------------------------------------------------


def crowded(backup_only: str = "0") -> PairCollector:
    """One LB; both clients' entries on gateway-01, while the table sends beta to gateway-02;
    no sync daemon runs there, net.ipv4.vs.backup_only as given."""
    conns = (conn(ALPHA_EP, GW1_RS), conn(BETA_EP, GW1_RS))
    lb = replace(
        lb_obs(conns=conns), sync_daemons=(), sysctls=VsSysctls((("backup_only", backup_only),))
    )
    frame = {"wg-lb": lb, **healthy_gateways()}
    return PairCollector([frame], make_inventory())


async def test_overview_shows_clients_per_gateway_against_the_bucket_share() -> None:
    app = app_over(crowded())
    async with app.run_test(size=(160, 40)) as pilot:
        await started(pilot, app)
        clients = column(app, "servers", "Clients")
        buckets = column(app, "servers", "sh buckets")
        by_gateway = {rows(app, "servers")[k][0]: (clients[k], buckets[k]) for k in clients}
        assert by_gateway == {GW1: ("2 · 100% → 1", "128 · 50%"), GW2: ("0 · 0% → 1", "128 · 50%")}
        title = str(app.query_one("#servers-title", Label).render())
        assert "⚠ 1 client is not where sh sends them: R rebalances" in title


async def test_a_balanced_fleet_has_no_rebalance_note() -> None:
    app = app_over(PairCollector([{"wg-lb": lb_obs(), **healthy_gateways()}], make_inventory()))
    async with app.run_test(size=(160, 40)) as pilot:
        await started(pilot, app)
        assert set(column(app, "servers", "Clients").values()) == {"1 · 50%"}
        assert str(app.query_one("#servers-title", Label).render()) == "Real servers"


async def test_rebalance_key_opens_the_operation_with_its_preview() -> None:
    app = app_over(crowded())
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot, app)
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ActionScreen))
        screen = app.screen
        assert isinstance(screen, ActionScreen)
        assert isinstance(screen.op, catalog.Rebalance)
        await wait_for(pilot, lambda: screen.state in ("confirming", "refused"))
        assert screen.state == "confirming"
        preview = str(screen.query_one("#action-plan", Static).render())
        assert "move 1 client(s)" in preview
        assert "beta" in preview
        assert f"{GW1} -> {GW2}" in preview
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ActionScreen)
        assert "rebalance: cancelled: nothing was sent" in log_text(app)


async def test_rebalance_key_refuses_where_backup_only_would_stop_every_service() -> None:
    app = app_over(crowded("1"))
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot, app)
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ActionScreen))
        screen = app.screen
        assert isinstance(screen, ActionScreen)
        await wait_for(pilot, lambda: screen.state in ("confirming", "refused"))
        assert screen.state == "refused"
        shown = str(screen.query_one("#action-plan", Static).render())
        assert "net.ipv4.vs.backup_only=1 on wg-lb" in shown


async def test_rebalance_key_read_only_refuses() -> None:
    app = app_over(crowded(), read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await pilot.press("R")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ActionScreen)
        assert [n.message for n in app._notifications] == ["read-only: no action can run"]


async def test_many_clients_not_on_their_sh_choice_are_one_row_opening_them() -> None:
    n = 24
    clients = [(f"c{i}", f"key-{i}", f"10.255.0.{10 + i}") for i in range(n)]
    inventory = make_inventory(clients=clients)
    sources = [Endpoint(f"10.211.{56 + i}.{3 * i}", 40000 + i) for i in range(n)]
    peers = [
        peer(key, s, 20, (f"{addr}/32",))
        for (_, key, addr), s in zip(clients, sources, strict=True)
    ]
    frame = {
        # Every entry on gateway-01; the table sends about half of them to gateway-02.
        "wg-lb": lb_obs(
            services=[service((dest(GW2_RS), dest(GW1_RS)))],
            conns=[conn(s, GW1_RS) for s in sources],
        ),
        GW1: gw_obs(GW1, peers),
        GW2: gw_obs(GW2, []),
    }
    app = app_over(PairCollector([frame], inventory))  # type: ignore[list-item]
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot, app)
        fleet = app.snapshot.fleet  # type: ignore[union-attr]
        misplaced = [f.subject for f in fleet.findings if f.code == "not-on-sh-choice"]
        assert len(misplaced) > 5
        findings = app.query_one("#findings", KeyedTable)
        codes = column(app, "findings", "Code")
        grouped = [k for k, code in codes.items() if code == "not-on-sh-choice"]
        assert len(grouped) == 1
        assert column(app, "findings", "Subject")[grouped[0]] == f"{len(misplaced)} clients"
        findings.focus()
        findings.move_cursor(row=findings.keys.index(grouped[0]))
        await pilot.press("enter")
        view = app.query_one("#clients-view", TableView)
        await wait_for(pilot, lambda: view.query_text == "not-on-sh-choice")
        await pilot.pause()
        listed = column(app, "client-table", "Client")
        assert sorted(listed.values()) == sorted(misplaced)
        # Each keeps its own finding on its row, in the info tone.
        table = app.query_one("#client-table", KeyedTable)
        for key in listed:
            cells = table.cells_of(key)
            assert cells is not None
            cell = cells[5]
            assert cell.text == "not-on-sh-choice"
            assert cell.tone == ACCENT


async def test_the_palette_opens_lb_align_and_failover_on_a_pair() -> None:
    from wgconsole.tui.commands import ConsoleCommands

    app = app_over(PairCollector([steady()]))
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot, app)
        commands = {
            name: callback for name, callback, _ in ConsoleCommands(app.screen, None)._commands()
        }
        align = next(cb for n, cb in commands.items() if n.startswith("Directors: lb align"))
        failover = next(cb for n, cb in commands.items() if n.startswith("Directors: failover"))
        for callback, kind in ((align, catalog.LbAlign), (failover, catalog.Failover)):
            callback()
            await wait_for(pilot, lambda: isinstance(app.screen, ActionScreen))
            screen = app.screen
            assert isinstance(screen, ActionScreen)
            assert isinstance(screen.op, kind)
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, ActionScreen))


async def test_a_single_lb_palette_has_no_director_operations() -> None:
    from wgconsole.tui.commands import ConsoleCommands

    single = app_over(crowded())
    async with single.run_test(size=(120, 40)) as pilot:
        await started(pilot, single)
        names = [name for name, _, _ in ConsoleCommands(single.screen, None)._commands()]
        assert "Rebalance" in names
        assert not any(name.startswith("Directors:") for name in names)
