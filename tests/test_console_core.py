"""Console core: rates, events, kept data of lost hosts, rows, what-if and drift (no Textual)."""

from __future__ import annotations

import colorsys
from dataclasses import replace
from pathlib import Path

import pytest

from tests.console_support import (
    GW2_UNREACHABLE,
    NORMAL,
    WEIGHT0,
    WG_DOWN,
    SteppedCollector,
    fleets,
)
from wgconsole.config.themes import PACKAGE_DIR, REPO_DIR, ThemeError, load_themes, parse_theme
from wgconsole.core.drift import gateway_drift
from wgconsole.core.fleet import Fleet, PeerOnGateway
from wgconsole.core.whatif import client_outcomes, drain_preview
from wgconsole.view.events import MAX_PER_KIND, fleet_events, operator_action
from wgconsole.view.finding_groups import fold_findings
from wgconsole.view.freshness import Keeper, host_ages
from wgconsole.view.present import STALE
from wgconsole.view.rates import RateTracker
from wgconsole.view.rows.clients import CLIENT_COLUMNS, client_rows
from wgconsole.view.rows.connections import ConnIndex
from wgconsole.view.rows.detail_tables import client_gateway_rows, peer_rows
from wgconsole.view.rows.overview import finding_rows, host_rows, server_rows, service_line
from wgconsole.view.rows.selection import filter_rows, sort_rows
from wgconsole.view.snapshot import SnapshotBuilder

GW1 = "wg-gateway-01"
GW2 = "wg-gateway-02"


def _texts(row: object) -> list[str]:
    return [c.text for c in row.cells]  # type: ignore[attr-defined]


# --- rates --------------------------------------------------------------------------------


def _bump(fleet: Fleet, seconds: float, rx: int) -> Fleet:
    clients = tuple(
        replace(
            c,
            per_gateway=tuple(
                replace(p, rx_bytes=p.rx_bytes + rx, tx_bytes=p.tx_bytes + 2 * rx)
                for p in c.per_gateway
            ),
        )
        for c in fleet.clients
    )
    servers = tuple(
        replace(rs, in_bytes=rs.in_bytes + 1000, in_packets=rs.in_packets + 10)
        for rs in fleet.real_servers
    )
    return replace(fleet, taken_at=fleet.taken_at + seconds, clients=clients, real_servers=servers)


def test_rates_from_successive_fleets() -> None:
    (first,) = fleets([NORMAL])
    tracker = RateTracker()
    rates = tracker.update(first)
    key = first.clients[0].public_key
    assert rates.client(key).rx_bps is None  # one sample is no rate
    second = _bump(first, 2.0, rx=200)
    rates = tracker.update(second)
    # rx summed over the gateways where the peer exists (both list it), over 2 s
    assert rates.client(key).rx_bps == pytest.approx(200 * 2 / 2.0)
    assert rates.client(key).tx_bps == pytest.approx(400 * 2 / 2.0)
    rs = first.real_servers[0].address
    assert rates.server(rs).in_bps == pytest.approx(500.0)
    assert rates.server(rs).in_pps == pytest.approx(5.0)
    assert rates.server(rs).history == (pytest.approx(500.0),)  # type: ignore[comparison-overlap]


def test_a_counter_reset_gives_no_rate() -> None:
    (first,) = fleets([NORMAL])
    tracker = RateTracker()
    tracker.update(_bump(first, 0.0, rx=1000))
    rates = tracker.update(_bump(first, 2.0, rx=0))
    assert rates.client(first.clients[0].public_key).rx_bps is None


# --- events -------------------------------------------------------------------------------


def test_events_for_lab_transitions() -> None:
    normal, down, lost, back = fleets([NORMAL, WG_DOWN, GW2_UNREACHABLE, NORMAL])
    assert [e.kind for e in fleet_events(None, normal)] == ["poll"]
    assert fleet_events(normal, normal) == []
    kinds = {e.kind: e for e in fleet_events(normal, down)}
    assert kinds["interface-down"].subject == GW1
    assert kinds["interface-down"].severity == "critical"
    lost_events = {e.kind: e for e in fleet_events(down, lost)}
    assert lost_events["host-lost"].subject == GW2
    assert "interface-up" in lost_events
    assert {e.kind for e in fleet_events(lost, back)} >= {"host-back"}


