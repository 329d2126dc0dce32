"""The inventory loader: the sample, ssh overrides, located errors, and the lookup order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wgconsole.config.inventory_file import InventoryError, find_inventory, load_inventory
from wgconsole.core.inventory import Gateway, LoadBalancer, SshSettings
from wgconsole.core.records import Endpoint

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_inventory.yaml"

KEY0 = "EDkM4PCmyhSb1MWLbXe35WwLcPDdlUlA3lEVhaO520U="
KEY1 = "x0nZN7MWr8mKItwttkclanopd8zDk/bqtEja6ae5+SE="
# Shaped like a WireGuard private key; must never appear in an error message.
SECRET = "qGmUeLsq6+eCg9Ki5m8wd2s8rCz0RbJ4tBq6P3NqV0E="

# Line numbers matter: the error cases below replace one numbered line.
BASE = f"""\
service: {{protocol: udp, vip: 172.16.0.1, port: 51280, scheduler: sh}}
ssh:
  user: root
  port: 22
  known_hosts: ~/.ssh/known_hosts
  sudo: false
load_balancers:
  - {{name: wg-lb, host: 10.211.55.120}}
gateways:
  - {{name: wg-gateway-01, host: 10.211.55.118, real_server: 10.211.55.118:51280}}
  - {{name: wg-gateway-02, host: 10.211.55.119, real_server: 10.211.55.119:51280}}
tunnel: {{network: 10.255.0.0/24, gateway_address: 10.255.0.1, keepalive: 15}}
clients:
  - {{name: wg-client-0, public_key: {KEY0}, address: 10.255.0.2}}
  - {{name: wg-client-1, public_key: {KEY1}, address: 10.255.0.3}}
"""


def write(tmp_path: Path, text: str, name: str = "inventory.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def with_line(lineno: int, text: str) -> str:
    lines = BASE.splitlines()
    lines[lineno - 1] = text
    return "\n".join(lines) + "\n"


def load_error(tmp_path: Path, text: str) -> InventoryError:
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    err = info.value
    assert err.file == str(path)
    return err


# -- the sample and a valid base -------------------------------------------------------


def test_sample_loads_with_seed_values() -> None:
    inv = load_inventory(SAMPLE)
    assert inv.path == str(SAMPLE)
    assert (inv.service.protocol, inv.service.vip, inv.service.port) == ("udp", "172.16.0.1", 51280)
    assert inv.service.scheduler == "sh"
    assert inv.service.endpoint == Endpoint("172.16.0.1", 51280)
    home = os.path.expanduser("~")
    assert inv.ssh == SshSettings(
        user="root",
        port=22,
        identity_file=f"{home}/.ssh/id_ed25519",
        known_hosts=f"{home}/.ssh/known_hosts",
        sudo=False,
        given=frozenset({"user", "port"}),  # written out: they win over ~/.ssh/config
    )
    assert inv.load_balancers == (LoadBalancer(name="wg-lb", host="10.211.55.120", ssh=inv.ssh),)
    assert inv.gateways == (
        Gateway(
            name="wg-gateway-01",
            host="10.211.55.118",
            ssh=inv.ssh,
            real_server=Endpoint("10.211.55.118", 51280),
            interface="wg0",
            config="/etc/wireguard/wg0.conf",
        ),
        Gateway(
            name="wg-gateway-02",
            host="10.211.55.119",
            ssh=inv.ssh,
            real_server=Endpoint("10.211.55.119", 51280),
            interface="wg0",
            config="/etc/wireguard/wg0.conf",
        ),
    )
    assert [h.name for h in inv.hosts] == ["wg-lb", "wg-gateway-01", "wg-gateway-02"]
    assert (inv.tunnel.network, inv.tunnel.gateway_address, inv.tunnel.keepalive) == (
        "10.255.0.0/24",
        "10.255.0.1",
        15,
    )
    assert [(c.name, c.address) for c in inv.clients] == [
        ("wg-client-0", "10.255.0.2"),
        ("wg-client-1", "10.255.0.3"),
    ]
    assert inv.clients[0].public_key == KEY0
    assert inv.client_by_key(KEY0) is inv.clients[0]
    assert inv.gateway_for(Endpoint("10.211.55.119", 51280)) is inv.gateways[1]
    header = SAMPLE.read_text().split("\nservice:")[0]
    assert "SEED topology" in header
    assert "Do not point wgconsole at this file" in header


def test_base_loads(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, BASE))
    assert len(inv.gateways) == 2
    assert inv.ssh.identity_file is None


def test_optional_sections_and_defaults(tmp_path: Path) -> None:
    text = """\
