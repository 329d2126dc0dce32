"""Scale benchmark (issue 6): a fleet of thousands of clients must stay instant.

Boots its own lab (3 gateways, in /var/lib/wgconsole-lab-bench, 127.0.0.1:2520-2524), grows
it to 10,000 peers on every gateway (the same peers everywhere: one identical wg0) and an LB
connection table of 50,000 entries, adds 20 ms of netem delay on every lab host's management
link (the one SSH uses), and then measures, side by side in one run:

- one full poll of the fleet (`FleetCollector.poll()`, connections reused after a warm-up);
- the raw commands alone over the same connections (`cat /proc/net/ip_vs_conn` on the LB,
  `wg show all dump` on each gateway), every host at once as the poll does, and one at a time;
- bytes per poll (payload, and on the wire with and without SSH compression) against the
  raw commands' output;
- parse+model time of the captured poll on this machine;
- UI refresh time (from benchmarks/bench_console.py, when it exists);
- peak memory (VmHWM) of the console itself: a fresh process runs the real console headless
  on the lab over SSH for a few polls, showing every view in turn (and, for comparison, of a
  process that only polls and builds the fleet).

It prints a table with the targets and writes benchmarks/results/scale.json. Nothing here is
a test: figures depend on the machine, and the lab's hosts are emulated (QEMU TCG).

    .venv/bin/python -m benchmarks.bench_scale [--reuse] [--keep] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import inspect
import json
import os
import platform
import resource
import shlex
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.fleet import Fleet
from wgconsole.core.fleet_builder import FleetBuilder
from wgconsole.core.inventory import Host, Inventory, SshSettings
from wgconsole.core.records import GatewayObservation, HostStatus, LbObservation
from wgconsole.core.whereis import proposed_table
from wgconsole.lab import manager
from wgconsole.lab.topology import SERVICE_PORT, VIP
from wgconsole.poll.collector import (
    FleetCollector,
    ParseMemos,
    PollResult,
    parse_gateway_output,
    parse_lb_output,
)
from wgconsole.poll.transport.base import CommandResult, Transport
from wgconsole.poll.transport.ssh import SshTransport

ROOT = Path(__file__).resolve().parents[1]
LAB = Path(os.environ.get("WGCONSOLE_BENCH_LAB_DIR", "/var/lib/wgconsole-lab-bench"))
BASE_PORT = int(os.environ.get("WGCONSOLE_BENCH_LAB_PORT", "2520"))
RESULTS = ROOT / "benchmarks" / "results" / "scale.json"

GATEWAYS = 3
PEERS = 10_000  # per gateway, the same on all (bounded: at most 10,000)
ENTRIES = 50_000  # LB connection entries (bounded: at most 50,000 datagrams per fill)
DELAY_MS = 20
# The synthetic peers' tunnel addresses and the LB entries' source addresses: ranges of
# their own, apart from the lab's (10.77.x underlay, 10.78.x management, 10.255.0.0/24).
PEER_BASE = 10 << 24 | 200 << 16  # 10.200.0.0/16
SOURCE_BASE = 10 << 24 | 100 << 16  # 10.100.0.0/16
# Entries normally live 300 s after their last packet; the bench keeps them an hour so that
# every phase sees the whole table without re-sending, and puts 300 s back at the end.
UDP_TIMEOUT_BENCH = 3600
UDP_TIMEOUT_DEFAULT = 300
COLD_ROUNDS = 3  # parse+model rounds as a first poll (no parser cache)

TARGETS = {
    "poll_ratio": 1.5,  # full poll / slowest host's raw commands
    "parse_model_ms": 250.0,
    "ui_refresh_ms": 100.0,
    "peak_rss_mb": 400.0,
    "bytes_ratio": 1.0,  # bytes per poll / raw output bytes
}


# --- the bench lab ----------------------------------------------------------------------


class Guest:
    """Commands in the lab guest's root namespace, over the lab's control sshd."""

    def __init__(self, lab: Path, control_port: int) -> None:
        self.transport = SshTransport(
            Host(
                "bench-control",
                "127.0.0.1",
                SshSettings(
                    port=control_port,
                    identity_file=str(lab / "id_ed25519"),
                    known_hosts=str(lab / "known_hosts"),
                ),
            )
        )

    def sh(self, command: str, timeout: float = 300.0) -> str:
        result = self.transport.run(command, timeout=timeout)
        if result.status != 0:
            raise RuntimeError(
                f"lab command failed ({result.status}): {command}\n{result.stdout}{result.stderr}"
            )
        return result.stdout

    def ns(self, netns: str, command: str, timeout: float = 300.0) -> str:
        return self.sh(f"ip netns exec {shlex.quote(netns)} {command}", timeout)

    def close(self) -> None:
        self.transport.close()


def start_lab(*, reuse: bool) -> bool:
    """Boot the bench lab (True), or reuse the running one when asked (False)."""
    if reuse and manager.qemu_pid(LAB) is not None and (LAB / "ready").exists():
        log(f"reusing the running bench lab in {LAB}")
        return False
    manager.lab_down(LAB)  # only ever this bench's own directory
    log(f"booting the bench lab in {LAB} (ports 127.0.0.1:{BASE_PORT}-{BASE_PORT + GATEWAYS + 1})")
    started = time.monotonic()
    manager.lab_up(gateways=GATEWAYS, clients=2, base_port=BASE_PORT, lab=LAB)
    log(f"lab ready in {time.monotonic() - started:.0f} s")
    return True


def _address(number: int) -> str:
    return socket.inet_ntoa(struct.pack("!I", number))


def write_peers_file(path: Path, count: int) -> None:
    """`wg addconf` input: [Peer] blocks with random 32-byte public keys and unique /32s."""
    blocks = []
    for i in range(count):
        key = base64.b64encode(os.urandom(32)).decode()
        blocks.append(f"[Peer]\nPublicKey = {key}\nAllowedIPs = {_address(PEER_BASE + i)}/32\n")
    path.write_text("\n".join(blocks))


def grow_peers(guest: Guest, gateways: Sequence[str], count: int) -> dict[str, Any]:
    """The same `count` extra peers on every gateway, in one `wg addconf` per gateway."""
    peers_file = LAB / "bench-peers.conf"
    have = {ns: _peer_count(guest, ns) for ns in gateways}
    # The lab's own clients are 2 peers; a reused lab that already has the extra peers keeps them.
    if peers_file.exists() and all(n >= count + 2 for n in have.values()):
        log(f"peers already there: {have}")
        return {"seconds": 0.0, "peers": have}
    write_peers_file(peers_file, count)
    started = time.monotonic()
    adds = " & ".join(
        f"ip netns exec {ns} wg addconf wg0 {shlex.quote(str(peers_file))}" for ns in gateways
    )
    guest.sh(f"{adds} & wait", timeout=900)
    seconds = time.monotonic() - started
    have = {ns: _peer_count(guest, ns) for ns in gateways}
    log(f"added {count} peers to {', '.join(gateways)} in {seconds:.1f} s: {have}")
    return {"seconds": round(seconds, 1), "peers": have}


def _peer_count(guest: Guest, netns: str) -> int:
    return int(guest.ns(netns, "wg show wg0 peers | wc -l").strip() or 0)


def lb_entries(guest: Guest) -> int:
    # Opened by wc itself, inside the namespace (a shell redirection would open the root
    # namespace's table).
    return int(guest.ns("lb", "wc -l /proc/net/ip_vs_conn").split()[0]) - 1


def fill_lb(guest: Guest, client_ns: str, count: int) -> dict[str, Any]:
    """One UDP datagram to the VIP from each of `count` source addresses, sent from a client
    namespace (routed to the LB) with the project's raw-socket sender; bounded and self-ending."""
    guest.ns("lb", f"ipvsadm --set 0 0 {UDP_TIMEOUT_BENCH}")
    before = lb_entries(guest)
    if before >= count:
        log(f"LB table already has {before} entries")
        return {"seconds": 0.0, "entries": before}
    sources = LAB / "bench-sources.txt"
    sources.write_text("".join(f"{_address(SOURCE_BASE + i)}\n" for i in range(count)))
    started = time.monotonic()
    sender = (
        f"cd {shlex.quote(str(ROOT))} && ip netns exec {client_ns} "
        f"{shlex.quote(sys.executable)} -m wgconsole.lab.sendfrom {VIP} {SERVICE_PORT} "
        f"--interval 0 < {shlex.quote(str(sources))}"
    )
    sent = guest.sh(sender, timeout=900).strip()
    seconds = time.monotonic() - started
    entries = lb_entries(guest)
    log(f"sent {sent} datagrams in {seconds:.1f} s: {entries} LB entries")
    return {"seconds": round(seconds, 1), "datagrams": int(sent or 0), "entries": entries}