def test_findings_appear_and_clear_and_clients_move() -> None:
    normal, weight0 = fleets([NORMAL, WEIGHT0])
    events = fleet_events(normal, weight0)
    assert any(e.kind == "server-state" and e.subject == GW1 for e in events)
    moved = replace(
        weight0,
        clients=(replace(weight0.clients[0], lb_gateway=GW2), *weight0.clients[1:]),
    )
    msgs = [e.message for e in fleet_events(weight0, moved) if e.kind == "client-moved"]
    assert msgs == [f"wg-client-0: LB gateway {GW1} -> {GW2}"]
    stale = replace(moved, clients=(replace(moved.clients[0], status="stale"),))
    assert any(e.kind == "handshake-stale" for e in fleet_events(moved, stale))
    assert operator_action(1.0, GW1, "drained").kind == "action"


def test_mass_changes_are_folded() -> None:
    (normal,) = fleets([NORMAL])
    template = normal.clients[0]
    many = tuple(
        replace(template, public_key=f"k{i}", name=f"c{i}", lb_gateway=GW1) for i in range(50)
    )
    moved = tuple(replace(c, lb_gateway=GW2) for c in many)
    events = fleet_events(replace(normal, clients=many), replace(normal, clients=moved))
    assert len([e for e in events if e.kind == "client-moved"]) == MAX_PER_KIND + 1
    assert events[-1].message == f"and {50 - MAX_PER_KIND} more client-moved events this poll"


# --- stale data of lost hosts -------------------------------------------------------------


def test_lost_gateway_keeps_its_last_data_marked_stale() -> None:
    normal, lost = fleets([NORMAL, GW2_UNREACHABLE])
    keeper = Keeper()
    assert keeper.update(normal).gateways == {}
    kept = keeper.update(lost)
    assert set(kept.gateways) == {GW2}
    assert kept.gateways[GW2].as_of == normal.taken_at
    assert len(kept.gateways[GW2].peers) == 2
    ages = {a.name: a for a in host_ages(lost.hosts, lost.taken_at + 5)}
    assert ages[GW2].stale
    assert ages[GW2].age == pytest.approx(lost.taken_at + 5 - normal.taken_at)
    assert not ages[GW1].stale
    assert ages[GW1].age == pytest.approx(5)
    rows = {r.key: r for r in host_rows(tuple(ages.values()))}
    assert _texts(rows[GW2])[2:4] == ["✖ down", "stale 18s"]
    assert rows[GW2].cells[3].tone == STALE
    peers, age = peer_rows(lost, GW2, kept, lost.taken_at)
    assert age == pytest.approx(lost.taken_at - normal.taken_at)
    assert peers
    assert all(c.tone == STALE for r in peers for c in r.cells)


def test_client_on_a_lost_gateway_is_shown_stale_not_current() -> None:
    normal, lost = fleets([NORMAL, GW2_UNREACHABLE])
    keeper = Keeper()
    keeper.update(normal)
    kept = keeper.update(lost)
    # Make the kept gateway the client's LB gateway: its state is then unknown now.
    client = replace(lost.clients[0], lb_gateway=GW2)
    peer = kept.gateways[GW2].peers[client.public_key]
    fresh_peer = replace(peer, handshake_age=3.0)
    kept = replace(
        kept,
        gateways={
            GW2: replace(
                kept.gateways[GW2],
                peers={**kept.gateways[GW2].peers, client.public_key: fresh_peer},
            )
        },
    )
    rows = client_rows(
        replace(lost, clients=(client,)), RateTracker().update(lost), kept, lost.taken_at
    )
    cells = _texts(rows[0])
    assert cells[2] == f"{GW2} (down)"
    assert cells[3] == GW2
    assert cells[4].startswith("✔ fresh")
    assert "stale 13s" in cells[4]
    assert rows[0].cells[4].tone == STALE
    side = client_gateway_rows(lost, client, kept, lost.taken_at, [GW1, GW2])
    data = _texts(side[0])
    assert data == ["Data", "✔ current", "✖ stale 13s"]


def test_lost_lb_keeps_real_servers_stale() -> None:
    (normal,) = fleets([NORMAL])
    lost = replace(
        normal,
        taken_at=normal.taken_at + 10,
        service=None,
        real_servers=(),
        conns=(),
        hosts=tuple(replace(h, reachable=h.role != "lb") for h in normal.hosts),
    )
    keeper = Keeper()
    keeper.update(normal)
    kept = keeper.update(lost)
    assert kept.lb is not None
    rows = server_rows(lost, RateTracker().update(lost), kept, lost.taken_at)
    assert rows
    assert all(c.tone == STALE for r in rows for c in r.cells)
    assert "stale 10s" in rows[0].cells[3].text
    line = service_line(lost, kept, lost.taken_at)
    assert line[-1] == (" · stale 10s", STALE)


# --- rows ---------------------------------------------------------------------------------


