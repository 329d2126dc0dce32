"""Maintenance benchmark (issue 13): what the clients feel while an operation runs.

Boots its own lab (2 gateways, 6 clients, in /var/lib/wgconsole-lab-benchops, 127.0.0.1:2680-2683)
and, for each operation (drain, undrain, a weight change, rebalance when the command exists),
runs it with `wgconsole OP --yes` as an operator would while every client pings the gateway
through its tunnel: four clients every 100 ms (they send data), two every second (they are
otherwise idle: keepalive-only clients whose tunnel is checked once a second). The canonical
table sends four clients to gateway-01 (three of the 100 ms ones and one 1 s one) and two to
gateway-02, so a drain of gateway-01 moves four clients and must leave two untouched.

Per operation and client it reports: packets lost, the longest gap between two replies, the
time from the operation's start to the first reply through the client's new gateway (each
gateway's namespace answers with its own IP TTL, so a reply names the gateway that sent it),
and the operation's wall time; five runs each, medians with min and max. For the drain it
also breaks each moved client's gap down on the guest's own clock: its last reply through the
drained gateway, its LB entry gone and re-made to the new gateway (a tight loop on the LB
reading /proc/net/ip_vs_conn), the new gateway's handshake initiation to it (WireGuard's own
debug messages), and its first reply through the new gateway.

Between runs the lab is put back to a known state (bench-only, through the guest's control
sshd): the LB's canonical table, every gateway's wg0 re-created, every client's wg0 re-created
(so it handshakes afresh). It prints a table and writes benchmarks/results/ops.json. Nothing
here is a test: figures depend on the machine, and the lab is emulated (QEMU TCG).

    .venv/bin/python -m benchmarks.bench_ops [--reuse] [--keep] [--runs 5] [--ops drain,...]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wgconsole.core.inventory import Host, SshSettings
from wgconsole.lab import manager
from wgconsole.lab.topology import SERVICE_PORT, TUNNEL_GATEWAY, VIP
from wgconsole.poll.transport.ssh import SshTransport

ROOT = Path(__file__).resolve().parents[1]
LAB = Path(os.environ.get("WGCONSOLE_BENCHOPS_LAB_DIR", "/var/lib/wgconsole-lab-benchops"))
BASE_PORT = int(os.environ.get("WGCONSOLE_BENCHOPS_LAB_PORT", "2680"))
RESULTS = ROOT / "benchmarks" / "results" / "ops.json"

GATEWAYS = 2
CLIENTS = 6
FAST = 0.1  # s between pings of a client that sends data
SLOW = 1.0  # s between pings of a keepalive-only client
# cl0..cl3 hash to gateway-01 in the canonical table, cl4..cl5 to gateway-02 (sh, 6.1 hash).
SLOW_CLIENTS = ("cl3", "cl5")
MAX_RUNS = 10
LEAD_IN = 3.0  # s of pings before an operation starts
SETTLE = 5.0  # s of pings after it ends
TTL_BASE = 60  # gateway i answers with IP TTL TTL_BASE + i
# Per host command: other labs on the same cores can make one LB reading take tens of seconds.
HOST_TIMEOUT = 90.0
BUDGET_S = 40 * 60  # the whole benchmark stops starting runs after this
OPS = ("drain", "undrain", "rebalance", "weight", "failover")
GW1, GW2 = "wg-gateway-01", "wg-gateway-02"
STATE = "/run/benchops"  # in the guest (tmpfs)


def log(message: str) -> None:
    print(f"[bench-ops {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the guest ------------------------------------------------------------------------------


class Guest:
    """Commands in the lab guest's root namespace, over the lab's control sshd."""

    def __init__(self, lab: Path) -> None:
        meta = json.loads((lab / "topology.json").read_text())
        self.topology: dict[str, Any] = meta["topology"]
        self.transport = SshTransport(
            Host(
                "benchops-control",
                "127.0.0.1",
                SshSettings(
                    port=self.topology["control_port"],
                    identity_file=str(lab / "id_ed25519"),
                    known_hosts=str(lab / "known_hosts"),
                ),
            )
        )

    def sh(self, command: str, timeout: float = 120.0) -> str:
        result = self.transport.run(command, timeout=timeout)
        if result.status != 0:
            raise RuntimeError(
                f"lab command failed ({result.status}): {command[:300]}\n"
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        return result.stdout

    def offset(self) -> float:
        """Guest clock minus host clock (the sample with the shortest round trip)."""
        best: tuple[float, float] | None = None
        for _ in range(5):
            t0 = time.time()
            guest = float(self.sh("date +%s.%N"))
            t1 = time.time()
            if best is None or t1 - t0 < best[0]:
                best = (t1 - t0, guest - (t0 + t1) / 2)
        assert best is not None
        return best[1]

    def close(self) -> None:
        self.transport.close()


def start_lab(reuse: bool) -> bool:
    """Boot the bench lab (True), or reuse the running one when asked (False)."""
    if reuse and manager.qemu_pid(LAB) is not None and (LAB / "ready").exists():
        log(f"reusing the running bench lab in {LAB}")
        return False
    manager.lab_down(LAB)  # only ever this bench's own directory
    log(f"booting the bench lab in {LAB} (ports 127.0.0.1:{BASE_PORT}-{BASE_PORT + 3})")
    started = time.monotonic()
    manager.lab_up(gateways=GATEWAYS, clients=CLIENTS, base_port=BASE_PORT, lab=LAB)
    log(f"lab ready in {time.monotonic() - started:.0f} s")
    return True


def prepare(guest: Guest) -> None:
    """Once per lab: each gateway answers with its own TTL; WireGuard's debug messages on."""
    lines = [f"mkdir -p {STATE}", f"[ -p {STATE}/tick ] || mkfifo {STATE}/tick"]
    for i, g in enumerate(guest.topology["gateways"], start=1):
        lines.append(
            f"ip netns exec {g['netns']} sysctl -qw net.ipv4.ip_default_ttl={TTL_BASE + i}"
        )
    lines.append("echo 'module wireguard +p' > /proc/dynamic_debug/control || true")
    # WireGuard's debug messages are rate limited (10 per 5 s) unless this is 0.
    lines.append("sysctl -qw net.core.message_cost=0")
    guest.sh("\n".join(lines))