service: {vip: "fd00::1", port: 51280}
load_balancers: [{name: lb, host: local}]
gateways:
  - name: gw
    host: gw.example.net
    real_server: "[FD00:0::2]:51280"
    interface: wg1
tunnel: {network: 10.255.0.0/24, gateway_address: 10.255.0.1}
clients:
"""
    inv = load_inventory(write(tmp_path, text))
    assert inv.service.protocol == "udp"
    assert inv.service.scheduler == "sh"
    assert inv.service.vip == "fd00::1"
    assert inv.load_balancers[0].is_local
    gw = inv.gateways[0]
    assert gw.real_server == Endpoint("fd00::2", 51280)
    assert str(gw.real_server) == "[fd00::2]:51280"
    assert (gw.interface, gw.config) == ("wg1", "/etc/wireguard/wg1.conf")
    assert gw.ssh == SshSettings(known_hosts=os.path.expanduser("~/.ssh/known_hosts"))
    assert inv.tunnel.keepalive == 15
    assert inv.clients == ()


def test_other_scheduler_and_protocol_allowed(tmp_path: Path) -> None:
    inv = load_inventory(
        write(
            tmp_path,
            with_line(1, "service: {protocol: tcp, vip: 1.2.3.4, port: 1, scheduler: wrr}"),
        )
    )
    assert (inv.service.protocol, inv.service.scheduler) == ("tcp", "wrr")


# -- per-host ssh overrides --------------------------------------------------------------


def test_host_ssh_overrides_both_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    text = """\
service: {vip: 172.16.0.1, port: 51280}
ssh: {user: ops, identity_file: ~/.ssh/lab_key, sudo: true}
load_balancers:
  - {name: lb, host: 127.0.0.1, port: 2201, user: admin, known_hosts: ~/kh}
gateways:
  - {name: gw1, host: 127.0.0.1, ssh: {port: 2202, sudo: false}, real_server: 10.0.0.1:51280}
  - name: gw2
    host: 127.0.0.1
    identity_file: null
    ssh:
      port: 2203
    real_server: 10.0.0.2:51280
    config: /etc/wireguard/other.conf
