"""Benchmark (not a test): one console refresh, 5,000 clients x 3 gateways, 50,000 LB entries.

(`--clients N` for another fleet size; benchmarks/bench_scale.py runs it with 10,000.)

The fleet is built through the real model (a `FleetBuilder` over synthesized observations,
kept from one poll to the next as a collector keeps its own; `SnapshotBuilder` as the poll
worker runs it); the console is mounted headless and each refresh is timed on the UI thread:
`apply_snapshot` (the message handler: the shown view diffed in place), then until the app
is idle again (layout and painting included; Textual's idle check samples every 20 ms, so
"idle" is up to ~20 ms late: the CPU time is given too).

Every refresh is realistic rather than kind: every handshake age moves on (so every
client row changes), a fifth of the clients carry traffic, 5% of the LB entries are
replaced by new ones and all their expiry timers move.

    make bench-console  # or: .venv/bin/python benchmarks/bench_console.py [--refreshes N]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import gc
import hashlib
import os
import platform
import pstats
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wgconsole.core.fleet import Fleet
from wgconsole.core.fleet_builder import FleetBuilder
from wgconsole.core.inventory import (
    Client,
    Gateway,
    Inventory,
    LoadBalancer,
    Service,
    SshSettings,
    Tunnel,
)
from wgconsole.core.records import (
    Endpoint,
    GatewayObservation,
    HostStatus,
    IpvsConn,
    IpvsDest,
    IpvsService,
    LbObservation,
    WgInterface,
    WgPeer,
)
from wgconsole.core.sched import ShTable
from wgconsole.poll.collector import PollResult
from wgconsole.tui.app import ConsoleApp
from wgconsole.view.heap import HeapKeeper
from wgconsole.view.snapshot import ConsoleSnapshot, SnapshotBuilder

CLIENTS = 5_000
GATEWAYS = 3
CONNS = 50_000
INTERVAL = 2.0
VIEWS = ("overview", "clients", "connections", "connections by client")
VIP = Endpoint("10.77.255.1", 51280)
PROFILE: cProfile.Profile | None = None


def key_of(i: int) -> str:
    return base64.b64encode(hashlib.sha256(f"client {i}".encode()).digest()).decode()


def inventory(count: int) -> Inventory:
    ssh = SshSettings()
    gateways = tuple(
        Gateway(
            name=f"wg-gateway-{g + 1:02d}",
            host=f"10.78.0.{11 + g}",
            ssh=ssh,
            real_server=Endpoint(f"10.77.0.{11 + g}", 51280),
            interface="wg0",
            config="/etc/wireguard/wg0.conf",
        )
        for g in range(GATEWAYS)
    )
    clients = tuple(
        Client(f"client-{i:04d}", key_of(i), f"10.255.{i // 250}.{i % 250 + 2}")
        for i in range(count)
    )
    return Inventory(
        path="bench",
        service=Service("udp", VIP.address, VIP.port, "sh"),
        ssh=ssh,
        load_balancers=(LoadBalancer("wg-lb", "10.78.0.10", ssh),),
        gateways=gateways,
        tunnel=Tunnel("10.255.0.0/16", "10.255.0.1"),
        clients=clients,
    )


@dataclass
class World:
    """The fleet's mutable truth, turned into observations at each poll."""

    inv: Inventory
    service: IpvsService
    clock: float
    endpoints: list[Endpoint]
    handshakes: list[float]  # bastion-clock time of each client's last handshake
    rx: list[int]
    tx: list[int]
    conns: list[IpvsConn]
    rng: random.Random
    conn_count: int
    _model: ShTable | None = None
    # One per world, as a collector holds one: each poll's fleet reuses the previous one's.
    _builder: FleetBuilder = field(default_factory=FleetBuilder)

    @classmethod
    def create(cls, seed: int = 1, clients: int | None = None, conns: int | None = None) -> World:
        """A fleet of `clients` (default CLIENTS) and `conns` LB entries (default CONNS)."""
        count = CLIENTS if clients is None else clients
        inv = inventory(count)
        rng = random.Random(seed)
        dests = tuple(
            IpvsDest(gw.real_server, 1, "masq", 0, 0, in_packets=0, in_bytes=0)
            for gw in reversed(inv.gateways)
        )
        service = IpvsService("udp", VIP, "sh", 0x08, dests=dests)  # sh-fallback
        clock = 1_795_664_590.0
        endpoints = [
            Endpoint(f"198.18.{i // 250}.{i % 250 + 1}", 20000 + i % 40000) for i in range(count)
        ]
        world = cls(
            inv=inv,
            service=service,
            clock=clock,
            endpoints=endpoints,
            handshakes=[clock - rng.uniform(0, 200) for _ in range(count)],
            rx=[rng.randrange(10**6) for _ in range(count)],
            tx=[rng.randrange(10**6) for _ in range(count)],
            conns=[],
            rng=rng,
            conn_count=max(count, CONNS if conns is None else conns),
        )
        world.conns = [world._conn(e) for e in endpoints]
        while len(world.conns) < world.conn_count:
            world.conns.append(world._conn(world._random_source()))
        return world

    def _random_source(self) -> Endpoint:
        r = self.rng
        return Endpoint(f"203.0.{r.randrange(256)}.{r.randrange(1, 255)}", r.randrange(1024, 65535))

    def _conn(self, source: Endpoint) -> IpvsConn:
        dest = self.model.pick(source.address, source.port).dest or self.service.dests[0].endpoint
        return IpvsConn("udp", source, VIP, dest, "UDP", self.rng.randrange(1, 300))

    @property
    def model(self) -> ShTable:
        if self._model is None:
            self._model = ShTable.from_service(self.service)
        return self._model

    def advance(self) -> None:
        """One poll interval later: ages grow, some traffic, 5% of LB entries churn."""
        r = self.rng
        count = len(self.inv.clients)
        self.clock += INTERVAL
        for i in r.sample(range(count), count // 5):
            self.rx[i] += r.randrange(100, 100_000)
            self.tx[i] += r.randrange(100, 100_000)
            if self.clock - self.handshakes[i] > 120:
                self.handshakes[i] = self.clock - r.uniform(0, 2)
        expiring = [replace(c, expires=max(0, c.expires - int(INTERVAL))) for c in self.conns]
        churn = min(self.conn_count // 20, self.conn_count - count)
        for i in r.sample(range(count, self.conn_count), churn):
            expiring[i] = self._conn(self._random_source())
        self.conns = expiring

    def fleet(self) -> Fleet:
        lb = LbObservation(
            "wg-lb", self.clock, (self.service,), tuple(self.conns), expire_nodest_conn=True
        )
        gateways: dict[str, GatewayObservation | None] = {}
        lb_gateway = {c.client: c.dest for c in self.conns[: len(self.inv.clients)]}
        for gw in self.inv.gateways:
            peers = []
            for i, client in enumerate(self.inv.clients):
                here = lb_gateway.get(self.endpoints[i]) == gw.real_server
                peers.append(
                    WgPeer(
                        public_key=client.public_key,
                        has_preshared_key=False,
                        endpoint=self.endpoints[i] if here else None,
                        allowed_ips=(f"{client.address}/32",),
                        latest_handshake=int(self.handshakes[i]) if here else 0,
                        rx_bytes=self.rx[i] if here else 0,
                        tx_bytes=self.tx[i] if here else 0,
                        keepalive=15,
                    )
                )
            iface = WgInterface("wg0", key_of(-1), 51280, 0, tuple(peers))
            gateways[gw.name] = GatewayObservation(
                gw.name, self.clock, link_up=True, interface=iface
            )
        hosts = [
            HostStatus(
                h.name,
                "lb" if h.name == "wg-lb" else "gateway",
                reachable=True,
                error=None,
                last_success=self.clock,
                poll_seconds=0.3,
            )
            for h in self.inv.hosts
        ]
        return self._builder.build(self.inv, {"wg-lb": lb}, gateways, hosts, self.clock)


class IdleCollector:
    """Hands the app nothing after mount: the benchmark applies snapshots itself."""

    def __init__(self, inv: Inventory) -> None:
        self.inventory = inv
        self.closed = False

    def poll(self, roles: tuple[str, ...] = ("lb", "gateway")) -> PollResult:
        while not self.closed:
            time.sleep(0.05)
        raise RuntimeError("closed")

    def fleet(self, poll: PollResult) -> Fleet:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def bench(refreshes: int, size: tuple[int, int]) -> dict[str, Any]:
    world = World.create()
    started = time.perf_counter()
    first_fleet = world.fleet()
    build_fleet_s = time.perf_counter() - started
    clock_box = [world.clock]
    clock: Callable[[], float] = lambda: clock_box[0]  # noqa: E731
    app = ConsoleApp(world.inv, IdleCollector(world.inv), interval=3600, clock=clock)
    # The app's own builder: it knows which connection window the view shows.
    builder: SnapshotBuilder = app.builder
    keeper = None if os.environ.get("BENCH_NO_FREEZE") else HeapKeeper()
    started = time.perf_counter()
    snapshot = builder.build(first_fleet, 0.3)
    build_snapshot_s = time.perf_counter() - started
    results: dict[str, Any] = {"fleet_s": [build_fleet_s], "snapshot_s": [build_snapshot_s]}
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        started = time.perf_counter()
        app.apply_snapshot(snapshot)
        first_apply = time.perf_counter() - started
        await pilot.pause()
        results["first_apply_s"] = first_apply
        results["first_idle_s"] = time.perf_counter() - started
        for view in VIEWS:
            t0 = time.perf_counter()
            app.action_view(view.split()[0])
            if view == "connections by client":
                await pilot.press("s")  # sort by the first column; the worker prepares it
            results[f"{view}_switch"] = time.perf_counter() - t0
            await pilot.pause()
            handler: list[float] = []
            idle: list[float] = []
            cpu: list[float] = []
            for _ in range(refreshes):
                world.advance()
                clock_box[0] = world.clock
                t0 = time.perf_counter()
                fleet = world.fleet()
                t1 = time.perf_counter()
                snap: ConsoleSnapshot = builder.build(fleet, 0.3)
                if keeper is not None:
                    keeper.after_snapshot()  # as the app's poll worker does
                t2 = time.perf_counter()
                results["fleet_s"].append(t1 - t0)
                results["snapshot_s"].append(t2 - t1)
                t3 = time.perf_counter()
                c3 = time.process_time()
                if PROFILE is not None:
                    PROFILE.enable()
                if os.environ.get("BENCH_NOGC"):
                    gc.disable()
                app.apply_snapshot(snap)
                gc.enable()
                t4 = time.perf_counter()
                await pilot.pause()
                t5 = time.perf_counter()
                c5 = time.process_time()
                if PROFILE is not None:
                    PROFILE.disable()
                handler.append(t4 - t3)
                idle.append(t5 - t3)
                cpu.append(c5 - c3)
            results[f"{view}_handler"] = handler
            results[f"{view}_idle"] = idle
            results[f"{view}_cpu"] = cpu
        rows = {
            "clients": app.query_one("#client-table").row_count,  # type: ignore[attr-defined]
            "conns": app.query_one("#conn-table").row_count,  # type: ignore[attr-defined]
        }
        results["rows"] = rows
        await pilot.press("q")
    results["peak_rss_mb"] = rss_mb()
    return results


DETAIL_OPENS = 5
OPEN_PROFILE = bool(os.environ.get("BENCH_PROFILE_OPEN"))  # --profile: opens, not refreshes


async def bench_details(refreshes: int, size: tuple[int, int]) -> dict[str, Any]:
    """The gateway and client detail screens: opening one, then refreshes while it is open.

    Each open is on a snapshot the poll worker built while no detail was open (so nothing
    of it was prepared), as when the operator presses Enter in the Overview or Clients.
    """
    world = World.create()
    clock_box = [world.clock]
    clock: Callable[[], float] = lambda: clock_box[0]  # noqa: E731
    app = ConsoleApp(world.inv, IdleCollector(world.inv), interval=3600, clock=clock)
    builder: SnapshotBuilder = app.builder
    keeper = None if os.environ.get("BENCH_NO_FREEZE") else HeapKeeper()
    results: dict[str, Any] = {}

    def next_snapshot() -> ConsoleSnapshot:
        world.advance()
        clock_box[0] = world.clock
        snap = builder.build(world.fleet(), 0.3)
        if keeper is not None:
            keeper.after_snapshot()
        return snap

    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        app.apply_snapshot(next_snapshot())
        await pilot.pause()
        gateway = world.inv.gateways[0].name
        client = world.inv.clients[len(world.inv.clients) // 2].public_key
        screens: dict[str, Callable[[], None]] = {
            "gateway detail": lambda: app.open_gateway(gateway),
            "client detail": lambda: app.open_client(client),
        }
        for name, open_screen in screens.items():
            opened: list[float] = []
            opened_cpu: list[float] = []
            for i in range(DETAIL_OPENS + 1):
                builder.detail_gateways = ()
                app.apply_snapshot(next_snapshot())
                await pilot.pause()
                t0, c0 = time.perf_counter(), time.process_time()
                if PROFILE is not None and OPEN_PROFILE:
                    PROFILE.enable()
                open_screen()
                await pilot.pause()
                if PROFILE is not None:
                    PROFILE.disable()
                if i < DETAIL_OPENS:
                    opened.append(time.perf_counter() - t0)
                    opened_cpu.append(time.process_time() - c0)
                    app.pop_screen()
                    await pilot.pause()
            handler: list[float] = []
            idle: list[float] = []
            cpu: list[float] = []
            for _ in range(refreshes):
                snap = next_snapshot()
                t3, c3 = time.perf_counter(), time.process_time()
                if PROFILE is not None and not OPEN_PROFILE:
                    PROFILE.enable()
                app.apply_snapshot(snap)
                t4 = time.perf_counter()
                await pilot.pause()
                if PROFILE is not None:
                    PROFILE.disable()
                handler.append(t4 - t3)
                idle.append(time.perf_counter() - t3)
                cpu.append(time.process_time() - c3)
            app.pop_screen()
            await pilot.pause()
            results[name] = {
                "open": opened,
                "open_cpu": opened_cpu,
                "handler": handler,
                "idle": idle,
                "cpu": cpu,
            }
        await pilot.press("q")
    return results


def print_details(r: dict[str, Any]) -> None:
    print("detail screens, UI thread: open = from the key until idle; then one refresh each:")
    for name, m in r.items():
        med = statistics.median
        print(
            f"  {name:<15} open median {ms(med(m['open']))} (cpu {ms(med(m['open_cpu']))}); "
            f"refresh handler median {ms(med(m['handler']))}, "
            f"idle median {ms(med(m['idle']))} (max {ms(max(m['idle']))}), "
            f"cpu median {ms(med(m['cpu']))}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--refreshes", type=int, default=8)
    parser.add_argument("--size", default="160x50")
    parser.add_argument("--clients", type=int, default=5_000)
    parser.add_argument(
        "--profile", action="store_true", help="profile each refresh (handler, layout, paint)"
    )
    parser.add_argument(
        "--details", action="store_true", help="the gateway and client detail screens instead"
    )
    args = parser.parse_args()
    global PROFILE, CLIENTS
    CLIENTS = args.clients
    if args.profile:
        PROFILE = cProfile.Profile()
    size = tuple(int(x) for x in args.size.split("x"))
    if args.details:
        print(f"fleet: {CLIENTS} clients x {GATEWAYS} gateways; terminal {args.size}")
        print_details(asyncio.run(bench_details(args.refreshes, (size[0], size[1]))))
        if PROFILE is not None:
            order = os.environ.get("BENCH_SORT", "tottime")
            pstats.Stats(PROFILE).sort_stats(order).print_stats(40)
        return
    r = asyncio.run(bench(args.refreshes, (size[0], size[1])))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(
        f"fleet: {CLIENTS} clients x {GATEWAYS} gateways, {CONNS} LB entries; terminal {args.size}"
    )
    print(
        f"worker thread, per poll: build_fleet median {ms(statistics.median(r['fleet_s']))}, "
        f"snapshot (rates, events, rows) median {ms(statistics.median(r['snapshot_s']))}"
    )
    print(
        f"first snapshot on the UI thread: handler {ms(r['first_apply_s'])}, "
        f"until idle {ms(r['first_idle_s'])}"
    )
    switches = ", ".join(f"{v} {ms(r[f'{v}_switch'])}" for v in ("clients", "connections"))
    print(f"first switch to a view (its table catches up): {switches}")
    print(
        f"tables hold (windows): {r['rows']['clients']} client rows, "
        f"{r['rows']['conns']} connection rows"
    )
    print("one refresh, UI thread: handler = apply_snapshot (wall); idle = wall time from the")
    print("message until the app is idle; cpu = CPU time meanwhile (layout and paint included,")
    print("the poll worker is idle meanwhile):")
    for view in VIEWS:
        h, i, c = r[f"{view}_handler"], r[f"{view}_idle"], r[f"{view}_cpu"]
        print(
            f"  {view:<22} handler median {ms(statistics.median(h))} (max {ms(max(h))}); "
            f"idle median {ms(statistics.median(i))} (max {ms(max(i))}); "
            f"cpu median {ms(statistics.median(c))}"
        )
    print(f"peak memory (max RSS of the process): {r['peak_rss_mb']:.0f} MB")
    if PROFILE is not None:
        pstats.Stats(PROFILE).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
