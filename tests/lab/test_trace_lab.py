"""`wgconsole trace` on the real kernel: one lab test per verdict the lab can produce.

Each test breaks the lab on purpose, runs `trace --json --seconds 4` while the client is
made to send (a sender in its namespace runs for as long as the trace), and repairs the lab
in a `finally`. After every trace no tcpdump is left on any host (the guest's namespaces
share one process table). Kept lean: the suite's time budget is tight; the durations are
printed (`-s`).
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.lab.conftest import Lab
from tests.lab.helpers import cli_json, client_netns, eventually, restore_endpoints, vip
from wgconsole.lab.topology import MGMT_ROOT, TUNNEL_GATEWAY

pytestmark = pytest.mark.lab

SECONDS = "4"
CLIENT = "wg-client-0"
SENDER_PID = "/run/wgconsole-trace-test-sender.pid"
# A spare address on the clients' segment for the guest's root namespace: the bypass route.
ROOT_WAN = "10.77.1.254"


def _no_tcpdump(lab: Lab) -> bool:
    return lab.sh("pgrep -x tcpdump || true").strip() == ""


@contextmanager
def _sender(lab: Lab, netns: str, loop: str) -> Iterator[None]:
    """`loop` (a shell command) run again and again in `netns` until the block ends (at most
    120 s: a test that dies leaves nothing behind)."""
    script = f"echo $$ > {SENDER_PID}; end=$(($(date +%s) + 120)); "
    script += f"while [ $(date +%s) -lt $end ]; do {loop}; done"
    lab.sh(f"ip netns exec {netns} setsid sh -c {shlex.quote(script)} </dev/null >/dev/null 2>&1 &")
    try:
        yield
    finally:
        # The whole process group (the loop is its leader): a `wg set` it started must not
        # run after the test's repair.
        lab.sh(
            f"kill -TERM -- -$(cat {SENDER_PID}) 2>/dev/null; sleep 0.3; "
            f"kill -KILL -- -$(cat {SENDER_PID}) 2>/dev/null; rm -f {SENDER_PID}; true"
        )


def _trace(lab: Lab, client: str = CLIENT) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "wgconsole", "-i", str(lab.inventory_path), "trace", client,
         "--seconds", SECONDS, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    seconds = time.monotonic() - started
    assert res.stdout, f"exit {res.returncode}, no output\n{res.stderr}"
    report = json.loads(res.stdout)
    print(f"\ntrace {client}: {seconds:.1f} s, exit {res.returncode}: {report['verdict']}")
    print(_hop_counts(report))
    eventually(lambda: _no_tcpdump(lab), timeout=60, what="no tcpdump left on any host")
    return res.returncode, report, seconds


def _hop_counts(report: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for h in report["hops"]:
        key = f"{h['host']} {h['hop']} {h['message']}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def _hops(report: dict[str, Any], hop: str, message: str | None = None) -> list[dict[str, Any]]:
    return [
        h
        for h in report["hops"]
        if h["hop"] == hop and (message is None or h["message"] == message)
    ]


def _ping(count: int = 1) -> str:
    return f"ping -c {count} -W 1 {TUNNEL_GATEWAY} >/dev/null 2>&1; sleep 0.3"


def _tunnel_works(lab: Lab, netns: str) -> None:
    def works() -> bool:
        return "ok" in lab.sh(
            f"ip netns exec {netns} ping -c 1 -W 2 {TUNNEL_GATEWAY} >/dev/null && echo ok || true"
        )

    eventually(works, timeout=120, what=f"{netns}'s tunnel works")


@pytest.fixture(scope="module")
def client(lab: Lab) -> dict[str, str]:
    """The traced client: its namespace, keys and peer settings, read once."""
    netns = client_netns(lab)[CLIENT]
    server = lab.ns(netns, ["wg", "show", "wg0", "peers"]).strip()
    key = lab.ns(netns, ["wg", "show", "wg0", "public-key"]).strip()
    port = lab.ns(netns, ["wg", "show", "wg0", "listen-port"]).strip()
    address = next(
        c["tunnel_address"] for c in lab.meta["topology"]["clients"] if c["netns"] == netns
    )
    wan = next(c["wan"] for c in lab.meta["topology"]["clients"] if c["netns"] == netns)
    _tunnel_works(lab, netns)
    return {"netns": netns, "server": server, "key": key, "port": port, "address": address,
            "wan": wan, "vip": vip(lab)}  # fmt: skip


def _gateway_of(lab: Lab, wan: str, port: str) -> dict[str, Any]:
    """The gateway that the client's LB entry (its address and port: earlier tests leave
    entries of its other ports) points to."""
    conns = lab.ns("lb", ["cat", "/proc/net/ip_vs_conn"])
    hexaddr = "".join(f"{int(o):02X}" for o in wan.split("."))
    hexport = f"{int(port):04X}"
    for line in conns.splitlines()[1:]:
        parts = line.split()
        if parts[1] == hexaddr and parts[2] == hexport:
            dest = ".".join(str(int(parts[5][i : i + 2], 16)) for i in range(0, 8, 2))
            gws: list[dict[str, Any]] = lab.meta["topology"]["gateways"]
            return next(g for g in gws if g["lan"] == dest)
    raise AssertionError(f"no LB entry for {wan}")


def _recreate_peer(client: dict[str, str], server: str) -> str:
    """The client's peer removed and made again (its session forgotten): its next packet
    starts a handshake at once."""
    return (
        "for p in $(wg show wg0 peers); do wg set wg0 peer $p remove; done; "
        f"wg set wg0 peer {server} endpoint {client['vip']} allowed-ips 10.255.0.0/24 "
        "persistent-keepalive 15"
    )


def test_trace_ok(lab: Lab, client: dict[str, str]) -> None:
    with _sender(lab, client["netns"], _ping()):
        code, report, _ = _trace(lab)
    assert report["verdict"]["code"] == "ok", report["verdict"]
    assert code == 0
    # Every hop, both ways, on the LB and on the gateway, outer and inner.
    for hop in ("client-to-vip", "lb-to-gateway", "gateway-in", "tunnel-in", "tunnel-out",
                "gateway-out", "gateway-to-lb", "vip-to-client"):  # fmt: skip
        assert _hops(report, hop), f"{hop} not seen: {_hop_counts(report)}"


def test_trace_wrong_server_key(lab: Lab, client: dict[str, str]) -> None:
    # Another server key: the lab's other client's (any 32-byte key the gateways do not hold).
    other = lab.ns(client_netns(lab)["wg-client-1"], ["wg", "show", "wg0", "public-key"]).strip()
    try:
        loop = f"{_recreate_peer(client, other)}; {_ping()}"
        with _sender(lab, client["netns"], loop):
            code, report, _ = _trace(lab)
        assert report["verdict"]["code"] == "wrong-server-key", report["verdict"]
        assert code == 1
        inits = _hops(report, "client-to-vip", "initiation")
        assert inits
        assert all(h["mac1"] == "wrong" for h in inits)
    finally:
        lab.ns(client["netns"], ["sh", "-c", _recreate_peer(client, client["server"])])
        _tunnel_works(lab, client["netns"])


def test_trace_unknown_peer(lab: Lab, client: dict[str, str]) -> None:
    gateways = [g["netns"] for g in lab.meta["topology"]["gateways"]]
    try:
        for gw in gateways:
            lab.ns(gw, ["wg", "set", "wg0", "peer", client["key"], "remove"])
        loop = f"{_recreate_peer(client, client['server'])}; {_ping()}"
        with _sender(lab, client["netns"], loop):
            # A peer no gateway knows is not in the fleet: traced by the address the user
            # gives (as the LB sees it).
            code, report, _ = _trace(lab, client["wan"])
        assert report["verdict"]["code"] == "unknown-peer", report["verdict"]
        assert code == 1
        assert _hops(report, "gateway-in", "initiation")
        assert all(h["mac1"] == "ok" for h in _hops(report, "client-to-vip", "initiation"))
        assert not _hops(report, "gateway-out", "response")
    finally:
        for gw in gateways:
            lab.ns(gw, ["wg", "set", "wg0", "peer", client["key"], "allowed-ips",
                        f"{client['address']}/32", "persistent-keepalive", "15"])  # fmt: skip
        # The sender stopped anywhere in its loop: between its removal of the client's peer
        # and its re-creation, too.
        lab.ns(client["netns"], ["sh", "-c", _recreate_peer(client, client["server"])])
        _tunnel_works(lab, client["netns"])


def _sh_gateway(lab: Lab, source: str) -> dict[str, Any]:
    """The gateway the kernel's sh table sends a new flow from `source` to (`whereis`: the
    table the earlier tests' drains and re-adds left, which live entries do not follow)."""
    [placed] = cli_json(lab.inventory_path, "whereis", source)
    gws: list[dict[str, Any]] = lab.meta["topology"]["gateways"]
    return next(g for g in gws if g["name"] == placed["gateway"])


