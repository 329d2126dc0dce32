"""The fleet builder (`core.fleet_builder`), fed hand-made observations of the seed topology.

Keys are obviously fake strings; no test ever holds anything that looks like a private key.
"""

from __future__ import annotations

import json
from typing import get_args

import pytest

from tests.observations import (
    ALPHA,
    ALPHA_EP,
    BETA_EP,
    GW1,
    GW1_RS,
    GW2,
    GW2_RS,
    GW_KEY,
    NOW,
    VIP,
    conn,
    dest,
    fleet,
    gw_obs,
    healthy_gateways,
    hosts_ok,
    lb_obs,
    make_inventory,
    peer,
    service,
)
from wgconsole.core.fleet import (
    CLIENT_STATUSES,
    REAL_SERVER_STATES,
    SEVERITIES,
    SEVERITY_RANK,
    ClientStatus,
    Finding,
    Fleet,
    RealServerState,
    Severity,
)
from wgconsole.core.fleet_builder import FleetBuilder, build_fleet, client_status, handshake_age
from wgconsole.core.inventory import Inventory
from wgconsole.core.records import (
    Endpoint,
    GatewayObservation,
    HostStatus,
    IpvsService,
    LbObservation,
)
from wgconsole.core.sched import ShTable


def codes(f: Fleet) -> list[str]:
    return [x.code for x in f.findings]


# --- service --------------------------------------------------------------------------


def test_healthy_fleet_has_no_findings() -> None:
    f = fleet()
    assert [x.code for x in f.findings] == ["single-director"]  # its one LB: info
    assert f.service is not None
    assert (f.service.lb, f.service.vip, f.service.port, f.service.protocol) == (
        "wg-lb",
        "172.16.0.1",
        51280,
        "udp",
    )
    assert f.service.flags == ("sh-fallback",)
    assert f.service.sh_fallback
    assert not f.service.sh_port
    assert f.service.expire_nodest_conn is True
    assert f.service.raw.dests == f.service.dests
    assert [c.name for c in f.clients] == ["alpha", "beta"]


def test_service_picks_matching_vip_and_protocol_and_filters_conns() -> None:
    other = IpvsService("udp", Endpoint("172.16.0.2", 51280), "rr", 0)
    tcp = IpvsService("tcp", VIP, "rr", 0)
    stray = conn(Endpoint("10.0.0.9", 1), GW1_RS, virtual=Endpoint("172.16.0.2", 51280))
    lbs = {"wg-lb": lb_obs([other, tcp, service()], conns=[conn(ALPHA_EP, GW1_RS), stray])}
    f = fleet(lbs=lbs)
    assert f.service is not None
    assert f.service.scheduler == "sh"
    assert f.conns == (conn(ALPHA_EP, GW1_RS),)


def test_service_from_first_answering_lb() -> None:
    inv = make_inventory(lbs=("lb-a", "lb-b"))
    f = fleet(inventory=inv, lbs={"lb-a": None, "lb-b": lb_obs(host="lb-b")})
    assert f.service is not None
    assert f.service.lb == "lb-b"


def test_service_not_found() -> None:
    f = fleet(lbs={"wg-lb": lb_obs(services=[])})
    assert f.service is None
    assert f.conns == ()
    assert {rs.state for rs in f.real_servers} == {"missing"}


# --- real servers ---------------------------------------------------------------------


def test_real_servers_in_kernel_order_with_entry_counts() -> None:
    svc = service([dest(GW2_RS, 3, inactive=7, in_packets=5), dest(GW1_RS, 1)])
    conns = [conn(ALPHA_EP, GW1_RS), conn(BETA_EP, GW2_RS), conn(Endpoint("10.1.1.1", 9), GW2_RS)]
    f = fleet(lbs={"wg-lb": lb_obs([svc], conns)})
    first, second = f.real_servers
    assert (first.gateway, first.kernel_index, first.weight, first.lb_entries) == (
        "wg-gateway-02",
        0,
        3,
        2,
    )
    assert (first.inactive_conns, first.in_packets, first.forward) == (7, 5, "masq")
    assert (second.gateway, second.kernel_index, second.lb_entries) == ("wg-gateway-01", 1, 1)
    assert first.state == second.state == "active"


