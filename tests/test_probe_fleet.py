"""A round of probes over an inventory (what the exporter runs after each poll), on
127.0.0.1: responders written from the protocol (tests/test_probe_handshake.py) and a silent
port. The exporter's series of it, and what becomes of a round when the gateways' public key
is not known or not agreed."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from tests.test_metrics import exporter_over, named, parse
from tests.test_probe_handshake import Responder
from tests.test_probe_prober import Serve, udp_server
from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.inventory import Inventory
from wgconsole.core.records import Endpoint
from wgconsole.export.families import build_families
from wgconsole.probe.fleet_probe import FleetProber
from wgconsole.probe.handshake import ProbeKey
from wgconsole.probe.prober import ProbeResult

__all__ = ["udp_server"]  # the fixture, used by name


def _inventory(tmp_path: Path, gw1: Endpoint, gw2: Endpoint, vip: Endpoint) -> Inventory:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        f"service: {{protocol: udp, vip: {vip.address}, port: {vip.port}, scheduler: sh}}\n"
        "ssh: {user: root}\n"
        "load_balancers:\n  - {name: lb, host: 127.0.0.1}\n"
        "gateways:\n"
        f"  - {{name: gw1, host: 127.0.0.1, real_server: {gw1.address}:{gw1.port}}}\n"
        f"  - {{name: gw2, host: 127.0.0.1, real_server: {gw2.address}:{gw2.port}}}\n"
        "tunnel: {network: 10.255.0.0/24, gateway_address: 10.255.0.1}\n"
    )
    return load_inventory(path)


def test_a_round_probes_every_gateway_and_the_vip_with_the_key_the_poll_told(
    tmp_path: Path, udp_server: Serve
) -> None:
    key = ProbeKey(os.urandom(32))
    gateway = Responder(key.public)
    up = udp_server(gateway.respond)
    # The VIP: another loopback address (the inventory refuses a gateway on the VIP's).
    through_lb = udp_server(gateway.respond, "127.0.0.2")
    silent = udp_server(lambda data: None)
    inventory = _inventory(tmp_path, up, silent, through_lb)
    prober = FleetProber(key, timeout=0.4)
    told = base64.b64encode(gateway.public).decode()
    # Before any gateway told its key, nothing is sent.
    first = {r.target: r for r in prober.round(inventory, [None, None])}
    assert set(first) == {"gw1", "gw2", "vip"}
    assert all(not r.ok and "not probed" in str(r.error) for r in first.values())
    results = {r.target: r for r in prober.round(inventory, [told, None])}
    assert results["gw1"].ok
    assert results["vip"].ok
    assert not results["gw2"].ok
    # SSH down everywhere: the key told before is kept, and the probes still run.
    again = {r.target: r for r in prober.round(inventory, [None, None])}
    assert again["gw1"].ok
    # Two keys told: the gateways' configs differ; which one to probe with is not guessed.
    other = base64.b64encode(bytes(range(32))).decode()
    split = prober.round(inventory, [told, other])
    assert all(not r.ok and "differ" in str(r.error) for r in split)


def test_the_exporter_serves_the_round_as_success_and_round_trip() -> None:
    exporter, collector = exporter_over(*[Path(__file__).parent / "fixtures" / "lab" / "normal"])
    fleet = collector.read_fleet()
    probes = (
        ProbeResult("wg-gateway-01", "10.77.0.11:51280", ok=True, rtt_ms=2.5, error=None),
        ProbeResult("wg-gateway-02", "10.77.0.12:51280", ok=False, rtt_ms=None, error="x"),
        ProbeResult("vip", "10.77.255.1:51280", ok=True, rtt_ms=3.0, error=None),
    )
    families = build_families(collector.inventory, fleet, {}, {}, {}, 0.1, probes=probes)
    series = parse(exporter.publish(families, hosts=3, answered=3).body())
    assert named(series, "wgconsole_probe_success") == {
        frozenset({("target", "wg-gateway-01")}): 1.0,
        frozenset({("target", "wg-gateway-02")}): 0.0,
        frozenset({("target", "vip")}): 1.0,
    }
    assert named(series, "wgconsole_probe_rtt_seconds") == {
        frozenset({("target", "wg-gateway-01")}): 0.0025,
        frozenset({("target", "vip")}): 0.003,
    }
    # Without a prober (no key), no probe series at all: absent, not 0.
    plain = parse(exporter.poll_once().body())
    assert named(plain, "wgconsole_probe_success") == {}
