"""Every field of a gateway's dump with a known form is checked by the parser: a line that does
not fit (an allowed IP `junk/32`, an endpoint with a hostile scope id, a counter of 5,000
digits) is that gateway's ParseError, with key material redacted, and never reaches the model
raw; so an operation on the fleet (peer add) refuses clearly instead of raising a ValueError.
The LB's parsers refuse scope ids and giant numbers the same way.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.records import WgInterface
from wgconsole.ops.machinery.errors import ValidationError
from wgconsole.ops.procedures.peers.plan import plan_peer_add
from wgconsole.poll.collector import FleetCollector
from wgconsole.poll.parsers import parse_endpoint, parse_ipvsadm_list
from wgconsole.poll.parsers.errors import ParseError
from wgconsole.poll.parsers.ipvs_proc import parse_ip_vs_conn
from wgconsole.poll.parsers.wg_dump import allowed_ip_problem, parse_wg_dump
from wgconsole.poll.transport.base import CommandResult


def _key(label: str) -> str:
    return base64.b64encode(hashlib.sha256(label.encode()).digest()).decode()


PUBLIC = _key("gateway")
PEERS = [_key(f"peer {i}") for i in range(40)]
# Stands for a key that reached a field it should not be in: never in an error message.
SECRET = _key("secret")
FIELDS = ("key", "psk", "endpoint", "allowed", "handshake", "rx", "tx", "keepalive")


def _peer(i: int, **fields: str) -> str:
    values = {
        "key": PEERS[i],
        "psk": "(none)",
        "endpoint": f"192.0.2.{i + 1}:{40000 + i}",
        "allowed": f"10.255.0.{i + 2}/32",
        "handshake": "1795664000",
        "rx": "100",
        "tx": "200",
        "keepalive": "25",
        **fields,
    }
    return "\t".join(values[f] for f in FIELDS)


def _dump(*peer_lines: str, count: int = 30) -> str:
    """A dump of `count` ordinary peers (so the column-wise pass runs) then `peer_lines`."""
    lines = [f"(hidden)\t{PUBLIC}\t51280\toff", *(_peer(i) for i in range(count)), *peer_lines]
    return "\n".join(lines) + "\n"


def _error(text: str) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_wg_dump(text, "wg0")
    error = info.value
    assert SECRET not in str(error)
    assert SECRET[:20] not in str(error)
    return error


# --- allowed IPs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "problem"),
    [
        ("junk/32", "not an IP address"),
        ("10.255.0.99/33", "prefix length over 32"),
        ("fd00::2/129", "prefix length over 128"),
        ("10.255.0.256/32", "not an IP address"),
        ("10.255.00.9/32", "not an IP address"),
        ("10.255.0.9/+3", "expected ADDRESS/PREFIX"),
        ("10.255.0.9/032", "expected ADDRESS/PREFIX"),
        ("10.255.0.9/255.255.255.0", "expected ADDRESS/PREFIX"),
        ("fe80::1%eth0/64", "not an IP address"),
        ("10.255.0.9/32,\x1b]0;title\x07/32", "not an IP address"),
        ("[link=mailto:x]a/32", "not an IP address"),
        ("10.255.0.9", "expected ADDRESS/PREFIX"),
    ],
)
def test_an_allowed_ip_that_is_not_one_is_the_gateways_parse_error(
    allowed: str, problem: str
) -> None:
    error = _error(_dump(_peer(39, allowed=allowed)))
    assert error.line == 32
    assert "bad allowed IP" in error.reason
    assert problem in error.reason
    assert "\x1b" not in str(error)
    assert "\x07" not in str(error)


@pytest.mark.parametrize(
    "allowed", ["10.255.0.9/32", "0.0.0.0/0", "fd00::2/128", "::/0", "10.1.0.0/16,fd00::/64"]
)
def test_allowed_ips_as_wg_prints_them_are_taken(allowed: str) -> None:
    iface = parse_wg_dump(_dump(_peer(39, allowed=allowed)), "wg0")
    assert iface.peers[-1].allowed_ips == tuple(allowed.split(","))
    assert allowed_ip_problem(allowed.split(",")[0]) is None


def test_a_key_in_an_allowed_ip_is_not_shown() -> None:
    error = _error(_dump(_peer(39, allowed=f"{SECRET}/32")))
    assert "bad allowed IP (value not shown" in error.reason


# --- endpoints and their scope ids ----------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint",
    [
        "[fe80::1%\x1b[2J]:51820",
        "[fe80::1%eth0\x07]:51820",
        "[fe80::1%a/b]:51820",
        "[fe80::1%]:51820",
        "[fe80::1%x%y]:51820",
        "[fe80::1%sixteen-chars-xx]:51820",
        "[fe80::1%[b]]:51820",
        "[fe80::1%eth 0]:51820",
        "[1.2.3.4]:51820",
        "192.0.2.1:65536",
        "192.0.2.1:" + "9" * 5000,
        "192.0.2.1:+80",
        "host.example:51820",
    ],
)
def test_an_endpoint_that_is_not_one_is_the_gateways_parse_error(endpoint: str) -> None:
    error = _error(_dump(_peer(39, endpoint=endpoint)))
    assert "endpoint" in error.reason
    assert "\x1b" not in str(error)
    assert "\x07" not in str(error)
    assert len(str(error)) < 200


@pytest.mark.parametrize(
    ("endpoint", "address"),
    [
        ("[fe80::1%eth0]:51820", "fe80::1%eth0"),
        ("[fe80::1%3]:51820", "fe80::1%3"),
        ("[fe80::1%br-lan.10]:51820", "fe80::1%br-lan.10"),
        ("[fd00::1]:51820", "fd00::1"),
    ],
)
def test_endpoints_as_wg_prints_them_are_taken(endpoint: str, address: str) -> None:
    iface = parse_wg_dump(_dump(_peer(39, endpoint=endpoint)), "wg0")
    assert iface.peers[-1].endpoint is not None
    assert (iface.peers[-1].endpoint.address, iface.peers[-1].endpoint.port) == (address, 51820)


# --- numbers and secrets --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("handshake", "9" * 5000, "latest handshake"),
        ("rx", str(2**64), "rx bytes"),
        ("tx", "9" * 21, "tx bytes"),
        ("keepalive", "65536", "keepalive"),
        ("keepalive", "9" * 5000, "keepalive"),
        ("handshake", "١٢٣", "latest handshake"),
    ],
)
def test_a_number_out_of_its_range_is_the_gateways_parse_error(
    field: str, value: str, message: str
) -> None:
    error = _error(_dump(_peer(39, **{field: value})))
    assert message in error.reason
    assert len(str(error)) < 200


def test_the_largest_numbers_of_their_types_are_taken() -> None:
    line = _peer(39, handshake=str(2**64 - 1), rx=str(2**64 - 1), keepalive="65535")
    peer = parse_wg_dump(_dump(line), "wg0").peers[-1]
    assert (peer.latest_handshake, peer.rx_bytes, peer.keepalive) == (2**64 - 1, 2**64 - 1, 65535)


@pytest.mark.parametrize("value", ["yes", "(hidden", SECRET[:-1], "\x1b[2J"])
def test_a_preshared_key_field_of_another_form_is_refused(value: str) -> None:
    error = _error(_dump(_peer(39, psk=value)))
    assert "preshared key field" in error.reason


@pytest.mark.parametrize("value", ["garbage", "(hidden", "\x1b]52;c;eA==\x07"])
def test_a_private_key_field_of_another_form_is_refused(value: str) -> None:
    text = _dump().replace("(hidden)", value, 1)
    assert "private key field" in _error(text).reason


@pytest.mark.parametrize("listen_port", ["65536", "9" * 5000])
def test_a_listen_port_out_of_range_is_refused(listen_port: str) -> None:
    text = _dump().replace("\t51280\t", f"\t{listen_port}\t", 1)
    assert "listen port" in _error(text).reason


def test_a_fwmark_out_of_range_is_refused() -> None:
    text = _dump().replace("\toff\n", "\t0x100000000\n", 1)
    assert "bad fwmark" in _error(text).reason


# --- what reaches the model never carries an unchecked field --------------------------------

HOSTILE = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "[/]",
            "[bold]x[/bold]",
            "\x1b]0;title\x07",
            "\x1b[2J",
            "\x1b]52;c;eA==\x07",
            "junk/32",
            "9" * 5000,
            "[fe80::1%\x1b]:1",
            SECRET,
        ]
    ),
)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_peer_fields(iface: WgInterface) -> None:
    for peer in iface.peers:
        for network in peer.allowed_ips:
            ipaddress.ip_network(network, strict=False)
        if peer.endpoint is not None:
            ipaddress.ip_address(peer.endpoint.address)
            assert 0 <= peer.endpoint.port <= 65535
            assert peer.endpoint.address.isprintable()
            assert " " not in peer.endpoint.address
        assert 0 <= peer.latest_handshake < 2**64
        assert 0 <= peer.keepalive <= 65535


@SETTINGS
@given(field=st.sampled_from(FIELDS), value=HOSTILE, where=st.sampled_from([0, 39]))
def test_any_value_in_any_field_parses_checked_or_is_a_parse_error(
    field: str, value: str, where: int
) -> None:
    line = _peer(where, **{field: value})
    text = _dump(line, count=30) if where == 39 else _dump(count=0) + line + "\n"
    try:
        iface = parse_wg_dump(text, "wg0")
    except ParseError as error:
        # Parsed or refused: either outcome is valid (PT017); a refusal must be clean.
        assert SECRET not in str(error)  # noqa: PT017
        assert not any(ch in str(error) for ch in "\x1b\x07\r")  # noqa: PT017
        return
    _check_peer_fields(iface)
    assert SECRET not in repr(iface) or field == "key"


# --- the fleet: a gateway whose dump does not fit, and a peer add -------------------------

LAB = Path(__file__).parent / "fixtures" / "lab" / "normal"


class _Replay:
    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text

    def run(self, command: str, timeout: float, *, mutating: bool = False) -> CommandResult:
        return CommandResult(self.text, "", 0, 0.0, len(self.text))

    def close(self) -> None:
        pass


def test_junk_in_a_gateways_dump_is_its_error_and_a_peer_add_refuses_clearly() -> None:
    """The issue's case: `junk/32` as an allowed IP made `peer add` raise a ValueError."""
    inventory = load_inventory(LAB / "inventory.yaml")
    texts = {h.name: (LAB / f"{h.name}.txt").read_text() for h in inventory.hosts}
    texts["wg-gateway-02"] = texts["wg-gateway-02"].replace("\t10.255.0.3/32\t", "\tjunk/32\t")
    collector = FleetCollector(
        inventory, transport_factory=lambda h: _Replay(h.name, texts[h.name]), timeout=5.0
    )
    try:
        fleet = collector.read_fleet()
    finally:
        collector.close()
    gw2 = next(h for h in fleet.hosts if h.name == "wg-gateway-02")
    assert not gw2.reachable
    assert gw2.error is not None
    assert "bad allowed IP 'junk/32': not an IP address" in gw2.error
    assert all(h.reachable for h in fleet.hosts if h.name != "wg-gateway-02")
    with pytest.raises(ValidationError, match=r"wg-gateway-02 did not answer .*junk/32"):
        plan_peer_add(inventory, fleet, "gamma")


