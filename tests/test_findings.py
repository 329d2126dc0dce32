"""Every finding code, present and absent, on hand-made observations of the seed topology.

Keys are obviously fake strings; no test ever holds anything that looks like a private key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from tests.observations import (
    ALPHA,
    ALPHA_EP,
    BETA_EP,
    FALLBACK,
    GW1,
    GW1_RS,
    GW2,
    GW2_RS,
    GW_KEY,
    HEALTHY_CONNS,
    alpha_on,
    beta_on,
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
from wgconsole.core.fleet import Finding, Fleet
from wgconsole.core.inventory import Probe
from wgconsole.core.records import (
    Endpoint,
    GatewayObservation,
    HostStatus,
    IpvsService,
    ServiceFlag,
    WgPeer,
)

SERVICE = "udp 172.16.0.1:51280"


def with_code(f: Fleet, code: str) -> list[Finding]:
    return [x for x in f.findings if x.code == code]


def one(f: Fleet, code: str) -> Finding:
    found = with_code(f, code)
    assert len(found) == 1, [x.code for x in f.findings]
    return found[0]


def test_healthy_seed_topology_has_no_findings() -> None:
    # But that its one LB has no second director to fail over to.
    assert [(f.code, f.severity) for f in fleet().findings] == [("single-director", "info")]


# --- sh-no-fallback -------------------------------------------------------------------


def test_sh_without_fallback_is_a_warning_when_all_dests_are_available() -> None:
    f = fleet(lb=lb_obs([service(flags=ServiceFlag.HASHED)]))
    finding = one(f, "sh-no-fallback")
    assert (finding.severity, finding.subject) == ("warning", SERVICE)
    assert "sh-fallback" in finding.message
    assert "half" in finding.message
    assert "-b sh-fallback" in finding.message


def test_sh_without_fallback_is_critical_with_a_weight_0_dest() -> None:
    svc = service([dest(GW2_RS), dest(GW1_RS, weight=0)], flags=ServiceFlag.HASHED)
    finding = one(fleet(lb=lb_obs([svc])), "sh-no-fallback")
    assert finding.severity == "critical"
    assert "10.211.55.118:51280" in finding.message


def test_sh_without_fallback_is_critical_with_an_overloaded_dest() -> None:
    svc = service([dest(GW2_RS, inactive=5, u_threshold=5), dest(GW1_RS)], flags=ServiceFlag.HASHED)
    assert one(fleet(lb=lb_obs([svc])), "sh-no-fallback").severity == "critical"


def test_sh_fix_keeps_sh_port() -> None:
    svc = service(flags=ServiceFlag.SH_PORT)
    assert "-b sh-fallback,sh-port" in one(fleet(lb=lb_obs([svc])), "sh-no-fallback").message


@pytest.mark.parametrize(
    "svc",
    [service(flags=FALLBACK), service(flags=0, scheduler="rr")],
    ids=["fallback-set", "not-sh"],
)
def test_no_sh_no_fallback(svc: IpvsService) -> None:
    assert with_code(fleet(lb=lb_obs([svc])), "sh-no-fallback") == []


# --- expire-nodest-off ----------------------------------------------------------------


def test_expire_nodest_off() -> None:
    finding = one(fleet(lb=lb_obs(expire_nodest_conn=False)), "expire-nodest-off")
    assert (finding.severity, finding.subject) == ("warning", "wg-lb")
    assert "deleted real server" in finding.message


@pytest.mark.parametrize("value", [True, None])
def test_no_expire_nodest_finding_when_on_or_unknown(*, value: bool | None) -> None:
    f = fleet(lb=lb_obs(expire_nodest_conn=value))
    assert with_code(f, "expire-nodest-off") == []


# --- bypassing-lb ---------------------------------------------------------------------


def _roamed_alpha() -> dict[str, GatewayObservation | None]:
    """alpha roamed to gateway-01's own address: its source is not in any LB entry."""
    gws = healthy_gateways()
    roamed = Endpoint("10.211.55.10", 51280)
    gws[GW1] = gw_obs(GW1, [alpha_on(roamed, 10), beta_on(None, None)])
    return gws