def set_delay(guest: Guest, namespaces: Sequence[str], ms: int | None) -> None:
    for ns in namespaces:
        if ms:
            guest.ns(ns, f"tc qdisc replace dev mgmt root netem delay {ms}ms")
        else:
            guest.ns(ns, "tc qdisc del dev mgmt root 2>/dev/null || true")


# --- measuring over SSH ----------------------------------------------------------------


class Recording:
    """A transport that keeps the last output it returned (to capture a poll for replay)."""

    def __init__(self, inner: SshTransport) -> None:
        self.inner = inner
        self.name = inner.name
        self.last: CommandResult | None = None

    def run(self, command: str, timeout: float, *, mutating: bool = False) -> CommandResult:
        self.last = self.inner.run(command, timeout, mutating=mutating)
        return self.last

    def close(self) -> None:
        self.inner.close()


def tcp_bytes_received(transport: SshTransport) -> int:
    """Bytes this SSH connection has received so far, from the kernel (tcpi_bytes_received):
    what crossed the wire, after SSH compression and encryption."""
    client = transport._client
    ssh = client.get_transport() if client is not None else None
    if ssh is None:
        return 0
    sock = ssh.sock
    if not isinstance(sock, socket.socket):
        return 0
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    if len(info) < 136:
        return 0
    received: int = struct.unpack_from("Q", info, 128)[0]
    return received