def test_real_server_states() -> None:
    unknown = Endpoint("10.211.55.117", 51280)
    svc = service([dest(GW1_RS, 0), dest(GW2_RS, 0), dest(unknown, 1)])
    conns = [conn(ALPHA_EP, GW1_RS)]
    inv = make_inventory(
        gateways=[
            ("wg-gateway-01", GW1_RS),
            ("wg-gateway-02", GW2_RS),
            ("wg-gateway-03", Endpoint("10.211.55.121", 51280)),
        ]
    )
    gws = healthy_gateways()
    gws["wg-gateway-03"] = gw_obs("wg-gateway-03", [])
    f = fleet(inventory=inv, lbs={"wg-lb": lb_obs([svc], conns)}, gateways=gws)
    states = {(rs.gateway, str(rs.address)): rs.state for rs in f.real_servers}
    assert states == {
        ("wg-gateway-01", "10.211.55.118:51280"): "quiescent",
        ("wg-gateway-02", "10.211.55.119:51280"): "drained",
        (None, "10.211.55.117:51280"): "active",
        ("wg-gateway-03", "10.211.55.121:51280"): "missing",
    }
    missing = f.real_servers[-1]
    assert missing.weight is None
    assert missing.kernel_index is None


def test_real_server_of_unreachable_gateway_keeps_ipvs_data() -> None:
    gws = healthy_gateways()
    gws["wg-gateway-01"] = None
    f = fleet(gateways=gws)
    rs = next(r for r in f.real_servers if r.gateway == "wg-gateway-01")
    assert rs.state == "unreachable"
    assert rs.weight == 1
    assert rs.lb_entries == 1


def test_no_real_server_rows_when_no_lb_answered() -> None:
    f = fleet(lbs={"wg-lb": None})
    assert f.real_servers == ()
    assert f.service is None


def test_inventory_real_server_written_differently_still_matches() -> None:
    v6 = Endpoint("fd00::1:0:0:118", 51280)
    inv = make_inventory(gateways=[("wg-gateway-01", Endpoint("fd00:0::1:0:0:118", 51280))])
    svc = service([dest(v6)])
    gws: dict[str, GatewayObservation | None] = {"wg-gateway-01": gw_obs("wg-gateway-01", [])}
    f = fleet(inventory=inv, lbs={"wg-lb": lb_obs([svc], [])}, gateways=gws)
    assert [(r.gateway, r.state) for r in f.real_servers] == [("wg-gateway-01", "active")]


# --- clients --------------------------------------------------------------------------


def test_lb_gateway_from_conn_table() -> None:
    f = fleet()
    alpha, beta = f.clients
    assert alpha.lb_gateway == "wg-gateway-01"
    assert alpha.lb_entry == conn(ALPHA_EP, GW1_RS)
    assert beta.lb_gateway == "wg-gateway-02"
    assert alpha.endpoint == "10.211.55.10:40001"


def test_lb_entry_found_through_any_gateways_endpoint() -> None:
    moved = Endpoint("10.211.55.10", 40999)
    gws = healthy_gateways()
    gws["wg-gateway-01"] = gw_obs("wg-gateway-01", [peer(ALPHA, ALPHA_EP, 100)])
    gws["wg-gateway-02"] = gw_obs("wg-gateway-02", [peer(ALPHA, moved, 10)])
    f = fleet(lbs={"wg-lb": lb_obs(conns=[conn(ALPHA_EP, GW1_RS)])}, gateways=gws)
    alpha = f.clients[0]
    assert alpha.endpoint == str(moved)  # the freshest handshake's view
    assert alpha.lb_gateway == "wg-gateway-01"
    assert alpha.handshake_gateway == "wg-gateway-02"


