"""Where an SSH connection goes, from the inventory and ~/.ssh/config: OpenSSH's precedence
(what the inventory gives wins, the config fills in the rest) and ProxyJump chains (each hop
tunnelled through the one before, IPv6 in brackets, `user@host:port`; a malformed one is that
host's error). No network: paramiko's connect is replaced by a recorder where one is made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import paramiko
import pytest

from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.inventory import Host, Inventory, SshSettings
from wgconsole.poll.collector import FleetCollector
from wgconsole.poll.transport.base import TransportError
from wgconsole.poll.transport.ssh import (
    JumpSpec,
    SshConfigError,
    SshHop,
    SshTransport,
    parse_proxy_jump,
    resolve_target,
)

INVENTORY = """\
service: {{protocol: udp, vip: 10.77.255.1, port: 51280, scheduler: sh}}
ssh:
{defaults}
  known_hosts: {home}/.ssh/known_hosts
load_balancers:
  - {{name: lb, host: {lb}}}
gateways:
  - {{name: gw1, host: gw1.example{gw1_extra}, real_server: 10.77.0.11:51280}}
  - {{name: gw2, host: gw2.example, real_server: 10.77.0.12:51280}}
tunnel: {{network: 10.255.0.0/24, gateway_address: 10.255.0.1}}
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME of the test's own: ~/.ssh/config is what the test writes there."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    return tmp_path


def _config(home: Path, text: str) -> None:
    (home / ".ssh" / "config").write_text(text)


def _inventory(
    home: Path, defaults: str = "", gw1_extra: str = "", lb: str = "lb.example"
) -> Inventory:
    path = home / "inventory.yaml"
    path.write_text(
        INVENTORY.format(
            defaults=defaults or "  sudo: false", home=home, gw1_extra=gw1_extra, lb=lb
        )
    )
    return load_inventory(path)


def _host(inventory: Inventory, name: str) -> Host:
    return next(h for h in inventory.hosts if h.name == name)


# --- precedence: the inventory's explicit user and port win ----------------------------------

CONFIG_FOR_ALL = """\
Host *.example
  User cfguser
  Port 2200
"""


def test_an_explicit_user_and_port_on_the_host_win_over_ssh_config(home: Path) -> None:
    _config(home, CONFIG_FOR_ALL)
    inv = _inventory(home, gw1_extra=", user: root, port: 22")
    target = resolve_target(_host(inv, "gw1"))
    assert (target.user, target.port) == ("root", 22)


def test_explicit_ssh_defaults_win_over_ssh_config(home: Path) -> None:
    _config(home, CONFIG_FOR_ALL)
    inv = _inventory(home, defaults="  user: root\n  port: 22")
    for name in ("lb", "gw1", "gw2"):
        target = resolve_target(_host(inv, name))
        assert (target.user, target.port) == ("root", 22), name


def test_ssh_config_fills_in_what_the_inventory_leaves_out(home: Path) -> None:
    _config(home, CONFIG_FOR_ALL)
    inv = _inventory(home, gw1_extra=", port: 2202")
    gw1 = resolve_target(_host(inv, "gw1"))
    assert (gw1.user, gw1.port) == ("cfguser", 2202)
    gw2 = resolve_target(_host(inv, "gw2"))
    assert (gw2.user, gw2.port) == ("cfguser", 2200)


def test_the_inventory_records_what_it_gave() -> None:
    assert SshSettings().is_given("user") is False
    assert SshSettings(given=frozenset({"user"})).is_given("user") is True
    # A value other than the built-in default was given, even without `given` (made in code).
    assert SshSettings(port=2201).is_given("port") is True


def test_without_ssh_config_the_inventory_values_are_used(home: Path) -> None:
    target = resolve_target(_host(_inventory(home), "gw1"))
    assert (target.hostname, target.user, target.port, target.jumps) == (
        "gw1.example",
        "root",
        22,
        (),
    )


