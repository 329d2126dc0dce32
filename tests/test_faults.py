"""Faults while polling, on replayed lab captures: the rest is served, the lost host is
marked with its error and the age of its last answer, and it comes back by itself.

The transports here play the captured output of each host (tests/fixtures/lab/normal) and
fail, hang or garble on demand; no network is used except in the SshTransport tests, which
only ever contact a closed port on 127.0.0.1.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paramiko
import pytest

from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.fleet import Fleet
from wgconsole.core.inventory import Host, SshSettings
from wgconsole.poll import collector as collect
from wgconsole.poll.collector import FleetCollector, PollResult
from wgconsole.poll.transport.base import (
    CommandResult,
    CommandTimeout,
    HostKeyChanged,
    HostKeyUnknown,
    ReadOnlyViolation,
    TransportError,
    privileged_part,
    sudo_refusal,
)
from wgconsole.poll.transport.ssh import SshTransport

LAB = Path(__file__).parent / "fixtures" / "lab"
NORMAL = LAB / "normal"
LB, GW1, GW2 = "wg-lb", "wg-gateway-01", "wg-gateway-02"
NOW = 1_795_664_600.0


class Scripted:
    """A host's transport: the captured output, unless `fault` says otherwise for this call."""

    def __init__(self, name: str, frame: Path = NORMAL) -> None:
        self.name = name
        self.text = (frame / f"{name}.txt").read_text()
        self.fault: Callable[[], CommandResult] | None = None
        self.calls = 0
        self.commands: list[tuple[str, bool]] = []

    def run(self, command: str, timeout: float, *, mutating: bool = False) -> CommandResult:
        self.calls += 1
        self.commands.append((command, mutating))
        if self.fault is not None:
            return self.fault()
        return CommandResult(self.text, "", 0, 0.01, len(self.text))

    def close(self) -> None:
        pass


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _collector(
    deadline: float | None = None, **kwargs: object
) -> tuple[FleetCollector, dict[str, Scripted], Clock]:
    inventory = load_inventory(NORMAL / "inventory.yaml")
    hosts = {h.name: Scripted(h.name) for h in inventory.hosts}
    clock = Clock()
    collector = FleetCollector(
        inventory,
        transport_factory=lambda h: hosts[h.name],
        clock=clock,
        timeout=5.0,
        poll_deadline=deadline,
        **kwargs,  # type: ignore[arg-type]
    )
    return collector, hosts, clock


def _raise(exc: Exception) -> Callable[[], CommandResult]:
    def fail() -> CommandResult:
        raise exc

    return fail


def _codes(fleet: Fleet) -> set[tuple[str, str]]:
    return {(f.code, f.subject) for f in fleet.findings}


def _host(fleet: Fleet, name: str):  # type: ignore[no-untyped-def]
    return next(h for h in fleet.hosts if h.name == name)


# --- a host lost and back ---------------------------------------------------------------


def test_lost_gateway_is_marked_with_error_and_age_and_recovers() -> None:
    collector, hosts, clock = _collector()
    assert all(h.reachable for h in collector.read_fleet().hosts)

    hosts[GW2].fault = _raise(TransportError("cannot connect to 127.0.0.1:2323: refused"))
    clock.now += 42
    fleet = collector.read_fleet()
    gw2 = _host(fleet, GW2)
    assert not gw2.reachable
    assert "refused" in (gw2.error or "")
    assert gw2.last_success == NOW  # the age of what is shown: 42 s
    finding = next(f for f in fleet.findings if f.code == "host-unreachable")
    assert finding.subject == GW2
    assert "refused" in finding.message
    assert "Last answer 42 s ago" in finding.message
    # The rest is served: the LB's service and every client, seen on gateway-01.
    assert fleet.service is not None
    assert len(fleet.real_servers) == 2
    assert {c.handshake_gateway for c in fleet.clients} == {GW1}
    assert all(_host(fleet, n).reachable for n in (LB, GW1))

    hosts[GW2].fault = None  # back: the very next poll shows it, no finding left
    clock.now += 5
    fleet = collector.read_fleet()
    assert _host(fleet, GW2).reachable
    assert _host(fleet, GW2).last_success == clock.now
    assert not {c for c, _ in _codes(fleet)} & {"host-unreachable"}