def test_unknown_dest_gives_no_lb_gateway_but_keeps_entry() -> None:
    stray = Endpoint("10.211.55.117", 51280)
    f = fleet(lbs={"wg-lb": lb_obs(conns=[conn(ALPHA_EP, stray)])})
    alpha = f.clients[0]
    assert alpha.lb_entry is not None
    assert alpha.lb_gateway is None


def test_handshake_age_uses_the_gateways_own_clock() -> None:
    ahead = NOW + 1000.0
    gws = healthy_gateways(clock2=ahead)
    f = fleet(gateways=gws)
    beta = f.clients[1]
    assert beta.handshake_gateway == "wg-gateway-02"
    assert beta.handshake_age == pytest.approx(40)
    assert beta.status == "fresh"
    gw2 = f.gateway("wg-gateway-02")
    assert gw2 is not None
    assert gw2.clock_skew == pytest.approx(1000)


def test_handshake_age_helper() -> None:
    assert handshake_age(NOW, 0) is None
    assert handshake_age(NOW, int(NOW) - 5) == pytest.approx(5)
    assert handshake_age(NOW, int(NOW) + 1) == 0.0


@pytest.mark.parametrize(
    ("age", "status"),
    [
        (None, "never"),
        (0, "fresh"),
        (119.9, "fresh"),
        (120, "ageing"),
        (180, "ageing"),
        (180.5, "stale"),
        (5000, "stale"),
    ],
)
def test_client_status_thresholds(age: float | None, status: str) -> None:
    assert client_status(age) == status


def test_freshest_handshake_wins_across_gateways() -> None:
    gws = {
        "wg-gateway-01": gw_obs("wg-gateway-01", [peer(ALPHA, ALPHA_EP, 150)]),
        "wg-gateway-02": gw_obs("wg-gateway-02", [peer(ALPHA, ALPHA_EP, 20)]),
    }
    f = fleet(gateways=gws, lbs={"wg-lb": lb_obs(conns=[conn(ALPHA_EP, GW2_RS)])})
    alpha = f.clients[0]
    assert (alpha.handshake_gateway, alpha.status) == ("wg-gateway-02", "fresh")
    assert alpha.handshake_age == pytest.approx(20)
    assert [p.gateway for p in alpha.per_gateway] == ["wg-gateway-01", "wg-gateway-02"]
    on1 = alpha.on("wg-gateway-01")
    assert on1 is not None
    assert on1.handshake_age == pytest.approx(150)


def test_address_from_inventory_else_allowed_ips_and_numeric_sort() -> None:
    inv = make_inventory(
        clients=[("ten", "ten-fake-key", "10.255.0.10"), ("nine", "nine-fake-key", "10.255.0.9/32")]
    )
    peers = [
        peer("ten-fake-key", allowed=("10.255.0.10/32",)),
        peer("nine-fake-key", allowed=("10.255.0.9/32",)),
        peer("extra-fake-key", allowed=("10.9.0.0/16", "10.255.0.4/32")),
        peer("noaddr-fake-key", allowed=("10.9.0.0/16",)),
    ]
    f = fleet(inventory=inv, gateways={"wg-gateway-01": gw_obs("wg-gateway-01", peers)})
    assert [(c.name, c.address) for c in f.clients] == [
        (None, "10.255.0.4"),
        ("nine", "10.255.0.9"),
        ("ten", "10.255.0.10"),
        (None, None),
    ]


def test_inventory_client_on_no_gateway_is_listed_as_never() -> None:
    inv = make_inventory(
        clients=[("alpha", ALPHA, "10.255.0.2"), ("gamma", "gamma-fake-key", "10.255.0.5")]
    )
    f = fleet(inventory=inv)
    gamma = next(c for c in f.clients if c.name == "gamma")
    assert gamma.per_gateway == ()
    assert gamma.status == "never"
    assert "never" in gamma.findings