# --- ProxyJump: the grammar -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "hops"),
    [
        ("bastion", [JumpSpec(None, "bastion", None)]),
        ("ops@bastion:2222", [JumpSpec("ops", "bastion", 2222)]),
        ("a,b", [JumpSpec(None, "a", None), JumpSpec(None, "b", None)]),
        (
            "a, u@b:23 ,c",
            [JumpSpec(None, "a", None), JumpSpec("u", "b", 23), JumpSpec(None, "c", None)],
        ),
        ("[fd00::1]:22", [JumpSpec(None, "fd00::1", 22)]),
        ("ops@[fd00::1]", [JumpSpec("ops", "fd00::1", None)]),
        ("[fe80::1%eth0]:2022", [JumpSpec(None, "fe80::1%eth0", 2022)]),
        ("ssh://ops@[fd00::1]:2222/", [JumpSpec("ops", "fd00::1", 2222)]),
        ("SSH://jump.example.org", [JumpSpec(None, "jump.example.org", None)]),
        ("user@corp.example@jump", [JumpSpec("user@corp.example", "jump", None)]),
        ("192.0.2.7:2200", [JumpSpec(None, "192.0.2.7", 2200)]),
        ("none", []),
        ("NONE", []),
    ],
)
def test_proxy_jump_forms(text: str, hops: list[JumpSpec]) -> None:
    assert list(parse_proxy_jump(text)) == hops


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a,,b", "an empty jump host"),
        ("a,", "an empty jump host"),
        ("fd00::1", "write an IPv6 address in brackets"),
        ("fd00::1:22", "write an IPv6 address in brackets"),
        ("[fd00::1", "'[' without its ']'"),
        ("[fd00::1]22", "after ']'"),
        ("[fd00::zz]:22", "is not an IPv6 address"),
        ("host:", "is not a port number"),
        ("host:0", "is not a port number"),
        ("host:65536", "is not a port number"),
        ("host:22x", "is not a port number"),
        ("@host", "no user before '@'"),
        ("us er@host", "is not a user name"),
        ("op\x1b]0;x@host", "is not a user name"),
        (":22", "no host"),
        ("ops@", "no host"),
        ("ho$t", "is not a host name"),
        ("ssh://h/path", "is not a host name"),
    ],
)
def test_malformed_proxy_jumps_say_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("[", r"\[").replace("$", r"\$")):
        parse_proxy_jump(text)


# --- ProxyJump: resolution through ~/.ssh/config --------------------------------------------


def test_a_chain_resolves_every_hop_through_its_own_config_entry(home: Path) -> None:
    (home / ".ssh" / "jump_key").write_text("not read here")
    _config(
        home,
        f"""\
Host gw1.example
  HostName 10.0.0.11
  ProxyJump outer,ops@[fd00::2]:2022
Host outer
  HostName outer.example.org
  User jumper
  Port 2200
  IdentityFile {home}/.ssh/jump_key
""",
    )
    target = resolve_target(_host(_inventory(home), "gw1"))
    assert target.hostname == "10.0.0.11"
    assert target.jumps == (
        SshHop("outer.example.org", 2200, "jumper", (f"{home}/.ssh/jump_key",)),
        SshHop("fd00::2", 2022, "ops", ()),
    )


def test_what_the_proxy_jump_writes_wins_over_the_hops_entry(home: Path) -> None:
    _config(home, "Host gw1.example\n  ProxyJump u@outer:23\nHost outer\n  User x\n  Port 99\n")
    target = resolve_target(_host(_inventory(home), "gw1"))
    assert [(h.hostname, h.user, h.port) for h in target.jumps] == [("outer", "u", 23)]


def test_the_first_hops_own_proxy_jump_is_followed(home: Path) -> None:
    _config(
        home,
        """\
Host gw1.example
  ProxyJump inner,last
Host inner
  ProxyJump u@outer
Host last
  ProxyJump ignored
""",
    )
    target = resolve_target(_host(_inventory(home), "gw1"))
    assert [h.hostname for h in target.jumps] == ["outer", "inner", "last"]


def test_a_proxy_jump_loop_is_refused(home: Path) -> None:
    _config(home, "Host gw1.example\n  ProxyJump a\nHost a\n  ProxyJump b\nHost b\n  ProxyJump a\n")
    with pytest.raises(SshConfigError, match="more than 8 jump hosts"):
        resolve_target(_host(_inventory(home), "gw1"))


def test_a_hop_without_a_user_is_the_local_login_as_with_openssh(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "alice")
    _config(home, "Host gw1.example\n  ProxyJump outer\n")
    inv = _inventory(home, defaults="  user: ops")
    target = resolve_target(_host(inv, "gw1"))
    assert target.user == "ops"  # the host's is the inventory's
    assert [h.user for h in target.jumps] == ["alice"]


# --- the connections a chain makes ----------------------------------------------------------