def test_a_host_that_never_answered_says_so() -> None:
    collector, hosts, _ = _collector()
    hosts[GW2].fault = _raise(TransportError("no route to host"))
    fleet = collector.read_fleet()
    assert _host(fleet, GW2).last_success is None
    message = next(f.message for f in fleet.findings if f.code == "host-unreachable")
    assert "No answer from it yet" in message


def test_last_success_carries_over_from_an_earlier_run() -> None:
    collector, hosts, _ = _collector(last_success={GW2: NOW - 300, "not-a-host": 1.0})
    hosts[GW2].fault = _raise(TransportError("refused"))
    fleet = collector.read_fleet()
    assert _host(fleet, GW2).last_success == NOW - 300
    assert "Last answer 300 s ago" in next(
        f.message for f in fleet.findings if f.code == "host-unreachable"
    )
    assert set(collector.last_successes) == {LB, GW1, GW2}


def test_a_timed_out_command_is_the_hosts_error() -> None:
    collector, hosts, _ = _collector()
    hosts[LB].fault = _raise(CommandTimeout("wg-lb: command timed out after 5 s"))
    fleet = collector.read_fleet()
    assert "timed out" in (_host(fleet, LB).error or "")
    # Without the LB the gateways' view is still there: handshakes, peers, drift.
    assert fleet.service is None
    assert all(c.handshake_gateway for c in fleet.clients)
    assert ("host-unreachable", LB) in _codes(fleet)


def test_a_changed_host_key_has_its_own_finding() -> None:
    collector, hosts, _ = _collector()
    hosts[GW1].fault = _raise(
        HostKeyChanged("HOST KEY CHANGED for [127.0.0.1]:2322: refusing to connect")
    )
    fleet = collector.read_fleet()
    finding = next(f for f in fleet.findings if f.subject == GW1)
    assert (finding.code, finding.severity) == ("host-key-changed", "critical")
    assert "HOST KEY CHANGED" in finding.message
    assert "not polled" in finding.message
    assert _host(fleet, GW2).reachable
    assert _host(fleet, GW1).error_kind == "host-key-changed"


def test_an_unknown_host_key_is_a_host_not_answering_not_a_changed_key() -> None:
    collector, hosts, _ = _collector()
    hosts[GW1].fault = _raise(
        HostKeyUnknown("unknown host key for [127.0.0.1]:2322 (not in known_hosts)")
    )
    fleet = collector.read_fleet()
    finding = next(f for f in fleet.findings if f.subject == GW1)
    assert (finding.code, finding.severity) == ("host-unreachable", "critical")
    assert "unknown host key" in finding.message
    assert "not polled" not in finding.message
    assert _host(fleet, GW1).error_kind == "host-key-unknown"
    assert _host(fleet, GW2).error_kind is None


# --- a host that hangs ------------------------------------------------------------------


def test_a_hung_host_never_holds_the_poll_nor_gets_a_second_request() -> None:
    collector, hosts, _ = _collector(deadline=0.3)
    release = threading.Event()

    def hang() -> CommandResult:
        release.wait(30)
        text = hosts[LB].text
        return CommandResult(text, "", 0, 1.0, len(text))

    hosts[LB].fault = hang
    try:
        first = collector.poll()
        assert first.seconds < 10  # bounded by the deadline, not by the hang
        fleet = collector.fleet(first)
        lb = _host(fleet, LB)
        assert not lb.reachable
        assert "no answer within" in (lb.error or "")
        assert all(_host(fleet, n).reachable for n in (GW1, GW2))
        second = collector.poll()
        assert "still waiting" in _error(second, LB)
        assert hosts[LB].calls == 1  # the hung request was not repeated
        assert hosts[GW1].calls == 2
    finally:
        release.set()
    hosts[LB].fault = None
    # The hung request's late answer, or a new one's: either way the LB is back by itself.
    _wait(lambda: _error(collector.poll(), LB) == "", "the LB back after the hang ended")
    calls = hosts[LB].calls
    assert _error(collector.poll(), LB) == ""
    assert hosts[LB].calls == calls + 1