def test_inventory_clients_not_invented_when_no_gateway_answered() -> None:
    f = fleet(gateways={"wg-gateway-01": None, "wg-gateway-02": None})
    assert f.clients == ()


def test_client_findings_codes_attached() -> None:
    gws = healthy_gateways()
    gws["wg-gateway-01"] = gw_obs("wg-gateway-01", [peer(ALPHA, ALPHA_EP, 500)])
    f = fleet(gateways=gws)
    alpha = f.clients[0]
    assert alpha.status == "stale"
    assert alpha.findings == ("stale",)
    assert f.clients[1].findings == ()


# --- gateways, hosts ------------------------------------------------------------------


def test_gateway_views() -> None:
    gws = healthy_gateways()
    gws["wg-gateway-02"] = None
    hosts = [
        HostStatus("wg-lb", "lb", reachable=True),
        HostStatus("wg-gateway-01", "gateway", reachable=True),
        HostStatus("wg-gateway-02", "gateway", reachable=False, error="ssh: timed out"),
    ]
    f = fleet(gateways=gws, hosts=hosts)
    gw1, gw2 = f.gateways
    assert (gw1.reachable, gw1.link_up, gw1.public_key, gw1.listen_port, gw1.peer_count) == (
        True,
        True,
        GW_KEY,
        51280,
        2,
    )
    assert gw1.clock_skew == 0.0
    assert (gw2.reachable, gw2.public_key, gw2.clock_skew, gw2.error) == (
        False,
        None,
        None,
        "ssh: timed out",
    )


def test_unreachable_host_still_yields_the_rest() -> None:
    gws = healthy_gateways()
    gws["wg-gateway-02"] = None
    hosts = [
        HostStatus("wg-lb", "lb", reachable=True),
        HostStatus("wg-gateway-01", "gateway", reachable=True),
        HostStatus("wg-gateway-02", "gateway", reachable=False, error="connection refused"),
    ]
    f = fleet(gateways=gws, hosts=hosts)
    assert f.service is not None
    assert len(f.real_servers) == 2
    alpha, beta = f.clients
    assert alpha.status == "fresh"
    assert alpha.lb_gateway == "wg-gateway-01"
    # Only the silent gateway knew beta's endpoint, so its LB entry cannot be matched.
    assert beta.status == "never"
    assert beta.endpoint is None
    assert beta.lb_gateway is None
    assert [p.gateway for p in beta.per_gateway] == ["wg-gateway-01"]
    assert codes(f)[0] == "host-unreachable"
    assert f.hosts == tuple(hosts)


# --- findings ordering ----------------------------------------------------------------


def test_findings_sorted_worst_first_then_code_then_subject() -> None:
    gws = healthy_gateways()
    gws["wg-gateway-01"] = gw_obs("wg-gateway-01", [peer(ALPHA, ALPHA_EP, 500)], link_up=False)
    lbs = {"wg-lb": lb_obs([service(flags=0)], expire_nodest_conn=False)}
    f = fleet(lbs=lbs, gateways=gws)
    ranks = [x.rank for x in f.findings]
    assert ranks == sorted(ranks)
    keys = [(x.rank, x.code, x.subject) for x in f.findings]
    assert keys == sorted(keys)
    assert {"interface-down", "sh-no-fallback", "expire-nodest-off", "stale"} <= set(codes(f))


def test_each_vocabulary_is_its_literal_types_values_in_sort_order() -> None:
    assert SEVERITIES == get_args(Severity) == ("critical", "warning", "info")
    assert [SEVERITY_RANK[s] for s in SEVERITIES] == [0, 1, 2]
    assert CLIENT_STATUSES == get_args(ClientStatus) == ("fresh", "ageing", "stale", "never")
    states = ("active", "drained", "quiescent", "evicted", "missing", "unreachable")
    assert REAL_SERVER_STATES == get_args(RealServerState) == states