def reset(guest: Guest) -> None:
    """The known state: the canonical IPVS table (gateway-02 listed first, both weight 1,
    sh-fallback, expire_nodest_conn=1), no operation records, every wg0 re-created and every
    client shaken hands with the gateway sh sends it to."""
    topo = guest.topology
    vip = f"{VIP}:{SERVICE_PORT}"
    gws = topo["gateways"]
    lb = [
        "sysctl -qw net.ipv4.vs.expire_nodest_conn=1",
        # Deleting the dests (expire_nodest_conn=1) also flushes their entries.
        *(f"ipvsadm -d -u {vip} -r {g['lan']}:{SERVICE_PORT} 2>/dev/null" for g in gws),
        f"ipvsadm -E -u {vip} -s sh -b sh-fallback",
        *(f"ipvsadm -a -u {vip} -r {g['lan']}:{SERVICE_PORT} -m -w 1" for g in gws),
        "rm -rf /run/wgconsole",
    ]
    # The clients' old interfaces go first: their keepalives would re-make entries.
    script = [f"ip -n {c['netns']} link del wg0 2>/dev/null" for c in topo["clients"]]
    script.append(f"ip netns exec lb sh -c {shlex.quote('; '.join(lb))}")
    for g in gws:
        conf = f"/run/wglab/{g['netns']}/wireguard/wg0.conf"
        inner = f"wg-quick down {conf}; wg-quick up {conf}"
        script.append(f"ip netns exec {g['netns']} sh -c {shlex.quote(inner)} >/dev/null 2>&1")
    for c in topo["clients"]:
        ns = c["netns"]
        script.append(
            f"ip -n {ns} link add wg0 type wireguard && "
            f"ip netns exec {ns} wg setconf wg0 /run/wglab/{ns}/wg0.conf && "
            f"ip -n {ns} addr add {c['tunnel_address']}/24 dev wg0 && ip -n {ns} link set wg0 up"
        )
    for c in topo["clients"]:
        script.append(
            f"ip netns exec {c['netns']} ping -c 3 -i 0.3 -W 3 {TUNNEL_GATEWAY} >/dev/null &"
        )
    script.append("wait")
    guest.sh("\n".join(script), timeout=300)
    settle(guest)