@dataclass
class Series:
    """Seconds and bytes of repeated runs."""

    seconds: list[float] = field(default_factory=list)
    payload: list[int] = field(default_factory=list)
    wire: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "median_s": round(statistics.median(self.seconds), 3),
            "min_s": round(min(self.seconds), 3),
            "max_s": round(max(self.seconds), 3),
            "runs": len(self.seconds),
        }
        if self.payload:
            out["payload_bytes"] = int(statistics.median(self.payload))
        if self.wire:
            out["wire_bytes"] = int(statistics.median(self.wire))
        return out


class Measurer:
    """A collector over the bench lab's inventory, and the raw commands on its connections."""

    def __init__(self, inventory: Inventory, *, compress: bool) -> None:
        self.inventory = inventory
        self.compress = compress
        self.recorders: dict[str, Recording] = {}

        def factory(host: Host) -> Transport:
            recorder = Recording(SshTransport(host, compress=compress))
            self.recorders[host.name] = recorder
            return recorder

        self.collector = FleetCollector(inventory, compress=compress, transport_factory=factory)
        self.poll_series = Series()
        self.host_series: dict[str, Series] = {h.name: Series() for h in inventory.hosts}
        self.raw_parallel: dict[str, Series] = {h.name: Series() for h in inventory.hosts}
        self.raw_parallel_wall = Series()
        self.raw_alone: dict[str, Series] = {h.name: Series() for h in inventory.hosts}
        self.role_alone: dict[str, Series] = {"lb": Series(), "gateway": Series()}
        self.last_poll: PollResult | None = None
        self.conns_seen: list[int] = []
        self._pool = ThreadPoolExecutor(max_workers=len(inventory.hosts))

    def raw_command(self, name: str) -> str:
        if any(lb.name == name for lb in self.inventory.load_balancers):
            return "cat /proc/net/ip_vs_conn"
        return "wg show all dump"

    def wire(self) -> dict[str, int]:
        return {name: tcp_bytes_received(r.inner) for name, r in self.recorders.items()}

    def poll(self, *, record: bool) -> PollResult:
        wire_before = self.wire()
        result = self.collector.poll()
        wire_after = self.wire()
        failed = [f"{h.name}: {h.error}" for h in result.hosts if h.error]
        if failed:
            raise RuntimeError("poll failed: " + "; ".join(failed))
        for hp in result.hosts:
            if isinstance(hp.observation, LbObservation):
                self.conns_seen.append(len(hp.observation.conns))
        if record:
            self.poll_series.seconds.append(result.seconds)
            self.poll_series.payload.append(result.bytes_received)
            self.poll_series.wire.append(sum(wire_after[n] - wire_before[n] for n in wire_after))
            for hp in result.hosts:
                series = self.host_series[hp.name]
                series.seconds.append(hp.seconds)
                series.payload.append(hp.bytes_received)
                series.wire.append(wire_after[hp.name] - wire_before[hp.name])
        self.last_poll = result
        return result

    def _raw_one(self, name: str) -> tuple[float, int, int]:
        recorder = self.recorders[name]
        before = tcp_bytes_received(recorder.inner)
        started = time.monotonic()
        result = recorder.inner.run(self.raw_command(name), timeout=120)
        seconds = time.monotonic() - started
        if result.status != 0:
            raise RuntimeError(f"{name}: raw command failed: {result.stdout}{result.stderr}")
        return seconds, result.bytes_received, tcp_bytes_received(recorder.inner) - before

    def raw_round(self) -> None:
        """Every host's raw command at once (as the poll runs them), then each one alone."""
        started = time.monotonic()
        futures = {name: self._pool.submit(self._raw_one, name) for name in self.recorders}
        for name, future in futures.items():
            seconds, payload, wire = future.result()
            series = self.raw_parallel[name]
            series.seconds.append(seconds)
            series.payload.append(payload)
            series.wire.append(wire)
        self.raw_parallel_wall.seconds.append(time.monotonic() - started)
        for name in self.recorders:
            seconds, payload, wire = self._raw_one(name)
            series = self.raw_alone[name]
            series.seconds.append(seconds)
            series.payload.append(payload)
            series.wire.append(wire)

    def role_round(self) -> None:
        """The load balancers alone, then the gateways alone: the poll's own cost per host,
        without the other hosts sharing the lab's two emulated CPUs."""
        for role, series in self.role_alone.items():
            result = self.collector.poll(roles=(role,))
            failed = [f"{h.name}: {h.error}" for h in result.hosts if h.error]
            if failed:
                raise RuntimeError("poll failed: " + "; ".join(failed))
            series.seconds.append(result.seconds)
            series.payload.append(result.bytes_received)

    def connects(self) -> dict[str, int]:
        return {name: r.inner.connects for name, r in self.recorders.items()}

    def capture(self, directory: Path) -> None:
        """The last poll's outputs as a replay capture (see wgconsole.poll.replay)."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "inventory.yaml").write_text(Path(self.inventory.path).read_text())
        for name, recorder in self.recorders.items():
            assert recorder.last is not None
            (directory / f"{name}.txt").write_text(recorder.last.stdout)
        taken_at = self.last_poll.taken_at if self.last_poll else time.time()
        (directory / "meta.json").write_text(json.dumps({"taken_at": taken_at}) + "\n")

    def close(self) -> None:
        self.collector.close()
        self._pool.shutdown()


def measure_ssh(inventory: Inventory, *, compress: bool, rounds: int, capture: Path | None) -> Any:
    label = "compressed" if compress else "uncompressed"
    m = Measurer(inventory, compress=compress)
    try:
        warm = time.monotonic()
        m.poll(record=False)  # connects once; every later poll reuses the connections
        log(f"[{label}] warm-up poll (with connecting) {time.monotonic() - warm:.1f} s")
        for i in range(rounds):
            result = m.poll(record=True)
            m.raw_round()
            m.role_round()
            log(
                f"[{label}] round {i + 1}/{rounds}: poll {result.seconds:.2f} s, raw "
                + ", ".join(f"{n} {s.seconds[-1]:.2f}" for n, s in m.raw_parallel.items())
            )
        if capture is not None:
            m.capture(capture)
        connects = m.connects()
        return {
            "compress": compress,
            "poll": m.poll_series.summary(),
            "poll_per_host": {n: s.summary() for n, s in m.host_series.items()},
            "raw_parallel": {n: s.summary() for n, s in m.raw_parallel.items()},
            "raw_parallel_wall": m.raw_parallel_wall.summary(),
            "raw_alone": {n: s.summary() for n, s in m.raw_alone.items()},
            "poll_role_alone": {r: s.summary() for r, s in m.role_alone.items()},
            "connects": connects,
            "lb_entries_seen": sorted(set(m.conns_seen)),
        }
    finally:
        m.close()


def round_trip(inventory: Inventory) -> float:
    """Median time of `true` on the LB over one reused connection: the link's own latency."""
    transport = SshTransport(inventory.load_balancers[0])
    try:
        transport.run("true", timeout=60)
        times = []
        for _ in range(5):
            started = time.monotonic()
            transport.run("true", timeout=60)
            times.append(time.monotonic() - started)
        return statistics.median(times)
    finally:
        transport.close()