tunnel: {network: 10.255.0.0/24, gateway_address: 10.255.0.1}
"""
    inv = load_inventory(write(tmp_path, text))
    home = str(tmp_path / "home")
    assert inv.ssh == SshSettings(
        user="ops",
        port=22,
        identity_file=f"{home}/.ssh/lab_key",
        known_hosts=f"{home}/.ssh/known_hosts",
        sudo=True,
        given=frozenset({"user"}),
    )
    lb, gw1, gw2 = inv.hosts
    assert lb.ssh == SshSettings(
        user="admin",
        port=2201,
        identity_file=f"{home}/.ssh/lab_key",
        known_hosts=f"{home}/kh",
        sudo=True,
        given=frozenset({"user", "port"}),
    )
    assert gw1.ssh.port == 2202
    assert gw1.ssh.sudo is False
    assert gw1.ssh.user == "ops"
    assert gw2.ssh.port == 2203
    assert gw2.ssh.identity_file is None
    assert gw2.ssh.sudo is True
    assert isinstance(gw2, Gateway)
    assert gw2.config == "/etc/wireguard/other.conf"


def test_same_ssh_key_in_both_forms_is_rejected(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        with_line(8, "  - {name: wg-lb, host: 10.211.55.120, port: 2201, ssh: {port: 2202}}"),
    )
    assert (err.line, err.key) == (8, "load_balancers[0].ssh.port")
    assert "also given as load_balancers[0].port" in err.reason


# -- located errors ------------------------------------------------------------------------

BAD_LINES = [
    # (line replaced, new text, expected line, expected key, part of the reason)
    pytest.param(
        11,
        "  - {name: wg-gateway-02, host: 10.211.55.119, real_server: '[fd00::2]:51280'}",
        11,
        "gateways[1].real_server",
        "cannot be a real server of udp 172.16.0.1:51280: masquerading does not translate "
        "between IPv4 and IPv6",
        id="real_server-other-family",
    ),
    pytest.param(
        11,
        "  - {name: wg-gateway-02, host: 10.211.55.119, real_server: 172.16.0.1:51280}",
        11,
        "gateways[1].real_server",
        "172.16.0.1:51280 is the service's own VIP, not a gateway",
        id="real_server-is-the-vip",
    ),
    pytest.param(
        11,
        "  - {name: wg-gateway-02, host: 10.211.55.119, real_server: 0.0.0.0:51280}",
        11,
        "gateways[1].real_server",
        "is not a unicast address",
        id="real_server-unspecified",
    ),
    pytest.param(
        11,
        "  - {name: wg-gateway-02, host: 10.211.55.119, real_server: 10.0.0.1}",
        11,
        "gateways[1].real_server",
        "'10.0.0.1' is not ADDR:PORT",
        id="real_server-no-port",
    ),
    pytest.param(
        11,
        "  - {name: wg-gateway-02, host: 10.211.55.119, real_server: 10.0.0.1:70000}",
        11,
        "gateways[1].real_server",
        "out of range",
        id="real_server-port-range",
    ),
    pytest.param(
        11,
        "  - {name: wg-gateway-02, host: 10.211.55.119, real_server: 10.0.0.999:51280}",
        11,
        "gateways[1].real_server",
        "is not an IP address",
        id="real_server-bad-address",
    ),
    pytest.param(
        11,
        "  - {name: wg-gateway-02, host: 10.211.55.119, real_server: 'fd00::1:51280'}",
        11,
        "gateways[1].real_server",
        "[addr]:port",
        id="real_server-v6-unbracketed",
    ),
    pytest.param(
        1,
        "service: {protocol: udp, port: 51280, scheduler: sh}",
        1,
        "service.vip",
        "required key is missing",
        id="missing-vip",
    ),
    pytest.param(
        1,
        "service: {protocol: udp, vip: 172.16.0.300, port: 51280}",
        1,
        "service.vip",
        "'172.16.0.300' is not an IP address",
        id="bad-vip",
    ),
    pytest.param(
        1,
        "service: {protocol: icmp, vip: 172.16.0.1, port: 51280}",
        1,
        "service.protocol",
        "not one of udp, tcp, sctp",
        id="bad-protocol",
    ),
    pytest.param(
        1,
        "service: {vip: 172.16.0.1, port: 70000}",
        1,
        "service.port",
        "70000 is out of range 1..65535",
        id="service-port-high",
    ),
    pytest.param(
        1,
        "service: {vip: 172.16.0.1, port: 0}",
        1,
        "service.port",
        "0 is out of range 1..65535",
        id="service-port-zero",
    ),
    pytest.param(
        1,
        "service: {vip: 172.16.0.1, port: 51280, shceduler: sh}",
        1,
        "service.shceduler",
        "did you mean 'scheduler'",
        id="unknown-service-key",
    ),
    pytest.param(
        4,
        "  port: abc",
        4,
        "ssh.port",
        "expected an integer, got a string 'abc'",
        id="ssh-port-type",
    ),
    pytest.param(4, "  port: 65536", 4, "ssh.port", "out of range", id="ssh-port-range"),
    pytest.param(
        6,
        "  sudo: maybe",
        6,
        "ssh.sudo",
        "expected true or false, got a string 'maybe'",
        id="sudo-type",
    ),
    pytest.param(6, "  sduo: true", 6, "ssh.sduo", "did you mean 'sudo'", id="ssh-unknown"),
    pytest.param(3, "  user: null", 3, "ssh.user", "expected a string, got null", id="null-user"),
    pytest.param(
        8,
        "  - {name: wg-lb, hots: 10.211.55.120}",
        8,
        "load_balancers[0].hots",
        "unknown key 'hots'",
        id="unknown-host-key",
    ),
    pytest.param(
        8,
        "  - {name: wg-lb, host: 10.211.55.120, port: abc}",
        8,
        "load_balancers[0].port",
        "expected an integer",
        id="host-port-type",
    ),
    pytest.param(
        8,
        "  - {name: wg-lb, host: 10.211.55.120, ssh: {sudo: maybe}}",
        8,
        "load_balancers[0].ssh.sudo",
        "expected true or false",
        id="host-nested-sudo-type",
    ),
    pytest.param(
        8,
        "  - {name: wg-lb, host: 10.211.55.120, real_server: 10.0.0.1:1}",
        8,
        "load_balancers[0].real_server",
        "unknown key",
        id="real_server-on-lb",
    ),
    pytest.param(
        10,
        "  - {name: wg-gateway-01, host: 10.211.55.318, real_server: 10.211.55.118:51280}",
        10,
        "gateways[0].host",
        "'10.211.55.318' is not an IP address",
        id="bad-host-address",
    ),
    pytest.param(
        10,
        "  - {name: wg-gateway-01, host: bad_host!, real_server: 10.211.55.118:51280}",
        10,
        "gateways[0].host",
        "is not an IP address or host name",
        id="bad-host-name",
    ),
    pytest.param(
        10,
        "  - {name: wg-lb, host: 10.211.55.118, real_server: 10.211.55.118:51280}",
        10,
        "gateways[0].name",
        "duplicate host name 'wg-lb' (also load_balancers[0])",
        id="duplicate-host-name",
    ),
    pytest.param(
        11,
        "  - {name: wg-gateway-02, host: 10.211.55.119, real_server: 10.211.55.118:51280}",
        11,
        "gateways[1].real_server",
        "duplicate real_server 10.211.55.118:51280 (also gateways[0])",
        id="duplicate-real-server",
    ),
    pytest.param(
        10,
        "  - {name: gw, host: 10.211.55.118, real_server: 10.211.55.118:51280, interface: a/b}",
        10,
        "gateways[0].interface",
        "is not an interface name",
        id="bad-interface",
    ),
    pytest.param(
        12,
        "tunnel: {network: 10.255.0.0/24, gateway_address: 10.254.0.1}",
        12,
        "tunnel.gateway_address",
        "10.254.0.1 is outside tunnel.network 10.255.0.0/24",
        id="gateway-address-outside",
    ),
    pytest.param(
        12,
        "tunnel: {network: 10.255.0.1/24, gateway_address: 10.255.0.1}",
        12,
        "tunnel.network",
        "is not a network",
        id="network-host-bits",
    ),
    pytest.param(
        12,
        "tunnel: {network: 10.255.0.0/24, gateway_address: 10.255.0.1, keepalive: 65536}",
        12,
        "tunnel.keepalive",
        "65536 is out of range 0..65535",
        id="keepalive-high",
    ),
    pytest.param(
        12,
        "tunnel: {network: 10.255.0.0/24, gateway_address: 10.255.0.1, keepalive: -1}",
        12,
        "tunnel.keepalive",
        "-1 is out of range 0..65535",
        id="keepalive-negative",
    ),
    pytest.param(
        12,
        "tunnel: {gateway_address: 10.255.0.1}",
        12,
        "tunnel.network",
        "required key is missing",
        id="missing-network",
    ),
    pytest.param(
        15,
        f"  - {{name: wg-client-0, public_key: {KEY1}, address: 10.255.0.3}}",
        15,
        "clients[1].name",
        "duplicate name 'wg-client-0' (also clients[0])",
        id="duplicate-client-name",
    ),
    pytest.param(
        15,
        f"  - {{name: wg-client-1, public_key: {KEY0}, address: 10.255.0.3}}",
        15,
        "clients[1].public_key",
        "duplicate public_key (also clients[0])",
        id="duplicate-client-key",
    ),
    pytest.param(
        15,
        f"  - {{name: wg-client-1, public_key: {KEY1}, address: 10.255.0.2}}",
        15,
        "clients[1].address",
        "duplicate address '10.255.0.2' (also clients[0])",
        id="duplicate-client-address",
    ),
    pytest.param(
        15,
        f"  - {{name: wg-client-1, public_key: {KEY1}, address: 10.254.0.3}}",
        15,
        "clients[1].address",
        "10.254.0.3 is outside tunnel.network 10.255.0.0/24",
        id="client-address-outside",
    ),
    pytest.param(
        15,
        f"  - {{name: wg-client-1, public_key: {KEY1}, address: 10.255.0.1}}",
        15,
        "clients[1].address",
        "is tunnel.gateway_address",
        id="client-address-is-gateway",
    ),
    pytest.param(
        15,
        "  - {name: wg-client-1, public_key: not-a-key, address: 10.255.0.3}",
        15,
        "clients[1].public_key",
        "not a WireGuard public key",
        id="client-key-not-base64",
    ),
    pytest.param(
        15,
        # 44 characters of valid base64, but 33 bytes once decoded.
        "  - {name: wg-client-1, public_key: "
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA, address: 10.255.0.3}",
        15,
        "clients[1].public_key",
        "not a WireGuard public key",
        id="client-key-33-bytes",
    ),
    pytest.param(
        15,
        f"  - {{name: wg-client-1, public_key: {KEY1[:-2]}=, address: 10.255.0.3}}",
        15,
        "clients[1].public_key",
        "not a WireGuard public key",
        id="client-key-short",
    ),
    pytest.param(
        14,
        f"  - {{name: wg-client-0, public_key: {KEY0}}}",
        14,
        "clients[0].address",
        "required key is missing",
        id="client-missing-address",
    ),
    pytest.param(8, "  #", 7, "load_balancers", "at least one is required", id="no-lb"),
    pytest.param(
        12,
        "tunnel: [10.255.0.0/24]",
        12,
        "tunnel",
        "expected a mapping, got a list",
        id="tunnel-list",
    ),
    pytest.param(
        12,
        "tunnel: {network: 10.255.0.0/24, gateway_address: 10.255.0.1, network: 10.1.0.0/16}",
        12,
        "tunnel.network",
        "duplicate key (first given on line 12)",
        id="duplicate-yaml-key",
    ),
    pytest.param(
        13,
        "client:",
        13,
        "client",
        "did you mean 'clients'",
        id="unknown-top-level-key",
    ),
    pytest.param(
        4,
        "  port: 22: 23",
        4,
        None,
        "YAML syntax error",
        id="yaml-syntax",
    ),
    pytest.param(
        8,
        "  - {name: wg-lb, host: 10.211.55.120",
        9,
        None,
        "YAML syntax error",
        id="yaml-unclosed-flow",
    ),
    pytest.param(
        5,
        "\tknown_hosts: x",
        5,
        None,
        "YAML syntax error",
        id="yaml-tab",
    ),
]


@pytest.mark.parametrize(("lineno", "text", "line", "key", "reason"), BAD_LINES)
def test_bad_line(
    tmp_path: Path, lineno: int, text: str, line: int, key: str | None, reason: str
) -> None:
    err = load_error(tmp_path, with_line(lineno, text))
    assert (err.line, err.key) == (line, key), str(err)
    assert reason in err.reason
    where = f"{err.file}:{line}: "
    assert str(err) == where + (f"{key}: " if key else "") + err.reason


def test_str_format(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        with_line(11, "  - {name: wg-gateway-02, host: 10.211.55.119, real_server: 10.0.0.1}"),
    )
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert str(info.value) == f"{path}:11: gateways[1].real_server: '10.0.0.1' is not ADDR:PORT"


def test_missing_key_in_block_mapping_points_at_the_mapping(tmp_path: Path) -> None:
    text = """\