def settle(guest: Guest, tries: int = 4) -> None:
    """Until `status` shows every client where the canonical table sends it, with a session
    there (a client whose first handshake was slow is pinged again)."""
    expected = {f"wg-client-{i}": GW1 if i < 4 else GW2 for i in range(CLIENTS)}
    for _ in range(tries):
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "wgconsole",
                "-i",
                str(LAB / "inventory.yaml"),
                "--timeout",
                str(HOST_TIMEOUT),
                "status",
                "--json",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        with contextlib.suppress(ValueError):
            clients = {c["name"]: c for c in json.loads(res.stdout)["clients"]}
            if all(
                clients.get(n, {}).get("lb_gateway") == g
                and clients[n]["handshake_gateway"] == g
                and clients[n]["status"] == "fresh"
                for n, g in expected.items()
            ):
                return
        guest.sh(
            "\n".join(
                f"ip netns exec {c['netns']} ping -c 2 -W 3 {TUNNEL_GATEWAY} >/dev/null &"
                for c in guest.topology["clients"]
            )
            + "\nwait",
            timeout=120,
        )
    raise RuntimeError("the lab's clients did not settle where the canonical table sends them")


# --- probes ---------------------------------------------------------------------------------


def start_probes(guest: Guest) -> None:
    lines = [f"cd {STATE} && rm -f *.log *.pid"]
    for c in guest.topology["clients"]:
        ns = c["netns"]
        interval = SLOW if ns in SLOW_CLIENTS else FAST
        lines.append(
            f"setsid ip netns exec {ns} ping -n -D -O -i {interval} -W 2 {TUNNEL_GATEWAY} "
            f"> {ns}.log 2>&1 < /dev/null & echo $! > {ns}.pid"
        )
    # The LB's table, every change (client, port, real server) with the guest's time.
    watch = (
        f"exec 9<>{STATE}/tick; prev=; while :; do mapfile -t rows < /proc/net/ip_vs_conn; "
        'cur=; for r in "${rows[@]:1}"; do set -- $r; cur+="$2:$3>$6 "; done; '
        'if [ "$cur" != "$prev" ]; then echo "$EPOCHREALTIME $cur"; prev=$cur; fi; '
        "read -t 0.05 -u 9; done"
    )
    lines.append(
        f"setsid ip netns exec lb bash -c {shlex.quote(watch)} > lb.log 2>&1 < /dev/null & "
        "echo $! > lb.pid"
    )
    lines.append('echo "bench-ops mark $(date +%s.%N)" > /dev/kmsg')
    guest.sh("\n".join(lines))
    # `ip netns exec` can take seconds to start a ping on a loaded machine: the lead-in
    # counts from when every client has answers.
    names = " ".join(f"{c['netns']}.log" for c in guest.topology["clients"])
    guest.sh(
        f"cd {STATE}; i=0; while [ $i -lt 600 ]; do ok=1; for f in {names}; do "
        '[ "$(grep -c "bytes from" "$f" 2>/dev/null)" -ge 2 ] || ok=; done; '
        '[ -n "$ok" ] && exit 0; i=$((i + 1)); sleep 0.2; done; exit 1',
        timeout=180,
    )


def stop_probes(guest: Guest) -> dict[str, str]:
    """Stop every probe; each log's text by name (cl0.., lb, kmsg)."""
    out = guest.sh(
        f"cd {STATE} && for p in *.pid; do kill -INT $(cat $p) 2>/dev/null; done; sleep 1; "
        'echo "bench-ops mark $(date +%s.%N)" > /dev/kmsg; '
        'for f in *.log; do echo "=== $f"; cat "$f"; done; echo "=== kmsg.log"; dmesg'
    )
    logs: dict[str, str] = {}
    name = None
    for line in out.splitlines():
        if line.startswith("=== "):
            name = line[4:].removesuffix(".log")
            logs[name] = ""
        elif name is not None:
            logs[name] += line + "\n"
    return logs


@dataclass
class Reply:
    at: float  # guest clock
    seq: int
    ttl: int


@dataclass
class PingLog:
    replies: list[Reply] = field(default_factory=list)
    unanswered: dict[int, float] = field(default_factory=dict)  # seq -> when it was reported


REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+) ttl=(\d+)")
NO_ANSWER = re.compile(r"^\[(\d+\.\d+)\] no answer yet for icmp_seq=(\d+)")


def parse_ping(text: str) -> PingLog:
    p = PingLog()
    for line in text.splitlines():
        m = REPLY.match(line)
        if m:
            p.replies.append(Reply(float(m.group(1)), int(m.group(2)), int(m.group(3))))
            continue
        m = NO_ANSWER.match(line)
        if m:
            p.unanswered.setdefault(int(m.group(2)), float(m.group(1)))
    return p


def parse_lb(text: str) -> list[tuple[float, dict[str, str]]]:
    """(time, {client ip:port: real server ip:port}) at each change of the LB's table."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        try:
            at = float(parts[0])
        except ValueError:
            continue
        table = {}
        for item in parts[1:]:
            client, _, dest = item.partition(">")
            table[_hexpair(client)] = _hexpair(dest)
        out.append((at, table))
    return out


def _hexpair(text: str) -> str:
    """`0A4D010A:A0CB` as `10.77.1.10:41163`; a bare hex address as `10.77.1.10`."""
    addr, _, port = text.partition(":")
    octets = ".".join(str(int(addr[i : i + 2], 16)) for i in range(0, 8, 2))
    return f"{octets}:{int(port, 16)}" if port else octets


PLANNED = re.compile(r"clients on \S+ now: (\d+)")
KMSG = re.compile(r"^\[\s*(\d+\.\d+)\] (.*)$")
MARK = re.compile(r"bench-ops mark (\d+\.\d+)")


def parse_kmsg(text: str) -> list[tuple[float, str]]:
    """Kernel messages on the guest's wall clock (from the marks written around a window)."""
    lines = []
    for line in text.splitlines():
        m = KMSG.match(line)
        if m:
            lines.append((float(m.group(1)), m.group(2)))
    offset = None
    for mono, msg in lines:
        mark = MARK.search(msg)
        if mark:
            offset = float(mark.group(1)) - mono  # the last mark is the freshest
    if offset is None:
        return []
    return [(mono + offset, msg) for mono, msg in lines]


# --- one measured operation -----------------------------------------------------------------


@dataclass
class OpRun:
    op: str
    argv: list[str]
    started: float = 0.0  # guest clock
    ended: float = 0.0
    exit: int | None = None
    planned: int | None = None  # a drain: the clients its plan found on the gateway
    output: list[tuple[float, str]] = field(default_factory=list)  # (guest clock, line)
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    breakdown: dict[str, dict[str, float | None]] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def run_cli(argv: Sequence[str], offset: float, timeout: float = 600.0) -> OpRun:
    """`wgconsole ARGV` as an operator runs it; each output line stamped on the guest clock."""
    cmd = [sys.executable, "-u", "-m", "wgconsole", *argv]
    run = OpRun(argv[2] if len(argv) > 2 else argv[0], list(argv))
    run.started = time.time() + offset
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    )
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            run.output.append((time.time() + offset, line.rstrip("\n")))
        run.exit = proc.wait()
    finally:
        timer.cancel()
    run.ended = time.time() + offset
    return run


def gateway_of_ttl(ttl: int) -> str:
    return f"wg-gateway-{ttl - TTL_BASE:02d}"