def test_bypassing_lb() -> None:
    f = fleet(lb=lb_obs(conns=[conn(BETA_EP, GW2_RS)]), gateways=_roamed_alpha())
    finding = one(f, "bypassing-lb")
    assert (finding.severity, finding.subject) == ("critical", "alpha")
    assert GW1 in finding.message
    assert "10.211.55.10:51280" in finding.message
    assert "bypassing-lb" in f.clients[0].findings
    assert f.clients[1].findings == ()


def test_no_bypass_when_the_lb_has_an_entry() -> None:
    assert with_code(fleet(), "bypassing-lb") == []


def test_no_bypass_when_the_lb_did_not_answer() -> None:
    f = fleet(lb=None, gateways=_roamed_alpha())
    assert with_code(f, "bypassing-lb") == []
    assert one(f, "host-unreachable").subject == "wg-lb"


def test_no_bypass_when_the_service_is_missing() -> None:
    f = fleet(lb=lb_obs([]), gateways=_roamed_alpha())
    assert with_code(f, "bypassing-lb") == []


def test_no_bypass_for_an_old_handshake() -> None:
    gws = healthy_gateways()
    gws[GW1] = gw_obs(GW1, [alpha_on(ALPHA_EP, 181), beta_on(None, None)])
    f = fleet(lb=lb_obs(conns=[conn(BETA_EP, GW2_RS)]), gateways=gws)
    assert with_code(f, "bypassing-lb") == []
    assert one(f, "stale").subject == "alpha"


# --- split ----------------------------------------------------------------------------


def test_split() -> None:
    gws = healthy_gateways()
    gws[GW2] = gw_obs(GW2, [alpha_on(ALPHA_EP, 5), beta_on(BETA_EP, 40)])
    gws[GW1] = gw_obs(GW1, [alpha_on(ALPHA_EP, 100), beta_on(None, None)])
    f = fleet(gateways=gws)
    finding = one(f, "split")
    assert (finding.severity, finding.subject) == ("warning", "alpha")
    assert f"to {GW1}" in finding.message
    assert f"on {GW2}" in finding.message
    assert f.clients[0].lb_gateway == GW1
    assert f.clients[0].handshake_gateway == GW2


def test_no_split_when_lb_and_handshake_agree_or_one_is_unknown() -> None:
    assert with_code(fleet(), "split") == []
    # No LB entry: lb_gateway unknown, so no split (it is a bypass instead).
    f = fleet(lb=lb_obs(conns=[conn(BETA_EP, GW2_RS)]))
    assert with_code(f, "split") == []


# --- stale / never --------------------------------------------------------------------


def test_stale_and_its_threshold() -> None:
    gws = healthy_gateways()
    gws[GW1] = gw_obs(GW1, [alpha_on(ALPHA_EP, 200), beta_on(None, None)])
    gws[GW2] = gw_obs(GW2, [alpha_on(None, None), beta_on(BETA_EP, 180)])
    f = fleet(gateways=gws)
    finding = one(f, "stale")
    assert (finding.severity, finding.subject) == ("warning", "alpha")
    assert "200 s" in finding.message
    assert f.clients[1].status == "ageing"


def test_never() -> None:
    gws = healthy_gateways()
    gws[GW2] = gw_obs(GW2, [alpha_on(None, None), beta_on(BETA_EP, None)])
    finding = one(fleet(gateways=gws), "never")
    assert (finding.severity, finding.subject) == ("info", "beta")


def test_no_never_with_a_handshake_anywhere() -> None:
    assert with_code(fleet(), "never") == []


# --- unknown-peer ---------------------------------------------------------------------


def _with_stranger() -> dict[str, GatewayObservation | None]:
    gws = healthy_gateways()
    stranger = peer("stranger-fake-key", Endpoint("10.211.55.16", 40003), 10, ("10.255.0.9/32",))
    for name in (GW1, GW2):
        obs = gws[name]
        assert obs is not None
        assert obs.interface is not None
        gws[name] = gw_obs(name, [*obs.interface.peers, stranger])
    return gws