service: {vip: 172.16.0.1, port: 51280}
load_balancers: [{name: lb, host: 10.0.0.9}]
gateways:
  - name: gw1
    host: 10.0.0.1
    real_server: 10.0.0.1:51280
  # a comment
  - name: gw2
    host: 10.0.0.2
tunnel: {network: 10.255.0.0/24, gateway_address: 10.255.0.1}
"""
    err = load_error(tmp_path, text)
    assert (err.line, err.key, err.reason) == (
        8,
        "gateways[1].real_server",
        "required key is missing",
    )


def test_missing_top_level_section(tmp_path: Path) -> None:
    # Without tunnel and clients; the top mapping starts after the comment lines.
    text = "# header\n\n" + "\n".join(BASE.splitlines()[:11]) + "\n"
    err = load_error(tmp_path, text)
    assert (err.line, err.key, err.reason) == (3, "tunnel", "required key is missing")


def test_missing_gateways_section(tmp_path: Path) -> None:
    lines = BASE.splitlines()
    del lines[8:11]
    err = load_error(tmp_path, "\n".join(lines) + "\n")
    assert (err.line, err.key, err.reason) == (1, "gateways", "required key is missing")


def test_gateways_not_a_list(tmp_path: Path) -> None:
    text = with_line(10, "  name: wg-gateway-01").replace("  - {name: wg-gateway-02", "# ")
    err = load_error(tmp_path, text)
    assert (err.line, err.key) == (10, "gateways")
    assert err.reason == "expected a list of hosts, got a mapping"


def test_empty_gateways_list(tmp_path: Path) -> None:
    text = BASE.replace(
        "gateways:\n"
        "  - {name: wg-gateway-01, host: 10.211.55.118, real_server: 10.211.55.118:51280}\n"
        "  - {name: wg-gateway-02, host: 10.211.55.119, real_server: 10.211.55.119:51280}\n",
        "gateways:\n",
    )
    err = load_error(tmp_path, text)
    # `gateways:` with nothing under it is null: the key is there but lists nothing.
    assert (err.line, err.key, err.reason) == (9, "gateways", "at least one is required")


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("", None, "the file is empty"),
        ("# only a comment\n", None, "the file is empty"),
        ("\n- a\n- b\n", 2, "expected a mapping, got a list"),
        ("just text\n", 1, "expected a mapping, got a string"),
        ("a: 1\n---\nb: 2\n", 2, "YAML syntax error"),
    ],
)
def test_not_an_inventory(tmp_path: Path, text: str, line: int | None, reason: str) -> None:
    err = load_error(tmp_path, text)
    assert err.line == line
    assert reason in err.reason


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(InventoryError) as info:
        load_inventory(missing)
    assert (info.value.file, info.value.line, info.value.key) == (str(missing), None, None)
    assert "cannot read" in info.value.reason
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"service: caf\xe9\n")
    with pytest.raises(InventoryError, match="not UTF-8"):
        load_inventory(bad)


def test_unknown_tag_is_located(tmp_path: Path) -> None:
    err = load_error(tmp_path, with_line(4, "  port: !!python/int 22"))
    assert (err.line, err.key) == (4, "ssh.port")


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("  port: 2001-13-45", "ssh.port", "value cannot be read as timestamp"),
        ("  port: !!int abc", "ssh.port", "value cannot be read as int"),
        ("  port: 1.5", "ssh.port", "expected an integer, got a number 1.5"),
        ("  port: true", "ssh.port", "expected an integer, got a boolean True"),
        ("  <<: {port: 23}", "ssh", "YAML merge keys (<<) are not supported"),
        ("  [a]: 23", "ssh", "keys must be strings, got a list"),
        ("  23: 23", "ssh", "keys must be strings, got 23"),
    ],
)
def test_odd_yaml_values(tmp_path: Path, text: str, key: str, reason: str) -> None:
    err = load_error(tmp_path, with_line(4, text))
    assert (err.line, err.key, err.reason) == (4, key, reason)


def test_key_material_never_in_messages(tmp_path: Path) -> None:
    cases = [
        with_line(4, f"  port: {SECRET}"),
        with_line(3, f"  {SECRET}: root"),
        with_line(3, f"  private_key: {SECRET}"),
        with_line(15, f"  - {{name: c, public_key: {SECRET[:-2]}=, address: 10.255.0.3}}"),
        with_line(15, f"  - {{name: c, public_key: {SECRET}x, address: 10.255.0.3}}"),
        with_line(1, f"service: {{vip: {SECRET}, port: 1}}"),
        with_line(4, f"  port: [{SECRET}"),
    ]
    for text in cases:
        err = load_error(tmp_path, text)
        for fragment in (SECRET, SECRET[:-2], SECRET[:20]):
            assert fragment not in str(err), str(err)
            assert fragment not in repr(err.args)


# -- probes ---------------------------------------------------------------------------


PROBE_KEY = "bWFkZS11cC1wcm9iZS1rZXktZm9yLXRoZS10ZXN0cyE="


def test_probes_load_and_are_not_clients(tmp_path: Path) -> None:
    text = BASE + f"probes:\n  - {{name: bastion-1, public_key: {PROBE_KEY}}}\n"
    inv = load_inventory(write(tmp_path, text))
    assert [(p.name, p.public_key) for p in inv.probes] == [("bastion-1", PROBE_KEY)]
    assert PROBE_KEY not in {c.public_key for c in inv.clients}
    assert load_inventory(write(tmp_path, BASE)).probes == ()


@pytest.mark.parametrize(
    ("entry", "key", "reason"),
    [
        (f"{{name: c, public_key: {KEY0}}}", "probes[0].public_key", "duplicate public_key"),
        (f"{{name: b, public_key: {PROBE_KEY}, address: 10.255.0.9}}", "probes[0].address", ""),
        (f"{{name: b, public_key: {SECRET}x}}", "probes[0].public_key", "not a WireGuard"),
        ("{name: 'a b', public_key: x}", "probes[0].name", ""),
    ],
)
def test_bad_probes_are_located(tmp_path: Path, entry: str, key: str, reason: str) -> None:
    err = load_error(tmp_path, BASE + f"probes:\n  - {entry}\n")
    assert (err.line, err.key) == (17, key)
    assert reason in err.reason
    assert SECRET[:20] not in str(err)


# -- find_inventory ---------------------------------------------------------------------------


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """An empty working dir, config home and lab dir, nothing found anywhere yet."""
    paths = {
        "cwd": tmp_path / "cwd",
        "home": tmp_path / "home",
        "xdg": tmp_path / "xdg",
        "lab": tmp_path / "lab",
    }
    for path in paths.values():
        path.mkdir()
    monkeypatch.chdir(paths["cwd"])
    monkeypatch.setenv("HOME", str(paths["home"]))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(paths["xdg"]))
    monkeypatch.setenv("WGCONSOLE_LAB_DIR", str(paths["lab"]))
    return paths


def put(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BASE, encoding="utf-8")
    return path


def test_find_explicit_wins(places: dict[str, Path]) -> None:
    put(places["cwd"] / "inventory.yaml")
    explicit = put(places["home"] / "mine.yaml")
    assert find_inventory(str(explicit)) == str(explicit)


def test_find_explicit_missing(places: dict[str, Path]) -> None:
    put(places["cwd"] / "inventory.yaml")
    missing = str(places["home"] / "nope.yaml")
    with pytest.raises(InventoryError) as info:
        find_inventory(missing)
    assert info.value.file == missing
    assert "does not exist" in str(info.value)
    with pytest.raises(InventoryError, match="not a file"):
        find_inventory(str(places["home"]))


def test_find_order(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    lab = put(places["lab"] / "inventory.yaml")
    assert find_inventory(None) == str(lab)

    xdg = put(places["xdg"] / "wgconsole" / "inventory.yaml")
    assert find_inventory(None) == str(xdg)

    cwd = put(places["cwd"] / "inventory.yaml")
    assert Path(find_inventory(None)).resolve() == cwd.resolve()

    cwd.unlink()
    assert find_inventory(None) == str(xdg)


def test_find_default_config_home(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME")
    put(places["xdg"] / "wgconsole" / "inventory.yaml")  # not looked at any more
    lab = put(places["lab"] / "inventory.yaml")
    assert find_inventory(None) == str(lab)
    home = put(places["home"] / ".config" / "wgconsole" / "inventory.yaml")
    assert find_inventory(None) == str(home)


def test_find_nothing(places: dict[str, Path]) -> None:
    with pytest.raises(InventoryError) as info:
        find_inventory(None)
    message = str(info.value)
    for hint in ("wgconsole -i FILE", "./inventory.yaml", "~/.config/wgconsole/inventory.yaml"):
        assert hint in message
    assert "wgconsole lab up" in message
    assert info.value.file is None


def test_find_never_uses_the_sample(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    if (REPO / "inventory.yaml").exists():
        pytest.skip("a real inventory.yaml sits at the repository root")
    with pytest.raises(InventoryError):
        find_inventory(None)
    (places["cwd"] / "sample_inventory.yaml").write_text(SAMPLE.read_text())
    monkeypatch.chdir(places["cwd"])
    with pytest.raises(InventoryError):
        find_inventory(None)