def analyse(guest: Guest, run: OpRun, logs: dict[str, str], stopped: float) -> None:
    """Per client: lost, longest gap, first reply through its new gateway; the drain's
    breakdown of each moved client's gap."""
    window_end = stopped - 2.5  # the last pings' answers may still be in flight
    lb = parse_lb(logs.get("lb", ""))
    kmsg = parse_kmsg(logs.get("kmsg", ""))
    wan = {c["netns"]: c["wan"] for c in guest.topology["clients"]}
    for ns in sorted(wan):
        ping = parse_ping(logs.get(ns, ""))
        interval = SLOW if ns in SLOW_CLIENTS else FAST
        replies = sorted(ping.replies, key=lambda r: r.at)
        before = [r for r in replies if r.at < run.started]
        after = [r for r in replies if run.started <= r.at <= window_end]
        answered = {r.seq for r in replies}
        first_seq = min((r.seq for r in after), default=None)
        last_seq = max((r.seq for r in after), default=None)
        lo = before[-1].seq + 1 if before else (first_seq or 1)
        hi = last_seq if last_seq is not None else lo - 1
        lost = sum(1 for s in range(lo, hi + 1) if s not in answered)
        # A run with no reply after the start is a gap to the end of the window.
        edge = [*before[-1:], *after]
        gaps = [b.at - a.at for a, b in itertools.pairwise(edge)]
        if not after:
            gaps.append(window_end - (before[-1].at if before else run.started))
        old = gateway_of_ttl(before[-1].ttl) if before else None
        new = next((r for r in after if old is not None and gateway_of_ttl(r.ttl) != old), None)
        run.clients[ns] = {
            "interval": interval,
            "from": old,
            "to": gateway_of_ttl(after[-1].ttl) if after else None,
            "moved": new is not None,
            "lost": lost,
            "longest_gap": round(max(gaps), 3) if gaps else None,
            "first_via_new": round(new.at - run.started, 3) if new else None,
            "answered_after": len(after),
        }
        if run.op == "drain" and new is not None:
            run.breakdown[ns] = _breakdown(run, before, after, new, lb, kmsg, wan[ns])


def _breakdown(
    run: OpRun,
    before: list[Reply],
    after: list[Reply],
    new: Reply,
    lb: list[tuple[float, dict[str, str]]],
    kmsg: list[tuple[float, str]],
    address: str,
) -> dict[str, float | None]:
    """Moments of one moved client's move, in seconds after the operation's start."""
    old_gw = gateway_of_ttl(before[-1].ttl)
    last_old = max(r.at for r in [*before, *after] if gateway_of_ttl(r.ttl) == old_gw)
    entry_gone = entry_new = None
    dest_before = None
    for at, table in lb:
        mine = {k: v for k, v in table.items() if k.startswith(address + ":")}
        if at < run.started:
            dest_before = next(iter(mine.values()), dest_before)
            continue
        if entry_gone is None and dest_before and dest_before not in mine.values():
            entry_gone = at
        if entry_gone is not None and entry_new is None and mine:
            entry_new = at
    initiation = response = None
    for at, msg in kmsg:
        if at < run.started:
            continue
        if (
            initiation is None
            and "Sending handshake initiation to peer" in msg
            and (f"({address}:" in msg)
        ):
            initiation = at
        if response is None and "Receiving handshake response" in msg and f"({address}:" in msg:
            response = at
    kick = next((at for at, line in run.output if "initiated" in line and "LB entry" in line), None)

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - run.started, 3)

    return {
        "last_reply_old": rel(last_old),
        "entry_gone": rel(entry_gone),
        "entry_new": rel(entry_new),
        "kick_line": rel(kick),
        "initiation": rel(initiation),
        "response": rel(response),
        "first_reply_new": rel(new.at),
        "gap": round(new.at - last_old, 3),
    }


def measure(guest: Guest, argv: Sequence[str], inventory: Path) -> OpRun:
    offset = guest.offset()
    start_probes(guest)
    time.sleep(LEAD_IN)
    full = ["-i", str(inventory), "--timeout", str(HOST_TIMEOUT), *argv, "--yes"]
    full += ["--audit-log", str(LAB / "audit.jsonl")]
    run = run_cli(full, offset)
    run.op = argv[0]
    planned = next((m for _, line in run.output if (m := PLANNED.search(line))), None)
    run.planned = int(planned.group(1)) if planned else None
    time.sleep(SETTLE)
    stopped = time.time() + offset
    logs = stop_probes(guest)
    # The raw logs, for a second look (they go with the lab directory).
    raw = LAB / "runs"
    raw.mkdir(exist_ok=True)
    n = len(list(raw.glob(f"{run.op}-*.json"))) + 1
    (raw / f"{run.op}-{n}.json").write_text(
        json.dumps(
            {
                "started": run.started,
                "ended": run.ended,
                "stopped": stopped,
                "output": run.output,
                "logs": logs,
            }
        )
    )
    analyse(guest, run, logs, stopped)
    return run


# --- the runs -------------------------------------------------------------------------------