def test_unknown_peer() -> None:
    conns = [*HEALTHY_CONNS, conn(Endpoint("10.211.55.16", 40003), GW1_RS)]
    f = fleet(lb=lb_obs(conns=conns), gateways=_with_stranger())
    finding = one(f, "unknown-peer")
    assert (finding.severity, finding.subject) == ("info", "stranger…")
    assert "not in the inventory" in finding.message
    assert finding.message.count(GW1) == 1
    assert GW2 in finding.message


def test_a_probe_peer_is_not_a_client_nor_unknown() -> None:
    conns = [*HEALTHY_CONNS, conn(Endpoint("10.211.55.16", 40003), GW1_RS)]
    inventory = replace(make_inventory(), probes=(Probe("bastion-1", "stranger-fake-key"),))
    f = fleet(inventory=inventory, lb=lb_obs(conns=conns), gateways=_with_stranger())
    assert with_code(f, "unknown-peer") == []
    assert "stranger-fake-key" not in {c.public_key for c in f.clients}
    assert len(f.clients) == len(make_inventory().clients)


def test_no_unknown_peer_when_the_inventory_lists_no_clients() -> None:
    conns = [*HEALTHY_CONNS, conn(Endpoint("10.211.55.16", 40003), GW1_RS)]
    f = fleet(
        inventory=make_inventory(clients=()), lb=lb_obs(conns=conns), gateways=_with_stranger()
    )
    assert with_code(f, "unknown-peer") == []
    assert [x.code for x in f.findings] == ["single-director"]


# --- config-drift ---------------------------------------------------------------------


def _drift(
    gw2_peers: Sequence[WgPeer], public_key: str = GW_KEY, listen_port: int = 51280
) -> Fleet:
    gws = healthy_gateways()
    gws[GW2] = gw_obs(GW2, gw2_peers, public_key=public_key, listen_port=listen_port)
    return fleet(gateways=gws)


GW2_PEERS = (alpha_on(None, None), beta_on(BETA_EP, 40))


def test_no_drift_between_identical_gateways() -> None:
    assert with_code(fleet(), "config-drift") == []


def test_drift_public_key() -> None:
    finding = one(_drift(GW2_PEERS, public_key="othergw-fake-public-key"), "config-drift")
    assert (finding.severity, finding.subject) == ("critical", f"{GW1}, {GW2}")
    assert "public keys differ" in finding.message
    assert "gateway-…" in finding.message
    assert "othergw-…" in finding.message
    assert "othergw-fake-public-key" not in finding.message


def test_drift_listen_port() -> None:
    finding = one(_drift(GW2_PEERS, listen_port=51281), "config-drift")
    assert "Listen ports differ" in finding.message
    assert "51281" in finding.message


def test_drift_peer_set() -> None:
    finding = one(_drift([beta_on(BETA_EP, 40)]), "config-drift")
    assert "Peer sets differ" in finding.message
    assert f"alpha-fa… missing on {GW2}" in finding.message


def test_drift_allowed_ips() -> None:
    peers = [peer(ALPHA, None, None, ("10.255.0.99/32",)), beta_on(BETA_EP, 40)]
    finding = one(_drift(peers), "config-drift")
    assert "allowed IPs differ on 1 peer" in finding.message
    assert "10.255.0.99/32" in finding.message
    assert "alpha-fa…" in finding.message


def test_allowed_ips_order_is_not_drift() -> None:
    two = ("10.255.0.2/32", "10.255.1.0/24")
    gws = {
        GW1: gw_obs(GW1, [peer(ALPHA, ALPHA_EP, 30, two)]),
        GW2: gw_obs(GW2, [peer(ALPHA, None, None, two[::-1])]),
    }
    assert with_code(fleet(gateways=gws), "config-drift") == []


def test_drift_keepalive() -> None:
    peers = [alpha_on(None, None, keepalive=0), beta_on(BETA_EP, 40)]
    finding = one(_drift(peers), "config-drift")
    assert "keepalives differ" in finding.message
    assert f"{GW1}: 15 s" in finding.message
    assert f"{GW2}: off" in finding.message