def _error(poll: PollResult, name: str) -> str:
    return next(h.error or "" for h in poll.hosts if h.name == name)


def _wait(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# --- bad output -------------------------------------------------------------------------

SECRET = "cGFzc3dvcmRwYXNzd29yZHBhc3N3b3JkcGFzc3dvcmQ="  # 32 bytes: key-shaped


@pytest.mark.parametrize(
    "output",
    [
        "",
        "garbage\n",
        "@@wgc:clock\n17956\n",  # cut short
        "bash: wg: command not found\n",
        (NORMAL / "wg-gateway-02.txt").read_text()[:300],
        (NORMAL / "wg-gateway-02.txt").read_text().replace("\t", " "),
    ],
)
def test_damaged_output_is_the_hosts_error_never_a_crash(output: str) -> None:
    collector, hosts, _ = _collector()
    hosts[GW2].fault = lambda: CommandResult(output, "", 0, 0.0, len(output))
    fleet = collector.read_fleet()
    assert not _host(fleet, GW2).reachable
    assert _host(fleet, GW2).error
    assert _host(fleet, GW1).reachable
    assert fleet.service is not None


def test_a_parser_bug_is_the_hosts_error_and_hides_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(text: str, interface: str, memo: object = None) -> object:
        raise ValueError(f"unexpected {SECRET}")

    monkeypatch.setattr(collect, "parse_wg_dump", broken)
    collector, _, _ = _collector()
    fleet = collector.read_fleet()
    error = _host(fleet, GW1).error or ""
    assert "cannot read its output (ValueError" in error
    assert SECRET not in error
    assert "<redacted>" in error
    assert _host(fleet, LB).reachable


# --- sudo -------------------------------------------------------------------------------


def _with_section(text: str, name: str, body: str, rc: int) -> str:
    start = text.index(f"@@wgc:{name}\n") + len(f"@@wgc:{name}\n")
    end = text.index(f"@@wgc-rc:{name}:")
    close = text.index("\n", end)
    return text[:start] + body + f"@@wgc-rc:{name}:{rc}" + text[close:]


def test_a_missing_sudo_right_is_reported_as_such() -> None:
    collector, hosts, _ = _collector()
    gw = _with_section(hosts[GW2].text, "dump", "sudo: a password is required\n", 1)
    hosts[GW2].fault = lambda: CommandResult(gw, "", 0, 0.0, len(gw))
    refusal = (
        "Sorry, user wgop is not allowed to execute '/usr/sbin/ipvsadm -Ln --nosort' "
        "as root on wglab.\n"
    )
    lb = _with_section(hosts[LB].text, "ipvsadm", refusal, 1)
    hosts[LB].fault = lambda: CommandResult(lb, "", 0, 0.0, len(lb))
    fleet = collector.read_fleet()
    assert "missing sudo right for `wg show wg0 dump`" in (_host(fleet, GW2).error or "")
    assert "a password is required" in (_host(fleet, GW2).error or "")
    assert "missing sudo right for `ipvsadm -Ln --nosort`" in (_host(fleet, LB).error or "")
    assert _host(fleet, GW1).reachable


@pytest.mark.parametrize(
    ("output", "found"),
    [
        ("sudo: a password is required\n", "sudo: a password is required"),
        (
            "sudo: a terminal is required to read the password; either use the -S option",
            "sudo: a terminal is required to read the password; either use the -S option",
        ),
        (
            "Sorry, user wgop is not allowed to execute '/usr/bin/wg show wg0 dump' as root.",
            "Sorry, user wgop is not allowed to execute '/usr/bin/wg show wg0 dump' as root.",
        ),
        ("wgop is not in the sudoers file.  This incident will be reported.", "wgop is not"),
        ("sh: 1: sudo: not found", "sh: 1: sudo: not found"),
        ("RTNETLINK answers: Operation not permitted", None),
        ("", None),
    ],
)
def test_sudo_refusal(output: str, found: str | None) -> None:
    got = sudo_refusal(output)
    assert (got is None) is (found is None)
    if found is not None:
        assert got is not None
        assert got.startswith(found)


def test_privileged_part() -> None:
    assert privileged_part("sudo -n ipvsadm -e -u 1.2.3.4:5 -r 6.7.8.9:5 -m -w 0") == (
        "ipvsadm -e -u 1.2.3.4:5 -r 6.7.8.9:5"
    )
    assert privileged_part("sudo -n sh -c 'set -eu\nconf=$1' sh a b") == "sh -c <script>"
    assert privileged_part("sudo -n wg set wg0 peer K && sudo -n wg set wg0") == "wg set wg0 peer K"


# --- SshTransport: read-only, backoff ---------------------------------------------------


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def _host_at(port: int, tmp_path: Path) -> Host:
    return Host(
        "probe", "127.0.0.1", SshSettings(port=port, known_hosts=str(tmp_path / "known_hosts"))
    )


def test_read_only_refuses_before_touching_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_client(*args: object, **kwargs: object) -> None:
        raise AssertionError("a read-only transport opened a connection for a mutating command")

    monkeypatch.setattr(paramiko, "SSHClient", no_client)
    transport = SshTransport(_host_at(_closed_port(), tmp_path), read_only=True)
    with pytest.raises(ReadOnlyViolation):
        transport.run("ipvsadm -e -u 1.2.3.4:5 -r 6.7.8.9:5 -w 0", timeout=1, mutating=True)
    assert transport.connects == 0


def test_reconnects_back_off_up_to_the_cap(tmp_path: Path) -> None:
    transport = SshTransport(_host_at(_closed_port(), tmp_path), backoff_max=2.0)
    attempts = 0
    real_connect = transport._connect

    def counting(deadline: float | None = None) -> paramiko.SSHClient:
        nonlocal attempts
        if time.monotonic() >= transport._next_attempt:
            attempts += 1
        return real_connect(deadline)

    transport._connect = counting  # type: ignore[method-assign]
    with pytest.raises(TransportError, match="cannot connect"):
        transport.run("true", timeout=2)
    with pytest.raises(TransportError, match="next retry in"):
        transport.run("true", timeout=2)  # within the backoff: no new attempt
    assert attempts == 1
    for _ in range(5):
        transport._failed("refused")
    assert transport._backoff == 2.0
    transport.close()
    with pytest.raises(TransportError, match="closed"):
        transport.run("true", timeout=2)


class _Key:
    def get_base64(self) -> str:
        return "AAAA"


def test_a_changed_host_key_stays_one_through_the_reconnect_backoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """paramiko's BadHostKeyException is the finding, in the words operators know, on the
    refused attempt and on the polls within the backoff before the next one."""

    def connect(self: paramiko.SSHClient, hostname: str, **kwargs: object) -> None:
        raise paramiko.BadHostKeyException(hostname, _Key(), _Key())  # type: ignore[arg-type]

    monkeypatch.setattr(paramiko.SSHClient, "connect", connect)
    inventory = load_inventory(NORMAL / "inventory.yaml")
    hosts = {h.name: Scripted(h.name) for h in inventory.hosts}
    ssh = SshTransport(_host_at(_closed_port(), tmp_path))
    collector = FleetCollector(
        inventory,
        transport_factory=lambda h: ssh if h.name == GW1 else hosts[h.name],
        clock=Clock(),
        timeout=5.0,
    )
    errors = []
    for _ in range(2):
        fleet = collector.read_fleet()
        finding = next(f for f in fleet.findings if f.subject == GW1)
        assert (finding.code, finding.severity) == ("host-key-changed", "critical")
        errors.append(_host(fleet, GW1).error or "")
    collector.close()
    assert all(e.startswith("HOST KEY CHANGED for 127.0.0.1: refusing to connect") for e in errors)
    assert "next retry in" not in errors[0]
    assert "next retry in" in errors[1]
    assert ssh.connects == 0


def test_close_does_not_wait_for_a_command_in_flight(tmp_path: Path) -> None:
    transport = SshTransport(_host_at(_closed_port(), tmp_path))
    transport._lock.acquire()  # as if another thread were waiting on a hung command
    try:
        done = threading.Event()
        threading.Thread(target=lambda: (transport.close(), done.set()), daemon=True).start()
        assert done.wait(5), "close() blocked on the command's lock"
    finally:
        transport._lock.release()


# --- clock skew -------------------------------------------------------------------------------


def _shift_gateway_clock(text: str, seconds: int) -> str:
    """A gateway capture as if that gateway's clock were `seconds` ahead (both its `date` and
    the handshake times wg prints, which are on that same clock)."""
    out = []
    section = None
    for line in text.split("\n"):
        if line.startswith("@@wgc:"):
            section = line[len("@@wgc:") :]
        elif section == "clock" and line and not line.startswith("@@"):
            line = f"{float(line) + seconds:.9f}"
        elif section == "dump" and line.count("\t") == 7 and line.split("\t")[4] != "0":
            fields = line.split("\t")
            fields[4] = str(int(fields[4]) + seconds)
            line = "\t".join(fields)
        out.append(line)
    return "\n".join(out)


def test_clock_skew_does_not_distort_handshake_ages() -> None:
    """Ages are computed on each gateway's own clock: skewed gateways (one an hour ahead of
    the bastion, one two hours behind) show the same ages as with synchronised clocks."""
    collector, hosts, _ = _collector()
    baseline = collector.read_fleet()
    for name, skew in ((GW1, 3600), (GW2, -7200)):
        shifted = _shift_gateway_clock(hosts[name].text, skew)
        hosts[name].fault = lambda t=shifted: CommandResult(t, "", 0, 0.0, len(t))
    skewed = collector.read_fleet()
    assert [c.handshake_age for c in skewed.clients] == [c.handshake_age for c in baseline.clients]
    for before, after in zip(baseline.clients, skewed.clients, strict=True):
        for gw in (GW1, GW2):
            b, a = before.on(gw), after.on(gw)
            assert (b is None) == (a is None)
            if a is not None and b is not None:
                assert a.handshake_age == b.handshake_age
        assert after.status == before.status
        assert after.findings == before.findings
    skews = {g.name: g.clock_skew for g in skewed.gateways}
    base = {g.name: g.clock_skew for g in baseline.gateways}
    assert skews[GW1] == pytest.approx((base[GW1] or 0) + 3600)
    assert skews[GW2] == pytest.approx((base[GW2] or 0) - 7200)
    # A bastion clock that is off changes no age either (lab test: a skewed bastion clock).
    collector.clock = lambda: NOW + 86400
    assert [c.handshake_age for c in collector.read_fleet().clients] == [
        c.handshake_age for c in skewed.clients
    ]


def test_op_errors_never_echo_key_material(tmp_path: Path) -> None:
    """A failed command's output is quoted in the error, with anything key-shaped redacted."""
    from wgconsole.ops.machinery.audit import AuditLog
    from wgconsole.ops.machinery.context import OpContext
    from wgconsole.ops.machinery.errors import OpError

    inventory = load_inventory(NORMAL / "inventory.yaml")
    host = Scripted(GW1)
    host.fault = lambda: CommandResult(f"[Interface]\nPrivateKey = {SECRET}\n", "bad", 1, 0.0, 0)
    ctx = OpContext(inventory, {GW1: host}, AuditLog(tmp_path / "audit.jsonl"))
    with pytest.raises(OpError) as info:
        ctx.run(GW1, "wg-quick up wg0")
    assert SECRET not in str(info.value)
    assert SECRET[:20] not in str(info.value)
    assert "<redacted>" in str(info.value)
    assert "exit 1" in str(info.value)
