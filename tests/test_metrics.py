"""`wgconsole metrics`: the exposition of recorded fleets, the names as a contract, hostile label
values, the site label, monotonic byte counters, and the HTTP server that never polls per
scrape. The alert rules are tests/test_alert_rules.py; the real Prometheus is
tests/lab/test_metrics_lab.py.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.console_support import GW2_UNREACHABLE, NORMAL, WEIGHT0, WG_DOWN, SteppedCollector
from tests.fakeworld import FAKE_PRIVATE, world_for_cli
from tests.observations import (
    ALPHA,
    ALPHA_EP,
    BETA,
    GW1,
    GW2,
    NOW,
    alpha_on,
    beta_on,
    gw_obs,
    hosts_ok,
    make_inventory,
    peer,
)
from wgconsole.cli.main import main
from wgconsole.config.inventory_file import InventoryError, load_inventory
from wgconsole.core.fleet import Finding, Fleet
from wgconsole.core.fleet_builder import FleetBuilder
from wgconsole.core.records import GatewayObservation, HostStatus, LbObservation, WgPeer
from wgconsole.export.counters import ByteCounters
from wgconsole.export.exposition import Renderer, render
from wgconsole.export.families import FAMILIES, MAX_UNNAMED, build_families
from wgconsole.export.server import (
    MIN_DEADLINE,
    Exporter,
    make_server,
    observations,
    parse_listen,
    poll_deadline,
)
from wgconsole.poll.collector import FleetCollector
from wgconsole.poll.replay import replay_factory

LB = "wg-lb"
PAIR_NORMAL = NORMAL.parent / "pair-normal"
PAIR_REORDERED = NORMAL.parent / "pair-backup-reordered"
CLIENT0, CLIENT1 = "wg-client-0", "wg-client-1"
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(body: bytes) -> Series:
    """Every sample of an exposition, by (name, labels), read by prometheus-client's parser."""
    out: Series = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in out, f"duplicate series {key}"
            out[key] = sample.value
    return out


def value(series: Series, name: str, **labels: str) -> float | None:
    return series.get((name, frozenset(labels.items())))


def named(series: Series, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in series.items() if n == name}


def exporter_over(*frames: Path) -> tuple[Exporter, SteppedCollector]:
    collector = SteppedCollector(frames)
    return Exporter(collector, interval=2.0), collector


# --- the contract ---------------------------------------------------------------------------


def test_the_metric_names_and_labels_are_the_contract() -> None:
    # Dashboards and the alert rules use these: a change here is a breaking change.
    assert {spec.name: spec.labels for spec in FAMILIES} == {
        "wgconsole_client_handshake_age_seconds": ("client", "gateway"),
        "wgconsole_client_never_seen": ("client",),
        "wgconsole_client_info": (
            "client",
            "public_key",
            "address",
            "lb_gateway",
            "handshake_gateway",
        ),
        "wgconsole_client_receive_bytes_total": ("client",),
        "wgconsole_client_transmit_bytes_total": ("client",),
        "wgconsole_real_server_weight": ("lb", "gateway"),
        "wgconsole_real_server_connections": ("lb", "gateway"),
        "wgconsole_real_server_present": ("lb", "gateway"),
        "wgconsole_lb_sh_fallback": ("lb",),
        "wgconsole_lb_expire_nodest_conn": ("lb",),
        "wgconsole_lb_holds_vip": ("lb",),
        "wgconsole_lb_buckets_differing": ("lb",),
        "wgconsole_host_up": ("host", "role"),
        "wgconsole_host_data_age_seconds": ("host",),
        "wgconsole_gateway_interface_up": ("gateway",),
        "wgconsole_gateway_drained": ("gateway",),
        "wgconsole_finding": ("code", "severity", "subject"),
        "wgconsole_poll_duration_seconds": (),
        "wgconsole_poll_timestamp_seconds": (),
        "wgconsole_probe_success": ("target",),
        "wgconsole_probe_rtt_seconds": ("target",),
        "wgconsole_unnamed_peers_not_exported": (),
    }
    counters = {spec.name for spec in FAMILIES if spec.kind == "counter"}
    assert counters == {
        "wgconsole_client_receive_bytes_total",
        "wgconsole_client_transmit_bytes_total",
    }