def test_finding_rank_and_validation() -> None:
    assert Finding("x", "critical", "s", "m").rank < Finding("x", "warning", "s", "m").rank
    assert Finding("x", "warning", "s", "m").rank < Finding("x", "info", "s", "m").rank
    with pytest.raises(ValueError, match="unknown severity 'fatal'"):
        Finding("x", "fatal", "s", "m")  # type: ignore[arg-type]
    assert Finding("x", "info", "s", "m", client_key="k") == Finding("x", "info", "s", "m")


# --- JSON -----------------------------------------------------------------------------


def test_json_shape() -> None:
    gws = healthy_gateways()
    gws["wg-gateway-02"] = None
    f = fleet(gateways=gws)
    doc = f.to_json()
    json.dumps(doc)  # plain JSON types only
    assert set(doc) == {
        "taken_at",
        "service",
        "real_servers",
        "clients",
        "gateways",
        "hosts",
        "findings",
        "load_balancers",
        "vip_holder",
        "failover_lb",
    }
    assert doc["taken_at"] == NOW
    assert set(doc["service"]) == {
        "lb",
        "vip",
        "port",
        "protocol",
        "scheduler",
        "flags",
        "expire_nodest_conn",
    }
    assert doc["service"]["flags"] == ["sh-fallback"]
    assert set(doc["real_servers"][0]) == {
        "gateway",
        "address",
        "weight",
        "forward",
        "state",
        "connections",
        "active_conns",
        "inactive_conns",
        "in_packets",
        "out_packets",
        "in_bytes",
        "out_bytes",
        "kernel_index",
    }
    assert doc["real_servers"][0]["address"] == "10.211.55.119:51280"
    client = doc["clients"][0]
    assert set(client) == {
        "name",
        "public_key",
        "address",
        "endpoint",
        "lb_gateway",
        "handshake_gateway",
        "handshake_age",
        "status",
        "findings",
        "gateways",
        "failover_gateway",
        "failover_synced",
    }
    assert set(client["gateways"]) == {"wg-gateway-01"}
    assert set(client["gateways"]["wg-gateway-01"]) == {
        "endpoint",
        "handshake_age",
        "rx_bytes",
        "tx_bytes",
    }
    assert client["gateways"]["wg-gateway-01"]["endpoint"] == "10.211.55.10:40001"
    assert set(doc["gateways"][0]) == {
        "name",
        "reachable",
        "link_up",
        "public_key",
        "listen_port",
        "peers",
        "clock_skew",
    }
    assert set(doc["hosts"][0]) == {
        "name",
        "role",
        "reachable",
        "error",
        "last_success",
        "last_success_age",
    }
    assert doc["findings"]
    assert set(doc["findings"][0]) == {"code", "severity", "subject", "message"}


def test_json_service_null_when_missing() -> None:
    assert fleet(lbs={"wg-lb": None}).to_json()["service"] is None


def test_snapshot_is_immutable_and_hashable() -> None:
    f = fleet()
    hash(f)
    with pytest.raises(AttributeError):
        f.taken_at = 0.0  # type: ignore[misc]


# --- performance ----------------------------------------------------------------------


