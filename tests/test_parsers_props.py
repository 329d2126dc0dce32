"""Property tests over the parsers: real lab captures damaged every way hypothesis finds
(cut, reordered, duplicated, garbled lines) give an observation or a ParseError, never another
exception, never a key in the message, and never a crash of a poll; generated dumps and
listings (IPv4 and IPv6) round-trip; older or newer formats are rejected clearly.

tests/test_parsers.py has the same kind of tests on the hand-written parser fixtures.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.records import Endpoint
from wgconsole.poll.collector import (
    FleetCollector,
    ParseMemos,
    parse_gateway_output,
    parse_lb_output,
)
from wgconsole.poll.parsers import (
    ParseError,
    parse_ipvsadm_list,
    parse_ipvsadm_stats,
    parse_wg_dump,
)
from wgconsole.poll.transport.base import CommandResult

LAB = Path(__file__).parent / "fixtures" / "lab"
CAPTURES = sorted(LAB.glob("*/*.txt"))
# Stands for a gateway's private key where the capture has "(hidden)": as if the gateway's
# own filter had failed. It must never reach an error message.
PRIVATE = "cGFzc3dvcmRwYXNzd29yZHBhc3N3b3JkcGFzc3dvcmQ="
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# Kept across examples, as a collector keeps its memos across polls: damaged output is also
# parsed against what earlier output (damaged or not) left remembered.
MEMOS = ParseMemos()


def _parse(path: Path, text: str) -> object:
    host = path.stem
    if host == "wg-lb":
        return parse_lb_output(host, text, memos=MEMOS)
    return parse_gateway_output(host, "wg0", text, MEMOS)


def _lines_op(name: str) -> Callable[[list[str], st.DataObject], list[str]]:
    def shuffle(lines: list[str], data: st.DataObject) -> list[str]:
        return data.draw(st.permutations(lines))

    def drop(lines: list[str], data: st.DataObject) -> list[str]:
        i = data.draw(st.integers(0, max(0, len(lines) - 1)))
        return lines[:i] + lines[i + 1 :]

    def duplicate(lines: list[str], data: st.DataObject) -> list[str]:
        i = data.draw(st.integers(0, max(0, len(lines) - 1)))
        return lines[: i + 1] + lines[i:]

    def swap(lines: list[str], data: st.DataObject) -> list[str]:
        if len(lines) < 2:
            return lines
        i = data.draw(st.integers(0, len(lines) - 2))
        return [*lines[:i], lines[i + 1], lines[i], *lines[i + 2 :]]

    def cut_tail(lines: list[str], data: st.DataObject) -> list[str]:
        i = data.draw(st.integers(0, max(0, len(lines) - 1)))
        line = lines[i] if lines else ""
        j = data.draw(st.integers(0, len(line)))
        return [*lines[:i], line[:j], *lines[i + 1 :]]

    def extra_column(lines: list[str], data: st.DataObject) -> list[str]:
        i = data.draw(st.integers(0, max(0, len(lines) - 1)))
        extra = data.draw(st.sampled_from(["\t0", "\toff", " 42", "\t(none)"]))
        return [*lines[:i], lines[i] + extra, *lines[i + 1 :]] if lines else lines

    return {
        "shuffle": shuffle,
        "drop": drop,
        "duplicate": duplicate,
        "swap": swap,
        "cut_tail": cut_tail,
        "extra_column": extra_column,
    }[name]


OPS = ["shuffle", "drop", "duplicate", "swap", "cut_tail", "extra_column"]


def _assert_safe(error: ParseError) -> None:
    text = str(error) + repr(error.args)
    for fragment in (PRIVATE, PRIVATE[:20], PRIVATE[10:30]):
        assert fragment not in text, text


@pytest.mark.parametrize("path", CAPTURES, ids=[f"{p.parent.name}/{p.stem}" for p in CAPTURES])
@SETTINGS
@given(data=st.data())
def test_damaged_captures_parse_or_raise_parse_error(path: Path, data: st.DataObject) -> None:
    text = path.read_text().replace("(hidden)", PRIVATE)
    how = data.draw(st.sampled_from(["truncate", "garble", *OPS]))
    if how == "truncate":
        damaged = text[: data.draw(st.integers(0, len(text)))]
    elif how == "garble":
        start = data.draw(st.integers(0, len(text)))
        end = data.draw(st.integers(start, min(len(text), start + 60)))
        junk = data.draw(st.text(max_size=20))
        damaged = text[:start] + junk + text[end:]
    else:
        damaged = "\n".join(_lines_op(how)(text.split("\n"), data))
    try:
        result = _parse(path, damaged)
    except ParseError as error:
        _assert_safe(error)
    else:
        assert PRIVATE not in repr(result)


@SETTINGS
@given(data=st.data())
def test_a_poll_never_crashes_on_damaged_output(data: st.DataObject) -> None:
    """Through the collector: the damaged host is an error, the others are served."""
    normal = LAB / "normal"
    inventory = load_inventory(normal / "inventory.yaml")
    victim = data.draw(st.sampled_from([h.name for h in inventory.hosts]))
    text = (normal / f"{victim}.txt").read_text()
    lines = text.split("\n")
    damaged = "\n".join(_lines_op(data.draw(st.sampled_from(OPS)))(lines, data))
    if data.draw(st.booleans()):
        damaged = damaged[: data.draw(st.integers(0, len(damaged)))]
    # The damaged output comes first, or after a good poll (parsed against its memos).
    good_polls = data.draw(st.integers(0, 1))

    class Host:
        def __init__(self, name: str) -> None:
            self.name = name
            self.calls = 0

        def run(self, command: str, timeout: float, *, mutating: bool = False) -> CommandResult:
            self.calls += 1
            hurt = self.name == victim and self.calls > good_polls
            out = damaged if hurt else (normal / f"{self.name}.txt").read_text()
            return CommandResult(out, "", 0, 0.0, len(out))

        def close(self) -> None:
            pass

    collector = FleetCollector(inventory, transport_factory=lambda h: Host(h.name))
    for _ in range(good_polls):
        assert all(status.reachable for status in collector.read_fleet().hosts)
    fleet = collector.read_fleet()
    for status in fleet.hosts:
        if status.name != victim:
            assert status.reachable
        elif not status.reachable:
            assert status.error
    collector.close()


# --- round trips ----------------------------------------------------------------------------

KEYS = st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode())
PORTS = st.integers(1, 65535)
V4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
V6 = st.integers(0, 2**128 - 1).map(lambda n: ipaddress.IPv6Address(n).compressed)


@st.composite
def endpoints(draw: st.DrawFn) -> tuple[str, Endpoint | None]:
    kind = draw(st.sampled_from(["none", "v4", "v6"]))
    if kind == "none":
        return "(none)", None
    port = draw(PORTS)
    if kind == "v4":
        address = draw(V4)
        return f"{address}:{port}", Endpoint(address, port)
    address = draw(V6)
    return f"[{address}]:{port}", Endpoint(address, port)


@st.composite
def networks(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return f"{draw(V4)}/{draw(st.integers(0, 32))}"
    return f"{draw(V6)}/{draw(st.integers(0, 128))}"


@st.composite
def peers(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    key = draw(KEYS)
    psk = draw(st.booleans())
    endpoint_text, endpoint = draw(endpoints())
    allowed = draw(st.lists(networks(), max_size=4))
    handshake = draw(st.integers(0, 2**40))
    rx, tx = draw(st.integers(0, 2**63)), draw(st.integers(0, 2**63))
    keepalive = draw(st.integers(0, 65535))
    line = "\t".join(
        [
            key,
            "(hidden)" if psk else "(none)",
            endpoint_text,
            ",".join(allowed) or "(none)",
            str(handshake),
            str(rx),
            str(tx),
            str(keepalive) if keepalive else "off",
        ]
    )
    expected = {
        "public_key": key,
        "has_preshared_key": psk,
        "endpoint": endpoint,
        "allowed_ips": tuple(allowed),
        "latest_handshake": handshake,
        "rx_bytes": rx,
        "tx_bytes": tx,
        "keepalive": keepalive,
    }
    return line, expected


@SETTINGS
@given(
    private=KEYS,
    public=KEYS,
    port=st.integers(0, 65535),
    fwmark=st.integers(0, 2**32 - 1),
    peer_list=st.lists(peers(), max_size=8, unique_by=lambda p: p[0].split("\t")[0]),
)
def test_wg_dump_round_trip(
    private: str,
    public: str,
    port: int,
    fwmark: int,
    peer_list: list[tuple[str, dict[str, object]]],
) -> None:
    assume(private != public and all(private not in line for line, _ in peer_list))
    head = "\t".join([private, public, str(port), f"0x{fwmark:x}" if fwmark else "off"])
    text = "\n".join([head, *(line for line, _ in peer_list)]) + "\n"
    iface = parse_wg_dump(text, "wg0")
    assert (iface.public_key, iface.listen_port, iface.fwmark) == (public, port, fwmark)
    assert [
        {f: getattr(p, f) for f in expected}
        for p, (_, expected) in zip(iface.peers, peer_list, strict=False)
    ] == [expected for _, expected in peer_list]
    assert private not in repr(iface)


FORWARD = {"masq": "Masq", "route": "Route", "tunnel": "Tunnel", "local": "Local"}


@st.composite
def services(draw: st.DrawFn) -> tuple[str, str, dict[str, object]]:
    v6 = draw(st.booleans())
    address = draw(V6 if v6 else V4)
    vip = Endpoint(address, draw(PORTS))
    scheduler = draw(st.sampled_from(["sh", "rr", "wrr", "mh"]))
    flag_names = []
    if scheduler in ("sh", "mh"):
        flag_names = draw(st.lists(st.sampled_from(["fallback", "port"]), unique=True, max_size=2))
    protocol = draw(st.sampled_from(["UDP", "TCP"]))
    dests = draw(
        st.lists(
            st.tuples(
                st.builds(Endpoint, V6 if v6 else V4, PORTS),
                st.sampled_from(sorted(FORWARD)),
                st.integers(0, 65535),
                st.integers(0, 10**9),
                st.integers(0, 10**9),
            ),
            max_size=6,
            unique_by=lambda d: d[0],
        )
    )
    flags = f" ({','.join(f'{scheduler}-{f}' for f in flag_names)})" if flag_names else ""
    head = f"{protocol}  {vip} {scheduler}{flags}"
    lines = [head]
    stats = [f"{protocol}  {vip}  1 2 3 4 5"]
    for endpoint, forward, weight, active, inactive in dests:
        lines.append(f"  -> {endpoint!s:<28} {FORWARD[forward]:<7} {weight:<6} {active} {inactive}")
        stats.append(f"  -> {endpoint!s:<28} {weight} {active} {inactive} 0 7")
    expected = {
        "protocol": protocol.lower(),
        "vip": vip,
        "scheduler": scheduler,
        "flags": flag_names,
        "dests": [(e, f, w, a, i) for e, f, w, a, i in dests],
    }
    return "\n".join(lines), "\n".join(stats), expected


def _service_key(service: tuple[str, str, dict[str, object]]) -> tuple[object, object]:
    return service[2]["protocol"], service[2]["vip"]


LIST_HEAD = (
    "IP Virtual Server version 1.2.1 (size=4096)\n"
    "Prot LocalAddress:Port Scheduler Flags\n"
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
)
STATS_HEAD = (
    "IP Virtual Server version 1.2.1 (size=4096)\n"
    "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n"
    "  -> RemoteAddress:Port\n"
)


@SETTINGS
@given(listing=st.lists(services(), max_size=4, unique_by=_service_key))
def test_ipvsadm_round_trip(listing: list[tuple[str, str, dict[str, object]]]) -> None:
    parsed = parse_ipvsadm_list(LIST_HEAD + "\n".join(text for text, _, _ in listing) + "\n")
    stats = parse_ipvsadm_stats(STATS_HEAD + "\n".join(s for _, s, _ in listing) + "\n")
    assert len(parsed) == len(listing)
    for service, (_, _, expected) in zip(parsed, listing, strict=True):
        assert (service.protocol, service.vip, service.scheduler) == (
            expected["protocol"],
            expected["vip"],
            expected["scheduler"],
        )
        names = set(expected["flags"])  # type: ignore[call-overload]
        assert service.sh_fallback == ("fallback" in names)
        assert service.sh_port == ("port" in names)
        assert [
            (d.endpoint, d.forward, d.weight, d.active_conns, d.inactive_conns)
            for d in service.dests
        ] == expected["dests"]
        assert set(stats[(service.protocol, service.vip)]) == {d.endpoint for d in service.dests}


# --- other versions of the tools --------------------------------------------------------------

GW = "xfNrPxj44I9v3jcLUvGBgUtkgKWnsof8MdNJalsYJg0="
PEER = "2PDPKED1+KY8MSAdi/slE3jlZ+sMQ+doYffvk+RrMik="


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # a newer wg with one more column per peer (say, a last-handshake in ns)
        (
            f"{PRIVATE}\t{GW}\t51280\toff\n{PEER}\t(none)\t(none)\t(none)\t0\t0\t0\toff\t0\n",
            "peer line: expected 8 fields, got 9",
        ),
        # ...or on the interface line
        (f"{PRIVATE}\t{GW}\t51280\toff\t0\n", "expected 4 fields on an interface line"),
        # an older wg without fwmark
        (f"{PRIVATE}\t{GW}\t51280\n", "expected 4 fields on an interface line"),
        # wg without the interface (its own error, which is shown)
        ("Unable to access interface: No such device\n", "Unable to access interface"),
    ],
)
def test_other_wg_versions_are_rejected_clearly(text: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_wg_dump(text, "wg0")
    assert message in str(info.value)
    _assert_safe(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # an ipvsadm whose title lacks the Flags column
        (
            "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler\n"
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "expected title line 'Prot LocalAddress:Port Scheduler Flags'",
        ),
        # one with an extra column on real server lines
        (
            LIST_HEAD + "UDP  10.0.0.1:51280 sh\n  -> 10.0.0.2:51280 Masq 1 0 0 7\n",
            "real server line needs address, forward, weight, active, inactive; got 6 fields",
        ),
        # a scheduler flag this parser does not know
        (LIST_HEAD + "UDP  10.0.0.1:51280 sh (sh-sticky)\n", "unknown scheduler flag"),
        # ipvsadm without the kernel module
        (
            "Can't initialize ipvs: Protocol not available\nAre you sure that IP Virtual Server "
            "is built in the kernel or as module?\n",
            "not ipvsadm output",
        ),
    ],
)
def test_other_ipvsadm_versions_are_rejected_clearly(text: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_ipvsadm_list(text)
    assert message in str(info.value)


def test_ipv6_everywhere_in_a_gateway_poll() -> None:
    text = (LAB / "normal" / "wg-gateway-01.txt").read_text()
    text = text.replace("10.77.1.10:46552", "[2001:db8::10]:46552").replace(
        "10.77.1.11:50772", "[fe80::1%lan]:50772"
    )
    text = text.replace("10.255.0.2/32", "10.255.0.2/32,fd00::2/128")
    obs = parse_gateway_output("wg-gateway-01", "wg0", text)
    assert obs.interface is not None
    endpoints_ = {p.endpoint for p in obs.interface.peers}
    assert Endpoint("2001:db8::10", 46552) in endpoints_
    assert any(e is not None and e.address.startswith("fe80::1") for e in endpoints_)
    assert ("10.255.0.2/32", "fd00::2/128") in {p.allowed_ips for p in obs.interface.peers}


@pytest.mark.parametrize("cut", [0, 5, 20, 39, 43])
def test_a_key_cut_by_an_excerpt_is_still_hidden(cut: int) -> None:
    """Found by the damaged-capture test: an excerpt shortened in the middle of a key."""
    from wgconsole.poll.parsers.errors import excerpt

    padding = "w " * ((157 - cut) // 2)
    shown = excerpt(padding + PRIVATE + " tail") + excerpt(PRIVATE[cut:])
    assert PRIVATE[:20] not in shown
    assert PRIVATE[20:40] not in shown
    assert PRIVATE[cut:][:20] not in shown or len(PRIVATE[cut:]) < 20
