"""`wgconsole trace CLIENT`: follow one client's packets across the LBs and the gateways.

Exit 0 when the verdict is `ok`, 1 for any other verdict (the trace ran and found the
problem it names), 2 when it could not trace (no such client, no capture could run on any
LB, the inventory or the arguments at fault), as `probe` does.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from wgconsole.cli.collecting import collector as make_collector
from wgconsole.cli.sites import one_site
from wgconsole.core.text import printable
from wgconsole.core.trace import Hop, TraceError, TraceReport
from wgconsole.trace.session import DEFAULT_SECONDS, TraceSession

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_CANNOT = 2
# The timeline printed as text: its first packets, then its last; --json has every one.
SHOWN_HOPS = 60


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "trace",
        parents=[common],
        help="follow one client's packets across the LBs and the gateways (tcpdump), live",
    )
    p.add_argument(
        "client",
        metavar="NAME|PUBLIC_KEY|ADDR[:PORT]",
        help="a client's name, public key, tunnel address, or outer address as the LB sees it",
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        help=f"how long to capture (default {DEFAULT_SECONDS:g})",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def hop_line(h: Hop) -> str:
    mac1 = f"  mac1 {h.mac1}" if h.mac1 else ""
    return (
        f"{h.at:+8.3f}  {h.host:<16} {h.hop:<27} {h.message:<10} {h.length:>5}  "
        f"{h.src} > {h.dst}{mac1}"
    )


def print_report(report: TraceReport) -> None:
    t = report.target
    gws = ", ".join(t.traced_gateways)
    print(printable(f"trace {t.label}: from {t.source} to the VIP {t.vip}, {report.seconds:g} s"))
    sh = t.sh_gateway or ("DROPPED" if t.sh_dropped else "-")
    print(
        printable(
            f"  LB entry: {t.lb_gateway or '-'}   sh: {sh}   handshake: "
            f"{t.handshake_gateway or '-'}   captured on gateways: {gws}"
        )
    )
    print("captures:")
    for c in report.captures:
        said = f"{c.packets} packets" if c.error is None else f"FAILED: {c.error}"
        print(printable(f"  {c.host:<16} {c.capture:<10} {said}"))
    counts = report.counts()
    if counts:
        print("hops:")
        for hop, per in counts.items():
            kinds = ", ".join(f"{n} {kind}" for kind, n in per.items())
            print(printable(f"  {hop:<27} {kinds}"))
    hops = report.hops
    if hops:
        print("timeline (seconds since the capture began, bastion clock):")
        shown = hops if len(hops) <= SHOWN_HOPS else hops[: SHOWN_HOPS // 2]
        for h in shown:
            print(printable("  " + hop_line(h)))
        if len(hops) > SHOWN_HOPS:
            print(f"  ... {len(hops) - SHOWN_HOPS} more ...")
            for h in hops[-SHOWN_HOPS // 2 :]:
                print(printable("  " + hop_line(h)))
    if report.verdict is not None:
        stopped = " (stopped early)" if report.stopped_early else ""
        print(printable(f"verdict: {report.verdict.code}{stopped}"))
        print(printable(f"  {report.verdict.message}"))


def cmd_trace(args: argparse.Namespace) -> int:
    inventory = one_site(args, "wgconsole trace").inventory
    # A trace only observes: read-only whatever the command line says.
    collector = make_collector(args, inventory, read_only=True)
    try:
        session = TraceSession(collector, args.client, seconds=args.seconds)
        target = session.resolve()
        hosts = sorted({s.host for s in session.specs})
        print(
            printable(
                f"wgconsole trace: capturing {target.label} on {', '.join(hosts)} "
                f"for {args.seconds:g} s"
            ),
            file=sys.stderr,
            flush=True,
        )
        report = session.run()
    except TraceError as exc:
        print(f"wgconsole trace: {printable(str(exc))}", file=sys.stderr)
        return EXIT_CANNOT
    except KeyboardInterrupt:
        # The captures end on their hosts when their channels close (EOF interrupts them).
        session.stop.set()
        return 130
    finally:
        collector.close()
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_report(report)
    assert report.verdict is not None
    if report.verdict.code == "inconclusive":
        return EXIT_CANNOT
    return EXIT_OK if report.verdict.code == "ok" else EXIT_PROBLEM
