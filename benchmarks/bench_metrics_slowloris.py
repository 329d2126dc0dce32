"""Benchmark (not a test): `wgconsole metrics` under a slowloris, on 127.0.0.1.

The exposition of 10,000 clients x 3 gateways (as in bench_metrics) is served while N
connections send a partial request and stall and M more send a whole request and never read
the answer. Prints the server's threads, the process's resident memory and scrapes (status,
latency) during the attack and after the server's timeout.

    .venv/bin/python benchmarks/bench_metrics_slowloris.py [--slow 200] [--readers 50]
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_metrics import World, _Stub
from wgconsole.export.counters import ByteCounters
from wgconsole.export.families import build_families
from wgconsole.export.server import TIMEOUT, Exporter, make_server

PARTIAL = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow"
WHOLE = b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def handlers() -> int:
    return sum("process_request_thread" in t.name for t in threading.enumerate())


def scrape(url: str) -> tuple[int, float]:
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as err:
        status = err.code
    except OSError:
        status = 0
    return status, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--slow", type=int, default=200, help="stalled partial requests")
    parser.add_argument("--readers", type=int, default=50, help="requests never read")
    args = parser.parse_args()

    world = World.create(args.clients, "eu-west-1")
    world.advance()
    lbs, gateways = world.observations()
    fleet = world.fleet(lbs, gateways)
    families = build_families(world.inv, fleet, lbs, gateways, ByteCounters().update(fleet), 0)
    exporter = Exporter(_Stub(world.inv), 2.0)  # type: ignore[arg-type]
    exporter.publish(families, hosts=4, answered=4)
    server = make_server(exporter, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_port
    url = f"http://127.0.0.1:{port}/metrics"
    status, quiet = scrape(url)  # renders once
    status, quiet = scrape(url)
    print(f"exposition {len(exporter.latest.body()) / 1e6:.2f} MB" if exporter.latest else "")
    print(f"quiet: scrape {status} in {quiet * 1000:.1f} ms, RSS {rss_mb():.0f} MB")

    socks = []
    for i in range(args.slow + args.readers):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(PARTIAL if i < args.slow else WHOLE)
        socks.append(sock)
    started = time.monotonic()
    print(f"attack: {args.slow} partial requests stalled, {args.readers} never reading")
    peak_threads, peak_rss = 0, 0.0
    for second in range(int(TIMEOUT) + 4):
        deadline = started + second + 0.5
        time.sleep(max(0.0, deadline - time.monotonic()))
        status, took = scrape(url)
        peak_threads = max(peak_threads, handlers())
        peak_rss = max(peak_rss, rss_mb())
        print(
            f"  t={time.monotonic() - started:4.1f} s: server threads {handlers():3d}, "
            f"RSS {rss_mb():4.0f} MB, scrape {status} in {took * 1000:.1f} ms"
        )
    print(f"peak: {peak_threads} server threads, RSS {peak_rss:.0f} MB")
    for sock in socks:
        sock.close()
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