def have_rebalance() -> str | None:
    """None when `wgconsole rebalance` exists, else why it is skipped."""
    res = subprocess.run(
        [sys.executable, "-m", "wgconsole", "rebalance", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if res.returncode == 0:
        return None
    return "`wgconsole rebalance` does not exist yet in this tree"


def failover_skip_reason() -> str:
    return (
        "this bench's lab has one LB; an LB failover needs the director-pair lab "
        "(`lab up --lbs 2`, keepalived and the IPVS sync daemon), which this bench does not "
        "boot yet"
    )


def unmeasured(argv: Sequence[str], inventory: Path) -> None:
    """An operation the next measured one needs (a drain before an undrain)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "wgconsole",
            "-i",
            str(inventory),
            "--timeout",
            str(HOST_TIMEOUT),
            *argv,
            "--yes",
            "--audit-log",
            str(LAB / "audit.jsonl"),
        ],
        capture_output=True,
        cwd=ROOT,
        check=False,
        timeout=1800,
    )


def one_run(guest: Guest, inventory: Path, ops: Sequence[str], rebalance: bool) -> list[OpRun]:
    runs: list[OpRun] = []
    if {"drain", "undrain", "rebalance"} & set(ops):
        reset(guest)
        drain = ["drain", GW1]
        if "drain" in ops:
            runs.append(measure(guest, drain, inventory))
        else:
            unmeasured(drain, inventory)
        undrain = ["undrain", GW1, "--no-rebalance"]
        if "undrain" in ops:
            runs.append(measure(guest, undrain, inventory))
        elif "rebalance" in ops:
            unmeasured(undrain, inventory)
        if rebalance and "rebalance" in ops:
            runs.append(measure(guest, ["rebalance"], inventory))
    if "weight" in ops:
        reset(guest)
        runs.append(measure(guest, ["weight", GW2, "2"], inventory))
    return runs


def summarise(runs: list[OpRun]) -> dict[str, Any]:
    """Per operation and client: medians with min and max of each figure."""
    out: dict[str, Any] = {}
    for op in dict.fromkeys(r.op for r in runs):
        mine = [r for r in runs if r.op == op]
        entry: dict[str, Any] = {
            "runs": len(mine),
            "exit_codes": [r.exit for r in mine],
            "wall_s": _stats([r.seconds for r in mine]),
            "clients": {},
            "breakdown": {},
        }
        for ns in sorted({ns for r in mine for ns in r.clients}):
            rows = [r.clients[ns] for r in mine if ns in r.clients]
            entry["clients"][ns] = {
                "interval_s": rows[0]["interval"],
                "moved": sum(1 for x in rows if x["moved"]),
                "lost": _stats([x["lost"] for x in rows]),
                "longest_gap_s": _stats([x["longest_gap"] for x in rows]),
                "first_via_new_s": _stats([x["first_via_new"] for x in rows]),
            }
        for ns in sorted({ns for r in mine for ns in r.breakdown}):
            rows_b = [r.breakdown[ns] for r in mine if ns in r.breakdown]
            entry["breakdown"][ns] = {k: _stats([x[k] for x in rows_b]) for k in rows_b[0]}
        out[op] = entry
    return out


def _stats(values: Sequence[float | int | None]) -> dict[str, float] | None:
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return None
    return {
        "median": round(statistics.median(xs), 3),
        "min": round(min(xs), 3),
        "max": round(max(xs), 3),
        "n": len(xs),
    }


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    others = 0
    with contextlib.suppress(OSError):
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                with contextlib.suppress(OSError):
                    cmd = (proc / "cmdline").read_bytes()
                    if cmd.startswith(b"qemu-system") and str(LAB).encode() not in cmd:
                        others += 1
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "host_kernel": platform.release(),
        "lab": "Debian linux-image-amd64 under QEMU TCG (software emulation), 2 vCPUs",
        "other_qemu_labs_running": others,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _fmt(s: dict[str, float] | None, unit: str = "") -> str:
    if s is None:
        return "-"
    if s["min"] == s["max"]:
        return f"{s['median']:g}{unit}"
    return f"{s['median']:g}{unit} ({s['min']:g}-{s['max']:g})"


def print_report(results: dict[str, Any]) -> None:
    m = results["machine"]
    print(
        f"\nmachine: {m['cores']} cores ({m['cpu']}), load average {m['load_average']} at the "
        f"start, {m.get('load_average_end')} at the end, {m['other_qemu_labs_running']} other "
        f"QEMU labs running; lab: {m['lab']}"
    )
    for note in results.get("skipped", []):
        print(f"skipped: {note}")
    for op, entry in results["summary"].items():
        print(
            f"\n{op}: {entry['runs']} runs, wall time {_fmt(entry['wall_s'], ' s')}, "
            f"exit codes {entry['exit_codes']}"
        )
        print(
            f"  {'client':<7} {'ping':>6} {'moved':>6} {'lost':>14} {'longest gap (s)':>22} "
            f"{'first via new gw (s)':>22}"
        )
        for ns, c in entry["clients"].items():
            print(
                f"  {ns:<7} {c['interval_s']:>5g}s {c['moved']:>3}/{entry['runs']:<2} "
                f"{_fmt(c['lost']):>14} {_fmt(c['longest_gap_s']):>22} "
                f"{_fmt(c['first_via_new_s']):>22}"
            )
        if entry["breakdown"]:
            print("  drain, each moved client (s after the drain began; medians (min-max)):")
            keys = next(iter(entry["breakdown"].values())).keys()
            for k in keys:
                cells = "  ".join(f"{ns}: {_fmt(b[k])}" for ns, b in entry["breakdown"].items())
                print(f"    {k:<16} {cells}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    started_lab = start_lab(args.reuse)
    guest = Guest(LAB)
    inventory = LAB / "inventory.yaml"
    results: dict[str, Any] = {"machine": machine(), "runs": [], "skipped": []}
    ops = [o for o in args.ops.split(",") if o]
    try:
        prepare(guest)
        rebalance_skip = have_rebalance() if "rebalance" in ops else None
        if rebalance_skip:
            results["skipped"].append(f"rebalance: {rebalance_skip}")
            log(f"skipped: rebalance: {rebalance_skip}")
        if "failover" in ops:
            results["skipped"].append(f"failover: {failover_skip_reason()}")
            log(f"skipped: failover: {failover_skip_reason()}")
        deadline = time.monotonic() + BUDGET_S
        all_runs: list[OpRun] = []
        for i in range(args.runs):
            if time.monotonic() > deadline:
                results["skipped"].append(f"runs {i + 1}..{args.runs}: over the time budget")
                break
            log(f"run {i + 1}/{args.runs}")
            for r in one_run(guest, inventory, ops, rebalance_skip is None):
                log(
                    f"  {r.op}: exit {r.exit}, {r.seconds:.1f} s; "
                    + ", ".join(
                        f"{ns} lost {c['lost']} gap {c['longest_gap']}"
                        for ns, c in r.clients.items()
                    )
                )
                all_runs.append(r)
                results["runs"].append(
                    {
                        "op": r.op,
                        "argv": r.argv,
                        "exit": r.exit,
                        "planned_clients": r.planned,
                        "seconds": round(r.seconds, 3),
                        "clients": r.clients,
                        "breakdown": r.breakdown,
                        "output": [f"{t - r.started:7.3f} {line}" for t, line in r.output],
                    }
                )
        results["summary"] = summarise(all_runs)
        results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        guest.close()
        if started_lab and not args.keep:
            log("taking the bench lab down")
            manager.lab_down(LAB)
        elif args.keep or not started_lab:
            log(f"lab left running in {LAB}")
    return results


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_ops", description=__doc__.split("\n\n")[0])
    p.add_argument("--reuse", action="store_true", help="use a running bench lab if there is one")
    p.add_argument("--keep", action="store_true", help="leave the bench lab running")
    p.add_argument("--runs", type=int, default=5, help=f"runs of each operation (1..{MAX_RUNS})")
    p.add_argument("--ops", default=",".join(OPS), help="operations, comma-separated")
    p.add_argument("--json", type=Path, default=RESULTS, help="where to write the results")
    args = p.parse_args(argv)
    if not 1 <= args.runs <= MAX_RUNS:
        p.error(f"--runs must be between 1 and {MAX_RUNS}")
    unknown = set(args.ops.split(",")) - set(OPS)
    if unknown:
        p.error(f"unknown operations: {', '.join(sorted(unknown))} (known: {', '.join(OPS)})")
    signal.signal(signal.SIGTERM, _stop)
    results = run(args)
    results["command"] = "make bench-ops  (.venv/bin/python -m benchmarks.bench_ops)"
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print_report(results)
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
