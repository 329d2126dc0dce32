"""The director pair's model: VIP holder, per-LB sh tables, buckets_differing, failover
gateways, the pair's findings and the `status --json` contract."""

from __future__ import annotations

import json
from dataclasses import replace

from tests.observations import (
    ALPHA_EP,
    BETA_EP,
    GW1,
    GW1_RS,
    GW2,
    GW2_RS,
    HEALTHY_CONNS,
    VIP,
    conn,
    dest,
    fleet,
    lb_obs,
    make_inventory,
    service,
)
from wgconsole.core.director import vrrp_instance
from wgconsole.core.fleet import Fleet
from wgconsole.core.records import (
    IpvsTimeouts,
    KeepalivedRealServer,
    KeepalivedReport,
    KeepalivedVirtualServer,
    LbObservation,
    SyncDaemon,
    VrrpInstance,
    VrrpState,
    VsSysctls,
)
from wgconsole.core.sched import bucket_of
from wgconsole.view.finding_groups import FindingGroup, fold_findings

LB1, LB2 = "wg-lb-1", "wg-lb-2"
PAIR = make_inventory(lbs=(LB1, LB2))
HOLDER_ORDER = (dest(GW2_RS), dest(GW1_RS))  # gateway-01 added first, gateway-02 after it
OTHER_ORDER = (dest(GW1_RS), dest(GW2_RS))  # the same two dests re-added the other way round


def keepalived(state: VrrpState, priority: int) -> KeepalivedReport:
    instance = VrrpInstance("VI_1", state, priority, priority, 51, "eth0", (VIP.address,))
    return KeepalivedReport("json", (instance,), "/etc/keepalived/keepalived.conf", ())


def director(
    host: str,
    *,
    holds: bool,
    state: VrrpState,
    priority: int,
    dests: tuple = HOLDER_ORDER,  # type: ignore[type-arg]
    conns: tuple = HEALTHY_CONNS,  # type: ignore[type-arg]
    daemon: SyncDaemon | None = None,
) -> LbObservation:
    addresses = ("127.0.0.1", "10.0.0.9", *((VIP.address,) if holds else ()))
    role = "master" if holds else "backup"
    return replace(
        lb_obs(services=[service(dests)], conns=conns, host=host),
        addresses=addresses,
        sync_daemons=(daemon or SyncDaemon(role, "eth0", 1),),  # type: ignore[arg-type]
        timeouts=IpvsTimeouts(900, 120, 300),
        sysctls=VsSysctls((("sync_threshold", "3 50"), ("sync_version", "1"))),
        keepalived=keepalived(state, priority),
    )


def pair(backup: LbObservation | None = None, holder: LbObservation | None = None) -> Fleet:
    holder = holder or director(LB1, holds=True, state="MASTER", priority=150)
    backup = backup or director(LB2, holds=False, state="BACKUP", priority=100, conns=())
    return fleet(inventory=PAIR, lbs={LB1: holder, LB2: backup})


def codes(f: Fleet) -> list[str]:
    return [x.code for x in f.findings]


def test_identical_pair_agrees_everywhere() -> None:
    f = pair(backup=director(LB2, holds=False, state="BACKUP", priority=100))
    one, two = f.load_balancers
    assert (f.vip_holder, f.failover_lb) == (LB1, LB2)
    assert (one.holds_vip, one.vrrp_state, one.buckets_differing, one.is_reference) == (
        True,
        "MASTER",
        0,
        True,
    )
    assert (two.holds_vip, two.vrrp_state, two.buckets_differing, two.synced_clients) == (
        False,
        "BACKUP",
        0,
        2,
    )
    assert one.table is not None
    assert len(one.table) == 256
    assert one.table == two.table
    assert {c.name: (c.failover_gateway, c.failover_synced) for c in f.clients} == {
        "alpha": (GW1, True),
        "beta": (GW2, True),
    }
    assert codes(f) == []