def test_every_family_has_help_and_type_even_without_samples() -> None:
    exporter, _ = exporter_over(GW2_UNREACHABLE)
    text = exporter.poll_once().body().decode()
    for spec in FAMILIES:
        assert f"# HELP {spec.name} " in text
        assert f"# TYPE {spec.name} {spec.kind}" in text


# --- recorded fleets ------------------------------------------------------------------------


def test_a_recorded_healthy_fleet_is_exported_as_the_model_sees_it() -> None:
    exporter, collector = exporter_over(NORMAL)
    body = exporter.poll_once().body()
    series = parse(body)
    fleet = collector.read_fleet()  # the same capture again: the same model
    for client in fleet.clients:
        assert client.name
        assert client.handshake_gateway
        assert client.handshake_age is not None
        age = value(
            series,
            "wgconsole_client_handshake_age_seconds",
            client=client.name,
            gateway=client.handshake_gateway,
        )
        assert age == pytest.approx(client.handshake_age)
        assert value(series, "wgconsole_client_never_seen", client=client.name) == 0
        info = value(
            series,
            "wgconsole_client_info",
            client=client.name,
            public_key=client.public_key,
            address=client.address or "",
            lb_gateway=client.lb_gateway or "",
            handshake_gateway=client.handshake_gateway,
        )
        assert info == 1
        rx = sum(p.rx_bytes for p in client.per_gateway)
        tx = sum(p.tx_bytes for p in client.per_gateway)
        assert value(series, "wgconsole_client_receive_bytes_total", client=client.name) == rx
        assert value(series, "wgconsole_client_transmit_bytes_total", client=client.name) == tx
    # The capture's kernel table: both real servers at weight 1, both clients on gateway-01.
    assert named(series, "wgconsole_real_server_weight") == {
        frozenset({("lb", LB), ("gateway", GW1)}): 1.0,
        frozenset({("lb", LB), ("gateway", GW2)}): 1.0,
    }
    assert value(series, "wgconsole_real_server_connections", lb=LB, gateway=GW1) == 2
    assert value(series, "wgconsole_real_server_connections", lb=LB, gateway=GW2) == 0
    assert set(named(series, "wgconsole_host_up").values()) == {1.0}
    assert value(series, "wgconsole_host_up", host=LB, role="lb") == 1
    assert value(series, "wgconsole_gateway_interface_up", gateway=GW1) == 1
    assert value(series, "wgconsole_gateway_drained", gateway=GW1) == 0
    # The lab's LB had neither fix on when it was captured: both are findings and gauges.
    assert value(series, "wgconsole_lb_sh_fallback", lb=LB) == 0
    assert value(series, "wgconsole_lb_expire_nodest_conn", lb=LB) == 0
    codes = {dict(labels)["code"] for labels in named(series, "wgconsole_finding")}
    assert codes == {f.code for f in fleet.findings}
    assert value(series, "wgconsole_poll_timestamp_seconds") == fleet.taken_at


def test_no_key_but_the_clients_public_keys_is_in_the_exposition() -> None:
    exporter, collector = exporter_over(NORMAL)
    text = exporter.poll_once().body().decode()
    public = {c.public_key for c in collector.inventory.clients}
    keylike = set(re.findall(r"[A-Za-z0-9+/]{42,43}=", text))
    assert keylike == public
    assert "(hidden)" not in text
    assert "PRIVATE" not in text.upper()


