"""`wgconsole trace`'s pure parts on captures recorded from the lab (tests/fixtures/trace,
made by its record.py): tcpdump's output parsed, each packet's hop and message, mac1 checked
with the prober's BLAKE2s code, the verdicts; and the capture runner on replayed output."""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from tests.console_support import NORMAL, SteppedCollector
from wgconsole.core.inventory import Gateway, Inventory, LoadBalancer
from wgconsole.core.records import Endpoint, IpvsConn
from wgconsole.core.trace import (
    CaptureStatus,
    Packet,
    TraceTarget,
    message_kind,
    resolve_target,
    timeline,
    verdict,
)
from wgconsole.poll.capture import (
    CapturedPacket,
    CaptureEnded,
    CaptureEvent,
    capture_command,
    capture_specs,
    run_captures,
)
from wgconsole.poll.parsers.errors import ParseError
from wgconsole.poll.parsers.tcpdump import TcpdumpReader
from wgconsole.probe.handshake import mac1_matches

HERE = Path(__file__).parent / "fixtures" / "trace"
ROLES = {"wg-lb": "lb", "wg-gateway-01": "gateway", "wg-gateway-02": "gateway"}
GW1 = "wg-gateway-01"


def _meta(case: str) -> dict[str, str]:
    meta: dict[str, str] = json.loads((HERE / case / "meta.json").read_text())
    return meta


def _target(case: str, **changes: object) -> TraceTarget:
    meta = _meta(case)
    target = TraceTarget(
        label="wg-client-0",
        public_key=None,
        tunnel_address=meta["tunnel"],
        source=Endpoint(meta["wan"], int(meta["port"])),
        vip=Endpoint("10.77.255.1", 51280),
        real_servers={
            GW1: Endpoint("10.77.0.11", 51280),
            "wg-gateway-02": Endpoint("10.77.0.12", 51280),
        },
        lb_gateway=GW1,
        sh_gateway=GW1,
        sh_dropped=False,
        sh_reason=None,
        handshake_gateway=GW1,
        handshake_ages={GW1: 10.0},
        wg_interfaces={GW1: "wg0", "wg-gateway-02": "wg0"},
    )
    return replace(target, **changes)  # type: ignore[arg-type]


def _packets(case: str) -> list[Packet]:
    packets: list[Packet] = []
    for path in sorted((HERE / case).glob("*.txt")):
        host, capture, _ = path.name.split(".")
        reader = TcpdumpReader(host, capture)  # type: ignore[arg-type]
        for line in path.read_text().splitlines():
            p = reader.feed(line)
            if p is not None:
                packets.append(p)
        last = reader.end()
        if last is not None:
            packets.append(last)
    return packets


def _mac1(case: str) -> object:
    key = base64.b64decode(_meta(case)["gateway_public_key"])
    return lambda head: mac1_matches(head, key)


def _captures(case: str, *, failed: tuple[str, ...] = ()) -> list[CaptureStatus]:
    out = []
    for path in sorted((HERE / case).glob("*.txt")):
        host, capture, _ = path.name.split(".")
        state = "failed" if host in failed else "done"
        error = "tcpdump is not installed" if host in failed else None
        out.append(CaptureStatus(host, ROLES[host], capture, state, error))  # type: ignore[arg-type]
    return out


def _hops(case: str, packets: list[Packet] | None = None, target: TraceTarget | None = None):  # type: ignore[no-untyped-def]
    got = _packets(case) if packets is None else packets
    t = target or _target(case)
    return timeline(got, ROLES, t, started=got[0].time, skews={}, mac1_ok=_mac1(case))  # type: ignore[arg-type]


def test_parsed_lab_capture_every_hop_and_message() -> None:
    hops = _hops("ok")
    seen = {(h.host, h.hop, h.message) for h in hops}
    # The handshake the client made (its peer re-created) and its pings, at every hop.
    for hop in ("client-to-vip", "lb-to-gateway", "gateway-in"):
        assert ("wg-lb" if hop != "gateway-in" else GW1, hop, "initiation") in seen
        assert ("wg-lb" if hop != "gateway-in" else GW1, hop, "data") in seen
    for hop in ("gateway-to-lb", "vip-to-client"):
        assert ("wg-lb", hop, "response") in seen
    assert (GW1, "gateway-out", "response") in seen
    assert (GW1, "tunnel-in", "inner") in seen
    assert (GW1, "tunnel-out", "inner") in seen
    assert all(h.mac1 == "ok" for h in hops if h.message == "initiation")
    assert [h.at for h in hops] == sorted(h.at for h in hops)


def test_no_data_payload_captured_beyond_its_header() -> None:
    for p in _packets("ok"):
        if p.capture == "data":
            assert len(p.head) <= 16
        if p.capture == "handshake":
            assert len(p.head) <= 132
        if p.capture == "tunnel":
            assert p.head == b""


def test_verdict_ok_on_the_lab_capture() -> None:
    hops = _hops("ok")
    v = verdict(_target("ok"), hops, _captures("ok"), 4)
    assert v.code == "ok"