# --- the LB's endpoints and numbers ---------------------------------------------------------

IPVSADM = (
    "IP Virtual Server version 1.2.1 (size=4096)\n"
    "Prot LocalAddress:Port Scheduler Flags\n"
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
    "UDP  {vip} sh\n"
    "  -> {dest}            Masq    {weight}      0          0\n"
)


@pytest.mark.parametrize(
    ("vip", "dest", "weight"),
    [
        ("[fe80::1%\x1b[2J]:51280", "10.77.0.11:51280", "1"),
        ("[fe80::1%eth0]:51280", "10.77.0.11:51280", "1"),
        ("10.77.255.1:51280", "10.77.0.11:51280", "9" * 5000),
    ],
)
def test_the_lbs_listing_refuses_scope_ids_and_giant_numbers(
    vip: str, dest: str, weight: str
) -> None:
    with pytest.raises(ParseError) as info:
        parse_ipvsadm_list(IPVSADM.format(vip=vip, dest=dest, weight=weight))
    assert "\x1b" not in str(info.value)
    assert len(str(info.value)) < 300


def test_the_lbs_endpoint_parser_refuses_a_scope_id() -> None:
    with pytest.raises(ParseError, match="bad address"):
        parse_endpoint("[fe80::1%eth0]:80", "ipvsadm -Ln", 1)
    assert parse_endpoint("[fe80::1]:80", "ipvsadm -Ln", 1).address == "fe80::1"


def test_the_lbs_connection_table_refuses_a_scope_id_and_giant_numbers() -> None:
    header = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
    line = "UDP {client} 9C40 AC100001 C850 0AD33776 C850 UDP         {expires}\n"
    assert parse_ip_vs_conn(header + line.format(client="0A00020F", expires="293"))
    with pytest.raises(ParseError) as info:
        parse_ip_vs_conn(header + line.format(client="0A00020F", expires="9" * 5000))
    assert len(str(info.value)) < 200
    scoped = "fe80:0000:0000:0000:0000:0000:0000:0001%eth0"
    with pytest.raises(ParseError):
        parse_ip_vs_conn(header + line.format(client=scoped, expires="293"))