def test_planted_mismatch_differs_in_every_bucket_with_identical_listings() -> None:
    """Two dests of weight 1 re-added in the other order: `ipvsadm -Ln` (sorted by address)
    prints the same, and every one of the 256 buckets goes to the other gateway."""
    backup_obs = director(
        LB2, holds=False, state="BACKUP", priority=100, dests=OTHER_ORDER, conns=()
    )
    f = pair(backup=backup_obs)
    holder, backup = f.load_balancers
    assert holder.service is not None
    assert backup.service is not None
    assert sorted(map(str, (d.endpoint for d in holder.service.dests))) == sorted(
        map(str, (d.endpoint for d in backup.service.dests))
    )
    assert backup.buckets_differing == 256
    # No synced entry on the backup: each client follows the backup's table, where the fill
    # gives bucket b to the b-th dest of its kernel order, round robin (weights 1).
    expected = {}
    for name, source in (("alpha", ALPHA_EP), ("beta", BETA_EP)):
        first = bucket_of(source.address) % 2 == 0
        expected[name] = (GW1 if first else GW2, False)
    assert {c.name: (c.failover_gateway, c.failover_synced) for c in f.clients} == expected
    # On the holder the same buckets go the other way: every client would move.
    assert all(c.failover_gateway != c.lb_gateway for c in f.clients)
    table = next(x for x in f.findings if x.code == "backup-table-differs")
    assert table.subject == LB2
    assert "256/256 buckets" in table.message
    assert "2 client(s) without a synced entry would change gateway now (alpha, beta)" in (
        table.message
    )
    # The fix re-adds the holder's dests oldest first, so that they end in its order.
    assert table.message.index(f"-r {GW1_RS} -m -w 1") < table.message.index(f"-r {GW2_RS} -m")
    assert codes(f).count("failover-moves") == 2
    assert codes(f).count("no-synced-entry") == 2


def test_synced_entry_wins_over_the_backups_table() -> None:
    synced = (conn(ALPHA_EP, GW1_RS),)
    f = pair(
        backup=director(
            LB2, holds=False, state="BACKUP", priority=100, dests=OTHER_ORDER, conns=synced
        )
    )
    views = {c.name: c for c in f.clients}
    assert (views["alpha"].failover_gateway, views["alpha"].failover_synced) == (GW1, True)
    assert views["beta"].failover_synced is False
    assert f.load_balancers[1].synced_clients == 1


def test_dropped_when_the_backups_bucket_is_unavailable() -> None:
    """Weight 0 without sh-fallback: the backup drops the clients hashed to that dest."""
    drained = (dest(GW2_RS), dest(GW1_RS, weight=0))
    backup = director(LB2, holds=False, state="BACKUP", priority=100, dests=drained)
    backup = replace(backup, services=(service(drained, flags=0x02),), conns=())
    f = pair(backup=backup)
    for c in f.clients:
        bucket = bucket_of(ALPHA_EP.address if c.name == "alpha" else BETA_EP.address)
        # Kernel order (gateway-02, gateway-01): odd buckets hold gateway-01, weight 0.
        assert c.failover_gateway == (None if bucket % 2 else GW2)


def test_many_movers_are_folded_into_one_group() -> None:
    clients = [(f"c{i}", f"key-{i:03d}", f"10.255.0.{i + 10}") for i in range(12)]
    inventory = make_inventory(clients=clients, lbs=(LB1, LB2))
    from tests.observations import gw_obs, peer

    sources = [ALPHA_EP.__class__(f"10.211.56.{i + 10}", 40000 + i) for i in range(12)]
    conns = tuple(conn(s, GW2_RS) for s in sources)
    peers = [peer(k, s, 10, (f"{a}/32",)) for (_, k, a), s in zip(clients, sources, strict=True)]
    holder = director(LB1, holds=True, state="MASTER", priority=150, conns=conns)
    backup = director(LB2, holds=False, state="BACKUP", priority=100, dests=OTHER_ORDER, conns=())
    f = fleet(
        inventory=inventory,
        lbs={LB1: holder, LB2: backup},
        gateways={GW1: gw_obs(GW1, []), GW2: gw_obs(GW2, peers)},
    )
    movers = [c for c in f.clients if c.failover_gateway != c.lb_gateway]
    assert movers
    assert all(c.failover_gateway == GW1 for c in movers)
    shown = fold_findings(f.findings)
    groups = [g for g in shown if isinstance(g, FindingGroup) and g.code == "failover-moves"]
    if len(movers) > 5:
        assert len(groups) == 1
        assert len(groups[0].findings) == len(movers)


def test_vip_on_both_and_on_none() -> None:
    both = pair(backup=director(LB2, holds=True, state="MASTER", priority=100))
    assert "vip-held-twice" in codes(both)
    none = pair(holder=director(LB1, holds=False, state="BACKUP", priority=150))
    assert "vip-held-by-none" in codes(none)
    # No holder: the one VRRP MASTER is the reference (there is none here: the first LB).
    assert none.vip_holder == LB1


