"""The parsers and the collector's output handling on text captured from the real lab."""

from __future__ import annotations

from pathlib import Path

import pytest

from wgconsole.core.records import Endpoint
from wgconsole.poll.collector import parse_gateway_output, parse_lb_output
from wgconsole.poll.parsers.errors import ParseError
from wgconsole.poll.remote_scripts import lb_script

LAB = Path(__file__).parent / "fixtures" / "lab"
GATEWAY_KEY = "xfNrPxj44I9v3jcLUvGBgUtkgKWnsof8MdNJalsYJg0="


def _text(scenario: str, host: str) -> str:
    return (LAB / scenario / f"{host}.txt").read_text()


def test_lb_capture() -> None:
    obs = parse_lb_output("wg-lb", _text("normal", "wg-lb"))
    assert obs.clock == pytest.approx(1795664590.649392140)
    assert obs.expire_nodest_conn is False
    (svc,) = obs.services
    assert (svc.protocol, svc.vip, svc.scheduler, svc.flags) == (
        "udp",
        Endpoint("10.77.255.1", 51280),
        "sh",
        0,
    )
    # Kernel order, newest first: gateway-02 was added last.
    assert [d.endpoint for d in svc.dests] == [
        Endpoint("10.77.0.12", 51280),
        Endpoint("10.77.0.11", 51280),
    ]
    gw1 = svc.dests[1]
    assert (gw1.weight, gw1.forward, gw1.inactive_conns) == (1, "masq", 2)
    assert (gw1.conns, gw1.in_packets, gw1.out_packets, gw1.in_bytes, gw1.out_bytes) == (
        2,
        81,
        74,
        6364,
        5496,
    )
    assert {(c.client, c.dest, c.expires) for c in obs.conns} == {
        (Endpoint("10.77.1.11", 0xC654), Endpoint("10.77.0.11", 51280), 292),
        (Endpoint("10.77.1.10", 0xB5D8), Endpoint("10.77.0.11", 51280), 292),
    }


def test_lb_capture_weight_zero() -> None:
    obs = parse_lb_output("wg-lb", _text("gw1-weight0", "wg-lb"))
    assert [(d.endpoint.address, d.weight) for d in obs.services[0].dests] == [
        ("10.77.0.12", 1),
        ("10.77.0.11", 0),
    ]


def test_gateway_capture() -> None:
    obs = parse_gateway_output("wg-gateway-01", "wg0", _text("normal", "wg-gateway-01"))
    assert obs.link_up is True
    assert obs.interface is not None
    assert obs.interface.public_key == GATEWAY_KEY
    assert obs.interface.listen_port == 51280
    assert obs.interface.fwmark == 0
    peers = {p.allowed_ips: p for p in obs.interface.peers}
    assert set(peers) == {("10.255.0.2/32",), ("10.255.0.3/32",)}
    p = peers[("10.255.0.2/32",)]
    assert p.keepalive == 15
    assert p.endpoint is not None
    assert p.endpoint.address == "10.77.1.10"
    assert p.latest_handshake > 0
    assert p.rx_bytes > 0
    assert not p.has_preshared_key
    # The gateway that no client hashes to has never seen them.
    obs2 = parse_gateway_output("wg-gateway-02", "wg0", _text("normal", "wg-gateway-02"))
    assert obs2.interface is not None
    assert all(p.latest_handshake == 0 and p.endpoint is None for p in obs2.interface.peers)


def test_gateway_capture_interface_down() -> None:
    obs = parse_gateway_output("wg-gateway-01", "wg0", _text("gw1-wg-down", "wg-gateway-01"))
    assert obs.link_up is False
    assert obs.interface is not None
    assert obs.interface.public_key == GATEWAY_KEY


def test_captures_hold_no_private_key() -> None:
    for path in LAB.rglob("*.txt"):
        for line in path.read_text().splitlines():
            fields = line.split("\t")
            if len(fields) == 4:  # the dump's interface line
                assert fields[0] == "(hidden)", path


def test_lb_read_without_its_connection_table() -> None:
    """`whereis` needs the services only: the 50,000-entry table is neither asked nor parsed,
    while a full poll whose table section is missing is still an error, not an empty table."""
    assert "ip_vs_conn" in lb_script(sudo=False)
    assert "ip_vs_conn" not in lb_script(sudo=False, conns=False)
    assert "ip_vs_conn" not in lb_script(sudo=True, conns=False)
    full = _text("normal", "wg-lb")
    start = full.index("@@wgc:conn\n")
    end = full.index("@@wgc-rc:conn:0\n") + len("@@wgc-rc:conn:0\n")
    light = full[:start] + full[end:]
    obs = parse_lb_output("wg-lb", light, conns=False)
    assert obs.conns == ()
    assert obs.services == parse_lb_output("wg-lb", full).services
    with pytest.raises(ParseError):
        parse_lb_output("wg-lb", light)
