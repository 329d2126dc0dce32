"""`wgconsole metrics`: the Prometheus exporter's command line (see `wgconsole.export`)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from wgconsole.cli.sites import all_sites
from wgconsole.cli.stopping import stop_on_sigterm
from wgconsole.config.probe_key import ProbeKeyError, default_probe_key_path, optional_probe_key
from wgconsole.core.text import printable
from wgconsole.export.rules import alert_rules
from wgconsole.export.server import Exporter, make_server, parse_listen, poll_deadline
from wgconsole.export.sites import SitesExporter
from wgconsole.poll.collector import FleetCollector
from wgconsole.probe.fleet_probe import FleetProber
from wgconsole.probe.handshake import ProbeKey

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    m = sub.add_parser(
        "metrics",
        parents=[common],
        help="serve the fleet as Prometheus metrics (read-only)",
        description=(
            "Polls the fleet (one poll at a time, every --interval seconds) and serves the "
            "latest poll at http://ADDR:PORT/metrics, with /healthz (200 while polls finish "
            "on time, 503 otherwise). Never changes anything: --read-only is implied."
        ),
    )
    m.add_argument(
        "--listen",
        metavar="ADDR:PORT",
        help="address and port to serve on (e.g. 127.0.0.1:9586, [::1]:9586; port 0: any free)",
    )
    m.add_argument(
        "--once",
        action="store_true",
        help="poll once, print the exposition and exit (for node_exporter's textfile collector)",
    )
    m.add_argument(
        "--probe-key",
        type=Path,
        default=None,
        metavar="FILE",
        help="probe every gateway and the VIP with this prober key after each poll "
        "(wgconsole_probe_*; default: $XDG_STATE_HOME/wgconsole/probe.key if it exists)",
    )
    m.add_argument(
        "--alert-rules",
        action="store_true",
        help="print the shipped Prometheus alert rules (YAML) and exit",
    )


def cmd_metrics(args: argparse.Namespace) -> int:
    if args.alert_rules:
        sys.stdout.write(alert_rules())
        return EXIT_OK
    if not args.once and args.listen is None:
        print("wgconsole metrics: give --listen ADDR:PORT (or --once)", file=sys.stderr)
        return EXIT_USAGE
    listen = None
    if not args.once:
        try:
            listen = parse_listen(args.listen)
        except ValueError as exc:
            print(f"wgconsole metrics: {printable(str(exc))}", file=sys.stderr)
            return EXIT_USAGE
    if args.interval <= 0:
        print("wgconsole metrics: --interval must be above 0", file=sys.stderr)
        return EXIT_USAGE
    sites = all_sites(args)
    try:
        probe_key = optional_probe_key(args.probe_key)
    except ProbeKeyError as exc:
        print(f"wgconsole metrics: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    if probe_key is None:
        print(
            f"wgconsole metrics: no probe key at {default_probe_key_path()}: no "
            "wgconsole_probe_* series (`wgconsole probe setup` makes one)",
            file=sys.stderr,
        )
    # Read-only whatever the command line says: the transports refuse any mutating command.
    collectors = [
        FleetCollector(
            site.inventory,
            accept_new_host_keys=args.accept_new_host_keys,
            read_only=True,
            timeout=args.timeout,
            poll_deadline=poll_deadline(args.interval, args.timeout),
        )
        for site in sites
    ]
    try:
        # Each site its own exporter: its collector, counters, prober and poll loop.
        exporters = [
            Exporter(
                collector,
                args.interval,
                prober=None if probe_key is None else FleetProber(ProbeKey.from_private(probe_key)),
            )
            for collector in collectors
        ]
        served: Exporter | SitesExporter = (
            exporters[0] if len(exporters) == 1 else SitesExporter(exporters)
        )
        if args.once:
            return _once(served)
        assert listen is not None
        return _serve(served, *listen)
    finally:
        for collector in collectors:
            collector.close()


def _once(served: Exporter | SitesExporter) -> int:
    if isinstance(served, Exporter):
        sys.stdout.buffer.write(served.poll_once().body())
        sys.stdout.flush()
        return EXIT_OK
    latest, failed = served.poll_once()
    if latest is not None:
        sys.stdout.buffer.write(latest.body())
        sys.stdout.flush()
    for site, error in failed.items():
        print(f"wgconsole metrics: site {site}: {printable(error)}", file=sys.stderr)
    return EXIT_ERROR if failed else EXIT_OK


def _serve(exporter: Exporter | SitesExporter, host: str, port: int) -> int:
    try:
        server = make_server(exporter, host, port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(f"wgconsole metrics: cannot listen on {host}:{port}: {reason}", file=sys.stderr)
        return EXIT_ERROR
    stop = threading.Event()
    poller = threading.Thread(
        target=exporter.run, args=(stop,), name="wgc-metrics-poll", daemon=True
    )
    previous = stop_on_sigterm()
    try:
        poller.start()
        shown = f"[{host}]" if ":" in host else host
        print(
            f"wgconsole metrics: serving http://{shown}:{server.server_port}/metrics and "
            "/healthz, "
            f"polling every {exporter.interval:g} s (read-only)",
            flush=True,
        )
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop.set()
        server.server_close()
        # A poll in flight ends at its deadline; the collector's close (by the caller) cuts
        # the connections it waits on.
        poller.join(timeout=1.0)
    return EXIT_OK