class _Recorder:
    """Stands in for paramiko's connect and direct-tcpip channels: what went where, over what."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[Any, ...]] = []
        recorder = self

        class Transport:
            def __init__(self, hostname: str) -> None:
                self.hostname = hostname

            def open_channel(self, kind: str, dest: tuple[str, int], *_: Any, **__: Any) -> str:
                recorder.calls.append(("tunnel", self.hostname, kind, dest))
                return f"channel from {self.hostname} to {dest[0]}:{dest[1]}"

            def set_keepalive(self, interval: int) -> None:
                pass

            def is_active(self) -> bool:
                return True

        def connect(client: paramiko.SSHClient, hostname: str, **kw: Any) -> None:
            recorder.calls.append(("connect", hostname, kw["port"], kw["username"], kw["sock"]))
            client._recorded = Transport(hostname)  # type: ignore[attr-defined]

        monkeypatch.setattr(paramiko.SSHClient, "connect", connect)
        monkeypatch.setattr(
            paramiko.SSHClient, "get_transport", lambda c: getattr(c, "_recorded", None)
        )


def test_each_hop_is_reached_through_the_one_before(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(
        home,
        "Host gw1.example\n  HostName 10.0.0.11\n  ProxyJump ops@a.example:2200,[fd00::b]:2022\n",
    )
    recorder = _Recorder(monkeypatch)
    inv = _inventory(home, defaults="  user: root\n  port: 22")
    transport = SshTransport(_host(inv, "gw1"))
    transport._ensure()
    assert recorder.calls == [
        ("connect", "a.example", 2200, "ops", None),
        ("tunnel", "a.example", "direct-tcpip", ("fd00::b", 2022)),
        ("connect", "fd00::b", 2022, "root", "channel from a.example to fd00::b:2022"),
        ("tunnel", "fd00::b", "direct-tcpip", ("10.0.0.11", 22)),
        ("connect", "10.0.0.11", 22, "root", "channel from fd00::b to 10.0.0.11:22"),
    ]
    assert transport.connects == 1


# --- a malformed ProxyJump is that host's error, never a traceback ---------------------------


@pytest.mark.parametrize("jump", ["[fd00::1", "a,,b", "fd00::1:22", "h:99999"])
def test_a_malformed_proxy_jump_is_that_hosts_error(
    home: Path, monkeypatch: pytest.MonkeyPatch, jump: str
) -> None:
    def no_client(*args: object, **kwargs: object) -> None:
        raise AssertionError("connected although the route cannot be followed")

    monkeypatch.setattr(paramiko.SSHClient, "connect", no_client)
    _config(home, f"Host gw1.example\n  ProxyJump {jump}\n")
    transport = SshTransport(_host(_inventory(home), "gw1"))
    with pytest.raises(TransportError) as err:
        transport.run("true", timeout=5)
    assert str(err.value).startswith("~/.ssh/config: Host gw1.example: ProxyJump: ")
    assert transport.connects == 0


def test_a_bad_ssh_config_is_one_hosts_error_in_a_poll(home: Path) -> None:
    """The collector is made (nothing raised at start), the poll ends, and the host is reported
    with the reason; the other host's own outcome is unaffected."""
    _config(home, "Host gw1.example\n  ProxyJump [fd00::1]:22x\n")

    class Down:
        name = "gw2"

        def run(self, command: str, timeout: float, *, mutating: bool = False) -> object:
            raise TransportError("stub: not answering")

        def close(self) -> None:
            pass

    collector = FleetCollector(
        _inventory(home),
        timeout=5.0,
        transport_factory=lambda h: SshTransport(h) if h.name == "gw1" else Down(),  # type: ignore[arg-type, return-value]
    )
    try:
        errors = {h.name: h.error for h in collector.poll(roles=("gateway",)).hosts}
    finally:
        collector.close()
    assert errors == {
        "gw1": "~/.ssh/config: Host gw1.example: ProxyJump: '[fd00::1]:22x': "
        "port '22x' is not a port number (1..65535)",
        "gw2": "stub: not answering",
    }


def test_a_port_in_ssh_config_that_is_not_a_number_is_that_hosts_error(home: Path) -> None:
    _config(home, "Host gw2.example\n  Port twenty\n")
    transport = SshTransport(_host(_inventory(home), "gw2"))
    with pytest.raises(SshConfigError, match="Port 'twenty' is not a port number"):
        transport.run("true", timeout=5)