def test_verdict_wrong_server_key_on_the_lab_capture() -> None:
    hops = _hops("wrong-key")
    inits = [h for h in hops if h.message == "initiation"]
    assert inits
    assert all(h.mac1 == "wrong" for h in inits)
    v = verdict(_target("wrong-key"), hops, _captures("wrong-key"), 4)
    assert v.code == "wrong-server-key"
    # Counted once, not once per hop it crossed.
    assert v.message.startswith(f"{len([h for h in inits if h.hop == 'client-to-vip'])} initiation")


def test_verdict_unknown_peer_when_the_right_key_gets_no_answer() -> None:
    packets = [
        p for p in _packets("ok") if not (p.capture == "handshake" and p.head[:1] == b"\x02")
    ]
    packets = [p for p in packets if p.capture == "handshake"]
    v = verdict(_target("ok"), _hops("ok", packets), _captures("ok"), 4)
    assert v.code == "unknown-peer"


def test_verdict_lost_between_lb_and_gateway() -> None:
    packets = [p for p in _packets("ok") if p.host == "wg-lb" and p.src.address != "10.77.0.11"]
    packets = [p for p in packets if p.dst.address != "10.77.1.10"]
    v = verdict(_target("ok"), _hops("ok", packets), _captures("ok"), 4)
    assert v.code == "lost-between-lb-and-gateway"


def test_verdict_reply_bypasses_lb() -> None:
    packets = [
        p for p in _packets("ok") if not (p.host == "wg-lb" and p.dst.address == "10.77.1.10")
    ]
    v = verdict(_target("ok"), _hops("ok", packets), _captures("ok"), 4)
    assert v.code == "reply-bypasses-lb"


def test_verdict_dropped_and_no_packets_at_lb() -> None:
    inbound = [p for p in _packets("ok") if p.host == "wg-lb" and p.dst.address == "10.77.255.1"]
    reason = "its sh bucket 3 holds wg-gateway-01, which is unavailable (weight 0)"
    target = _target("ok", sh_dropped=True, sh_reason=reason)
    v = verdict(target, _hops("ok", inbound, target), _captures("ok"), 4)
    assert v.code == "dropped-at-lb"
    assert "weight 0" in v.message
    assert verdict(target, (), _captures("ok"), 4).code == "no-packets-at-lb"


def test_verdict_stale_session_data_without_session_nor_handshake() -> None:
    packets = [
        p
        for p in _packets("ok")
        if p.capture == "data" and p.dst.address != "10.77.1.10" and p.src.address != "10.77.0.11"
    ]
    target = _target("ok", handshake_ages={GW1: None})
    v = verdict(target, _hops("ok", packets, target), _captures("ok"), 4)
    assert v.code == "stale-session"


def test_a_failed_capture_is_named_and_the_others_still_count() -> None:
    packets = [p for p in _packets("ok") if p.host == "wg-lb"]
    v = verdict(_target("ok"), _hops("ok", packets), _captures("ok", failed=(GW1,)), 4)
    assert v.code == "ok"
    assert GW1 in v.message
    lbs_down = verdict(_target("ok"), (), _captures("ok", failed=("wg-lb", GW1)), 4)
    assert lbs_down.code == "inconclusive"


def test_keepalive_and_sizes() -> None:
    p = Packet(
        "h", "data", 0, "eth0", "in", Endpoint("a", 1), Endpoint("b", 2), 32, b"\x04" + bytes(15)
    )
    assert message_kind(p) == "keepalive"
    assert message_kind(replace(p, length=128)) == "data"
    assert message_kind(replace(p, length=100)) == "malformed"
    assert message_kind(replace(p, head=b"\x01" + bytes(15), length=148)) == "initiation"
    assert message_kind(replace(p, head=b"\x01" + bytes(15), length=92)) == "malformed"
    assert message_kind(replace(p, head=b"\x03", length=64)) == "cookie"


@pytest.mark.parametrize(
    "line",
    [
        "\x1b]52;c;aGVsbG8=\x07 not tcpdump",
        "\t0x0000:  4500 00b0",  # bytes before any packet line
        "1796682152.420526 wan   In  IP 10.77.1.10.38781 > 10.77.255.1.51280: UDP, length 148\n"
        "\t0x0010:  4500 00b0",  # out of order
    ],
)
def test_malformed_capture_output_is_a_parse_error(line: str) -> None:
    reader = TcpdumpReader("h", "data")

    def read_all() -> None:
        for part in line.split("\n"):
            reader.feed(part)
        reader.end()

    with pytest.raises(ParseError) as err:
        read_all()
    assert "\x1b" not in str(err.value)


def _inventory() -> Inventory:
    from wgconsole.core.inventory import Service, SshSettings, Tunnel

    ssh = SshSettings()
    return Inventory(
        path="inv.yaml",
        service=Service("udp", "10.77.255.1", 51280, "sh"),
        ssh=ssh,
        load_balancers=(LoadBalancer("wg-lb", "h1", ssh),),
        gateways=(Gateway(GW1, "h2", ssh, Endpoint("10.77.0.11", 51280), "wg0", ""),),
        tunnel=Tunnel("10.255.0.0/24", "10.255.0.1"),
    )