def test_sync_daemon_missing_or_one_sided() -> None:
    no_receiver = director(
        LB2, holds=False, state="BACKUP", priority=100, daemon=SyncDaemon("master", "eth0", 1)
    )
    f = pair(backup=no_receiver)
    (finding,) = [x for x in f.findings if x.code == "sync-daemon-missing"]
    assert "runs no backup sync daemon" in finding.message
    assert "--start-daemon" in finding.message
    other_id = director(
        LB2, holds=False, state="BACKUP", priority=100, daemon=SyncDaemon("backup", "eth0", 2)
    )
    assert "syncids differ" in next(
        x.message for x in pair(backup=other_id).findings if x.code == "sync-daemon-missing"
    )


def _sync_finding(backup_daemon: SyncDaemon, master_daemon: SyncDaemon) -> str | None:
    holder = director(LB1, holds=True, state="MASTER", priority=150, daemon=master_daemon)
    backup = director(LB2, holds=False, state="BACKUP", priority=100, daemon=backup_daemon)
    found = [x for x in pair(backup=backup, holder=holder).findings]
    return next((x.message for x in found if x.code == "sync-daemon-missing"), None)


def test_sync_daemons_that_cannot_hear_each_other_are_found_beyond_the_syncid() -> None:
    """Issue 22 (suspicion, holds): only syncids were compared. The kernel's backup takes
    every syncid when its own is 0, listens on its group and port only, and drops a message
    longer than its maxlen (ip_vs_sync.c)."""
    master = SyncDaemon("master", "eth0", 51, maxlen=1472)
    assert _sync_finding(SyncDaemon("backup", "ens3", 51, maxlen=1472), master) is None
    assert _sync_finding(SyncDaemon("backup", "eth0", 0), master) is None
    group = _sync_finding(SyncDaemon("backup", "eth0", 51, group="239.1.1.1"), master)
    assert group is not None
    assert "different multicast groups" in group
    assert "224.0.0.81:8848" in group
    assert "239.1.1.1:8848" in group
    port = _sync_finding(SyncDaemon("backup", "eth0", 51, port=9000), master)
    assert port is not None
    assert "different multicast groups" in port
    short = _sync_finding(SyncDaemon("backup", "eth0", 51, maxlen=1024), master)
    assert short is not None
    assert "up to 1472 bytes" in short
    assert "at most 1024" in short


def test_director_drift_names_what_differs() -> None:
    weights = (dest(GW2_RS, weight=2), dest(GW1_RS))
    backup = director(LB2, holds=False, state="BACKUP", priority=100, dests=weights)
    backup = replace(
        backup,
        services=(service(weights, flags=0x02),),
        timeouts=IpvsTimeouts(900, 120, 60),
        sysctls=VsSysctls((("sync_threshold", "3 50"), ("sync_version", "0"))),
    )
    (finding,) = [x for x in pair(backup=backup).findings if x.code == "director-drift"]
    for part in (
        "flags none (holder: sh-fallback)",
        f"weights {GW2_RS} 2 (holder: 1)",
        "net.ipv4.vs.sync_version 0 (holder: 1)",
        "timeouts tcp/tcpfin/udp 900/120/60 (holder: 900/120/300)",
    ):
        assert part in finding.message


def test_keepalived_drift_when_a_reload_would_change_the_kernel() -> None:
    config = KeepalivedVirtualServer(
        "udp",
        VIP,
        "sh",
        0x08,
        (
            KeepalivedRealServer(GW1_RS, 1, inhibit_on_failure=False),
            KeepalivedRealServer(GW2_RS, 1, inhibit_on_failure=False),
        ),
    )
    holder = director(LB1, holds=True, state="MASTER", priority=150)
    assert holder.keepalived is not None
    drained = (dest(GW2_RS), dest(GW1_RS, weight=0))
    holder = replace(
        holder,
        services=(service(drained),),
        keepalived=replace(holder.keepalived, virtual_servers=(config,)),
    )
    f = pair(holder=holder)
    assert f.load_balancers[0].keepalived_managed is True
    (finding,) = [x for x in f.findings if x.code == "keepalived-drift"]
    assert f"sets weights {GW1_RS} 0 -> 1" in finding.message
    assert f.to_json()["load_balancers"][0]["keepalived_restores"] == [
        {"address": str(GW1_RS), "weight": 1},
        {"address": str(GW2_RS), "weight": 1},
    ]
    assert f.load_balancers[1].keepalived_managed is False