def test_drift_kinds_are_separate_findings_and_examples_are_capped() -> None:
    many = [peer(f"extra{i:03d}-fake-key") for i in range(5)]
    f = _drift([*GW2_PEERS, *many], listen_port=1)
    drift = with_code(f, "config-drift")
    assert len(drift) == 2
    peer_set = next(x for x in drift if "Peer sets" in x.message)
    assert "5 peer(s)" in peer_set.message
    assert "and 2 more" in peer_set.message


def test_unreachable_gateway_is_not_drift() -> None:
    gws = healthy_gateways()
    gws[GW2] = None
    f = fleet(gateways=gws)
    assert with_code(f, "config-drift") == []


# --- real-server-missing --------------------------------------------------------------


def test_inventory_gateway_missing_from_the_service() -> None:
    f = fleet(lb=lb_obs([service([dest(GW2_RS)])]))
    finding = one(f, "real-server-missing")
    assert (finding.severity, finding.subject) == ("critical", GW1)
    assert "10.211.55.118:51280" in finding.message


def test_service_dest_missing_from_the_inventory() -> None:
    extra = Endpoint("10.211.55.117", 51280)
    f = fleet(lb=lb_obs([service([dest(extra), dest(GW2_RS), dest(GW1_RS)])]))
    finding = one(f, "real-server-missing")
    assert (finding.severity, finding.subject) == ("warning", SERVICE)
    assert "10.211.55.117:51280" in finding.message


def test_service_not_found_on_the_lb() -> None:
    f = fleet(lb=lb_obs([]))
    finding = one(f, "real-server-missing")
    assert (finding.severity, finding.subject) == ("critical", SERVICE)
    assert "wg-lb" in finding.message


def test_no_real_server_findings_when_they_match() -> None:
    assert with_code(fleet(), "real-server-missing") == []


# --- host-unreachable / interface-down ------------------------------------------------


def test_host_unreachable_with_its_error() -> None:
    gws = healthy_gateways()
    gws[GW2] = None
    hosts = [*hosts_ok()[:2], HostStatus(GW2, "gateway", reachable=False, error="ssh: timed out")]
    f = fleet(gateways=gws, hosts=hosts)
    finding = one(f, "host-unreachable")
    assert (finding.severity, finding.subject) == ("critical", GW2)
    assert "ssh: timed out" in finding.message
    # The rest is still there: gateway-01's clients, the LB and its findings-free service.
    assert f.service is not None
    assert f.clients[0].status == "fresh"


def test_host_with_no_observation_and_no_status_is_reported_once() -> None:
    gws = healthy_gateways()
    gws[GW2] = None
    assert one(fleet(gateways=gws), "host-unreachable").subject == GW2


def test_no_host_unreachable_when_all_answer() -> None:
    assert with_code(fleet(), "host-unreachable") == []


def test_interface_down() -> None:
    gws = healthy_gateways()
    gws[GW1] = gw_obs(GW1, [], link_up=False, interface=False, error="wg0 is down")
    finding = one(fleet(gateways=gws), "interface-down")
    assert (finding.severity, finding.subject) == ("critical", GW1)
    assert "is down" in finding.message
    assert "wg0 is down" in finding.message


def test_interface_missing() -> None:
    gws = healthy_gateways()
    gws[GW1] = gw_obs(GW1, [], link_up=None, interface=False)
    assert "does not exist" in one(fleet(gateways=gws), "interface-down").message


def test_no_interface_down_for_an_unreachable_gateway() -> None:
    gws = healthy_gateways()
    gws[GW1] = None
    assert with_code(fleet(gateways=gws), "interface-down") == []


# --- subjects -------------------------------------------------------------------------


def test_client_subject_is_the_short_key_without_a_name() -> None:
    gws = {GW1: gw_obs(GW1, [peer("nameless-fake-key")])}
    f = fleet(inventory=make_inventory(clients=()), gateways=gws)
    assert one(f, "never").subject == "nameless…"