def test_trace_dropped_at_lb(lab: Lab, client: dict[str, str]) -> None:
    service = vip(lab)
    new_port = str(int(client["port"]) + 1 if int(client["port"]) < 65000 else 40000)
    gw = _sh_gateway(lab, f"{client['wan']}:{new_port}")
    real = f"{gw['lan']}:{lab.meta['port']}"
    fallback = "sh-fallback" in lab.ns("lb", ["ipvsadm", "-Ln", "-u", service])
    try:
        # Weight 0 without sh-fallback on the gateway sh picks for the client's address, and
        # a new flow of the client (another source port: sh hashes the address only): its
        # bucket still holds the weight-0 gateway. (A drain earlier in the suite turned
        # sh-fallback on: off for the test, as on an LB nobody drained with wgconsole.)
        lab.ns("lb", ["ipvsadm", "-E", "-u", service, "-s", "sh"])
        lab.ns("lb", ["ipvsadm", "-e", "-u", service, "-r", real, "-m", "-w", "0"])
        lab.ns(client["netns"], ["wg", "set", "wg0", "listen-port", new_port])
        with _sender(lab, client["netns"], _ping()):
            code, report, _ = _trace(lab)
        assert report["verdict"]["code"] == "dropped-at-lb", report["verdict"]
        assert code == 1
        assert _hops(report, "client-to-vip")
        assert not _hops(report, "lb-to-gateway")
        assert "weight 0" in report["verdict"]["message"]
    finally:
        lab.ns("lb", ["ipvsadm", "-e", "-u", service, "-r", real, "-m", "-w", "1"])
        if fallback:
            lab.ns("lb", ["ipvsadm", "-E", "-u", service, "-s", "sh", "-b", "sh-fallback"])
        lab.ns(client["netns"], ["wg", "set", "wg0", "listen-port", client["port"]])
        _tunnel_works(lab, client["netns"])