def test_single_director() -> None:
    f = fleet()
    (lb,) = f.load_balancers
    assert (lb.name, lb.is_reference, lb.buckets_differing, f.failover_lb) == (
        "wg-lb",
        True,
        0,
        None,
    )
    assert all(c.failover_gateway is None and c.failover_synced is None for c in f.clients)
    assert [(x.code, x.severity) for x in f.findings] == [("single-director", "info")]


def test_status_json_contract() -> None:
    data = json.loads(json.dumps(pair().to_json()))
    for key in ("taken_at", "service", "real_servers", "clients", "gateways", "hosts", "findings"):
        assert key in data
    one, two = data["load_balancers"]
    assert one == one | {
        "name": LB1,
        "reachable": True,
        "holds_vip": True,
        "vrrp_state": "MASTER",
        "sync_daemon": {"master": {"interface": "eth0", "syncid": 1}, "backup": None},
        "buckets_differing": 0,
    }
    assert two == two | {"name": LB2, "holds_vip": False, "vrrp_state": "BACKUP"}
    assert {c["name"]: c["failover_gateway"] for c in data["clients"]} == {
        "alpha": GW1,
        "beta": GW2,
    }
    single = json.loads(json.dumps(fleet().to_json()))
    (lb,) = single["load_balancers"]
    assert lb == lb | {"holds_vip": False, "vrrp_state": None, "sync_daemon": None}
    assert {c["failover_gateway"] for c in single["clients"]} == {None}


def test_unanswering_backup() -> None:
    f = fleet(
        inventory=PAIR, lbs={LB1: director(LB1, holds=True, state="MASTER", priority=1), LB2: None}
    )
    _, two = f.load_balancers
    assert (two.reachable, two.buckets_differing, two.holds_vip) == (False, None, None)
    assert f.failover_lb is None
    assert all(c.failover_gateway is None for c in f.clients)


def test_hosts_text_in_the_directors_table_is_printable() -> None:
    """An interface name or sysctl value is the host's text: shown escaped, never obeyed."""
    from rich.console import Console

    from wgconsole.cli.status_text import print_status

    hostile = director(
        LB2, holds=False, state="BACKUP", priority=100, daemon=SyncDaemon("backup", "\x1b[2J", 1)
    )
    hostile = replace(hostile, sysctls=VsSysctls((("sync_version", "1\x1b]52;c;x\x07"),)))
    console = Console(record=True, width=250, force_terminal=False)
    print_status(pair(backup=hostile), console)
    out = console.export_text()
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "backup \\x1b[2J id 1" in out
    assert "\\x1b]52;c;x\\x07" in out  # in the director-drift finding


def test_the_backup_that_takes_over_is_the_highest_vrrp_priority_able_to() -> None:
    three = make_inventory(lbs=(LB1, LB2, "wg-lb-3"))
    lbs = {
        LB1: director(LB1, holds=True, state="MASTER", priority=150),
        LB2: director(LB2, holds=False, state="BACKUP", priority=90, conns=()),
        "wg-lb-3": director("wg-lb-3", holds=False, state="BACKUP", priority=120, conns=()),
    }
    assert fleet(inventory=three, lbs=lbs).failover_lb == "wg-lb-3"
    lbs["wg-lb-3"] = director("wg-lb-3", holds=False, state="FAULT", priority=200, conns=())
    assert fleet(inventory=three, lbs=lbs).failover_lb == LB2


def _with_instances(*instances: VrrpInstance) -> LbObservation:
    report = KeepalivedReport("json", instances, "/etc/keepalived/keepalived.conf", ())
    return replace(director(LB1, holds=True, state="MASTER", priority=150), keepalived=report)


def test_the_vips_instance_is_the_one_listing_it_never_a_guess() -> None:
    """Issue 22 (suspicion): with several instances and none listing the VIP (it may be in
    virtual_ipaddress_excluded), the first one's state and priority were taken for the
    VIP's. Now: the one listing it; the only one; else unknown."""
    ours = VrrpInstance("VI_WG", "MASTER", 150, 150, 51, "eth0", (VIP.address,))
    other = VrrpInstance("VI_DB", "BACKUP", 90, 90, 52, "eth0", ("10.9.9.9",))
    unlisted = replace(ours, vips=())
    assert vrrp_instance(_with_instances(other, ours), VIP.address) == ours
    assert vrrp_instance(_with_instances(unlisted), VIP.address) == unlisted
    assert vrrp_instance(_with_instances(other, unlisted), VIP.address) is None
    assert vrrp_instance(_with_instances(), VIP.address) is None