def test_client_rows_sort_and_filter() -> None:
    (normal,) = fleets([NORMAL])
    rows = client_rows(normal, RateTracker().update(normal), Keeper().update(normal), 0.0)
    assert [r.key for r in rows] == [c.public_key for c in normal.clients]
    assert _texts(rows[0])[:5] == [
        "wg-client-0",
        "10.255.0.2",
        GW1,
        GW1,
        "✔ fresh 84s",
    ]
    assert len(rows[0].cells) == len(CLIENT_COLUMNS)
    by_name = sort_rows(rows, 0, reverse=True)
    assert [_texts(r)[0] for r in by_name] == ["wg-client-1", "wg-client-0"]
    assert [_texts(r)[0] for r in filter_rows(rows, "client-1")] == ["wg-client-1"]
    # A pasted full key finds its client too.
    assert filter_rows(rows, normal.clients[0].public_key.lower()) == [rows[0]]
    assert filter_rows(rows, "") == list(rows)


def test_finding_rows_keyed_stably() -> None:
    (weight0,) = fleets([WEIGHT0])
    rows = finding_rows(fold_findings(weight0.findings))
    assert len({r.key for r in rows}) == len(rows)
    assert rows[0].cells[0].text.split()[1] == weight0.findings[0].severity


def test_service_line_shows_flag_findings_next_to_flags() -> None:
    (normal,) = fleets([NORMAL])
    text = "".join(t for t, _ in service_line(normal, Keeper().update(normal), 0))
    assert "udp 10.77.255.1:51280" in text
    assert "flags none ⚠ no sh-fallback" in text


def test_connection_index_windows_sorts_and_counts_down() -> None:
    (normal,) = fleets([NORMAL])
    names = {rs.address: rs.gateway or "" for rs in normal.real_servers}
    index = ConnIndex(normal.conns, names, normal.taken_at)
    assert len(index.select(("", None, False))) == 2
    picked = index.select(("10.77.1.11", 0, False))
    assert len(picked) == 1
    row = index.row(picked[0], normal.taken_at + 12)
    assert _texts(row) == [
        "10.77.1.11:50772",
        GW1,
        "10.77.0.11:51280",
        "280s",
        "UDP",
        "10.77.255.1:51280",
    ]
    asc = index.select(("", 0, False))
    desc = index.select(("", 0, True))
    assert asc == desc[::-1]
    # Rows are built for the window read only, as of the time asked; found again by key.
    source = index.rows(("", 0, False), normal.taken_at + 12)
    (second,) = source.window(1, 2)
    assert source.position(second.key) == 1
    assert source.position("udp 192.0.2.1:1 10.77.255.1:51280 10.77.0.11:51280") is None


def test_snapshot_builder_carries_events_and_rows() -> None:
    collector = SteppedCollector([NORMAL, WG_DOWN])
    builder = SnapshotBuilder(collector.inventory, collector.stepped_clock)
    try:
        first = builder.build(collector.read_fleet(), 0.1)
        second = builder.build(collector.read_fleet(), 0.1)
    finally:
        collector.close()
    assert (first.seq, second.seq) == (1, 2)
    assert [e.kind for e in second.events] == ["interface-down"]
    assert len(second.clients) == 2
    assert len(second.servers) == 2


# --- what-if and drift --------------------------------------------------------------------


def test_client_outcomes_follow_the_sh_model() -> None:
    collector = SteppedCollector([NORMAL])
    try:
        fleet = collector.read_fleet()
    finally:
        collector.close()
    outcomes = {
        o.scenario: o for o in client_outcomes(collector.inventory, fleet.service, fleet.clients[0])
    }
    assert outcomes["now"].gateway == GW1
    # No sh-fallback: a weight-0 gateway-01 drops new flows hashed to it...
    assert outcomes[f"drain {GW1} (weight 0)"].gateway is None
    assert "stays on" in outcomes[f"drain {GW1} (weight 0)"].note
    # ...and expire_nodest_conn=0 means the entry never moves on removal.
    assert outcomes[f"remove {GW1}"].gateway == GW2
    assert "never moves" in outcomes[f"remove {GW1}"].note
    preview = drain_preview(collector.inventory, fleet, GW1)
    assert preview is not None
    assert preview.lb_clients == 2
    assert preview.buckets == 128
    assert preview.weight0_new == {None: 128}
    assert preview.removed_clients == {GW2: 2}