def test_weight_0_interface_down_and_an_unreachable_gateway() -> None:
    exporter, _ = exporter_over(WEIGHT0)
    series = parse(exporter.poll_once().body())
    assert value(series, "wgconsole_real_server_weight", lb=LB, gateway=GW1) == 0
    assert value(series, "wgconsole_real_server_weight", lb=LB, gateway=GW2) == 1

    exporter, _ = exporter_over(WG_DOWN)
    series = parse(exporter.poll_once().body())
    assert value(series, "wgconsole_gateway_interface_up", gateway=GW1) == 0
    assert value(series, "wgconsole_gateway_interface_up", gateway=GW2) == 1
    down = {"code": "interface-down", "severity": "critical", "subject": GW1}
    assert value(series, "wgconsole_finding", **down) == 1

    # gateway-02 answers the first poll and not the second: down, and its data one poll old.
    exporter, collector = exporter_over(NORMAL, GW2_UNREACHABLE)
    exporter.poll_once()
    series = parse(exporter.poll_once().body())
    assert value(series, "wgconsole_host_up", host=GW2, role="gateway") == 0
    assert value(series, "wgconsole_host_up", host=GW1, role="gateway") == 1
    assert value(series, "wgconsole_gateway_interface_up", gateway=GW2) is None
    times = collector.stepped_clock.times
    age = value(series, "wgconsole_host_data_age_seconds", host=GW2)
    assert age == pytest.approx(times[1] - times[0])
    assert value(series, "wgconsole_host_data_age_seconds", host=GW1) == 0


@pytest.mark.parametrize("frame", [PAIR_NORMAL, PAIR_REORDERED])
def test_a_director_pair_is_exported_as_the_model_sees_it(frame: Path) -> None:
    exporter, collector = exporter_over(frame)
    series = parse(exporter.poll_once().body())
    fleet = collector.read_fleet()
    assert len(fleet.load_balancers) == 2
    holds = named(series, "wgconsole_lb_holds_vip")
    differing = named(series, "wgconsole_lb_buckets_differing")
    for view in fleet.load_balancers:
        assert holds[frozenset({("lb", view.name)})] == float(bool(view.holds_vip))
        assert differing[frozenset({("lb", view.name)})] == view.buckets_differing
    # One holder, whose table is the reference; the reordered backup differs from it.
    assert sum(holds.values()) == 1
    assert differing[frozenset({("lb", fleet.vip_holder)})] == 0  # type: ignore[arg-type]
    backup = max(differing.values())
    assert (backup > 0) is (frame == PAIR_REORDERED), backup
    # Per LB: the weights of each director's own table.
    weights = named(series, "wgconsole_real_server_weight")
    assert {dict(labels)["lb"] for labels in weights} == {v.name for v in fleet.load_balancers}


def test_no_vip_count_without_every_answering_directors_addresses() -> None:
    _, collector = exporter_over(PAIR_NORMAL)
    fleet = collector.read_fleet()
    unknown = (replace(fleet.load_balancers[0], holds_vip=None), *fleet.load_balancers[1:])
    families = build_families(
        collector.inventory, replace(fleet, load_balancers=unknown), {}, {}, {}, 0.0
    )
    assert not named(parse(render(families)), "wgconsole_lb_holds_vip")


def test_a_client_that_never_shook_hands_and_a_peer_the_inventory_does_not_name() -> None:
    inventory = make_inventory(clients=(("alpha", ALPHA, "10.255.0.2"),))
    gateways: dict[str, GatewayObservation | None] = {
        GW1: gw_obs(GW1, [alpha_on(None, None), beta_on(None, None)]),
        GW2: gw_obs(GW2, [alpha_on(None, None), beta_on(ALPHA_EP, 20)]),
    }
    fleet = FleetBuilder().build(inventory, {LB: None}, gateways, hosts_ok(inventory), NOW)
    series = parse(render(build_families(inventory, fleet, {LB: None}, gateways, {}, 0.1)))
    assert value(series, "wgconsole_client_never_seen", client="alpha") == 1
    ages = named(series, "wgconsole_client_handshake_age_seconds")
    # No age for alpha; beta, not in the inventory, is labelled by its public key.
    assert ages == {frozenset({("client", BETA), ("gateway", GW2)}): 20.0}


