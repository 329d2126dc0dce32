"""The director pair's parsers on text the tools print (keepalived 2.2.7 dumps captured from a
real keepalived, ipvsadm 1.31 and iproute2 formats), and the collector's handling of them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.fleet import Fleet
from wgconsole.core.records import Endpoint, IpvsTimeouts, KeepalivedRealServer, SyncDaemon
from wgconsole.poll.collector import FleetCollector, parse_lb_output
from wgconsole.poll.parsers.director import (
    keepalived_report,
    parse_addresses,
    parse_daemon,
    parse_keepalived_conf,
    parse_keepalived_data,
    parse_keepalived_json,
    parse_keepalived_section,
    parse_sysctls,
    parse_timeout,
)
from wgconsole.poll.parsers.errors import ParseError
from wgconsole.poll.remote_scripts import KEEPALIVED_SCRIPT, lb_script
from wgconsole.poll.replay import capture_time, replay_factory
from wgconsole.poll.transport import netlink

FIXTURES = Path(__file__).parent / "fixtures"
KA = FIXTURES / "parsers" / "keepalived"
LAB = FIXTURES / "lab"


def test_addresses_of_ip_o_addr() -> None:
    text = (FIXTURES / "parsers" / "ip_addr.txt").read_text()
    assert parse_addresses(text) == (
        "127.0.0.1",
        "172.30.255.1",
        "::1",
        "172.30.9.1",
        "fe80::c8aa:dcff:fea3:3ef3",
    )


@pytest.mark.parametrize(
    "text",
    [
        'Device "nope" does not exist.',
        "1: lo    inet 127.0.0.300/8 scope host lo",
        "1: lo    inet 127.0.0.1/x scope host lo",
        "1: lo    link 127.0.0.1/8",
    ],
)
def test_addresses_refuse_other_text(text: str) -> None:
    with pytest.raises(ParseError):
        parse_addresses(text)


def test_sync_daemons() -> None:
    text = "master sync daemon (mcast=eth1, syncid=7)\nbackup sync daemon (mcast=eth1, syncid=7)\n"
    assert parse_daemon(text) == (
        SyncDaemon("master", "eth1", 7),
        SyncDaemon("backup", "eth1", 7),
    )
    assert parse_daemon("") == ()
    for bad in (
        "master sync daemon (mcast=eth1, syncid=700)",
        "Memory allocation problem",
        "slave sync daemon (mcast=eth1, syncid=1)",
    ):
        with pytest.raises(ParseError):
            parse_daemon(bad)


def test_timeouts() -> None:
    assert parse_timeout("Timeout (tcp tcpfin udp): 900 120 300\n") == IpvsTimeouts(900, 120, 300)
    for bad in (
        "",
        "Timeout (tcp tcpfin udp): 900 120",
        "Can't initialize ipvs: Protocol not available",
    ):
        with pytest.raises(ParseError):
            parse_timeout(bad)


def test_sysctls() -> None:
    text = (
        "/proc/sys/net/ipv4/vs/expire_nodest_conn:1\n"
        "/proc/sys/net/ipv4/vs/sync_threshold:3\t50\n"
        "/proc/sys/net/ipv4/vs/sync_version:1\n"
    )
    sysctls = parse_sysctls(text)
    assert sysctls.sync_threshold == (3, 50)
    assert sysctls.number("sync_version") == 1
    assert sysctls.get("sync_threshold") == "3 50"
    for bad in (
        "grep: /proc/sys/net/ipv4/vs/*: No such file or directory",
        "/proc/sys/net/ipv4/vs/sync_version:1\n/proc/sys/net/ipv4/vs/sync_version:2",
        "/proc/sys/net/ipv4/vs/sync_version:",
    ):
        with pytest.raises(ParseError):
            parse_sysctls(bad)


@pytest.mark.parametrize(
    ("name", "parse"),
    [("master.json", parse_keepalived_json), ("master.data", parse_keepalived_data)],
)
def test_keepalived_dumps_master(name: str, parse: object) -> None:
    assert callable(parse)
    (instance,) = parse((KA / name).read_text())
    assert (instance.name, instance.state, instance.priority, instance.base_priority) == (
        "VI_1",
        "MASTER",
        150,
        150,
    )
    assert (instance.vrid, instance.interface, instance.vips) == (51, "pmv1", ("172.30.255.1",))


@pytest.mark.parametrize(
    ("name", "parse"),
    [("backup.json", parse_keepalived_json), ("backup.data", parse_keepalived_data)],
)
def test_keepalived_dumps_backup(name: str, parse: object) -> None:
    assert callable(parse)
    (instance,) = parse((KA / name).read_text())
    assert (instance.state, instance.priority, instance.interface) == ("BACKUP", 100, "pmv2")


@pytest.mark.parametrize(
    "text",
    [
        "",
        '{"data": 1}',
        '[{"data": {"iname": "VI_1", "state": 9}}]',
        '[{"data": {"iname": "VI_1", "state": true}}]',
        '[{"stats": {}}]',
        '[{"data": {"iname": "VI_1", "state": 2, "effective_priority": 1, '
        '"base_priority": 1, "vrid": 1, "ifp_ifname": "e", "vips": ["nope"]}}]',
    ],
)
def test_keepalived_json_refuses_garbage(text: str) -> None:
    with pytest.raises(ParseError):
        parse_keepalived_json(text)


def test_keepalived_data_refuses_garbage() -> None:
    with pytest.raises(ParseError):
        parse_keepalived_data("Keepalived: no such thing")
    damaged = (KA / "master.data").read_text().replace("State = MASTER", "State = SLEEPY")
    with pytest.raises(ParseError):
        parse_keepalived_data(damaged)


def test_keepalived_section_as_the_poll_script_wrote_it() -> None:
    """Output of KEEPALIVED_SCRIPT against a real keepalived 2.2.7 (VRRP only) in a network
    namespace: the JSON dump, the config (base64) and its virtual_server."""
    header = parse_keepalived_section((KA / "section_master.txt").read_text())
    report = keepalived_report(header)
    assert report.source == "json"
    assert report.config_path == "/var/tmp/pmka/ka1.conf"
    assert [i.state for i in report.instances] == ["MASTER"]
    assert report.virtual_servers is not None
    (server,) = report.virtual_servers
    assert (server.protocol, server.vip, server.scheduler, server.flags) == (
        "udp",
        Endpoint("172.30.255.1", 51280),
        "sh",
        0,
    )
    assert server.real_servers == (
        KeepalivedRealServer(Endpoint("172.30.0.11", 51280), 1, inhibit_on_failure=False),
        KeepalivedRealServer(Endpoint("172.30.0.12", 51280), 2, inhibit_on_failure=False),
    )


def test_keepalived_section_none_and_problem() -> None:
    assert not parse_keepalived_section("none\n").running
    header = parse_keepalived_section(
        "pid 12\nsource json\nconf /etc/k.conf\nconfproblem cat: denied\n"
        "problem keepalived wrote no json dump within 5 s\n"
    )
    assert header.running
    assert header.problem == "keepalived wrote no json dump within 5 s"
    for bad in ("", "pid x\n", "pid 1\nsource xml\ndump\n", "@@wgc:evil\n", "conftext !!!\n"):
        with pytest.raises(ParseError):
            parse_keepalived_section(bad)


CONF = """
! a comment
global_defs { router_id lb1 }   # another
include /etc/keepalived/conf.d/*.conf
virtual_server group G1 { lb_algo sh }
virtual_server fwmark 7 { lb_algo sh }
virtual_server 172.16.0.1 51280 {
    lb_algo sh
    lb_kind NAT
    sh-fallback
    protocol UDP
    real_server 10.0.0.2 51280 { weight 0
        inhibit_on_failure }
    real_server 10.0.0.1 51280 {
        MISC_CHECK { misc_path "/bin/true" }
    }
}
"""


def test_keepalived_conf_virtual_servers() -> None:
    servers, includes = parse_keepalived_conf(CONF)
    assert includes
    (server,) = servers
    assert (server.protocol, server.scheduler, server.flags) == ("udp", "sh", 0x08)
    assert [(str(r.endpoint), r.weight, r.inhibit_on_failure) for r in server.real_servers] == [
        ("10.0.0.2:51280", 0, True),
        ("10.0.0.1:51280", 1, False),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "virtual_server 1.2.3.4 80 {",
        "}",
        "virtual_server 1.2.3.400 80 { }",
        "virtual_server 1.2.3.4 99999 { }",
        "virtual_server 1.2.3.4 80 { real_server 1.2.3.5 80 { weight lots } }",
        "a {" * 40 + "}" * 40,
    ],
)
def test_keepalived_conf_refuses_garbage(text: str) -> None:
    with pytest.raises(ParseError):
        parse_keepalived_conf(text)


def test_bad_keepalived_config_is_the_reports_problem_not_the_polls() -> None:
    good = (KA / "section_master.txt").read_text().splitlines()
    lines = [
        "conftext dmlydHVhbF9zZXJ2ZXIgMS4yLjMuNCA4MCB7Cg==" if line.startswith("conftext") else line
        for line in good
    ]
    report = keepalived_report(parse_keepalived_section("\n".join(lines)))
    assert report.virtual_servers is None
    assert report.problem is not None
    assert "not closed" in report.problem
    assert [i.state for i in report.instances] == ["MASTER"]


def _lb_text(extra: str) -> str:
    """The seed capture's LB output with more sections after it."""
    return (LAB / "normal" / "wg-lb.txt").read_text() + extra


def _section(name: str, text: str, rc: int = 0) -> str:
    return f"@@wgc:{name}\n{text}@@wgc-rc:{name}:{rc}\n"


def test_old_capture_has_no_director_facts() -> None:
    obs = parse_lb_output("wg-lb", _lb_text(""))
    assert (obs.addresses, obs.sync_daemons, obs.timeouts, obs.sysctls, obs.keepalived) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert obs.director_problems == ()


def test_director_sections_parsed_with_the_poll() -> None:
    extra = (
        _section("addr", (FIXTURES / "parsers" / "ip_addr.txt").read_text())
        + _section("daemon", "backup sync daemon (mcast=eth0, syncid=1)\n")
        + _section("timeout", "Timeout (tcp tcpfin udp): 900 120 300\n")
        + _section("sysctls", "/proc/sys/net/ipv4/vs/sync_version:1\n")
        + _section("keepalived", (KA / "section_master.txt").read_text())
    )
    obs = parse_lb_output("wg-lb", _lb_text(extra))
    assert obs.addresses is not None
    assert "172.30.255.1" in obs.addresses
    assert obs.sync_daemons == (SyncDaemon("backup", "eth0", 1),)
    assert obs.timeouts == IpvsTimeouts(900, 120, 300)
    assert obs.sysctls is not None
    assert obs.sysctls.number("sync_version") == 1
    assert obs.keepalived is not None
    assert obs.keepalived.instances[0].state == "MASTER"
    assert obs.director_problems == ()


def test_unreadable_director_sections_leave_the_poll_standing() -> None:
    """A failing or garbled director section is that fact's problem, never the LB's error."""
    extra = (
        _section("addr", "\x1b[2Jgarbage\n")
        + _section("daemon", "sudo: a password is required\n", rc=1)
        + _section("timeout", "Timeout (tcp tcpfin udp): x\n")
        + _section("keepalived", "pid 12\nsource json\nconf /k\ndump\n{not json\n")
    )
    obs = parse_lb_output("wg-lb", _lb_text(extra))
    assert obs.services
    assert obs.conns
    assert (obs.addresses, obs.sync_daemons, obs.timeouts, obs.keepalived) == (
        None,
        None,
        None,
        None,
    )
    problems = "\n".join(obs.director_problems)
    assert len(obs.director_problems) == 4
    assert "missing sudo right for `ipvsadm -Ln --daemon`" in problems
    assert "not JSON" in problems


def test_lb_script_reads_the_director_sections_in_its_one_command() -> None:
    script = lb_script(sudo=False)
    for name in ("addr", "daemon", "timeout", "sysctls", "keepalived"):
        assert f"@@wgc:{name}" in script
    assert "sudo -n sh -c" in lb_script(sudo=True)
    # Only SIGUSR1 (keepalived's data dump) is ever sent to keepalived.
    kills = [line.strip() for line in KEEPALIVED_SCRIPT.splitlines() if "kill " in line]
    assert kills == [
        'kill -USR1 "$pid" 2>/dev/null || { echo "problem cannot signal keepalived ($pid)"; '
        "exit 0; }"
    ]


def test_an_operations_reading_without_keepalived_never_signals_it() -> None:
    """An operation's step that checks a weight or a table asks for no keepalived report: no
    signal, no dump waited for; the observation then has none, as where none runs."""
    for conns in (True, False):
        script = lb_script(sudo=False, conns=conns, keepalived=False)
        assert "keepalived" not in script
        assert "@@wgc:ipvsadm" in script
        assert "@@wgc:addr" in script
    # A director's capture (the poll's reading) without its keepalived section.
    captured = (LAB / "pair-normal" / "wg-lb-1.txt").read_text()
    assert "@@wgc:keepalived" in captured
    text = re.sub(r"@@wgc:keepalived\n.*?@@wgc-rc:keepalived:\d+\n", "", captured, flags=re.S)
    assert "@@wgc:keepalived" not in text
    obs = parse_lb_output("wg-lb-1", text, conns=False)
    assert obs.addresses is not None
    assert "10.77.255.1" in obs.addresses
    assert obs.services
    assert obs.keepalived is None
    assert not obs.keepalived_unknown


def _replayed(scenario: str) -> Fleet:
    frame = LAB / scenario
    inventory = load_inventory(frame / "inventory.yaml")
    collector = FleetCollector(
        inventory,
        read_only=True,
        transport_factory=replay_factory([frame]),
        clock=lambda: capture_time(frame),
    )
    try:
        return collector.read_fleet()
    finally:
        collector.close()


def test_pair_lab_capture_replayed() -> None:
    """A poll of the lab's director pair (`lab up --lbs 2`), replayed through the collector:
    keepalived's JSON dump (an earlier version of the script asked for it), the sync daemons
    as ipvsadm 1.31 prints them on 6.1, one table, both clients' entries synced."""
    fleet = _replayed("pair-normal")
    one, two = fleet.load_balancers
    assert (fleet.vip_holder, fleet.failover_lb) == ("wg-lb-1", "wg-lb-2")
    assert (one.holds_vip, one.vrrp_state, one.vrrp_priority, one.vrrp_source) == (
        True,
        "MASTER",
        150,
        "json",
    )
    assert (two.holds_vip, two.vrrp_state, two.vrrp_priority) == (False, "BACKUP", 100)
    assert one.sync_daemons == (SyncDaemon("master", "lan", 51, maxlen=1472),)
    assert two.sync_daemons == (SyncDaemon("backup", "lan", 51, maxlen=1472),)
    assert one.timeouts == two.timeouts == IpvsTimeouts(900, 120, 300)
    assert one.sysctls is not None
    assert one.sysctls.sync_threshold == (3, 50)
    assert (one.keepalived_managed, two.keepalived_managed) == (False, False)
    assert (one.buckets_differing, two.buckets_differing) == (0, 0)
    assert all(c.failover_gateway == c.lb_gateway and c.failover_synced for c in fleet.clients)
    assert {f.code for f in fleet.findings} == {"expire-nodest-off", "sh-no-fallback"}


def test_pair_lab_capture_of_a_keepalive_only_client_without_a_synced_copy() -> None:
    """The lab pair polled by the current script (keepalived's SIGUSR1 dump), after
    wg-client-0 got a new entry and then only sent keepalives: the backup has no copy of it
    (the next sync comes 50 packets later) and its own table, the same, sends it alike."""
    fleet = _replayed("pair-keepalive-only")
    one, two = fleet.load_balancers
    assert (one.vrrp_state, one.vrrp_source, two.vrrp_state, two.vrrp_source) == (
        "MASTER",
        "data",
        "BACKUP",
        "data",
    )
    assert {c.name: (c.failover_gateway, c.failover_synced) for c in fleet.clients} == {
        "wg-client-0": ("wg-gateway-01", False),
        "wg-client-1": ("wg-gateway-01", True),
    }
    assert two.synced_clients == 1
    assert [(f.code, f.subject) for f in fleet.findings if f.code == "no-synced-entry"] == [
        ("no-synced-entry", "wg-client-0")
    ]


def test_pair_lab_capture_with_the_backups_dests_readded_the_other_way() -> None:
    """The backup's two dests deleted and re-added in the other order (same `ipvsadm -Ln`):
    every bucket differs; the clients keep their gateway through their synced entries."""
    fleet = _replayed("pair-backup-reordered")
    _, backup = fleet.load_balancers
    assert backup.buckets_differing == 256
    assert [f.subject for f in fleet.findings if f.code == "backup-table-differs"] == ["wg-lb-2"]
    assert all(c.failover_synced for c in fleet.clients)
    # The capture's own kernel order, read independently from the raw text: reversed.
    texts = [(LAB / "pair-backup-reordered" / f"wg-lb-{i}.txt").read_text() for i in (1, 2)]
    listings = [t.split("@@wgc:ipvsadm")[1].split("@@wgc-rc:ipvsadm")[0] for t in texts]
    orders = [[x.split()[1] for x in t.splitlines() if x.startswith("  -> 10.")] for t in listings]
    assert orders[0] == orders[1][::-1]
    assert len(orders[0]) == 2


def test_local_transport_reads_the_addresses_ip_o_addr_lists() -> None:
    """`host: local` takes the addresses from netlink: the same set `ip -o addr` prints (the
    order differs: ip groups them by interface)."""
    listed = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert sorted(netlink._addresses()) == sorted(parse_addresses(listed.stdout))


def test_sync_daemons_with_the_kernels_parameters() -> None:
    """ipvsadm 1.31 on 6.1 prints maxlen, group, port and ttl: read, and held to the kernel's
    bounds (syncid a byte; a backup's maxlen clamped to 1024..65507, a master's to 1..65507)."""
    text = (
        "master sync daemon (mcast=lan, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, "
        "ttl=1)\nbackup sync daemon (mcast=lan, syncid=51, maxlen=1024, group=239.1.2.3, "
        "port=9000, ttl=1)\n"
    )
    master, backup = parse_daemon(text)
    assert (master.group, master.port, master.maxlen) == ("224.0.0.81", 8848, 1472)
    assert (backup.group, backup.port, backup.maxlen) == ("239.1.2.3", 9000, 1024)
    assert parse_daemon("master sync daemon (mcast=lan, syncid=1, maxlen=200)")[0].maxlen == 200
    for bad in (
        "backup sync daemon (mcast=lan, syncid=1, maxlen=1000)",
        "master sync daemon (mcast=lan, syncid=1, maxlen=0)",
        "master sync daemon (mcast=lan, syncid=1, maxlen=65508)",
        "master sync daemon (mcast=lan, syncid=1, port=65536)",
        "master sync daemon (mcast=lan, syncid=1, ttl=0)",
        "master sync daemon (mcast=lan, syncid=1, group=224.0.0.300)",
        "master sync daemon (mcast=lan, syncid=1, maxlen=1472, maxlen=1000)",
    ):
        with pytest.raises(ParseError):
            parse_daemon(bad)