def test_capture_specs_filters_and_snapshot_lengths() -> None:
    specs = capture_specs(_inventory(), _target("ok"))
    by = {(s.host, s.capture): s for s in specs}
    assert set(by) == {("wg-lb", "handshake"), ("wg-lb", "data"), (GW1, "handshake"),
                       (GW1, "data"), (GW1, "tunnel")}  # fmt: skip
    # Linux cooked v2 (20) + IPv4 (20) + UDP (8) + what each needs.
    assert by[("wg-lb", "data")].snaplen == 48 + 16
    assert by[("wg-lb", "handshake")].snaplen == 48 + 132
    assert by[(GW1, "tunnel")].snaplen == 48
    assert "udp[8] = 4" in by[("wg-lb", "data")].bpf
    command = capture_command(by[("wg-lb", "data")], _inventory().load_balancers[0], 4)
    assert "timeout -s INT" in command
    assert " 25 64 400 " in command  # seconds + the arming allowance, snaplen, count


class _Replayed:
    """A started command that prints a recorded capture, then exits."""

    def __init__(self, lines: list[str], err: list[str], status: int) -> None:
        self._lines, self._err, self._status, self._done = lines, err, status, False
        self.stopped = False

    def read(self, wait: float) -> tuple[list[str], list[str]]:
        if self._done:
            return [], []
        self._done = True
        return self._lines, self._err

    @property
    def ended(self) -> bool:
        return self._done

    @property
    def status(self) -> int | None:
        return self._status if self._done else None

    def stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        pass


class _Host:
    def __init__(self, name: str, *, installed: bool) -> None:
        self.name = name
        self.installed = installed

    def run(self, command: str, timeout: float, *, mutating: bool = False) -> object:
        raise AssertionError("a capture never runs a blocking command")

    def start(self, command: str, timeout: float) -> _Replayed:
        if not self.installed:
            return _Replayed([], ["wgconsole-trace: tcpdump: not found"], 127)
        capture = (
            "data"
            if "udp[8] = 4" in command
            else "handshake"
            if "udp[8] = 1" in command
            else "tunnel"
        )
        text = (HERE / "ok" / f"{self.name}.{capture}.txt").read_text().splitlines()
        return _Replayed(text, ["listening on any, link-type LINUX_SLL2"], 0)

    def close(self) -> None:
        pass


def test_run_captures_reports_every_host_even_when_one_cannot_capture() -> None:
    inventory = _inventory()
    specs = capture_specs(inventory, _target("ok"))
    events: list[CaptureEvent] = []
    lock = threading.Lock()

    def on_event(e: CaptureEvent) -> None:
        with lock:
            events.append(e)

    transports = {"wg-lb": _Host("wg-lb", installed=True), GW1: _Host(GW1, installed=False)}
    run_captures(inventory, transports, specs, 0.1, on_event, threading.Event())  # type: ignore[arg-type]
    ended = {
        (e.status.host, e.status.capture): e.status for e in events if isinstance(e, CaptureEnded)
    }
    assert len(ended) == len(specs)
    assert ended[("wg-lb", "data")].state == "done"
    assert ended[("wg-lb", "data")].packets > 0
    gw = ended[(GW1, "handshake")]
    assert gw.state == "failed"
    assert gw.error is not None
    assert "`tcpdump`" in gw.error
    assert any(isinstance(e, CapturedPacket) for e in events)


def test_an_address_is_traced_on_every_gateway_its_lb_entries_name() -> None:
    """Traced by its address alone (a client no gateway knows any more), a client's packets
    follow its LB entry, wherever sh would send a new flow: that gateway is traced too."""
    collector = SteppedCollector([NORMAL])
    try:
        fleet = collector.read_fleet()
    finally:
        collector.close()
    # The lab's capture: both clients' entries on gateway-01. Another port of wg-client-0's
    # address (a flow it moved to) has an entry on gateway-02.
    entry = next(c for c in fleet.conns if c.client.address == "10.77.1.10")
    other = IpvsConn(
        entry.protocol,
        Endpoint("10.77.1.10", entry.client.port + 1),
        entry.virtual,
        Endpoint("10.77.0.12", 51280),
        entry.state,
        entry.expires,
    )
    fleet = replace(fleet, conns=(*fleet.conns, other))
    by_address = resolve_target(collector.inventory, fleet, "10.77.1.12")
    assert by_address.entry_gateways == ()
    anyone = resolve_target(collector.inventory, fleet, "10.77.1.10:1")
    assert anyone.entry_gateways == ()  # no entry of that port
    target = resolve_target(collector.inventory, fleet, "10.77.1.10")
    assert target.entry_gateways == ("wg-gateway-01", "wg-gateway-02")
    assert set(target.traced_gateways) == {"wg-gateway-01", "wg-gateway-02"}