def test_gateway_drift_names_what_differs() -> None:
    (normal,) = fleets([NORMAL])
    assert gateway_drift(normal, GW1) == ()
    c0, c1 = normal.clients
    gw2_peer = c0.on(GW2)
    assert isinstance(gw2_peer, PeerOnGateway)
    odd = replace(
        normal,
        clients=(
            replace(c0, per_gateway=(c0.on(GW1), replace(gw2_peer, keepalive=25))),  # type: ignore[arg-type]
            replace(c1, per_gateway=tuple(p for p in c1.per_gateway if p.gateway == GW1)),
        ),
    )
    drift = {(d.what, d.subject): d for d in gateway_drift(odd, GW1)}
    assert drift[("keepalive", "wg-client-0")].here == "15s"
    assert drift[("keepalive", "wg-client-0")].others == f"{GW2}: 25s"
    assert drift[("extra peer", "wg-client-1")].others == f"absent on {GW2}"
    assert ("missing peer", "wg-client-1") in {(d.what, d.subject) for d in gateway_drift(odd, GW2)}


def test_gateway_drift_compares_allowed_ips_as_sets() -> None:
    (normal,) = fleets([NORMAL])
    c0, c1 = normal.clients
    mine, theirs = c0.on(GW1), c0.on(GW2)
    assert mine is not None
    assert theirs is not None
    two = ("10.255.0.2/32", "fd00::2/128")

    def with_ips(here: tuple[str, ...], there: tuple[str, ...]) -> Fleet:
        per = (replace(mine, allowed_ips=here), replace(theirs, allowed_ips=there))
        return replace(normal, clients=(replace(c0, per_gateway=per), c1))

    assert gateway_drift(with_ips(two, two[::-1]), GW1) == ()  # the same set, another order
    (drift,) = gateway_drift(with_ips(two, two[:1]), GW1)
    assert (drift.what, drift.here, drift.others) == (
        "allowed IPs",
        ", ".join(two),
        f"{GW2}: {two[0]}",
    )


# --- theme files --------------------------------------------------------------------------


def test_shipped_themes_load_and_match_the_repo_copies() -> None:
    themes = load_themes([PACKAGE_DIR])
    assert {"dark", "light", "high-contrast"} <= set(themes)
    assert themes["light"].dark is False
    for path in PACKAGE_DIR.glob("*.yaml"):
        assert (REPO_DIR / path.name).read_text() == path.read_text(), path.name


def _hue(colour: str) -> float:
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return colorsys.rgb_to_hsv(r, g, b)[0] * 360


def test_high_contrast_has_no_red_green_pair() -> None:
    colours = load_themes([PACKAGE_DIR])["high-contrast"].colours
    good, bad = _hue(colours["success"]), _hue(colours["error"])
    assert not 70 <= good <= 170, "success must not be a green"
    assert not (bad <= 20), "error must not be a pure red"
    assert not (bad >= 345), "error must not be a pure red"
    assert min(abs(good - bad), 360 - abs(good - bad)) > 90


def test_bad_theme_file_is_refused_with_the_key(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("primary: '#fff'\nprimray: '#000'\n")
    with pytest.raises(ThemeError, match="primray: unknown theme key"):
        parse_theme(path)
    path.write_text("dark: maybe\nprimary: '#fff'\n")
    with pytest.raises(ThemeError, match="dark: expected"):
        parse_theme(path)


def test_connection_window_prepared_by_the_worker_is_reused() -> None:
    (normal,) = fleets([NORMAL])
    index = ConnIndex(normal.conns, {}, normal.taken_at)
    view = ("10.77", 0, True)
    index.prepare(view)
    first = index.select(view)
    assert index.select(view) is first  # the UI thread only reads the cache
    assert index.select(("10.77", 0, False)) is not first


def test_snapshot_builder_prepares_the_shown_selections() -> None:
    collector = SteppedCollector([NORMAL])
    builder = SnapshotBuilder(collector.inventory, collector.stepped_clock)
    builder.conn_query = ("", 3, False)
    builder.client_query = ("wg", 0, True)
    try:
        snapshot = builder.build(collector.read_fleet(), 0.1)
    finally:
        collector.close()
    assert snapshot.conns._selected == {("", 3, False): snapshot.conns.select(("", 3, False))}
    assert snapshot.clients._selected == {("wg", 0, True): snapshot.clients.select(("wg", 0, True))}


def test_snapshot_builder_frees_retired_snapshots_in_the_worker() -> None:
    collector = SteppedCollector([NORMAL, NORMAL])
    builder = SnapshotBuilder(collector.inventory, collector.stepped_clock)
    try:
        first = builder.build(collector.read_fleet(), 0.1)
        builder.retire(first)  # the UI thread, once it shows a newer one
        assert builder._retired == [first]
        builder.build(collector.read_fleet(), 0.1)
    finally:
        collector.close()
    assert builder._retired == []