# --- on this machine: parse+model, UI, memory -------------------------------------------


def _parse_capture(
    inventory: Inventory, texts: dict[str, str], memos: ParseMemos
) -> tuple[dict[str, LbObservation | None], dict[str, GatewayObservation | None]]:
    lbs: dict[str, LbObservation | None] = {
        lb.name: parse_lb_output(lb.name, texts[lb.name], memos=memos)
        for lb in inventory.load_balancers
    }
    gws: dict[str, GatewayObservation | None] = {
        gw.name: parse_gateway_output(gw.name, gw.interface, texts[gw.name], memos)
        for gw in inventory.gateways
    }
    return lbs, gws


def measure_parse_model(capture: Path, rounds: int) -> dict[str, Any]:
    """Parse every host's captured output and build the fleet, as the console does per poll.

    The previous fleet stays alive while the next is built (the console shows one while it
    builds the next), and the cyclic GC is left as the console has it.
    """
    inventory = load_inventory(capture / "inventory.yaml")
    texts = {h.name: (capture / f"{h.name}.txt").read_text() for h in inventory.hosts}
    taken_at = json.loads((capture / "meta.json").read_text())["taken_at"]
    statuses = tuple(
        HostStatus(h.name, "lb" if i < len(inventory.load_balancers) else "gateway", reachable=True)
        for i, h in enumerate(inventory.hosts)
    )
    parse_s: list[float] = []
    model_s: list[float] = []
    total_s: list[float] = []
    cpu_s: list[float] = []
    cold_s: list[float] = []
    cold_cpu_s: list[float] = []
    # The variable keeps the last fleet alive until the next one is built, as on screen.
    fleet: Fleet | None = None
    # What a collector remembers from one poll to the next.
    memos, builder = ParseMemos(), FleetBuilder()
    for round_number in range(rounds + 1 + COLD_ROUNDS):
        cold = round_number > rounds
        if cold:
            # A first poll: nothing remembered from a previous one.
            memos, builder = ParseMemos(), FleetBuilder()
        cpu = time.process_time()
        started = time.perf_counter()
        lbs, gws = _parse_capture(inventory, texts, memos)
        parsed = time.perf_counter()
        fleet = builder.build(inventory, lbs, gws, statuses, taken_at)
        built = time.perf_counter()
        if cold:
            cold_s.append(built - started)
            cold_cpu_s.append(time.process_time() - cpu)
            continue
        cpu_s.append(time.process_time() - cpu)
        parse_s.append(parsed - started)
        model_s.append(built - parsed)
        total_s.append(built - started)
    assert fleet is not None
    # The sh model (whereis, what-if, drain previews) picking a gateway for every source in
    # the LB table, with the first gateway at weight 0.
    assert fleet.service is not None
    drained = proposed_table(inventory, fleet.service.raw, weights={inventory.gateways[0].name: 0})
    sources = [(c.client.address, c.client.port) for c in fleet.conns]
    picks_s = []
    for _ in range(5):
        started = time.perf_counter()
        for address, port in sources:
            drained.pick(address, port)
        picks_s.append(time.perf_counter() - started)
    # The first round warms caches and imports (findings is imported lazily): not counted.
    # The others are the console's every poll after the first (same output, as when the
    # peers are idle); the cold rounds are a first poll.
    return {
        "cold_total_ms": round(statistics.median(cold_s) * 1000, 1),
        "cold_cpu_ms": round(statistics.median(cold_cpu_s) * 1000, 1),
        "parse_ms": round(statistics.median(parse_s[1:]) * 1000, 1),
        "model_ms": round(statistics.median(model_s[1:]) * 1000, 1),
        "total_ms": round(statistics.median(total_s[1:]) * 1000, 1),
        "max_total_ms": round(max(total_s[1:]) * 1000, 1),
        "min_total_ms": round(min(total_s[1:]) * 1000, 1),
        # CPU time of this process: what the wall time would be without other processes
        # (the lab's QEMU, other labs) competing for this machine's cores.
        "cpu_ms": round(statistics.median(cpu_s[1:]) * 1000, 1),
        "rounds": rounds,
        "sh_picks": len(sources),
        "sh_picks_ms": round(statistics.median(picks_s) * 1000, 1),
        "clients": len(fleet.clients),
        "conns": len(fleet.conns),
        "findings": len(fleet.findings),
        "gc_enabled": gc.isenabled(),
    }


