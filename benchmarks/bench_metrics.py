"""Benchmark (not a test): `wgconsole metrics` at 10,000 clients x 3 gateways, from memory.

A synthesized fleet (one LB, 3 gateways carrying every client, each client on the gateway
its LB entry points to) goes through the real model (a `FleetBuilder` kept from poll to
poll, as a collector keeps its own) and the exporter's real code: the families of each poll
(`build_families` with the monotonic byte counters), the exposition rendered by
prometheus-client on the first scrape after a poll, and scrapes over HTTP from a server on
127.0.0.1 that serve the rendered exposition from memory (plain and gzip). Every poll moves
every handshake age on and gives a fifth of the clients traffic, so every poll renders anew.

    make bench-metrics   # or: .venv/bin/python benchmarks/bench_metrics.py [--clients N]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import platform
import random
import resource
import statistics
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

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
from wgconsole.export.counters import ByteCounters
from wgconsole.export.families import FAMILIES, build_families
from wgconsole.export.server import Exporter, make_server

CLIENTS = 10_000
GATEWAYS = 3
INTERVAL = 2.0
VIP = Endpoint("10.77.255.1", 51280)


def key_of(i: int) -> str:
    return base64.b64encode(hashlib.sha256(f"client {i}".encode()).digest()).decode()


def inventory(count: int, site: str | None) -> Inventory:
    ssh = SshSettings()
    gateways = tuple(
        Gateway(
            name=f"wg-gateway-{g + 1:02d}",
            host=f"10.78.0.{11 + g}",
            ssh=ssh,
            real_server=Endpoint(f"10.77.0.{11 + g}", 51280),
        )
        for g in range(GATEWAYS)
    )
    clients = tuple(
        Client(f"client-{i:05d}", key_of(i), f"10.255.{i // 250}.{i % 250 + 2}")
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
        site=site,
    )


@dataclass
class World:
    inv: Inventory
    clock: float
    rng: random.Random
    handshakes: list[float]
    rx: list[int]
    tx: list[int]
    builder: FleetBuilder

    @classmethod
    def create(cls, count: int, site: str | None) -> World:
        rng = random.Random(1)
        clock = 1_795_664_590.0
        return cls(
            inv=inventory(count, site),
            clock=clock,
            rng=rng,
            handshakes=[clock - rng.uniform(0, 200) for _ in range(count)],
            rx=[rng.randrange(10**6) for _ in range(count)],
            tx=[rng.randrange(10**6) for _ in range(count)],
            builder=FleetBuilder(),
        )

    def advance(self) -> None:
        r = self.rng
        count = len(self.inv.clients)
        self.clock += INTERVAL
        for i in r.sample(range(count), count // 5):
            self.rx[i] += r.randrange(100, 100_000)
            self.tx[i] += r.randrange(100, 100_000)
            if self.clock - self.handshakes[i] > 120:
                self.handshakes[i] = self.clock - r.uniform(0, 2)

    def observations(
        self,
    ) -> tuple[dict[str, LbObservation | None], dict[str, GatewayObservation | None]]:
        gws = self.inv.gateways
        dests = tuple(IpvsDest(gw.real_server, 1, "masq", 0, 0) for gw in reversed(gws))
        service = IpvsService("udp", VIP, "sh", 0x08, dests=dests)
        conns = []
        peers: list[list[WgPeer]] = [[] for _ in gws]
        for i, client in enumerate(self.inv.clients):
            source = Endpoint(f"198.18.{i // 250}.{i % 250 + 1}", 20000 + i % 40000)
            home = i % len(gws)
            conns.append(IpvsConn("udp", source, VIP, gws[home].real_server, "UDP", 299))
            for g in range(len(gws)):
                here = g == home
                peers[g].append(
                    WgPeer(
                        public_key=client.public_key,
                        has_preshared_key=False,
                        endpoint=source if here else None,
                        allowed_ips=(f"{client.address}/32",),
                        latest_handshake=int(self.handshakes[i]) if here else 0,
                        rx_bytes=self.rx[i] if here else 0,
                        tx_bytes=self.tx[i] if here else 0,
                        keepalive=15,
                    )
                )
        lbs: dict[str, LbObservation | None] = {
            "wg-lb": LbObservation(
                "wg-lb", self.clock, (service,), tuple(conns), expire_nodest_conn=True
            )
        }
        gateways: dict[str, GatewayObservation | None] = {
            gw.name: GatewayObservation(
                gw.name,
                self.clock,
                link_up=True,
                interface=WgInterface("wg0", key_of(-1), 51280, 0, tuple(p)),
            )
            for gw, p in zip(gws, peers, strict=True)
        }
        return lbs, gateways

    def fleet(
        self,
        lbs: dict[str, LbObservation | None],
        gateways: dict[str, GatewayObservation | None],
    ) -> Fleet:
        hosts = [
            HostStatus(
                h.name,
                "lb" if h.name == "wg-lb" else "gateway",
                reachable=True,
                error=None,
                last_success=self.clock,
            )
            for h in self.inv.hosts
        ]
        return self.builder.build(self.inv, lbs, gateways, hosts, self.clock)


class _Stub:
    """Stands for the collector: the server only reads `latest` and the health of the
    exporter (never polls), which the benchmark sets itself."""

    read_only = True
    poll_deadline = 30.0

    def __init__(self, inv: Inventory) -> None:
        self.inventory = inv


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--polls", type=int, default=7)
    parser.add_argument("--scrapes", type=int, default=10, help="scrapes per poll")
    parser.add_argument("--site", default="eu-west-1", help="the site label ('' for none)")
    args = parser.parse_args()

    world = World.create(args.clients, args.site or None)
    counters = ByteCounters()
    exporter = Exporter(_Stub(world.inv), INTERVAL)  # type: ignore[arg-type]
    server = make_server(exporter, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/metrics"

    def scrape(*, gzipped: bool) -> tuple[float, int]:
        headers = {"Accept-Encoding": "gzip"} if gzipped else {}
        started = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
            size = len(response.read())
        return time.perf_counter() - started, size

    model, families_t, first, cached, zipped = [], [], [], [], []
    sizes = (0, 0, 0)
    for poll in range(args.polls + 1):
        world.advance()
        lbs, gateways = world.observations()
        started = time.perf_counter()
        fleet = world.fleet(lbs, gateways)
        built = time.perf_counter()
        families = build_families(world.inv, fleet, lbs, gateways, counters.update(fleet), 0.0)
        done = time.perf_counter()
        exporter.publish(families, hosts=4, answered=4)
        first_scrape, size = scrape(gzipped=False)
        rest = [scrape(gzipped=False)[0] for _ in range(args.scrapes)]
        gz = [scrape(gzipped=True) for _ in range(args.scrapes)]
        if poll == 0:
            continue  # the first poll builds everything anew: not the steady state
        model.append(built - started)
        families_t.append(done - built)
        first.append(first_scrape)
        cached.extend(rest)
        zipped.extend(t for t, _ in gz)
        series = sum(len(f.samples) for f in families)
        sizes = (size, gz[0][1], series)
    server.shutdown()

    size, gz_size, series = sizes
    med = statistics.median
    print(f"wgconsole metrics, {args.clients:,} clients x {GATEWAYS} gateways, 1 LB")
    print(f"  {platform.python_implementation()} {platform.python_version()}, {sys.platform}")
    print(f"  families exposed: {len(FAMILIES)}; series: {series:,}")
    print(
        f"  exposition: {size / 1e6:.2f} MB ({size / series:.0f} bytes per series), "
        f"gzip {gz_size / 1e6:.2f} MB"
    )
    print(f"  per poll (poll thread): model {ms(med(model))}, families {ms(med(families_t))}")
    print(
        f"  first scrape after a poll (renders): {ms(med(first))} "
        f"(min {ms(min(first))}, max {ms(max(first))})"
    )
    print(
        f"  each later scrape, from memory: {ms(med(cached))} "
        f"(max {ms(max(cached))}); gzip {ms(med(zipped))}"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak memory (max RSS): {peak:.0f} MB; medians of {args.polls} polls")


if __name__ == "__main__":
    main()