def test_trace_reply_bypasses_lb(lab: Lab, client: dict[str, str]) -> None:
    gw = _gateway_of(lab, client["wan"], client["port"])
    route = ["ip", "route", "replace", f"{client['wan']}/32", "via", MGMT_ROOT, "dev", "mgmt"]
    try:
        # The guest's root namespace joins the clients' segment and the gateway routes the
        # client through it: its answers reach the client without the LB's reverse NAT.
        lab.sh(f"ip addr add {ROOT_WAN}/24 dev br-wan")
        lab.ns(gw["netns"], route)
        with _sender(lab, client["netns"], _ping()):
            code, report, _ = _trace(lab)
        assert report["verdict"]["code"] == "reply-bypasses-lb", report["verdict"]
        assert code == 1
        assert _hops(report, "gateway-out")
        assert not _hops(report, "vip-to-client")
    finally:
        lab.ns(gw["netns"], ["ip", "route", "del", f"{client['wan']}/32"], check=False)
        lab.sh(f"ip addr del {ROOT_WAN}/24 dev br-wan", check=False)
        restore_endpoints(lab)
        _tunnel_works(lab, client["netns"])


def test_trace_no_packets_at_lb(lab: Lab, client: dict[str, str]) -> None:
    blackhole = ["ip", "route", "add", "blackhole", f"{lab.meta['vip']}/32"]
    try:
        lab.ns(client["netns"], blackhole)
        with _sender(lab, client["netns"], _ping()):
            code, report, _ = _trace(lab)
        assert report["verdict"]["code"] == "no-packets-at-lb", report["verdict"]
        assert code == 1
        assert not _hops(report, "client-to-vip")
    finally:
        lab.ns(client["netns"], ["ip", "route", "del", "blackhole", f"{lab.meta['vip']}/32"],
               check=False)  # fmt: skip
        _tunnel_works(lab, client["netns"])


def test_trace_stopped_leaves_no_tcpdump(lab: Lab) -> None:
    """Interrupted mid-capture (Ctrl-C), a trace leaves no tcpdump on any host."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "wgconsole", "-i", str(lab.inventory_path), "trace", CLIENT,
         "--seconds", "120"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        # Every capture running: 2 on the LB, 3 on the client's gateway.
        eventually(
            lambda: len(lab.sh("pgrep -x tcpdump || true").split()),
            timeout=120,
            what="the trace's five captures running",
            accept=lambda n: n >= 5,
        )
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    eventually(lambda: _no_tcpdump(lab), timeout=60, what="no tcpdump left after the stop")