# Runs benchmarks/bench_console.py's own measurement (the Textual console, headless, fed
# snapshots built by the real model) at this benchmark's size, in a fresh process.
_UI_SCRIPT = """
import asyncio, json, statistics, sys
from benchmarks import bench_console as b
clients, refreshes = int(sys.argv[1]), int(sys.argv[2])
if hasattr(b, "CLIENTS"):
    b.CLIENTS = clients
r = asyncio.run(b.bench(refreshes, (160, 50)))
views = {}
for key, values in r.items():
    if key.endswith("_idle") and isinstance(values, list) and values:
        views[key[: -len("_idle")]] = {
            "idle_median_ms": round(statistics.median(values) * 1000, 1),
            "idle_max_ms": round(max(values) * 1000, 1),
            "handler_median_ms": round(statistics.median(r[key[:-5] + "_handler"]) * 1000, 1),
        }
print(json.dumps({"clients": getattr(b, "CLIENTS", None), "views": views,
                  "peak_rss_mb": r.get("peak_rss_mb")}))
"""


def measure_ui(clients: int, refreshes: int) -> dict[str, Any]:
    """The console's refresh time, from benchmarks/bench_console.py when it exists.

    That benchmark (the console team's) times one refresh on the UI thread: the snapshot
    handler, then layout and painting until the app is idle. It is run here with as many
    clients as this benchmark's gateways carry; the figure is the slowest view's median.
    """
    if refreshes <= 0:
        return {"measured": False, "why": "skipped (--ui-refreshes 0)"}
    path = ROOT / "benchmarks" / "bench_console.py"
    if not path.exists():
        return {"measured": False, "why": "benchmarks/bench_console.py does not exist"}
    command = [sys.executable, "-c", _UI_SCRIPT, str(clients), str(refreshes)]
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=1200, check=False
        )
    except subprocess.TimeoutExpired:
        return {"measured": False, "why": "bench_console did not finish in 1200 s"}
    figures = _last_json_object(done.stdout)
    if done.returncode != 0 or figures is None or not figures.get("views"):
        tail = (done.stderr or done.stdout).strip().splitlines()[-2:]
        return {
            "measured": False,
            "why": f"bench_console did not give figures ({done.returncode}): {' | '.join(tail)}",
        }
    views = figures["views"]
    worst = max(views, key=lambda v: views[v]["idle_median_ms"])
    return {
        "measured": True,
        "refresh_ms": views[worst]["idle_median_ms"],
        "slowest_view": worst,
        "fleet": f"bench_console's synthesized fleet, {figures.get('clients')} clients x 3 "
        "gateways, 50,000 LB entries",
        "figures": figures,
    }