def test_unnamed_peers_beyond_the_bound_get_no_series_and_are_counted() -> None:
    """Issue 22 (suspicion, holds): a hostile gateway can list peers up to its output cap, each
    with several series. At most the bound get series, the same ones at every poll (by public
    key, whatever their handshakes); the rest are counted. (A bound of 20 here; the exporter's
    is MAX_UNNAMED.)"""
    assert MAX_UNNAMED >= 10_000  # a large fleet without a client list loses nothing
    inventory = make_inventory(clients=(("alpha", ALPHA, "10.255.0.2"),))
    bound, extra = 20, 25
    # Distinct keys with distinct short forms (the findings' subjects).
    keys = [base64.b64encode(hashlib.sha256(bytes([i])).digest()).decode() for i in range(extra)]
    kept = set(sorted(keys)[:bound])

    def exported(ages: list[float | None]) -> tuple[Series, Fleet]:
        strangers = [peer(k, ALPHA_EP, age) for k, age in zip(keys, ages, strict=True)]
        gateways: dict[str, GatewayObservation | None] = {
            GW1: gw_obs(GW1, [alpha_on(ALPHA_EP, 30), *strangers]),
            GW2: gw_obs(GW2, [alpha_on(None, None)]),
        }
        fleet = FleetBuilder().build(inventory, {LB: None}, gateways, hosts_ok(inventory), NOW)
        lbs: dict[str, LbObservation | None] = {LB: None}
        families = build_families(inventory, fleet, lbs, gateways, {}, 0.1, max_unnamed=bound)
        return parse(render(families)), fleet

    fresh: list[float | None] = [float(i + 1) for i in range(extra)]
    later: list[float | None] = [None] * 5 + [200.0] * (extra - 5)
    for ages in (fresh, later):
        series, fleet = exported(ages)
        info = {dict(k)["client"] for k in named(series, "wgconsole_client_info")}
        assert info == kept | {"alpha"}  # named clients always; the same unnamed ones
        assert value(series, "wgconsole_unnamed_peers_not_exported") == extra - bound
        subjects = {dict(k)["subject"] for k in named(series, "wgconsole_finding")}
        left_out = {c.label for c in fleet.clients if c.public_key in set(keys) - kept}
        assert left_out
        assert not subjects & left_out
        assert len(named(series, "wgconsole_client_never_seen")) == bound + 1


# --- label values ---------------------------------------------------------------------------

HOSTILE = 'quote" backslash\\ newline\nend ] } {x="y"} # \x1b[2J'


def test_hostile_label_values_are_escaped_and_read_back_exactly() -> None:
    _, collector = exporter_over(NORMAL)
    fleet = collector.read_fleet()
    client = replace(fleet.clients[0], name=HOSTILE, address=HOSTILE)
    hostile = replace(
        fleet,
        clients=(client, *fleet.clients[1:]),
        findings=(Finding("x-code", "info", HOSTILE, "message"),),
    )
    inventory = replace(collector.inventory, site="site-1")
    body = render(build_families(inventory, hostile, {}, {}, {}, 0.0), "site-1")
    text = body.decode()
    # One sample per line: the newline is escaped, so is every quote and backslash.
    assert "\\n" in text
    assert '\\"' in text
    assert "\\\\" in text
    for line in text.splitlines():
        assert line.startswith("#") or line.startswith("wgconsole_"), line
    series = parse(body)
    assert value(series, "wgconsole_client_never_seen", client=HOSTILE, site="site-1") == 0
    finding = {"code": "x-code", "severity": "info", "subject": HOSTILE, "site": "site-1"}
    assert value(series, "wgconsole_finding", **finding) == 1


# --- the site label -------------------------------------------------------------------------


def _inventory_text(site_line: str) -> str:
    return site_line + (NORMAL / "inventory.yaml").read_text()


