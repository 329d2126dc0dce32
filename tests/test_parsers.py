"""Tests for the text parsers of wgconsole.poll.parsers.

The fixtures under fixtures/parsers/ were written from the printf formats of ipvsadm 1.31,
Linux 6.1 (ip_vs_ctl.c, ip_vs_conn.c) and wireguard-tools 1.0.20210914 (dump_print), not
captured from a host. Their keys are fake: 32 repeated bytes, base64-encoded.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import gc
import pickle
import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wgconsole.core.bulk import LineMemo
from wgconsole.core.records import (
    FWD_METHODS,
    Endpoint,
    IpvsConn,
    IpvsDest,
    IpvsService,
    ServiceFlag,
    WgInterface,
    WgPeer,
)
from wgconsole.poll.parsers import (
    DestStats,
    ParseError,
    Section,
    ipvs_proc,
    merge_stats,
    parse_bool_sysctl,
    parse_clock,
    parse_endpoint,
    parse_ip_vs,
    parse_ip_vs_conn,
    parse_ipvsadm_list,
    parse_ipvsadm_stats,
    parse_link_state,
    parse_wg_dump,
    parse_wg_dump_all,
    section_command,
    section_text,
    split_sections,
)
from wgconsole.poll.parsers.errors import excerpt, redact

FIXTURES = Path(__file__).parent / "fixtures" / "parsers"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def fake_key(byte: int) -> str:
    return base64.b64encode(bytes([byte]) * 32).decode()


PRIVATE_KEY = fake_key(0x42)  # the fixtures' interface private key
PRESHARED_KEY = fake_key(0x43)  # the fixtures' one preshared key
SECRETS = (PRIVATE_KEY, PRESHARED_KEY)

IPVSADM_HEADER = (
    "IP Virtual Server version 1.2.1 (size=4096)\n"
    "Prot LocalAddress:Port Scheduler Flags\n"
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
)
STATS_HEADER = (
    "IP Virtual Server version 1.2.1 (size=4096)\n"
    "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n"
    "  -> RemoteAddress:Port\n"
)
PROC_HEADER = (
    "IP Virtual Server version 1.2.1 (size=4096)\n"
    "Prot LocalAddress:Port Scheduler Flags\n"
    "  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n"
)
CONN_HEADER = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
VIP = Endpoint("172.16.0.1", 51280)
GW1 = Endpoint("10.211.55.118", 51280)
GW2 = Endpoint("10.211.55.119", 51280)


def parse_error(parse: Callable[[str], object], text: str) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse(text)
    return caught.value


# --- errors ------------------------------------------------------------------------------


def test_parse_error_message_and_fields() -> None:
    error = ParseError("ipvsadm -Ln", 4, "bad weight")
    assert (error.source, error.line, error.reason) == ("ipvsadm -Ln", 4, "bad weight")
    assert str(error) == "ipvsadm -Ln, line 4: bad weight"
    assert str(ParseError("date", None, "empty")) == "date: empty"


def test_parse_error_redacts_keys_and_survives_pickling() -> None:
    error = ParseError("x", 1, f"saw {PRIVATE_KEY} here")
    assert PRIVATE_KEY not in str(error)
    assert PRIVATE_KEY not in repr(error)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.source, copy.line, str(copy)) == ("x", 1, str(error))


def test_excerpt_and_redact() -> None:
    assert excerpt("") == "(no output)"
    assert excerpt("\n  first  \n\nsecond\n") == "'first / second'"
    assert excerpt("x " * 250).endswith("...'")
    assert excerpt("x" * 500) == "'<redacted>'"  # a long base64-like run, whole
    assert redact(f"a {PRIVATE_KEY} b") == "a <redacted> b"
    assert redact("/proc/sys/net/ipv4/vs/expire_nodest_conn") == (
        "/proc/sys/net/ipv4/vs/expire_nodest_conn"
    )


# --- sections ----------------------------------------------------------------------------


def test_section_command_builds_the_framing() -> None:
    assert section_command("wg", "wg show wg0 dump 2>&1") == (
        "echo '@@wgc:wg'; wg show wg0 dump 2>&1; echo \"@@wgc-rc:wg:$?\""
    )


@pytest.mark.parametrize("name", ["", "WG", "a b", "x;y", "a'b", "ünï"])
def test_section_command_rejects_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="section name"):
        section_command(name, "true")


def test_section_command_rejects_empty_command() -> None:
    with pytest.raises(ValueError, match="empty command"):
        section_command("a", "  ")


def test_split_sections_fixture() -> None:
    sections = split_sections(fixture("sections_gateway.txt"))
    assert list(sections) == ["clock", "link", "wg", "ipvsadm", "sysctl"]
    assert sections["clock"] == Section("clock", "1700000123.456789012\n", 0)
    assert sections["ipvsadm"].rc == 127
    assert not sections["ipvsadm"].ok
    # `cat` of a file without a final newline: the status marker ends the same line.
    assert sections["sysctl"] == Section("sysctl", "1", 0)
    assert parse_clock(sections["clock"].text) == pytest.approx(1700000123.456789)
    assert parse_link_state(sections["link"].text) is True
    assert parse_bool_sysctl(sections["sysctl"].text) is True
    interface = parse_wg_dump(sections["wg"].text, "wg0")  # private key already "(hidden)"
    assert interface.public_key == fake_key(0x10)
    assert len(interface.peers) == 1


def test_split_sections_round_trip_through_a_real_shell() -> None:
    command = "; ".join(
        [
            section_command("one", "printf 'a\\nb\\n' 2>&1"),
            section_command("nonl", "printf 'no newline' 2>&1"),
            section_command("fail", "ls /nonexistent/wgc-test 2>&1"),
            section_command("empty", "true 2>&1"),
        ]
    )
    output = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, check=True
    ).stdout
    sections = split_sections(output)
    assert sections["one"] == Section("one", "a\nb\n", 0)
    assert sections["nonl"] == Section("nonl", "no newline", 0)
    assert sections["fail"].rc not in (0, None)
    assert "nonexistent" in sections["fail"].text
    assert sections["empty"] == Section("empty", "", 0)


def test_section_text() -> None:
    sections = split_sections(fixture("sections_gateway.txt"))
    assert section_text(sections, "clock") == "1700000123.456789012\n"
    error = parse_error(lambda _: section_text(sections, "ipvsadm"), "")
    assert "exit status 127" in str(error)
    assert "command not found" in str(error)
    assert "command not found" in section_text(sections, "ipvsadm", allow_failure=True)
    error = parse_error(lambda _: section_text(sections, "conns"), "")
    assert "no section 'conns'" in str(error)


def test_section_without_status_is_incomplete() -> None:
    sections = split_sections("@@wgc:a\nx\n@@wgc:b\ny\n@@wgc-rc:b:0\n@@wgc:c\npartial")
    assert sections["a"] == Section("a", "x\n", None)
    assert sections["b"] == Section("b", "y\n", 0)
    assert sections["c"] == Section("c", "partial", None)
    error = parse_error(lambda _: section_text(sections, "c", allow_failure=True), "")
    assert "cut short" in str(error)


def test_split_sections_tolerates_crlf() -> None:
    sections = split_sections("@@wgc:a\r\n0\r\n@@wgc-rc:a:0\r\n@@wgc:b\r\n@@wgc-rc:b:3\r\n")
    assert sections == {"a": Section("a", "0\r\n", 0), "b": Section("b", "", 3)}
    assert parse_bool_sysctl(sections["a"].text) is False


def test_split_sections_ignores_preamble_and_blank_text() -> None:
    assert split_sections("") == {}
    assert split_sections("  \n") == {}
    sections = split_sections("motd noise\n@@wgc:a\n1\n@@wgc-rc:a:0\n\n")
    assert sections == {"a": Section("a", "1\n", 0)}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ssh: connect to host x port 22: Connection refused\n", "no section markers"),
        ("@@wgc:a\n@@wgc-rc:a:0\n@@wgc:a\n@@wgc-rc:a:0\n", "duplicate section 'a'"),
        ("@@wgc:a\n@@wgc-rc:b:0\n", "status line for 'b' found in section 'a'"),
        ("@@wgc:a\n@@wgc-rc:a:0\n@@wgc-rc:a:0\n", "status line for 'a' found in no open"),
        ("@@wgc:a\n@@wgc-rc:a:x\n", "bad status line"),
        ("@@wgc:a\n@@wgc-rc:a\n", "bad status line"),
        ("@@wgc:A B\n", "bad section name"),
        ("@@wgc:a\n@@wgc-rc:a:0\nstray\n@@wgc:b\n@@wgc-rc:b:0\n", "outside any section"),
        ("@@wgc:a\n@@wgc-rc:a:0\ntrailing\n", "outside any section"),
    ],
)
def test_split_sections_errors(text: str, message: str) -> None:
    error = parse_error(split_sections, text)
    assert message in str(error)
    assert error.source == "sections"


def test_split_sections_error_line_number() -> None:
    error = parse_error(split_sections, "@@wgc:a\n1\n2\n@@wgc-rc:b:0\n")
    assert error.line == 4


# --- ipvsadm -Ln -------------------------------------------------------------------------


def test_ipvsadm_list_seed_service() -> None:
    services = parse_ipvsadm_list(fixture("ipvsadm_list.txt"))
    assert services[0] == IpvsService(
        protocol="udp",
        vip=VIP,
        scheduler="sh",
        flags=ServiceFlag.SH_FALLBACK | ServiceFlag.SH_PORT,
        timeout=0,
        dests=(  # --nosort: kernel order, newest first, exactly as printed
            IpvsDest(GW2, weight=1, forward="masq", active_conns=0, inactive_conns=1),
            IpvsDest(GW1, weight=0, forward="masq", active_conns=0, inactive_conns=3),
        ),
    )
    assert services[0].sh_fallback
    assert services[0].sh_port
    assert type(services[0].flags) is int


def test_ipvsadm_list_all_services() -> None:
    services = parse_ipvsadm_list(fixture("ipvsadm_list.txt"))
    summary = [(s.protocol, str(s.vip), s.scheduler, s.flags, s.timeout) for s in services]
    assert summary == [
        ("udp", "172.16.0.1:51280", "sh", 0x18, 0),
        ("udp", "172.16.0.2:51280", "sh", 0, 0),
        ("tcp", "10.0.0.1:80", "rr", ServiceFlag.PERSISTENT, 360),
        ("tcp", "10.0.0.1:443", "wlc", ServiceFlag.PERSISTENT | ServiceFlag.ONEPACKET, 300),
        ("udp", "[2001:db8::1]:51280", "sh", ServiceFlag.SH_FALLBACK, 0),
        ("udp", "172.16.0.3:51280", "mh", 0x18, 0),  # mh-fallback, mh-port: the same bits
        ("sctp", "10.0.0.5:3868", "rr", ServiceFlag.ONEPACKET, 0),
        ("tcp", "10.0.0.9:8080", "wrr", 0x08 | 0x20, 0),  # flag-1, flag-3
        ("fwm", "0.0.0.0:5", "sh", 0, 0),
        ("fwm", "[::]:7", "rr", ServiceFlag.PERSISTENT, 60),
    ]
    assert [d.forward for d in services[2].dests] == ["route", "local"]
    assert services[3].dests[0].active_conns == 1234567
    assert services[3].flag_names() == ["persistent", "ops"]
    assert [str(d.endpoint) for d in services[4].dests] == [
        "[2001:db8::12]:51280",
        "[2001:db8::11]:51280",
    ]
    assert services[6].dests == ()
    assert services[7].dests[0].forward == "bypass"
    assert str(services[9].dests[0].endpoint) == "[2001:db8::11]:0"


def test_ipvsadm_list_forward_names_cover_observed_values() -> None:
    lines = "".join(
        f"  -> 10.0.0.{i}:80{'':18} {name:<7} 1      0          0\n"
        for i, name in enumerate(["Masq", "Local", "Tunnel", "Route", "Bypass"], 1)
    )
    (service,) = parse_ipvsadm_list(IPVSADM_HEADER + "TCP  10.0.0.1:80 wlc\n" + lines)
    assert {d.forward for d in service.dests} == set(FWD_METHODS.values())


def test_ipvsadm_list_without_services() -> None:
    assert parse_ipvsadm_list(IPVSADM_HEADER) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("  -> 10.0.0.2:80                  Masq    1      0          0\n", "before any service"),
        ("UDP  172.16.0.1:51280 sh\n  -> 10.0.0.2:80   Masq    1      0\n", "got 4 fields"),
        ("UDP  172.16.0.1:51280 sh\n  -> 10.0.0.2:80   Magic   1      0   0\n", "forwarding"),
        ("UDP  172.16.0.1:51280 sh\n  -> 10.0.0.2:80   Masq    x      0   0\n", "weight"),
        ("UDP  172.16.0.1:51280 sh\n  -> 10.0.0.2:80   Masq    1     -3   0\n", "ActiveConn"),
        ("UDP  172.16.0.1:51280 sh\n  -> 10.0.0.2      Masq    1      0   0\n", "ADDRESS:PORT"),
        ("UDP  172.16.0.1:51280 sh\n  -> 10.0.0.2:99999 Masq   1      0   0\n", "out of range"),
        ("UDP  172.16.0.1:51280 sh\n  -> 10.0.0.256:80 Masq    1      0   0\n", "bad address"),
        ("UDP  172.16.0.1:51280 sh (sh-turbo)\n", "unknown scheduler flag 'sh-turbo'"),
        ("UDP  172.16.0.1:51280 sh persistent\n", "'persistent' without a value"),
        ("UDP  172.16.0.1:51280 sh persistent x\n", "timeout"),
        ("UDP  172.16.0.1:51280 sh fast\n", "unknown service option 'fast'"),
        ("UDP  172.16.0.1:51280\n", "without a scheduler"),
        ("ICMP 172.16.0.1:0 rr\n", "unknown protocol 'ICMP'"),
        ("UDP\n", "without an address"),
        ("UDP  2001:db8::1:80 sh\n", "brackets"),
        ("UDP  [10.0.0.1]:80 sh\n", "brackets"),
        ("FWM\n", "without a mark"),
        ("FWM  x sh\n", "firewall mark"),
    ],
)
def test_ipvsadm_list_malformed(body: str, message: str) -> None:
    error = parse_error(parse_ipvsadm_list, IPVSADM_HEADER + body)
    assert message in error.reason
    assert error.line is not None
    assert error.line >= 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "(no output)"),
        (
            "Can't initialize ipvs: Protocol not available\n"
            "Are you sure that IP Virtual Server is built in the kernel or as module?\n",
            "Protocol not available",
        ),
        ("bash: line 1: ipvsadm: command not found\n", "command not found"),
        ("IP Virtual Server version 1.2.1 (size=4096)\n", "expected title line"),
        (IPVSADM_HEADER.replace("Scheduler", "Sched"), "expected title line"),
        (STATS_HEADER, "expected title line"),
    ],
)
def test_ipvsadm_list_not_a_listing(text: str, message: str) -> None:
    assert message in str(parse_error(parse_ipvsadm_list, text))


def test_parse_endpoint() -> None:
    assert parse_endpoint("10.0.0.1:80", "x", 1) == Endpoint("10.0.0.1", 80)
    assert parse_endpoint("[2001:DB8:0::1]:80", "x", 1) == Endpoint("2001:db8::1", 80)
    for bad in ["", ":80", "10.0.0.1:", "10.0.0.1:+80", "[::1]80", "host:80"]:
        with pytest.raises(ParseError):
            parse_endpoint(bad, "x", 1)


# --- ipvsadm --stats ---------------------------------------------------------------------


def test_ipvsadm_stats_exact() -> None:
    stats = parse_ipvsadm_stats(fixture("ipvsadm_stats_exact.txt"))
    assert list(stats) == [
        ("udp", VIP),
        ("udp", Endpoint("2001:db8::1", 51280)),
        ("fwm", Endpoint("0.0.0.0", 5)),
    ]
    assert stats["udp", VIP] == {
        GW2: DestStats(3, 23456789, 20000000, 8765432109, 50000000000000),
        GW1: DestStats(4, 100000000, 100000000, 90000000000, 100000000000000),
    }
    assert stats["fwm", Endpoint("0.0.0.0", 5)] == {
        Endpoint("10.211.55.118", 0): DestStats(1, 2, 3, 4, 5)
    }


def test_ipvsadm_stats_with_unit_suffixes() -> None:
    stats = parse_ipvsadm_stats(fixture("ipvsadm_stats.txt"))
    assert stats["udp", VIP] == {
        GW2: DestStats(3, 23456789, 20000000, 8765 * 10**6, 50000 * 10**9),
        GW1: DestStats(4, 100000 * 10**3, 100000 * 10**3, 90000 * 10**6, 100 * 10**12),
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("UDP  172.16.0.1:51280  1 2 3 4\n", "expected 5 counters"),
        ("UDP  172.16.0.1:51280  1 2 3 4 5\n  -> 10.0.0.2:80  1 2 3 4 5 6\n", "5 counters"),
        ("UDP  172.16.0.1:51280  1 2 3 4 5X\n", "counter"),
        ("UDP  172.16.0.1:51280  1 2 3 4 K\n", "counter"),
        ("  -> 10.0.0.2:80  1 2 3 4 5\n", "before any service"),
        ("UDP  172.16.0.1:51280  1 2 3 4 5\n  ->\n", "without an address"),
        (
            "UDP  172.16.0.1:51280  0 0 0 0 0\n  -> 10.0.0.2:80  0 0 0 0 0\n"
            "  -> 10.0.0.2:80  0 0 0 0 0\n",
            "listed twice",
        ),
        ("UDP  172.16.0.1:51280  0 0 0 0 0\nUDP  172.16.0.1:51280  0 0 0 0 0\n", "twice"),
    ],
)
def test_ipvsadm_stats_malformed(body: str, message: str) -> None:
    assert message in parse_error(parse_ipvsadm_stats, STATS_HEADER + body).reason


def test_ipvsadm_stats_rejects_a_plain_listing() -> None:
    error = parse_error(parse_ipvsadm_stats, fixture("ipvsadm_list.txt"))
    assert "expected title line" in error.reason


def test_merge_stats() -> None:
    services = parse_ipvsadm_list(fixture("ipvsadm_list.txt"))
    merged = merge_stats(services, parse_ipvsadm_stats(fixture("ipvsadm_stats_exact.txt")))
    assert len(merged) == len(services)
    first = merged[0]
    assert first.dests[0].endpoint == GW2
    assert (first.dests[0].conns, first.dests[0].in_bytes) == (3, 8765432109)
    assert (first.dests[1].conns, first.dests[1].out_bytes) == (4, 100000000000000)
    assert first.dests[1].inactive_conns == 3  # the listing's own fields are kept
    assert merged[8].dests[0].out_bytes == 5  # FWM services match too
    # Services and dests the stats do not mention (added in between) keep zeros.
    assert merged[1] == services[1]
    assert services[0].dests[0].conns == 0  # the input is not modified


# --- /proc/net/ip_vs_conn ----------------------------------------------------------------


def test_ip_vs_conn_fixture() -> None:
    conns = parse_ip_vs_conn(fixture("proc_ip_vs_conn.txt"))
    assert conns[0] == IpvsConn(
        protocol="udp",
        client=Endpoint("10.0.2.15", 40000),
        virtual=VIP,
        dest=GW1,
        state="UDP",
        expires=293,
    )
    assert [(c.protocol, c.state, c.expires) for c in conns] == [
        ("udp", "UDP", 293),
        ("udp", "UDP", 0),
        ("tcp", "ESTABLISHED", 899),
        ("tcp", "TIME_WAIT", 110),
        ("sctp", "ESTABLISHED", 42),
        ("udp", "UDP", 177),  # with PEName and PEData
        ("tcp", "NONE", 60),
        ("udp", "UDP", 12),
        ("tcp", "SYN_RECV", 59),
    ]
    assert conns[1].dest == GW2
    assert conns[7].client == Endpoint("2001:db8:1::7", 40001)
    assert conns[7].virtual == Endpoint("2001:db8::1", 51280)
    assert conns[7].dest == Endpoint("2001:db8::11", 51280)
    assert conns[8].dest == Endpoint("10.0.0.3", 443)  # IPv6 service, IPv4 real server


def test_ip_vs_conn_empty_table_and_trailing_space() -> None:
    assert parse_ip_vs_conn(CONN_HEADER) == []
    line = "UDP 0A00020F 9C40 AC100001 C850 0AD33776 C850 UDP         293 \n"
    (conn,) = parse_ip_vs_conn(CONN_HEADER + line)
    assert (conn.client, conn.dest) == (Endpoint("10.0.2.15", 40000), GW1)


def test_ip_vs_conn_accepts_blank_lines_and_missing_final_newline() -> None:
    line = "UDP 0A00020F 9C40 AC100001 C850 0AD33776 C850 UDP         293"
    assert len(parse_ip_vs_conn(CONN_HEADER + line)) == 1
    assert len(parse_ip_vs_conn(CONN_HEADER + line + "\n\n" + line + "\n")) == 2


def random_conn_table(count: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = [CONN_HEADER.rstrip("\n")]
    for _ in range(count):
        dest = rng.choice(["0AD33776", "0AD33777"])
        protocol, state = rng.choice([("UDP", "UDP"), ("TCP", "ESTABLISHED"), ("TCP", "FIN_WAIT")])
        lines.append(
            f"{protocol} {rng.getrandbits(32):08X} {rng.getrandbits(16):04X} AC100001 C850 "
            f"{dest} C850 {state:<11} {rng.randrange(0, 900):7d}"
        )
    return "\n".join(lines) + "\n"


def test_ip_vs_conn_fast_and_reference_paths_agree() -> None:
    text = random_conn_table(3000, seed=7)
    lines = text.partition("\n")[2].splitlines()
    by_column = ipvs_proc._conns_by_column(lines)
    assert by_column is not None  # a regular table takes the fast path
    assert by_column == ipvs_proc._conns_by_line(lines) == parse_ip_vs_conn(text)
    assert len(by_column) == 3000
    assert ipvs_proc._ipv4_columns(lines) is not None  # cut at fixed places, not split
    # IPv6, SCTP's wider column and PE fields take the fast path as well (split, not cut).
    lines = fixture("proc_ip_vs_conn.txt").partition("\n")[2].splitlines()
    assert ipvs_proc._ipv4_columns(lines) is None
    assert ipvs_proc._conns_by_column(lines) == ipvs_proc._conns_by_line(lines)
    assert ipvs_proc._conns_by_column(lines) is not None
    # Fields not where the kernel puts them are never cut: a space inside an address or a
    # port, a short line.
    good = "UDP 0A00020F 9C40 AC100001 C850 0AD33776 C850 UDP         293"
    for bad in (
        "UDP 0A00 20F 9C40 AC100001 C850 0AD33776 C850 UDP         293",
        "UDP 0A00020F 9C 0 AC100001 C850 0AD33776 C850 UDP         293",
        "UDP 0A00020F 9C40",
    ):
        assert ipvs_proc._ipv4_columns([good, bad]) is None
        with pytest.raises(ParseError):
            parse_ip_vs_conn(CONN_HEADER + good + "\n" + bad + "\n")


def test_ip_vs_conn_memo_reuses_entries_and_follows_their_expiry() -> None:
    memo: LineMemo[IpvsConn] = LineMemo()
    text = random_conn_table(300, seed=3)
    first = parse_ip_vs_conn(text, memo)
    assert first == parse_ip_vs_conn(text)
    again = parse_ip_vs_conn(text, memo)
    assert all(a is b for a, b in zip(first, again, strict=True))
    # The next poll: every expiry moved on, an entry left, two arrived, one changed state.
    header, *lines = text.splitlines()
    moved = [f"{line.rsplit(None, 1)[0]} {int(line.rsplit(None, 1)[1]) + 1:7d}" for line in lines]
    moved[5] = moved[5].replace("ESTABLISHED", "CLOSE_WAIT ").replace("FIN_WAIT   ", "CLOSE_WAIT ")
    arrived = random_conn_table(2, seed=4).splitlines()[1:]
    second = "\n".join([header, *moved[:10], *moved[11:], *arrived]) + "\n"
    reused = parse_ip_vs_conn(second, memo)
    assert reused == parse_ip_vs_conn(second)
    assert [c.expires for c in reused[:3]] == [c.expires + 1 for c in first[:3]]
    assert reused[0].client is first[0].client  # the entry's unchanged parts are shared
    # A persistence engine's fields after the expiry: the line's last field is not it.
    pe = "UDP 0A00020F 9C40 AC100001 C850 0AD33776 C850 UDP         177 sip 12345\n"
    assert parse_ip_vs_conn(CONN_HEADER + pe, memo) == parse_ip_vs_conn(CONN_HEADER + pe)
    assert parse_ip_vs_conn(CONN_HEADER + pe, memo)[0].expires == 177
    assert parse_ip_vs_conn(second, memo) == parse_ip_vs_conn(second)
    with pytest.raises(ParseError, match="line 2: expected at least 9 fields"):
        parse_ip_vs_conn(second.replace("\n", "\nUDP 0A00020F\n", 1), memo)


def test_ip_vs_conn_first_poll_memo_checks_the_expiry_when_next_read() -> None:
    # A first poll's table is indexed for reuse only when the next poll reads it; lines
    # whose last field is not the expiry (a persistence engine's) must give nothing then.
    memo: LineMemo[IpvsConn] = LineMemo()
    pe = "UDP 0A00020F 9C40 AC100001 C850 0AD33776 C850 UDP         177 sip 12345\n"
    assert parse_ip_vs_conn(CONN_HEADER + pe, memo)[0].expires == 177
    later = CONN_HEADER + pe.replace("12345", "54321")
    assert parse_ip_vs_conn(later, memo) == parse_ip_vs_conn(later)
    assert parse_ip_vs_conn(later, memo)[0].expires == 177


def test_ip_vs_conn_fast_path_records_equal_normal_ones() -> None:
    (conn,) = parse_ip_vs_conn(
        CONN_HEADER + "TCP C0A801C8 D6E4 0A000001 0050 0A000003 0050 ESTABLISHED     899\n"
    )
    normal = IpvsConn(
        "tcp",
        Endpoint("192.168.1.200", 55012),
        Endpoint("10.0.0.1", 80),
        Endpoint("10.0.0.3", 80),
        "ESTABLISHED",
        899,
    )
    assert conn == normal
    assert hash(conn) == hash(normal)
    assert repr(conn) == repr(normal)
    with pytest.raises(dataclasses.FrozenInstanceError):
        conn.expires = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        conn.client.port = 1  # type: ignore[misc]


@pytest.mark.parametrize("was_enabled", [True, False])
def test_ip_vs_conn_restores_the_collector_state(*, was_enabled: bool) -> None:
    previous = gc.isenabled()
    try:
        gc.enable() if was_enabled else gc.disable()
        parse_ip_vs_conn(random_conn_table(10, seed=1))
        with pytest.raises(ParseError):
            parse_ip_vs_conn(CONN_HEADER + "UDP 0A00020F\n")
        assert gc.isenabled() is was_enabled
    finally:
        gc.enable() if previous else gc.disable()


GOOD_CONN = ["UDP", "0A00020F", "9C40", "AC100001", "C850", "0AD33776", "C850", "UDP", "293"]


@pytest.mark.parametrize(
    ("index", "value", "message"),
    [
        (0, "XYZ", "unknown protocol 'XYZ'"),
        (1, "0A00020G", "bad address '0A00020G'"),
        (1, "0A0002", "bad address"),
        (1, "2001:0db8:zzzz::1", "bad address"),
        (2, "9C4", "bad port '9C4'"),
        (2, "0x9C", "bad port"),
        (2, "-9C4", "bad port"),
        (3, "AC10000", "bad address"),
        (4, "C85G", "bad port"),
        (5, "garbage!", "bad address"),
        (6, "", "expected at least 9 fields"),
        (8, "-1", "Expires"),
        (8, "29s", "Expires"),
    ],
)
def test_ip_vs_conn_malformed_field(index: int, value: str, message: str) -> None:
    fields = list(GOOD_CONN)
    fields[index] = value
    bad = " ".join(fields)
    good = " ".join(GOOD_CONN)
    error = parse_error(parse_ip_vs_conn, f"{CONN_HEADER}{good}\n{good}\n{bad}\n{good}\n")
    assert message in error.reason
    assert error.line == 4
    assert error.source == "/proc/net/ip_vs_conn"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "(no output)"),
        ("cat: /proc/net/ip_vs_conn: No such file or directory\n", "No such file"),
        ("UDP 0A00020F 9C40 AC100001 C850 0AD33776 C850 UDP 293\n", "not /proc/net/ip_vs_conn"),
    ],
)
def test_ip_vs_conn_not_the_file(text: str, message: str) -> None:
    assert message in str(parse_error(parse_ip_vs_conn, text))


def test_ip_vs_conn_truncated_line() -> None:
    good = " ".join(GOOD_CONN)
    error = parse_error(parse_ip_vs_conn, f"{CONN_HEADER}{good}\nUDP 0A00020F 9C40 AC1")
    assert error.line == 3
    assert "expected at least 9 fields, got 4" in error.reason


# --- /proc/net/ip_vs ---------------------------------------------------------------------


def test_proc_ip_vs_fixture() -> None:
    services = parse_ip_vs(fixture("proc_ip_vs.txt"))
    assert services[0] == IpvsService(
        protocol="udp",
        vip=VIP,
        scheduler="sh",
        flags=0,  # sh-fallback / sh-port are not in this file
        dests=(
            IpvsDest(GW2, weight=1, forward="masq", active_conns=0, inactive_conns=1),
            IpvsDest(GW1, weight=1, forward="masq", active_conns=0, inactive_conns=1),
        ),
    )
    summary = [(s.protocol, str(s.vip), s.scheduler, s.flags, s.timeout) for s in services]
    assert summary == [
        ("udp", "172.16.0.1:51280", "sh", 0, 0),
        ("tcp", "10.0.0.1:80", "rr", ServiceFlag.PERSISTENT | ServiceFlag.ONEPACKET, 360),
        ("udp", "[2001:db8::1]:51280", "sh", ServiceFlag.PERSISTENT, 300),
        ("sctp", "10.0.0.5:3868", "rr", 0, 0),
        ("fwm", "0.0.0.0:5", "sh", 0, 0),
        ("fwm", "[::]:31", "rr", ServiceFlag.ONEPACKET, 0),  # family from its IPv6 dest
    ]
    assert services[1].dests[0] == IpvsDest(Endpoint("10.0.0.3", 80), 2, "route", 5, 12)
    assert services[2].dests[0].endpoint == Endpoint("2001:db8::11", 51280)
    assert services[2].dests[0].forward == "tunnel"
    assert services[4].dests[0].forward == "local"
    assert services[3].dests == ()


def test_proc_ip_vs_empty() -> None:
    assert parse_ip_vs(PROC_HEADER) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("  -> 0AD33776:C850      Masq    1      0          1\n", "before any service"),
        ("UDP  AC100001:C850\n", "needs protocol, address and scheduler"),
        ("UDP  AC10001:C850 sh\n", "bad address"),
        ("UDP  AC100001C850 sh\n", "ADDRESS:PORT"),
        ("UDP  [AC100001]:C850 sh\n", "bad IPv6 address"),
        ("XYZ  AC100001:C850 sh\n", "unknown protocol"),
        ("UDP  AC100001:C850 sh persistent 300\n", "persistent TIMEOUT NETMASK"),
        ("UDP  AC100001:C850 sh sticky\n", "unknown service option 'sticky'"),
        ("FWM  0000000G sh\n", "firewall mark"),
        ("UDP  AC100001:C850 sh\n  -> 0AD33776:C850  Masq  1  0\n", "got 4 fields"),
        ("UDP  AC100001:C850 sh\n  -> 0AD33776:C850  Bogus  1  0  1\n", "forwarding method"),
        ("UDP  AC100001:C850 sh\n  -> 0AD33776:C850  Masq  1  x  1\n", "ActiveConn"),
    ],
)
def test_proc_ip_vs_malformed(body: str, message: str) -> None:
    error = parse_error(parse_ip_vs, PROC_HEADER + body)
    assert message in error.reason
    assert error.line is not None
    assert error.line >= 4


@pytest.mark.parametrize(
    "text", ["", "cat: /proc/net/ip_vs: No such file or directory\n", STATS_HEADER]
)
def test_proc_ip_vs_not_the_file(text: str) -> None:
    parse_error(parse_ip_vs, text)


def test_bool_sysctl() -> None:
    assert parse_bool_sysctl("0\n") is False
    assert parse_bool_sysctl("1\n") is True
    assert parse_bool_sysctl("2") is True  # an int sysctl: any non-zero value is on
    for bad in ["", "yes", "1.0", "\n"]:
        parse_error(parse_bool_sysctl, bad)
    error = parse_error(
        parse_bool_sysctl, "cat: /proc/sys/net/ipv4/vs/expire_nodest_conn: No such file\n"
    )
    assert "No such file" in str(error)


# --- wg show dump ------------------------------------------------------------------------


def test_wg_dump_fixture() -> None:
    interface = parse_wg_dump(fixture("wg_dump.txt"), "wg0")
    assert (interface.name, interface.public_key) == ("wg0", fake_key(0x10))
    assert (interface.listen_port, interface.fwmark) == (51280, 0)
    assert interface.peers[0] == WgPeer(
        public_key=fake_key(0x01),
        has_preshared_key=False,
        endpoint=Endpoint("10.211.55.50", 51820),
        allowed_ips=("10.255.0.2/32",),
        latest_handshake=1700000100,
        rx_bytes=92788,
        tx_bytes=93500,
        keepalive=15,
    )
    second, third, fourth = interface.peers[1:]
    assert second.has_preshared_key
    assert second.keepalive == 0
    assert second.endpoint == Endpoint("2001:db8:1::7", 40001)
    assert second.allowed_ips == ("10.255.0.3/32", "fd00:255::3/128")
    assert third.endpoint is None
    assert third.latest_handshake == 0
    assert fourth.endpoint == Endpoint("fe80::1%eth0", 51820)
    assert fourth.allowed_ips == ()


def test_wg_dump_keeps_no_secret() -> None:
    text = fixture("wg_dump.txt")
    assert PRIVATE_KEY in text
    assert PRESHARED_KEY in text  # the fixture does carry them
    interface = parse_wg_dump(text, "wg0")
    for secret in SECRETS:
        assert secret not in repr(interface)
        assert secret not in repr(parse_wg_dump_all(fixture("wg_dump_all.txt")))
        # Not held anywhere, shown or not: a pickle holds every attribute of every record.
        assert secret.encode() not in pickle.dumps(interface)


def test_wg_dump_accepts_a_hidden_private_key() -> None:
    text = fixture("wg_dump.txt").replace(PRIVATE_KEY, "(hidden)")
    assert parse_wg_dump(text, "wg0") == parse_wg_dump(fixture("wg_dump.txt"), "wg0")


def test_wg_dump_interface_without_peers_or_keys() -> None:
    interface = parse_wg_dump("(none)\t(none)\t0\t0x1f\n", "wg9")
    assert interface == WgInterface("wg9", "", 0, 31, ())


def test_wg_dump_all_fixture() -> None:
    interfaces = parse_wg_dump_all(fixture("wg_dump_all.txt"))
    assert list(interfaces) == ["wg0", "wg1", "wg2"]
    assert interfaces["wg0"] == parse_wg_dump(fixture("wg_dump.txt"), "wg0")
    wg1 = interfaces["wg1"]
    assert (wg1.listen_port, wg1.fwmark, wg1.public_key) == (51281, 0x1234, fake_key(0x11))
    assert wg1.peers[0].allowed_ips == ("0.0.0.0/0", "::/0")
    assert interfaces["wg2"] == WgInterface("wg2", "", 0, 0, ())
    assert parse_wg_dump_all("") == {}


def dump_lines() -> list[list[str]]:
    return [line.split("\t") for line in fixture("wg_dump.txt").splitlines()]


def join_dump(lines: list[list[str]]) -> str:
    return "".join("\t".join(fields) + "\n" for fields in lines)


@pytest.mark.parametrize(
    ("row", "index", "value", "message"),
    [
        (0, 1, "not-a-key", "interface public key is not a 44-character base64 key"),
        (0, 2, "51280x", "listen port"),
        (0, 3, "0xZZ", "bad fwmark"),
        (0, 3, "", "bad fwmark"),
        (1, 0, fake_key(0x01)[:-2] + "B=", "peer public key"),  # 43rd char has stray bits
        (1, 0, "", "peer public key"),
        (1, 2, "10.211.55.50", "bad endpoint"),
        (1, 2, "10.211.55.500:51820", "bad endpoint"),
        (1, 2, "fd00::1:51820", "bad endpoint"),
        (1, 2, "[fd00::1]:70000", "bad endpoint"),
        (1, 2, "[fd00::1]:", "endpoint port"),
        (1, 3, "10.255.0.2", "bad allowed IP '10.255.0.2'"),
        (1, 3, "10.255.0.2/32,", "bad allowed IP ''"),
        (1, 4, "-1", "latest handshake"),
        (1, 5, "", "rx bytes"),
        (1, 6, "1e3", "tx bytes"),
        (1, 7, "on", "keepalive"),
    ],
)
def test_wg_dump_malformed_field(row: int, index: int, value: str, message: str) -> None:
    lines = dump_lines()
    lines[row][index] = value
    error = parse_error(lambda text: parse_wg_dump(text, "wg0"), join_dump(lines))
    assert message in error.reason
    assert error.line == row + 1
    assert_no_secret(error)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "(no output)"),
        ("Unable to access interface: No such device\n", "No such device"),
        ("bash: line 1: wg: command not found\n", "command not found"),
        (f"{PRIVATE_KEY}\tpub\t51280\n", "expected 4 fields on an interface line"),
        (f"{PRIVATE_KEY}\t{fake_key(0x10)}\t51280\toff\textra\n", "expected 4 fields"),
        (PRIVATE_KEY[:20] + "\n", "not shown"),  # output cut inside the private key
    ],
)
def test_wg_dump_not_a_dump(text: str, message: str) -> None:
    error = parse_error(lambda t: parse_wg_dump(t, "wg0"), text)
    assert message in str(error)
    assert_no_secret(error)


def test_wg_dump_truncated_peer_line() -> None:
    text = fixture("wg_dump.txt")
    cut = text[: text.index("\t10.255.0.4/32")]
    error = parse_error(lambda t: parse_wg_dump(t, "wg0"), cut)
    assert error.line == 4
    assert "expected 8 fields, got 3" in error.reason


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("wg0\t" + "\t".join(["x"] * 8) + "\n", "does not follow its interface"),
        ("Unable to access interface: Operation not permitted\n", "Operation not permitted"),
        ("wg0\tpriv\tpub\n", "expected 5 fields on an interface line or 9 on a peer line"),
    ],
)
def test_wg_dump_all_malformed(text: str, message: str) -> None:
    assert message in str(parse_error(parse_wg_dump_all, text))


def test_wg_dump_all_peer_of_another_interface_and_duplicates() -> None:
    lines = fixture("wg_dump_all.txt").splitlines()
    wg1_peer = next(line for line in lines if line.startswith("wg1\t") and line.count("\t") == 8)
    error = parse_error(parse_wg_dump_all, lines[0] + "\n" + wg1_peer + "\n")
    assert error.line == 2
    assert "does not follow" in error.reason
    error = parse_error(parse_wg_dump_all, lines[0] + "\n" + lines[0] + "\n")
    assert "listed twice" in error.reason
    assert_no_secret(error)


def assert_no_secret(error: ParseError) -> None:
    shown = " ".join([str(error), repr(error), repr(error.args), error.reason])
    for secret in SECRETS:
        # Not even a part of it: a cut-off key is still key material.
        for start in range(0, len(secret) - 8):
            assert secret[start : start + 8] not in shown, shown


def mutations(text: str) -> list[str]:
    """Systematic damage to a dump: every field blanked, dropped or garbled, every cut."""
    lines = [line.split("\t") for line in text.splitlines()]
    variants = []
    for row, fields in enumerate(lines):
        for index in range(len(fields)):
            for change in ("", "garbage value", "x\ty", None):
                damaged = [list(f) for f in lines]
                if change is None:
                    del damaged[row][index]
                else:
                    damaged[row][index] = change
                variants.append(join_dump(damaged))
    variants += [text[:cut] for cut in range(0, len(text), 7)]
    variants += [text.replace("\t", " "), text.replace("\t", ""), text.replace("\n", "")]
    return variants


@pytest.mark.parametrize("name", ["wg_dump.txt", "wg_dump_all.txt"])
def test_no_secret_in_any_result_or_error_of_a_damaged_dump(name: str) -> None:
    text = fixture(name)
    for variant in mutations(text):
        try:
            if name == "wg_dump.txt":
                result: object = parse_wg_dump(variant, "wg0")
            else:
                result = parse_wg_dump_all(variant)
        except ParseError as error:
            assert_no_secret(error)
        else:
            for secret in SECRETS:
                assert secret not in repr(result)


# --- ip link, date -----------------------------------------------------------------------

LINK_UP = (
    "5: wg0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420 qdisc noqueue state UNKNOWN mode "
    "DEFAULT group default qlen 1000\\    link/none \n"
)


def test_link_state() -> None:
    assert parse_link_state(LINK_UP) is True
    down = "5: wg0: <POINTOPOINT,NOARP> mtu 1420 qdisc noop state DOWN mode DEFAULT group "
    assert parse_link_state(down + "default qlen 1000\\    link/none \n") is False
    assert parse_link_state("7: veth0@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500\n")
    assert parse_link_state("9: wg1: <POINTOPOINT,NOARP,LOWER_UP> mtu 1420\n") is False
    assert parse_link_state('Device "wg0" does not exist.\n') is None
    assert parse_link_state('Cannot find device "wg0"\n') is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "(no output)"),
        ("bash: ip: command not found\n", "not a link line"),
        ("wg0: <UP> mtu 1420\n", "not a link line"),
        (LINK_UP + LINK_UP, "expected one link line"),
        ('Device "wg0" does not exist.\nmore\n', "expected one link line"),
    ],
)
def test_link_state_malformed(text: str, message: str) -> None:
    assert message in str(parse_error(parse_link_state, text))


def test_clock() -> None:
    assert parse_clock("1700000123.456789012\n") == pytest.approx(1700000123.456789)
    assert parse_clock("1700000123\n") == 1700000123.0
    for bad in ["", "1700000123.%N", "-1", "1.2.3", "9" * 400, "date: invalid option -- 'x'"]:
        assert "expected epoch seconds" in str(parse_error(parse_clock, bad))


# --- robustness --------------------------------------------------------------------------

PARSERS: dict[str, Callable[[str], object]] = {
    "ipvsadm_list.txt": parse_ipvsadm_list,
    "ipvsadm_stats.txt": parse_ipvsadm_stats,
    "ipvsadm_stats_exact.txt": parse_ipvsadm_stats,
    "proc_ip_vs.txt": parse_ip_vs,
    "proc_ip_vs_conn.txt": parse_ip_vs_conn,
    "wg_dump.txt": lambda text: parse_wg_dump(text, "wg0"),
    "wg_dump_all.txt": parse_wg_dump_all,
    "sections_gateway.txt": split_sections,
}


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_input_raises_only_parse_error(name: str, data: st.DataObject) -> None:
    """Cut, spliced or garbled output: a result or a ParseError, never another exception."""
    text = fixture(name)
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, min(len(text), start + 40)))
    insert = data.draw(st.text(alphabet=" \t\n:.[]()-0123456789ABCDEFabcdefxz@%", max_size=8))
    damaged = text[:start] + insert + text[end:]
    try:
        PARSERS[name](damaged)
    except ParseError as error:
        assert_no_secret(error)


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_raises_only_parse_error(name: str, text: str) -> None:
    with contextlib.suppress(ParseError):
        PARSERS[name](text)
    for parse in (parse_link_state, parse_clock, parse_bool_sysctl):
        with contextlib.suppress(ParseError):
            parse(text)