def _last_json_object(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                return value
    return None


def _vm_hwm_mb() -> float:
    """Peak resident memory of this process's own address space (VmHWM).

    Not ru_maxrss: on Linux that carries over exec from the forked parent (here the
    benchmark itself), so a fresh child would report at least the parent's size.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(inventory_path: str, polls: int) -> None:
    """Runs in a fresh process: poll over SSH and build the fleet `polls` times, keeping the
    previous fleet alive as the console does, then print the peak memory as JSON."""
    started = _vm_hwm_mb()
    inventory = load_inventory(inventory_path)
    collector = FleetCollector(inventory)
    shown: Fleet | None = None
    try:
        for _ in range(polls):
            poll = collector.poll()
            fleet = collector.fleet(poll)
            shown = fleet
        assert shown is not None
        print(
            json.dumps(
                {
                    "peak_rss_mb": round(_vm_hwm_mb(), 1),
                    "after_imports_mb": round(started, 1),
                    "polls": polls,
                    "compress": collector_compress(collector),
                    "clients": len(shown.clients),
                    "conns": len(shown.conns),
                }
            )
        )
    finally:
        collector.close()


# The console's views, visited in turn between polls so that each is built at full size.
_CONSOLE_KEYS = ("2", "3", "1", "4")
_CONSOLE_POLL_WAIT_S = 180.0


async def _console_run(inventory_path: str, polls: int) -> dict[str, Any]:
    # Imported here: the poll+model child must not pay for Textual in its own figure.
    from wgconsole.tui.app import ConsoleApp

    started = _vm_hwm_mb()
    inventory = load_inventory(inventory_path)
    app = ConsoleApp(inventory, FleetCollector(inventory), interval=2.0, read_only=True)
    handler_s: list[float] = []
    painted_s: list[float] = []
    apply = app.apply_snapshot

    def timed(snapshot: Any) -> None:
        begun = time.perf_counter()
        apply(snapshot)
        handler_s.append(time.perf_counter() - begun)
        # Until the screen has been painted with it: the live refresh as the operator sees it.
        app.call_after_refresh(lambda: painted_s.append(time.perf_counter() - begun))

    app.apply_snapshot = timed  # type: ignore[method-assign]
    async with app.run_test(size=(160, 50)) as pilot:
        for number in range(polls):
            deadline = time.monotonic() + _CONSOLE_POLL_WAIT_S
            while app.applied <= number:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no snapshot {number + 1} within {_CONSOLE_POLL_WAIT_S} s")
                await pilot.pause(0.1)
            await pilot.press(_CONSOLE_KEYS[number % len(_CONSOLE_KEYS)])
            await pilot.pause()
        snapshot = app.snapshot
        clients = len(snapshot.fleet.clients) if snapshot is not None else 0
        conns = len(snapshot.fleet.conns) if snapshot is not None else 0
        await pilot.press("q")
    return {
        "peak_rss_mb": round(_vm_hwm_mb(), 1),
        "after_imports_mb": round(started, 1),
        "polls": polls,
        "handler_median_ms": round(statistics.median(handler_s) * 1000, 1),
        "handler_max_ms": round(max(handler_s) * 1000, 1),
        "painted_median_ms": round(statistics.median(painted_s) * 1000, 1),
        "painted_max_ms": round(max(painted_s) * 1000, 1),
        "clients": clients,
        "conns": conns,
    }


def console_child(inventory_path: str, polls: int) -> None:
    """Runs in a fresh process: the real console (headless, 160x50) on the lab over SSH for
    `polls` snapshots, every view shown in turn; prints its peak memory as JSON."""
    print(json.dumps(asyncio.run(_console_run(inventory_path, polls))))


def measure_console(inventory_path: Path, polls: int) -> dict[str, Any]:
    return _child("--console-child", inventory_path, polls, timeout=1800)


def _child(option: str, inventory_path: Path, polls: int, timeout: float) -> dict[str, Any]:
    """Runs this module as a fresh process with `option` (its own peak memory), its JSON."""
    command = [sys.executable, "-m", "benchmarks.bench_scale", option]
    command += [str(inventory_path), "--rounds", str(polls)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    figures = _last_json_object(done.stdout)
    if done.returncode != 0 or figures is None:
        raise RuntimeError(f"{option} failed: {done.stderr.strip()[-2000:]}")
    return figures


def collector_compress(collector: FleetCollector) -> bool | None:
    transport = next(iter(collector.transports.values()), None)
    return transport.compress if isinstance(transport, SshTransport) else None


def measure_memory(inventory_path: Path, polls: int) -> dict[str, Any]:
    return _child("--memory-child", inventory_path, polls, timeout=900)


# --- report -----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
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
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "host_kernel": platform.release(),
        "lab": "Debian linux-image-amd64 under QEMU TCG (software emulation), 2 vCPUs",
        "other_qemu_labs_running": others,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def verdicts(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(what, measured, target, PASS/MISS) rows."""
    rows: list[tuple[str, str, str, str]] = []
    ssh = results["ssh"][results["default_compress"]]
    poll_s = ssh["poll"]["median_s"]
    slowest_par = max(s["median_s"] for s in ssh["raw_parallel"].values())
    slowest_alone = max(s["median_s"] for s in ssh["raw_alone"].values())
    ratio = poll_s / slowest_alone
    rows.append(
        (
            "full poll / slowest raw",
            f"{poll_s:.2f} s / {slowest_alone:.2f} s = {ratio:.2f}x "
            f"(vs raw in parallel {slowest_par:.2f} s: {poll_s / slowest_par:.2f}x)",
            f"<= {TARGETS['poll_ratio']}x",
            _verdict(ok=ratio <= TARGETS["poll_ratio"]),
        )
    )
    lb_name = next(iter(ssh["raw_alone"]))  # the load balancer comes first
    lb_poll = ssh["poll_role_alone"]["lb"]["median_s"]
    lb_raw = ssh["raw_alone"][lb_name]["median_s"]
    rows.append(
        (
            "LB polled alone / its raw alone",
            f"{lb_poll:.2f} s / {lb_raw:.2f} s = {lb_poll / lb_raw:.2f}x",
            f"<= {TARGETS['poll_ratio']}x",
            _verdict(ok=lb_poll / lb_raw <= TARGETS["poll_ratio"]),
        )
    )
    pm = results["parse_model"]
    rows.append(
        (
            "parse+model (whole fleet)",
            f"{pm['total_ms']:.0f} ms (parse {pm['parse_ms']:.0f} + model {pm['model_ms']:.0f}; "
            f"CPU {pm['cpu_ms']:.0f} ms; every poll after the first)",
            f"< {TARGETS['parse_model_ms']:.0f} ms",
            _verdict(ok=pm["total_ms"] < TARGETS["parse_model_ms"]),
        )
    )
    rows.append(
        (
            "parse+model, a first poll",
            f"{pm['cold_total_ms']:.0f} ms (CPU {pm.get('cold_cpu_ms', 0):.0f} ms; nothing "
            "from an earlier poll to reuse)",
            f"< {TARGETS['parse_model_ms']:.0f} ms",
            _verdict(ok=pm["cold_total_ms"] < TARGETS["parse_model_ms"]),
        )
    )
    if "sh_picks_ms" in pm:
        rows.append(
            (
                "sh model picks",
                f"{pm['sh_picks_ms']:.0f} ms for {pm['sh_picks']:,} sources (a gateway drained)",
                "(no target)",
                "n/a",
            )
        )
    ui = results["ui"]
    if ui.get("measured"):
        rows.append(
            (
                "UI refresh",
                f"{ui['refresh_ms']:.0f} ms ({ui['slowest_view']} view; {ui['fleet']})",
                f"< {TARGETS['ui_refresh_ms']:.0f} ms",
                _verdict(ok=ui["refresh_ms"] < TARGETS["ui_refresh_ms"]),
            )
        )
    else:
        rows.append(("UI refresh", f"not measured ({ui['why']})", "< 100 ms", "n/a"))
    mem = results["memory"]
    console = results.get("console")
    if console is not None and "painted_median_ms" in console:
        live = console["painted_median_ms"]
        rows.append(
            (
                "UI refresh, live on the lab",
                f"{live:.0f} ms from a snapshot to the screen painted (max "
                f"{console['painted_max_ms']:.0f}; handler {console['handler_median_ms']:.0f} ms),"
                f" the console on the lab over SSH, {console['polls']} polls, views in turn",
                f"< {TARGETS['ui_refresh_ms']:.0f} ms",
                _verdict(ok=live < TARGETS["ui_refresh_ms"]),
            )
        )
    if console is not None:
        rows.append(
            (
                "peak memory of the console",
                f"{console['peak_rss_mb']:.0f} MB (the console on the lab, {console['polls']} "
                f"polls, every view shown; polling+model alone {mem['peak_rss_mb']:.0f} MB)",
                f"< {TARGETS['peak_rss_mb']:.0f} MB",
                _verdict(ok=console["peak_rss_mb"] < TARGETS["peak_rss_mb"]),
            )
        )
    else:  # results written before the console itself was measured
        rows.append(
            (
                "peak memory (poll+model process)",
                f"{mem['peak_rss_mb']:.0f} MB",
                f"< {TARGETS['peak_rss_mb']:.0f} MB",
                _verdict(ok=mem["peak_rss_mb"] < TARGETS["peak_rss_mb"]),
            )
        )
    raw_bytes = sum(s["payload_bytes"] for s in ssh["raw_alone"].values())
    poll_wire = ssh["poll"]["wire_bytes"]
    poll_payload = ssh["poll"]["payload_bytes"]
    rows.append(
        (
            "bytes per poll vs raw output",
            f"{poll_wire / 1e6:.2f} MB on the wire ({poll_payload / 1e6:.2f} MB payload) "
            f"/ {raw_bytes / 1e6:.2f} MB raw = {poll_wire / raw_bytes:.2f}",
            f"<= {TARGETS['bytes_ratio']:.0f}x",
            _verdict(ok=poll_wire <= raw_bytes * TARGETS["bytes_ratio"]),
        )
    )
    return rows


def _verdict(*, ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_report(results: dict[str, Any]) -> None:
    print()
    print("Scale benchmark: 3 gateways x 10,000 peers, 50,000 LB entries, 20 ms netem per host")
    m = results["machine"]
    print(f"machine: {m['cores']} cores, {m['cpu']}; lab: {m['lab']}")
    print()
    rows = [("what", "measured", "target", ""), *verdicts(results)]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    print()
    print("per host, median seconds (payload bytes):")
    for compress, ssh in results["ssh"].items():
        print(f"  {compress}: connects {ssh['connects']}")
        for name, poll in ssh["poll_per_host"].items():
            par = ssh["raw_parallel"][name]
            alone = ssh["raw_alone"][name]
            print(
                f"    {name:15} poll {poll['median_s']:6.2f} s ({poll['payload_bytes']:>8} B, "
                f"wire {poll['wire_bytes']:>8} B)  raw parallel {par['median_s']:6.2f} s  "
                f"raw alone {alone['median_s']:6.2f} s ({alone['payload_bytes']:>8} B)"
            )
    print()


# --- main -------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def delay_on(guest: Guest, namespaces: Sequence[str], ms: int) -> Iterator[None]:
    set_delay(guest, namespaces, ms)
    try:
        yield
    finally:
        set_delay(guest, namespaces, None)


def run(args: argparse.Namespace) -> dict[str, Any]:
    started_lab = start_lab(reuse=args.reuse)
    topo = manager.load_topology(LAB)["topology"]
    assert isinstance(topo, dict)
    guest = Guest(LAB, int(topo["control_port"]))
    gateways = [str(g["netns"]) for g in topo["gateways"]]
    hosts = [str(topo["lb"]["netns"]), *gateways]
    inventory_path = LAB / "inventory.yaml"
    inventory = load_inventory(inventory_path)
    results: dict[str, Any] = {"machine": machine(), "targets": TARGETS}
    try:
        results["setup"] = {
            "peers": grow_peers(guest, gateways, args.peers),
            "lb": fill_lb(guest, str(topo["clients"][0]["netns"]), args.entries),
        }
        set_delay(guest, hosts, None)  # an interrupted run may have left its delay behind
        rtt_plain = round_trip(inventory)
        with delay_on(guest, hosts, args.delay_ms):
            rtt_delayed = round_trip(inventory)
            results["link"] = {
                "netem_delay_ms": args.delay_ms,
                "command_round_trip_s": {
                    "without_delay": round(rtt_plain, 3),
                    "with_delay": round(rtt_delayed, 3),
                },
            }
            log(f"`true` over SSH: {rtt_plain:.3f} s, with netem {rtt_delayed:.3f} s")
            capture = LAB / "capture"
            results["ssh"] = {
                "uncompressed": measure_ssh(
                    inventory, compress=False, rounds=args.rounds, capture=capture
                ),
                "compressed": measure_ssh(
                    inventory, compress=True, rounds=args.rounds, capture=None
                ),
            }
            # The verdicts use the console's own default (FleetCollector's `compress`).
            default = inspect.signature(FleetCollector).parameters["compress"].default
            results["default_compress"] = "compressed" if default else "uncompressed"
            log("peak memory: a fresh process polls and builds the fleet")
            results["memory"] = measure_memory(inventory_path, args.memory_polls)
            log("peak memory: the console itself, headless, on the lab over SSH")
            results["console"] = measure_console(inventory_path, args.console_polls)
            results["lb_entries_after"] = lb_entries(guest)
        log("parse+model on this machine")
        results["parse_model"] = measure_parse_model(capture, args.rounds * 2)
        log("UI refresh (benchmarks/bench_console.py)")
        results["ui"] = measure_ui(args.peers, args.ui_refreshes)
        results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        with contextlib.suppress(RuntimeError, OSError):
            guest.ns("lb", f"ipvsadm --set 0 0 {UDP_TIMEOUT_DEFAULT}")
    finally:
        guest.close()
        if started_lab and not args.keep:
            log("taking the bench lab down")
            manager.lab_down(LAB)
        elif args.keep:
            log(f"lab kept in {LAB} (take it down: wgconsole lab down with WGCONSOLE_LAB_DIR)")
    return results


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--reuse", action="store_true", help="use a running bench lab if there is one")
    p.add_argument("--keep", action="store_true", help="leave the bench lab running")
    p.add_argument("--rounds", type=int, default=7, help="measured polls (medians)")
    p.add_argument("--memory-polls", type=int, default=3)
    p.add_argument("--console-polls", type=int, default=8)
    p.add_argument("--ui-refreshes", type=int, default=7)
    p.add_argument("--peers", type=int, default=PEERS)
    p.add_argument("--entries", type=int, default=ENTRIES)
    p.add_argument("--delay-ms", type=int, default=DELAY_MS)
    p.add_argument("--json", type=Path, default=RESULTS, help="where to write the results")
    p.add_argument("--memory-child", metavar="INVENTORY", help=argparse.SUPPRESS)
    p.add_argument("--console-child", metavar="INVENTORY", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    # Stopped from outside (or started in the background, where SIGINT is ignored): still
    # take the netem delay off and the lab down, in run()'s finally blocks.
    signal.signal(signal.SIGTERM, _stop)
    if args.memory_child:
        memory_child(args.memory_child, args.rounds)
        return 0
    if args.console_child:
        console_child(args.console_child, args.rounds)
        return 0
    if not 0 < args.peers <= PEERS or not 0 < args.entries <= ENTRIES:
        p.error(f"at most {PEERS} peers and {ENTRIES} entries")
    results = run(args)
    results["command"] = "make bench  (.venv/bin/python -m benchmarks.bench_scale)"
    results["verdicts"] = [
        {"what": w, "measured": m, "target": t, "result": r} for w, m, t, r in verdicts(results)
    ]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print_report(results)
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