def _big_fleet_inputs() -> tuple[
    Inventory, dict[str, LbObservation | None], dict[str, GatewayObservation | None]
]:
    n_clients, n_conns = 5000, 50_000
    rs = [Endpoint(f"10.211.55.{118 + i}", 51280) for i in range(3)]
    names = [f"gw-{i}" for i in range(3)]
    keys = [f"perf-fake-key-{i:05d}" for i in range(n_clients)]
    eps = [Endpoint(f"10.{i // 250}.{i % 250}.7", 40000 + i % 1000) for i in range(n_clients)]
    clients = [(f"c{i}", keys[i], f"10.255.{i // 250}.{i % 250 + 2}") for i in range(n_clients)]
    inv = make_inventory(clients=clients, gateways=list(zip(names, rs, strict=True)))
    svc = service([dest(r) for r in rs])
    # Each client where the sh table sends it (a healthy fleet: no not-on-sh-choice).
    table = ShTable.from_service(svc)
    on = [rs.index(table.pick(e.address).dest) for e in eps]  # type: ignore[arg-type]
    conns = [conn(eps[i], rs[on[i]]) for i in range(n_clients)]
    conns += [
        conn(Endpoint(f"192.0.{i // 250 % 256}.{i % 250}", i % 65535), rs[i % 3])
        for i in range(n_conns - n_clients)
    ]
    gws: dict[str, GatewayObservation | None] = {}
    for g, name in enumerate(names):
        peers = [
            peer(
                keys[i],
                eps[i] if on[i] == g else None,
                30 if on[i] == g else None,
                allowed=(f"10.255.{i // 250}.{i % 250 + 2}/32",),
            )
            for i in range(n_clients)
        ]
        gws[name] = gw_obs(name, peers)
    return inv, {"wg-lb": lb_obs([svc], conns)}, gws


def test_build_fleet_of_5000_clients_and_50000_conns_then_again() -> None:
    # Its speed is measured by `make bench` (parse+model), not asserted here. Built twice:
    # the second build reuses the first one's client views and must give the same fleet.
    inv, lbs, gws = _big_fleet_inputs()
    hosts = hosts_ok(inv)
    builder = FleetBuilder()
    first = builder.build(inv, lbs, gws, hosts, NOW)
    f = builder.build(inv, lbs, gws, hosts, NOW)
    assert len(f.clients) == 5000
    assert len(f.conns) == 50_000
    assert all(c.lb_gateway == c.handshake_gateway for c in f.clients)
    assert [x.code for x in f.findings] == ["single-director"]
    assert f == first


def test_a_builder_gives_what_a_build_from_nothing_gives_whatever_came_before() -> None:
    """A collector's FleetBuilder uses again what its previous build made from the same
    records; every build equals one made from nothing, whatever it built before (the same
    records, a moved gateway clock, a lost LB or gateway, another inventory, in turn)."""
    inv = make_inventory()
    healthy = healthy_gateways()
    gw1, gw2 = healthy[GW1], healthy[GW2]
    assert gw1 is not None
    assert gw2 is not None
    assert gw1.interface is not None
    later = {
        GW1: gw_obs(GW1, gw1.interface.peers, clock=NOW + 200),  # the same peer records
        GW2: gw2,
    }
    lb = lb_obs()
    polls: list[
        tuple[Inventory, dict[str, LbObservation | None], dict[str, GatewayObservation | None]]
    ] = [
        (inv, {"wg-lb": lb}, healthy),
        (inv, {"wg-lb": lb}, healthy),
        (inv, {"wg-lb": None}, healthy),
        (inv, {"wg-lb": lb_obs(conns=[])}, healthy),
        (inv, {"wg-lb": lb}, later),  # type: ignore[list-item]
        (inv, {"wg-lb": lb}, {GW1: gw1, GW2: None}),
        (make_inventory(clients=()), {"wg-lb": lb}, healthy),
        (inv, {"wg-lb": lb}, healthy),
    ]
    builder = FleetBuilder()
    for inventory, lbs, gws in polls:
        hosts = hosts_ok(inventory)
        built = builder.build(inventory, lbs, gws, hosts, NOW)
        assert built == build_fleet(inventory, lbs, gws, hosts, NOW)
    # Nothing changed: the clients are the previous build's very views, and only its own.
    again = builder.build(inv, {"wg-lb": lb}, healthy, hosts_ok(inv), NOW)
    assert all(a is b for a, b in zip(again.clients, built.clients, strict=True))
    elsewhere = FleetBuilder().build(inv, {"wg-lb": lb}, healthy, hosts_ok(inv), NOW)
    assert elsewhere == again
    assert not any(a is b for a, b in zip(elsewhere.clients, again.clients, strict=True))
