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

The unplanned cases (`host-leaves`, `wg0-down`) measure an unattended eviction the same way:
`wgconsole guard` runs inside the guest on a bastion namespace of its own (wgconsole/lab/
guest_guard.py; its prober's peer added once by `probe setup`), and gateway-01's host drops off
every network, or its wg0 goes down with the host up, while every client pings. Figures count
from the failure: the detection (the guard's `evicting` line), the eviction done, and per
client the same loss, gaps and first reply through the new gateway. The gateway is brought
back and undrained between runs.

The LB failover needs a director pair, so when `failover` is among the operations the bench
boots a second lab of its own after the first is down (one emulated guest at a time on a
shared machine): `lab up --lbs 2` with the same gateways and clients, in
/var/lib/wgconsole-lab-benchops-pair, 127.0.0.1:2700-2704. Each run puts it in the same known
state (the VIP on the intended master, both directors' tables canonical and equal, every
client shaken hands afresh, so every client has a synced entry on the backup), measures
`wgconsole failover --yes` (to the backup) with the same probes, then moves the VIP back
unmeasured (`failover --to` the master) and waits until the pair is settled. Each director
counts every client's packets to the VIP (an iptables rule per client, sampled with the VIP's
presence), so a client's figures also say which LB carried its traffic before and after, and
when its first packet reached the new one.

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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wgconsole.core.inventory import Host, SshSettings
from wgconsole.core.lb_state import STATE_DIR
from wgconsole.lab import guest_guard, manager
from wgconsole.lab.guest_script import SWITCHOVER_FILE
from wgconsole.lab.topology import SERVICE_PORT, TUNNEL_GATEWAY, VIP
from wgconsole.poll.transport.ssh import SshTransport

ROOT = Path(__file__).resolve().parents[1]
LAB = Path(os.environ.get("WGCONSOLE_BENCHOPS_LAB_DIR", "/var/lib/wgconsole-lab-benchops"))
BASE_PORT = int(os.environ.get("WGCONSOLE_BENCHOPS_LAB_PORT", "2680"))
RESULTS = ROOT / "benchmarks" / "results" / "ops.json"
PAIR_LAB = Path(
    os.environ.get("WGCONSOLE_BENCHOPS_PAIR_LAB_DIR", "/var/lib/wgconsole-lab-benchops-pair")
)
PAIR_BASE_PORT = int(os.environ.get("WGCONSOLE_BENCHOPS_PAIR_LAB_PORT", "2700"))

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
BUDGET_S = 40 * 60  # the single-LB runs stop starting after this
PAIR_BUDGET_S = 30 * 60  # and the failover runs after this
# VRRP, the sync daemons and a loaded machine: how long the pair may take to settle.
PAIR_SETTLE_S = 240.0
COUNT_INTERVAL = 0.25  # s between samples of the directors' per-client packet counters
# The unplanned cases: gateway-01 fails while `wgconsole guard` runs on a bastion in the lab.
UNPLANNED = {
    # Its host drops off every network (links down: nothing answers, not even SSH).
    "host-leaves": "ip -n {ns} link set lan down; ip -n {ns} link set mgmt down",
    # Its wg0 goes down while its host, and sshd, stay up.
    "wg0-down": "ip -n {ns} link set wg0 down",
}
OPS = ("drain", "undrain", "rebalance", "weight", *UNPLANNED, "failover")
SINGLE_LB_OPS = ("drain", "undrain", "rebalance", "weight", *UNPLANNED)
PROBER = "bench-prober"
# After the eviction: long enough for a moved client that nobody kicked to re-handshake at its
# own timer (REKEY_TIMEOUT after its unanswered data), so the figures say it if that happens.
UNPLANNED_SETTLE = 12.0
GW1, GW2 = "wg-gateway-01", "wg-gateway-02"
STATE = "/run/benchops"  # in the guest (tmpfs)


def log(message: str) -> None:
    print(f"[bench-ops {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the guest ------------------------------------------------------------------------------


class Guest:
    """Commands in the lab guest's root namespace, over the lab's control sshd."""

    def __init__(self, lab: Path) -> None:
        meta = json.loads((lab / "topology.json").read_text())
        self.lab = lab
        self.inventory = lab / "inventory.yaml"
        self.topology: dict[str, Any] = meta["topology"]
        # The director pair (`lab up --lbs 2`), or None for the single LB.
        self.pair: dict[str, Any] | None = meta.get("director_pair")
        # The inventory a guard inside the guest reads (`prepare_guard`).
        self.guard_inventory: Path | None = None
        # Every LB's namespace: the single LB, or the directors with the intended master first.
        self.lbs: list[str] = [
            self.topology["lb"]["netns"],
            *(d["netns"] for d in self.topology.get("backup_lbs", [])),
        ]
        self.lb_names: dict[str, str] = {
            self.topology["lb"]["netns"]: self.topology["lb"]["name"],
            **{d["netns"]: d["name"] for d in self.topology.get("backup_lbs", [])},
        }
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


def start_lab(*, reuse: bool, lab: Path = LAB, base_port: int = BASE_PORT, lbs: int = 1) -> bool:
    """Boot a bench lab (True), or reuse the running one when asked (False). `lbs=2` is the
    director pair, reused only if the running lab is one."""
    if (
        reuse
        and manager.qemu_pid(lab) is not None
        and (lab / "ready").exists()
        and ("director_pair" in json.loads((lab / "topology.json").read_text())) == (lbs == 2)
    ):
        log(f"reusing the running bench lab in {lab}")
        return False
    manager.lab_down(lab)  # only ever this bench's own directories
    last = base_port + lbs + GATEWAYS
    log(f"booting the bench lab in {lab} (ports 127.0.0.1:{base_port}-{last}, {lbs} LB)")
    started = time.monotonic()
    manager.lab_up(gateways=GATEWAYS, clients=CLIENTS, base_port=base_port, lab=lab, lbs=lbs)
    log(f"lab ready in {time.monotonic() - started:.0f} s")
    return True


@contextlib.contextmanager
def bench_lab(args: argparse.Namespace, lab: Path, base_port: int, lbs: int) -> Iterator[Guest]:
    """A bench lab for the length of a phase, down at the end unless --keep (or reused)."""
    started_lab = start_lab(reuse=args.reuse, lab=lab, base_port=base_port, lbs=lbs)
    guest = Guest(lab)
    try:
        yield guest
    finally:
        guest.close()
        if started_lab and not args.keep:
            log(f"taking the bench lab in {lab} down")
            manager.lab_down(lab)
        else:
            log(f"lab left running in {lab}")


def prepare(guest: Guest) -> None:
    """Once per lab: each gateway answers with its own TTL; WireGuard's debug messages on; on
    a director pair, each director counts every client's packets to the VIP."""
    lines = [f"mkdir -p {STATE}", f"[ -p {STATE}/tick ] || mkfifo {STATE}/tick"]
    for i, g in enumerate(guest.topology["gateways"], start=1):
        lines.append(
            f"ip netns exec {g['netns']} sysctl -qw net.ipv4.ip_default_ttl={TTL_BASE + i}"
        )
    lines.append("echo 'module wireguard +p' > /proc/dynamic_debug/control || true")
    # WireGuard's debug messages are rate limited (10 per 5 s) unless this is 0.
    lines.append("sysctl -qw net.core.message_cost=0")
    if guest.pair is not None:
        # ACCEPT in INPUT is what the empty chain's policy does anyway: the rule only counts.
        for ns in guest.lbs:
            for c in guest.topology["clients"]:
                rule = f"INPUT -s {c['wan']}/32 -d {VIP}/32 -p udp -j ACCEPT"
                lines.append(
                    f"ip netns exec {ns} iptables -w -C {rule} 2>/dev/null || "
                    f"ip netns exec {ns} iptables -w -A {rule}"
                )
    guest.sh("\n".join(lines))


def reset(guest: Guest) -> None:
    """The known state: the canonical IPVS table (gateway-02 listed first, both weight 1,
    sh-fallback, expire_nodest_conn=1), no operation records, every wg0 re-created and every
    client shaken hands with the gateway sh sends it to."""
    topo = guest.topology
    vip = f"{VIP}:{SERVICE_PORT}"
    gws = topo["gateways"]
    # On a director pair both get the same commands in the same order: equal kernel orders.
    lb = [
        "sysctl -qw net.ipv4.vs.expire_nodest_conn=1",
        # Deleting the dests (expire_nodest_conn=1) also flushes their entries.
        *(f"ipvsadm -d -u {vip} -r {g['lan']}:{SERVICE_PORT} 2>/dev/null" for g in gws),
        f"ipvsadm -E -u {vip} -s sh -b sh-fallback",
        *(f"ipvsadm -a -u {vip} -r {g['lan']}:{SERVICE_PORT} -m -w 1" for g in gws),
        # An eviction's fence (the unplanned cases), lifted.
        "nft delete table inet wgconsole 2>/dev/null",
    ]
    if guest.pair is None:
        lb.append(f"rm -rf {STATE_DIR}")
    # The clients' old interfaces go first: their keepalives would re-make entries.
    script = [f"ip -n {c['netns']} link del wg0 2>/dev/null" for c in topo["clients"]]
    script += [f"ip netns exec {ns} sh -c {shlex.quote('; '.join(lb))}" for ns in guest.lbs]
    if guest.pair is not None:
        # A director's records live in its own tmpfs mounted on STATE_DIR in its own mount
        # namespace; removing that directory from the guest's would detach the mount (the
        # kernel drops mounts on a removed directory in every namespace), and both directors
        # would share the guest's. Only its contents go, the switchover file stays.
        keep = Path(SWITCHOVER_FILE).name
        inner = f"find {STATE_DIR} -mindepth 1 -maxdepth 1 ! -name {keep} -exec rm -rf {{}} +"
        script += [_on_director(ns, inner) for ns in guest.lbs]
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
                str(guest.inventory),
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


# --- the director pair ----------------------------------------------------------------------


def directors(guest: Guest) -> list[dict[str, Any]]:
    """The pair's directors, the intended master first (topology.json's `director_pair`)."""
    assert guest.pair is not None
    found: list[dict[str, Any]] = guest.pair["directors"]
    return found


def vip_holders(guest: Guest) -> list[str]:
    """The directors (netns) whose lo holds the VIP, read now."""
    out = guest.sh("; ".join(f"echo {ns} $(ip -n {ns} -o -4 addr show dev lo)" for ns in guest.lbs))
    return [line.split()[0] for line in out.splitlines() if f" {VIP}/32 " in f"{line} "]


def pair_settled(guest: Guest) -> bool:
    """As the pair boots (tests/lab/conftest.py's PairLab.settled): the intended master alone
    holds the VIP and runs the master sync daemon, the backup runs the backup one."""
    master, backup = guest.lbs
    daemons = guest.sh(
        f"ip netns exec {master} ipvsadm -Ln --daemon; echo ===; "
        f"ip netns exec {backup} ipvsadm -Ln --daemon"
    )
    on_master, _, on_backup = daemons.partition("===\n")
    return (
        vip_holders(guest) == [master]
        and on_master.startswith("master sync daemon")
        and on_backup.startswith("backup sync daemon")
    )


def wait_pair_settled(guest: Guest, seconds: float = PAIR_SETTLE_S) -> float:
    """Until the pair is settled; how long that took."""
    started = time.monotonic()
    while not pair_settled(guest):
        if time.monotonic() - started > seconds:
            raise RuntimeError(f"the director pair did not settle within {seconds:.0f} s")
        time.sleep(1)
    return time.monotonic() - started


def restore_pair(guest: Guest) -> None:
    """The VIP back on the intended master if it is not there (a run cut short, a reused lab):
    bench-only, as the pair booted, every director's switchover file 0 again."""
    if pair_settled(guest):
        return
    log("the pair is not as it booted: every switchover file back to 0")
    guest.sh("\n".join(_on_director(ns, f"printf '0\\n' > {SWITCHOVER_FILE}") for ns in guest.lbs))
    log(f"pair settled after {wait_pair_settled(guest):.0f} s")


def _on_director(netns: str, command: str) -> str:
    """Shell text that runs COMMAND where the director's keepalived and sshd live (its network
    namespace and its mount namespace, with the private /tmp and /run/wgconsole)."""
    target = f"$(cat /run/wglab/sshd-{netns}.pid)"
    return f"nsenter -t {target} -m -n sh -c {shlex.quote(command)}"


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
    # Each LB's table, every change (client, port, real server) with the guest's time.
    watch = (
        f"exec 9<>{STATE}/tick; prev=; while :; do mapfile -t rows < /proc/net/ip_vs_conn; "
        'cur=; for r in "${rows[@]:1}"; do set -- $r; cur+="$2:$3>$6 "; done; '
        'if [ "$cur" != "$prev" ]; then echo "$EPOCHREALTIME $cur"; prev=$cur; fi; '
        "read -t 0.05 -u 9; done"
    )
    for ns in guest.lbs:
        lines.append(
            f"setsid ip netns exec {ns} bash -c {shlex.quote(watch)} > {ns}.log 2>&1 "
            f"< /dev/null & echo $! > {ns}.pid"
        )
    if guest.pair is not None:
        # Each director: its per-client packet counters (INPUT holds only the counting rules),
        # then whether it holds the VIP (its local routes name it), then the time: iptables is
        # the one process per sample (the emulated guest is slow to start them), so the VIP
        # and the time are read together after it. No globbing: the rows hold `*`.
        count = (
            f"set -f; exec 9<>{STATE}/tick; while :; do "
            "mapfile -t rows < <(iptables -w -nvxL INPUT); "
            'out=; for r in "${rows[@]:2}"; do set -- $r; out+="$8=$1 "; done; '
            "mapfile -t fib < /proc/net/fib_trie; "
            f'vip=0; [[ " ${{fib[*]}} " == *"-- {VIP} "* ]] && vip=1; '
            'echo "$EPOCHREALTIME $vip $out"; '
            f"read -t {COUNT_INTERVAL} -u 9; done"
        )
        for ns in guest.lbs:
            lines.append(
                f"setsid ip netns exec {ns} bash -c {shlex.quote(count)} > count-{ns}.log "
                f"2>&1 < /dev/null & echo $! > count-{ns}.pid"
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


@dataclass
class CountSample:
    at: float  # guest clock
    holds_vip: bool
    packets: dict[str, int]  # client address -> packets it sent to the VIP through this LB


def parse_counts(text: str) -> list[CountSample]:
    """A director's samples: `time vip-count address=packets ...`."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        try:
            at, vip = float(parts[0]), int(parts[1])
        except (IndexError, ValueError):
            continue
        packets = {}
        for item in parts[2:]:
            address, _, n = item.partition("=")
            if n.isdigit():
                packets[address] = int(n)
        out.append(CountSample(at, vip > 0, packets))
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
    vip: dict[str, Any] = field(default_factory=dict)  # a director pair: the VIP's holders
    detected: float | None = None  # an unplanned case: when the guard began to evict

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
    tables = {ns: parse_lb(logs.get(ns, "")) for ns in guest.lbs}
    # The drain's breakdown reads the LB the traffic goes through: the single LB, or the
    # intended master of a pair.
    lb = tables[guest.lbs[0]]
    kmsg = parse_kmsg(logs.get("kmsg", ""))
    counts = (
        {ns: parse_counts(logs.get(f"count-{ns}", "")) for ns in guest.lbs}
        if guest.pair is not None
        else {}
    )
    if counts:
        run.vip = _vip_moves(guest, run, counts)
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
        if counts:
            run.clients[ns].update(_carriers(guest, run, counts, tables, wan[ns], window_end))


def _vip_moves(guest: Guest, run: OpRun, counts: dict[str, list[CountSample]]) -> dict[str, Any]:
    """Who held the VIP just before the operation and at the end, and when the end's holder
    first held it alone (s after the start; sampled every COUNT_INTERVAL)."""

    def holders(at: float) -> list[str]:
        found = []
        for ns, samples in counts.items():
            last = next((x for x in reversed(samples) if x.at <= at), None)
            if last is not None and last.holds_vip:
                found.append(guest.lb_names[ns])
        return found

    times = sorted({x.at for samples in counts.values() for x in samples})
    before = holders(run.started)
    after = holders(times[-1]) if times else []
    moved = len(after) == 1 and after != before
    alone = next((t for t in times if moved and t >= run.started and holders(t) == after), None)
    steps = [b.at - a.at for samples in counts.values() for a, b in itertools.pairwise(samples)]
    return {
        "holders_before": before,
        "holders_after": after,
        "alone_on_new_s": round(alone - run.started, 3) if alone is not None else None,
        # The resolution of this and of each client's first_via_new_lb: the loaded guest
        # samples more slowly than COUNT_INTERVAL asks.
        "sample_interval_s": round(statistics.median(steps), 3) if steps else None,
    }


def _carriers(
    guest: Guest,
    run: OpRun,
    counts: dict[str, list[CountSample]],
    tables: dict[str, list[tuple[float, dict[str, str]]]],
    address: str,
    window_end: float,
) -> dict[str, Any]:
    """Which director carried one client's packets before the operation and at its end
    (the last whose counter for it grew), when the first reached another director, and
    whether that director held an entry for it (a synced one) when the operation began."""
    rises: list[tuple[float, str]] = []  # (sample time, netns) where the counter grew
    for ns, samples in counts.items():
        for a, b in itertools.pairwise(samples):
            if b.packets.get(address, 0) > a.packets.get(address, 0):
                rises.append((b.at, ns))
    rises.sort()
    before = [ns for at, ns in rises if at < run.started]
    during = [(at, ns) for at, ns in rises if run.started <= at <= window_end]
    old = before[-1] if before else None
    new = during[-1][1] if during else None
    first_new = next((at for at, ns in during if old is not None and ns != old), None)
    entry = None
    if new is not None and new != old:
        table = next((t for at, t in reversed(tables[new]) if at < run.started), {})
        by_lan = {f"{g['lan']}:{SERVICE_PORT}": g["name"] for g in guest.topology["gateways"]}
        dest = next((d for c, d in table.items() if c.startswith(address + ":")), None)
        entry = by_lan.get(dest, dest) if dest else None
    return {
        "lb_from": guest.lb_names[old] if old else None,
        "lb_to": guest.lb_names[new] if new else None,
        "first_via_new_lb": round(first_new - run.started, 3) if first_new else None,
        # The new director's entry for the client when the operation began (None: none).
        "entry_on_new_lb": entry,
    }


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


def measure(guest: Guest, argv: Sequence[str]) -> OpRun:
    offset = guest.offset()
    start_probes(guest)
    time.sleep(LEAD_IN)
    full = ["-i", str(guest.inventory), "--timeout", str(HOST_TIMEOUT), *argv, "--yes"]
    full += ["--audit-log", str(guest.lab / "audit.jsonl")]
    run = run_cli(full, offset)
    run.op = argv[0]
    planned = next((m for _, line in run.output if (m := PLANNED.search(line))), None)
    run.planned = int(planned.group(1)) if planned else None
    time.sleep(SETTLE)
    stopped = time.time() + offset
    logs = stop_probes(guest)
    # The raw logs, for a second look (they go with the lab directory).
    raw = guest.lab / "runs"
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


def unmeasured(guest: Guest, argv: Sequence[str]) -> int:
    """An operation the next measured one needs (a drain before an undrain); its exit."""
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "wgconsole",
            "-i",
            str(guest.inventory),
            "--timeout",
            str(HOST_TIMEOUT),
            *argv,
            "--yes",
            "--audit-log",
            str(guest.lab / "audit.jsonl"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=1800,
    )
    if res.returncode != 0:
        log(f"unmeasured `{' '.join(argv)}` exited {res.returncode}: {res.stdout[-1500:]}")
    return res.returncode


def one_run(guest: Guest, ops: Sequence[str], *, rebalance: bool) -> list[OpRun]:
    runs: list[OpRun] = []
    if {"drain", "undrain", "rebalance"} & set(ops):
        reset(guest)
        drain = ["drain", GW1]
        if "drain" in ops:
            runs.append(measure(guest, drain))
        else:
            unmeasured(guest, drain)
        undrain = ["undrain", GW1, "--no-rebalance"]
        if "undrain" in ops:
            runs.append(measure(guest, undrain))
        elif "rebalance" in ops:
            unmeasured(guest, undrain)
        if rebalance and "rebalance" in ops:
            runs.append(measure(guest, ["rebalance"]))
    if "weight" in ops:
        reset(guest)
        runs.append(measure(guest, ["weight", GW2, "2"]))
    for op in UNPLANNED:
        if op in ops:
            runs.append(unplanned_run(guest, op))
    return runs


def prepare_guard(guest: Guest) -> None:
    """Once per lab, for the unplanned cases: the prober's peer on every gateway (`probe
    setup`, which writes it into each gateway's wg0.conf: the resets keep it), the bastion
    namespace and the inventory as the guest reads it."""
    key = guest.lab / "probe-bench.key"
    if not key.exists():
        argv = ["probe", "setup", "--name", PROBER, "--key", str(key)]
        if unmeasured(guest, argv) != 0:
            raise RuntimeError("`wgconsole probe setup` failed on the bench lab")
    guest_guard.add_bastion(guest.sh)
    guest.guard_inventory = guest_guard.guest_inventory(guest.lab, guest.topology)


def unplanned_run(guest: Guest, op: str) -> OpRun:
    """gateway-01 fails (`UNPLANNED[op]`) while every client pings and a guard runs; measured
    from the failure to UNPLANNED_SETTLE after the guard's eviction. The gateway is brought
    back and undrained (unmeasured) afterwards."""
    reset(guest)
    gw1 = guest.topology["gateways"][0]["netns"]
    assert guest.guard_inventory is not None
    guard = guest_guard.GuestGuard(
        guest.sh, guest.lab, guest.guard_inventory, guest.lab / "probe-bench.key", ROOT
    )
    try:
        start_probes(guest)
        time.sleep(LEAD_IN)
        run = OpRun(op, ["guard", f"({op} on {GW1})"])
        run.started = float(guest.sh(f"date +%s.%N; {UNPLANNED[op].format(ns=gw1)}").split()[0])
        run.ended, _ = guard.wait_for(f"evict of {GW1} ", timeout=180, what="the eviction")
        run.detected = next(at for at, line in guard.lines() if f"evicting {GW1}" in line)
        run.output = [(at, line) for at, line in guard.lines() if at >= run.started]
        time.sleep(UNPLANNED_SETTLE)
        stopped = float(guest.sh("date +%s.%N"))
        logs = stop_probes(guest)
        run.exit = 0
    finally:
        guard.stop()
        guest.sh(guest_guard.restore_gateway_links(gw1))
    analyse(guest, run, logs, stopped)
    unmeasured(guest, ["undrain", GW1, "--no-rebalance"])
    return run


def failover_run(guest: Guest) -> OpRun:
    """One measured failover on the pair, from the known state; the VIP back afterwards."""
    restore_pair(guest)
    reset(guest)
    run = measure(guest, ["failover"])
    master = directors(guest)[0]["name"]
    if unmeasured(guest, ["failover", "--to", master]) == 0:
        log(f"  the VIP back on {master}; pair settled after {wait_pair_settled(guest):.0f} s")
    else:
        restore_pair(guest)
    return run


def summarise(runs: list[OpRun]) -> dict[str, Any]:
    """Per operation and client: medians with min and max of each figure."""
    out: dict[str, Any] = {}
    for op in dict.fromkeys(r.op for r in runs):
        mine = [r for r in runs if r.op == op]
        entry: dict[str, Any] = {
            "runs": len(mine),
            "exit_codes": [r.exit for r in mine],
            "wall_s": _stats([r.seconds for r in mine]),
            "detection_s": _stats(
                [None if r.detected is None else r.detected - r.started for r in mine]
            ),
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
            if "lb_from" in rows[0]:
                paths = [f"{x['lb_from']} -> {x['lb_to']}" for x in rows]
                entry["clients"][ns] |= {
                    "lbs": {p: paths.count(p) for p in dict.fromkeys(paths)},
                    "first_via_new_lb_s": _stats([x["first_via_new_lb"] for x in rows]),
                    "entry_on_new_lb": sum(1 for x in rows if x["entry_on_new_lb"]),
                }
        if any(r.vip for r in mine):
            entry["vip_alone_on_new_s"] = _stats([r.vip.get("alone_on_new_s") for r in mine])
            entry["count_sample_interval_s"] = _stats(
                [r.vip.get("sample_interval_s") for r in mine]
            )
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
                    mine = (f"{LAB}/", f"{PAIR_LAB}/")
                    if cmd.startswith(b"qemu-system") and not any(d.encode() in cmd for d in mine):
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
        if entry.get("detection_s"):
            print(
                f"\n{op}: {entry['runs']} runs; the guard began to evict "
                f"{_fmt(entry['detection_s'], ' s')} and had evicted "
                f"{_fmt(entry['wall_s'], ' s')} after the failure"
            )
        else:
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
        if any("lbs" in c for c in entry["clients"].values()):
            print(
                f"  VIP on the new director alone {_fmt(entry.get('vip_alone_on_new_s'), ' s')} "
                "after the start (the directors' counters sampled every "
                f"{_fmt(entry.get('count_sample_interval_s'), ' s')})"
            )
            print(
                f"  {'client':<7} {'LB carrying its packets (runs)':<40} "
                f"{'synced entry':>12} {'first via new LB (s)':>22}"
            )
            for ns, c in entry["clients"].items():
                lbs = ", ".join(f"{p} ({n})" for p, n in c.get("lbs", {}).items())
                print(
                    f"  {ns:<7} {lbs:<40} {c.get('entry_on_new_lb', 0):>9}/{entry['runs']:<2} "
                    f"{_fmt(c.get('first_via_new_lb_s')):>22}"
                )
        if entry["breakdown"]:
            print("  drain, each moved client (s after the drain began; medians (min-max)):")
            keys = next(iter(entry["breakdown"].values())).keys()
            for k in keys:
                cells = "  ".join(f"{ns}: {_fmt(b[k])}" for ns, b in entry["breakdown"].items())
                print(f"    {k:<16} {cells}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine(), "runs": [], "skipped": []}
    ops = [o for o in args.ops.split(",") if o]
    all_runs: list[OpRun] = []
    # One emulated guest at a time: the single-LB lab is down before the pair boots.
    if any(op in SINGLE_LB_OPS for op in ops):
        with bench_lab(args, LAB, BASE_PORT, lbs=1) as guest:
            prepare(guest)
            if any(op in UNPLANNED for op in ops):
                prepare_guard(guest)
            rebalance_skip = have_rebalance() if "rebalance" in ops else None
            if rebalance_skip:
                results["skipped"].append(f"rebalance: {rebalance_skip}")
                log(f"skipped: rebalance: {rebalance_skip}")
            deadline = time.monotonic() + BUDGET_S
            for i in range(args.runs):
                if time.monotonic() > deadline:
                    results["skipped"].append(f"runs {i + 1}..{args.runs}: over the time budget")
                    break
                log(f"run {i + 1}/{args.runs}")
                _record(results, all_runs, one_run(guest, ops, rebalance=rebalance_skip is None))
    if "failover" in ops:
        with bench_lab(args, PAIR_LAB, PAIR_BASE_PORT, lbs=2) as guest:
            prepare(guest)
            deadline = time.monotonic() + PAIR_BUDGET_S
            for i in range(args.runs):
                if time.monotonic() > deadline:
                    results["skipped"].append(
                        f"failover runs {i + 1}..{args.runs}: over the time budget"
                    )
                    break
                log(f"failover run {i + 1}/{args.runs}")
                _record(results, all_runs, [failover_run(guest)])
    results["summary"] = summarise(all_runs)
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def _record(results: dict[str, Any], all_runs: list[OpRun], runs: list[OpRun]) -> None:
    for r in runs:
        log(
            f"  {r.op}: exit {r.exit}, {r.seconds:.1f} s; "
            + ", ".join(
                f"{ns} lost {c['lost']} gap {c['longest_gap']}" for ns, c in r.clients.items()
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
                **({"detected_s": round(r.detected - r.started, 3)} if r.detected else {}),
                "clients": r.clients,
                "breakdown": r.breakdown,
                **({"vip": r.vip} if r.vip else {}),
                "output": [f"{t - r.started:7.3f} {line}" for t, line in r.output],
            }
        )


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_ops", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--reuse", action="store_true", help="use a running bench lab (or pair) if there is one"
    )
    p.add_argument("--keep", action="store_true", help="leave the bench labs running")
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
