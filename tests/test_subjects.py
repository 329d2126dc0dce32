"""Rows carry their subject: what the console acts on when the row is selected.

Built where the rows are built (wgconsole.view), so these run without a terminal; the
console's side (the selected row's subject, one lookup) is tests/test_app_selection.py.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.console_support import GW2_UNREACHABLE, LAB, NORMAL, SteppedCollector, fleets
from wgconsole.core.fleet import Finding
from wgconsole.view.directors import director_rows
from wgconsole.view.finding_groups import FOLD_ABOVE, fold_findings
from wgconsole.view.freshness import Keeper, host_ages
from wgconsole.view.rates import RateTracker
from wgconsole.view.rows.clients import client_rows
from wgconsole.view.rows.connections import ConnIndex, entry_clients
from wgconsole.view.rows.detail_tables import peer_rows
from wgconsole.view.rows.overview import finding_rows, host_rows, server_rows
from wgconsole.view.snapshot import SnapshotBuilder
from wgconsole.view.subjects import (
    ClientSubject,
    DirectorSubject,
    FindingSubject,
    GatewaySubject,
    LbEntrySubject,
)

GW1 = "wg-gateway-01"
GW2 = "wg-gateway-02"
PAIR_NORMAL = LAB / "pair-normal"


def test_a_client_row_is_about_its_client() -> None:
    (normal,) = fleets([NORMAL])
    rows = client_rows(normal, RateTracker().update(normal), Keeper().update(normal), 0.0)
    assert [r.subject for r in rows] == [ClientSubject(c.public_key) for c in normal.clients]


def test_a_real_server_row_is_about_its_gateway() -> None:
    (normal,) = fleets([NORMAL])
    rows = server_rows(normal, RateTracker().update(normal), Keeper().update(normal), 0.0)
    assert {r.key: r.subject for r in rows} == {
        str(rs.address): GatewaySubject(rs.gateway) for rs in normal.real_servers if rs.gateway
    }
    assert {GatewaySubject(GW1), GatewaySubject(GW2)} == {r.subject for r in rows}


def test_a_real_server_not_in_the_inventory_is_about_nothing() -> None:
    (normal,) = fleets([NORMAL])
    stranger = replace(normal.real_servers[0], gateway=None)
    fleet = replace(normal, real_servers=(stranger, *normal.real_servers[1:]))
    rows = server_rows(fleet, RateTracker().update(fleet), Keeper().update(fleet), 0.0)
    assert rows[0].subject is None
    assert rows[1].subject == GatewaySubject(normal.real_servers[1].gateway or "")


def test_a_lost_lbs_kept_real_server_rows_are_about_nothing() -> None:
    # As before subjects: the console acted only on the real servers the LB reports now.
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
    rows = server_rows(lost, RateTracker().update(lost), kept, lost.taken_at)
    assert rows
    assert all(r.subject is None for r in rows)


def test_a_host_row_is_about_its_gateway_or_its_lb() -> None:
    (normal,) = fleets([NORMAL])
    rows = host_rows(host_ages(normal.hosts, normal.taken_at))
    assert {r.key: r.subject for r in rows} == {
        "wg-lb": DirectorSubject("wg-lb"),
        GW1: GatewaySubject(GW1),
        GW2: GatewaySubject(GW2),
    }


def test_a_director_row_is_about_its_lb() -> None:
    (pair,) = fleets([PAIR_NORMAL])
    rows = director_rows(pair)
    assert len(rows) == 2
    assert [r.subject for r in rows] == [DirectorSubject(v.name) for v in pair.load_balancers]


def test_an_lb_entry_row_is_about_the_client_whose_entry_it_is() -> None:
    (normal,) = fleets([NORMAL])
    index = ConnIndex(normal.conns, {}, normal.taken_at, entry_clients(normal))
    by_entry = {
        (c.lb_entry.client, c.lb_entry.virtual, c.lb_entry.dest): c.public_key
        for c in normal.clients
        if c.lb_entry is not None
    }
    assert len(by_entry) == len(normal.conns) == 2
    for i, conn in enumerate(normal.conns):
        subject = index.row(i, normal.taken_at).subject
        public_key = by_entry[(conn.client, conn.virtual, conn.dest)]
        assert subject == LbEntrySubject(ClientSubject(public_key))


def test_an_lb_entry_of_no_known_client_is_about_no_client() -> None:
    (normal,) = fleets([NORMAL])
    index = ConnIndex(normal.conns, {}, normal.taken_at, entry_clients(normal))
    other = replace(normal.conns[0], client=replace(normal.conns[0].client, port=1))
    alone = ConnIndex((other,), {}, normal.taken_at, entry_clients(normal))
    assert alone.row(0, normal.taken_at).subject == LbEntrySubject(None)
    # Without the clients' entries (the default), no entry names a client.
    bare = ConnIndex(normal.conns, {}, normal.taken_at)
    assert bare.row(0, normal.taken_at).subject == LbEntrySubject(None)
    assert index.row(0, normal.taken_at).subject != LbEntrySubject(None)


def test_an_lb_entry_is_matched_on_the_whole_address_not_its_text() -> None:
    # The key's text of an entry from 11.2.3.4 ends with that of one from 1.2.3.4.
    (normal,) = fleets([NORMAL])
    conn = normal.conns[0]
    near = replace(conn, client=replace(conn.client, address="1" + conn.client.address))
    index = ConnIndex((near,), {}, normal.taken_at, entry_clients(normal))
    assert index.row(0, normal.taken_at).subject == LbEntrySubject(None)


def test_a_finding_is_about_its_client_its_gateway_or_only_its_text() -> None:
    (lost,) = fleets([GW2_UNREACHABLE])
    client = lost.clients[0]
    gone = "x" * 43 + "="
    extra = (
        Finding("handshake-stale", "warning", client.label, "late", client_key=client.public_key),
        Finding("handshake-stale", "warning", "ghost", "gone", client_key=gone),
    )
    fleet = replace(lost, findings=lost.findings + extra)
    rows = finding_rows(fold_findings(fleet.findings), fleet, {GW1, GW2})
    about = {(r.cells[1].text, r.cells[2].text): r.subject for r in rows}
    assert about[("host-unreachable", GW2)] == FindingSubject(
        "host-unreachable",
        "critical",
        lost.findings[0].message,
        GatewaySubject(GW2),
    )
    assert about[("handshake-stale", client.label)] == FindingSubject(
        "handshake-stale", "warning", "late", ClientSubject(client.public_key)
    )
    # A client no longer in the fleet, the LB, the service: only the finding's text.
    assert about[("handshake-stale", "ghost")] == FindingSubject(
        "handshake-stale", "warning", "gone"
    )
    sh = next(f for f in lost.findings if f.code == "sh-no-fallback")
    assert about[("sh-no-fallback", sh.subject)] == FindingSubject(
        "sh-no-fallback", "warning", sh.message
    )
    assert about[("expire-nodest-off", "wg-lb")].about is None  # type: ignore[union-attr]
    # Without a fleet and gateways (the default) a finding is about its text only.
    assert all(r.subject.about is None for r in finding_rows(fold_findings(fleet.findings)))  # type: ignore[union-attr]


def test_a_group_of_clients_findings_is_about_its_code() -> None:
    (normal,) = fleets([NORMAL])
    many = tuple(
        Finding("handshake-never", "warning", f"client-{i}", f"never {i}", client_key=f"k{i}")
        for i in range(FOLD_ABOVE + 1)
    )
    fleet = replace(normal, findings=many)
    (row,) = finding_rows(fold_findings(fleet.findings), fleet, {GW1, GW2})
    subject = row.subject
    assert isinstance(subject, FindingSubject)
    assert (subject.code, subject.severity, subject.group, subject.about) == (
        "handshake-never",
        "warning",
        True,
        None,
    )
    assert subject.message == row.cells[3].text


def test_peer_rows_of_a_gateway_detail_are_about_nothing() -> None:
    (normal,) = fleets([NORMAL])
    rows, _ = peer_rows(normal, GW1, Keeper().update(normal), 0.0)
    assert rows
    assert all(r.subject is None for r in rows)


@pytest.mark.parametrize("frames", [[NORMAL], [NORMAL, GW2_UNREACHABLE]], ids=["normal", "lost"])
def test_a_snapshot_s_rows_carry_their_subjects(frames: list[object]) -> None:
    collector = SteppedCollector(frames)  # type: ignore[arg-type]
    try:
        builder = SnapshotBuilder(collector.inventory, collector.stepped_clock)
        for _ in frames:
            snapshot = builder.build(collector.fleet(collector.poll()), 0.0)
    finally:
        collector.close()
    fleet = snapshot.fleet
    clients = snapshot.clients.select(("", None, False))
    assert {r.subject for r in clients.window(0, len(clients))} == {
        ClientSubject(c.public_key) for c in fleet.clients
    }
    assert {r.subject for r in snapshot.servers} == {GatewaySubject(GW1), GatewaySubject(GW2)}
    conns = snapshot.conns.rows(("", None, False), fleet.taken_at)
    assert {r.subject for r in conns.window(0, len(conns))} == {
        LbEntrySubject(ClientSubject(c.public_key)) for c in fleet.clients
    }
    subjects = [r.subject for r in snapshot.findings]
    assert all(isinstance(s, FindingSubject) for s in subjects)
    findings = {s.code: s for s in subjects if isinstance(s, FindingSubject)}
    if len(frames) > 1:
        assert findings["host-unreachable"].about == GatewaySubject(GW2)
    assert findings["single-director"].about is None