def test_an_inventory_site_is_a_label_on_every_series(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(_inventory_text("site: eu-west-1\n"))
    inventory = load_inventory(path)
    assert inventory.site == "eu-west-1"
    collector = SteppedCollector([NORMAL], inventory)
    series = parse(Exporter(collector, 2.0).poll_once().body())
    assert series
    assert all(dict(labels).get("site") == "eu-west-1" for _, labels in series)
    # Without one, no series has a site label.
    exporter, _ = exporter_over(NORMAL)
    assert all("site" not in dict(labels) for _, labels in parse(exporter.poll_once().body()))


@pytest.mark.parametrize(
    ("site", "reason"),
    [
        ("'eu west'", "site: 'eu west': use letters"),
        ('"a\\"b"', "site: 'a\"b': use letters"),
        ("[a, b]", "site: expected a single value"),
        ("-lead", "site: '-lead': use letters"),
    ],
)
def test_a_site_outside_the_name_rule_is_refused(tmp_path: Path, site: str, reason: str) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(_inventory_text(f"site: {site}\n"))
    with pytest.raises(InventoryError) as err:
        load_inventory(path)
    assert err.value.line == 1
    assert reason in str(err.value)


def test_an_unknown_top_level_key_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(_inventory_text("sitee: eu\n"))
    with pytest.raises(InventoryError, match="unknown key 'sitee' \\(did you mean 'site'\\?\\)"):
        load_inventory(path)


# --- byte counters --------------------------------------------------------------------------


def _with_bytes(peer: WgPeer, rx: int, tx: int) -> WgPeer:
    return replace(peer, rx_bytes=rx, tx_bytes=tx)


def _bytes_fleet(
    builder: FleetBuilder,
    gw1: tuple[int, int] | str | None,
    gw2: tuple[int, int] | str | None,
    *,
    named: bool = True,
) -> Fleet:
    """alpha's counters on each gateway: (rx, tx); None: that gateway did not answer;
    "removed": the gateway answered without alpha among its peers. `named`: alpha is in
    the inventory."""
    inventory = make_inventory() if named else make_inventory(clients=())
    observed: dict[str, GatewayObservation | None] = {}
    hosts = []
    for name, counts in ((GW1, gw1), (GW2, gw2)):
        hosts.append(HostStatus(name, "gateway", counts is not None, None, NOW))
        if counts is None:
            observed[name] = None
            continue
        peers = [beta_on(None, None)]
        if isinstance(counts, tuple):
            peers.append(_with_bytes(alpha_on(ALPHA_EP, 30), *counts))
        observed[name] = gw_obs(name, peers)
    hosts.insert(0, HostStatus(LB, "lb", reachable=True, error=None, last_success=NOW))
    return builder.build(inventory, {LB: None}, observed, hosts, NOW)


# alpha: (gateway-01, gateway-02) counters per poll, and the totals the exporter must give.
BYTE_POLLS: list[tuple[Any, Any, tuple[int, int]]] = [
    ((1000, 500), (0, 0), (1000, 500)),
    ((1500, 700), (0, 0), (1500, 700)),
    # Moved to gateway-02 (a drain): gateway-01 keeps its count, gateway-02 adds to it.
    ((1500, 700), (200, 100), (1700, 800)),
    # Undrain re-created gateway-01's interface: its counters start at 0 again.
    ((0, 0), (400, 300), (1900, 1000)),
    # gateway-02 does not answer: what it had counted stays.
    ((10, 5), None, (1910, 1005)),
    ((10, 5), (450, 350), (1960, 1055)),
    # gateway-02's interface re-created too, with some traffic since.
    ((10, 5), (50, 20), (2010, 1075)),
    # alpha removed from gateway-01 only: what gateway-01 counted stays in the total.
    ("removed", (60, 30), (2020, 1085)),
]


def test_byte_counters_never_go_backwards_across_a_move_a_reset_and_a_lost_gateway() -> None:
    builder = FleetBuilder()
    counters = ByteCounters()
    naive_went_down = False
    previous_naive = 0
    for gw1, gw2, expected in BYTE_POLLS:
        fleet = _bytes_fleet(builder, gw1, gw2)
        alpha = fleet.client(ALPHA)
        assert alpha is not None
        assert counters.update(fleet)[ALPHA] == expected
        naive = sum(p.rx_bytes for p in alpha.per_gateway)
        naive_went_down |= naive < previous_naive
        previous_naive = naive
    assert naive_went_down  # the sequence does test what a plain sum gets wrong


def test_the_exposition_carries_the_monotonic_totals() -> None:
    builder = FleetBuilder()
    counters = ByteCounters()
    inventory = make_inventory()
    seen = []
    for gw1, gw2, _ in BYTE_POLLS:
        fleet = _bytes_fleet(builder, gw1, gw2)
        families = build_families(inventory, fleet, {}, {}, counters.update(fleet), 0.0)
        series = parse(render(families))
        seen.append(value(series, "wgconsole_client_receive_bytes_total", client="alpha"))
    assert seen == [float(expected[0]) for _, _, expected in BYTE_POLLS]


def test_a_peer_removed_everywhere_is_forgotten_and_starts_again() -> None:
    # An inventory client stays a client (configured nowhere): its count goes on.
    builder = FleetBuilder()
    counters = ByteCounters()
    counters.update(_bytes_fleet(builder, (1000, 500), (0, 0)))
    assert counters.update(_bytes_fleet(builder, "removed", "removed"))[ALPHA] == (1000, 500)
    assert counters.update(_bytes_fleet(builder, (7, 3), (0, 0)))[ALPHA] == (1007, 503)
    # A peer the inventory does not name is gone with its last gateway, and starts again.
    builder = FleetBuilder()
    counters = ByteCounters()
    counters.update(_bytes_fleet(builder, (1000, 500), (0, 0), named=False))
    assert ALPHA not in counters.update(_bytes_fleet(builder, "removed", "removed", named=False))
    assert counters.update(_bytes_fleet(builder, (7, 3), (0, 0), named=False))[ALPHA] == (7, 3)


def test_the_renderer_gives_what_render_gives_poll_after_poll() -> None:
    builder = FleetBuilder()
    counters = ByteCounters()
    renderer = Renderer()
    inventory = make_inventory()
    for site in ("a", "a", None):
        for gw1, gw2, _ in BYTE_POLLS[:3]:
            fleet = _bytes_fleet(builder, gw1, gw2)
            families = build_families(inventory, fleet, {}, {}, counters.update(fleet), 0.0)
            assert renderer.render(families, site) == render(families, site)


# --- cardinality ----------------------------------------------------------------------------


def _series_count(clients: int) -> int:
    keys = [f"{i:043d}=" for i in range(clients)]
    inventory = make_inventory(
        clients=[(f"c{i}", k, f"10.255.0.{i + 2}") for i, k in enumerate(keys)]
    )
    peers = [
        WgPeer(
            k,
            has_preshared_key=False,
            endpoint=None,
            allowed_ips=(),
            latest_handshake=int(NOW - 30),
            rx_bytes=5,
            tx_bytes=5,
            keepalive=15,
        )
        for k in keys
    ]
    gateways: dict[str, GatewayObservation | None] = {
        GW1: gw_obs(GW1, peers),
        GW2: gw_obs(GW2, peers),
    }
    fleet = FleetBuilder().build(inventory, {LB: None}, gateways, hosts_ok(inventory), NOW)
    families = build_families(inventory, fleet, {LB: None}, gateways, {}, 0.0)
    return sum(len(f.samples) for f in families)


def test_series_per_client_are_few_and_fixed() -> None:
    # Per client: info, never_seen, handshake age, received, sent; and one wgconsole_finding
    # per finding it has (none here; at most 4: bypassing-lb, split, never or stale,
    # unknown-peer).
    assert _series_count(200) - _series_count(100) == 100 * 5


# --- the server -----------------------------------------------------------------------------


class _Counted:
    """A replay transport factory that counts the commands sent."""

    def __init__(self, frames: list[Path]) -> None:
        self.factory = replay_factory(frames)
        self.commands = 0

    def __call__(self, host: Any) -> Any:
        transport = self.factory(host)
        real_run = transport.run

        def run(command: str, timeout: float, *, mutating: bool = False) -> Any:
            self.commands += 1
            return real_run(command, timeout, mutating=mutating)

        transport.run = run  # type: ignore[method-assign]
        return transport


@pytest.fixture
def served() -> Iterator[tuple[Exporter, _Counted, str, list[float]]]:
    counted = _Counted([NORMAL])
    collector = FleetCollector(
        load_inventory(NORMAL / "inventory.yaml"),
        read_only=True,
        transport_factory=counted,
        timeout=5.0,
    )
    now = [1000.0]
    exporter = Exporter(collector, interval=2.0, clock=lambda: now[0])
    server = make_server(exporter, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield exporter, counted, f"http://127.0.0.1:{server.server_port}", now
    finally:
        server.shutdown()
        server.server_close()
        collector.close()


def _get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_scrapes_are_served_from_memory_and_never_poll(
    served: tuple[Exporter, _Counted, str, list[float]],
) -> None:
    exporter, counted, url, _ = served
    status, _, body = _get(url + "/metrics")
    assert status == 503
    assert b"no poll" in body
    exporter.poll_once()
    sent = counted.commands
    assert sent == 3  # one script per host
    bodies = [_get(url + "/metrics")[2] for _ in range(5)]
    assert counted.commands == sent
    assert len(set(bodies)) == 1
    assert value(parse(bodies[0]), "wgconsole_host_up", host=LB, role="lb") == 1
    status, headers, zipped = _get(url + "/metrics", **{"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped) == bodies[0]
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")


def test_healthz_says_whether_a_poll_finished_recently(
    served: tuple[Exporter, _Counted, str, list[float]],
) -> None:
    exporter, _, url, now = served
    status, _, body = _get(url + "/healthz")
    assert (status, body) == (503, b"no poll has finished yet\n")
    exporter.poll_once()
    status, _, body = _get(url + "/healthz")
    assert status == 200
    assert body.startswith(b"ok: the latest poll finished 0.0 s ago")
    assert b"3 of 3 hosts answered" in body
    # Stale after the interval + the poll deadline (5 s here) + 3 s: 10 s.
    now[0] += 9.5
    assert _get(url + "/healthz")[0] == 200
    now[0] += 1.0
    status, _, body = _get(url + "/healthz")
    assert status == 503
    assert body.startswith(b"stale: the latest poll finished 10 s ago")
    # /metrics still serves the latest poll: Prometheus keeps the series, the rules see age.
    assert _get(url + "/metrics")[0] == 200
    assert _get(url + "/nothing")[0] == 404


@pytest.mark.parametrize(
    ("interval", "timeout", "deadline"),
    [
        (2.0, 30.0, 5.0),  # the defaults: at least MIN_DEADLINE
        (15.0, 30.0, 30.0),  # two intervals, cut to the command timeout
        (10.0, 60.0, 20.0),  # two intervals
        (2.0, 3.0, 3.0),  # the command timeout when shorter
    ],
)
def test_the_exporters_deadline_is_two_intervals_within_bounds(
    interval: float, timeout: float, deadline: float
) -> None:
    """Issue 22 item 12: a dead host is down for the exporter after this, never after the
    30 s command timeout with the default 2 s interval."""
    assert poll_deadline(interval, timeout) == deadline
    assert poll_deadline(interval, timeout) >= min(timeout, MIN_DEADLINE)


def test_the_poll_loop_polls_one_at_a_time_until_stopped() -> None:
    counted = _Counted([NORMAL])
    collector = FleetCollector(
        load_inventory(NORMAL / "inventory.yaml"), read_only=True, transport_factory=counted
    )
    exporter = Exporter(collector, interval=0.01)
    polls: list[int] = []
    original = exporter.poll_once
    running = threading.Lock()

    def poll_once() -> Any:
        assert running.acquire(blocking=False), "two polls at once"
        try:
            polls.append(1)
            if len(polls) == 5:
                stop.set()
            return original()
        finally:
            running.release()

    exporter.poll_once = poll_once  # type: ignore[method-assign]
    stop = threading.Event()
    exporter.run(stop)
    assert len(polls) == 5
    assert exporter.latest is not None
    collector.close()


def test_a_failing_poll_does_not_end_the_loop_and_healthz_says_why() -> None:
    exporter, _ = exporter_over(NORMAL)
    stop = threading.Event()
    calls = []

    def broken() -> Any:
        calls.append(1)
        if len(calls) == 2:
            stop.set()
        raise RuntimeError("model bug")

    exporter.poll_once = broken  # type: ignore[method-assign]
    exporter.interval = 0.0
    exporter.run(stop)
    assert len(calls) == 2
    status, text = exporter.health()
    assert status == 503
    assert "RuntimeError: model bug" in text


def test_the_exporter_refuses_a_collector_that_may_mutate() -> None:
    collector = FleetCollector(
        load_inventory(NORMAL / "inventory.yaml"), transport_factory=replay_factory([NORMAL])
    )
    with pytest.raises(ValueError, match="read-only"):
        Exporter(collector, 2.0)


def test_observations_split_the_poll_by_role() -> None:
    _, collector = exporter_over(NORMAL, GW2_UNREACHABLE)
    collector.poll()
    lbs, gateways = observations(collector.poll())
    assert set(lbs) == {LB}
    assert lbs[LB] is not None
    assert gateways[GW2] is None
    assert gateways[GW1] is not None


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("127.0.0.1:9586", ("127.0.0.1", 9586)),
        ("[::1]:0", ("::1", 0)),
        ("0.0.0.0:65535", ("0.0.0.0", 65535)),
    ],
)
def test_listen_addresses(text: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(text) == parsed


@pytest.mark.parametrize(
    "text", [":9586", "9586", "localhost:9586", "127.0.0.1:65536", "127.0.0.1:9x", "[::1]9586"]
)
def test_bad_listen_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--listen"):
        parse_listen(text)


# --- the command ----------------------------------------------------------------------------


def test_metrics_once_is_read_only_even_without_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world = world_for_cli(tmp_path, monkeypatch)
    made: list[bool] = []
    from wgconsole.poll import collector as collect

    real = collect.SshTransport  # type: ignore[attr-defined]

    def recording(host: Any, **kw: Any) -> Any:
        made.append(bool(kw.get("read_only")))
        return real(host, **kw)

    monkeypatch.setattr(collect, "SshTransport", recording)
    inventory = str(world.inventory.path)
    assert main(["-i", inventory, "metrics", "--once"]) == 0
    out = capsys.readouterr().out
    assert made == [True, True, True]
    assert all(not sent.mutating for sent in world.sent)
    series = parse(out.encode())
    assert set(named(series, "wgconsole_host_up").values()) == {1.0}
    assert FAKE_PRIVATE not in out


def test_metrics_command_errors(capsys: pytest.CaptureFixture[str]) -> None:
    inventory = str(NORMAL / "inventory.yaml")
    assert main(["-i", inventory, "metrics"]) == 2
    assert "give --listen ADDR:PORT" in capsys.readouterr().err
    assert main(["-i", inventory, "metrics", "--listen", "localhost:9586"]) == 2
    assert "'localhost' is not an IP address" in capsys.readouterr().err
    assert main(["metrics", "--once", "-i", "/nonexistent.yaml"]) == 2
    assert "does not exist" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["-i", inventory, "metrics", "--listen", f"127.0.0.1:{port}"]) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
