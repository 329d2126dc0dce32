"""`wgconsole guard --dry-run`: probe every gateway in rounds and say what an unattended guard
would do (core.guard_policy decides), without doing it.

The eviction itself is not built yet: without `--dry-run` the command refuses. A dry run is
what an operator runs before trusting a guard: the same probes and the same rules, every
verdict change printed with the time, `would evict` where the guard would act.
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wgconsole.cli.args import parse_alone
from wgconsole.config.inventory_file import InventoryError, find_inventory, load_inventory
from wgconsole.config.probe_key import ProbeKeyError, default_probe_key_path, read_probe_key
from wgconsole.core.guard_policy import GuardPolicy, GuardState, Verdict, judge
from wgconsole.core.inventory import Inventory
from wgconsole.core.text import printable
from wgconsole.core.wgkey import wireguard_key_problem
from wgconsole.probe.fleet_probe import targets
from wgconsole.probe.handshake import ProbeKey
from wgconsole.probe.prober import probe

EXIT_OK = 0
EXIT_USAGE = 2
ROUND_INTERVAL = 0.5  # s between round starts
ROUND_TIMEOUT = 0.4  # s a round waits for answers (resent half-way)


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    g = sub.add_parser(
        "guard",
        parents=[common],
        help="probe the gateways in rounds and say what an unattended guard would do",
    )
    g.add_argument(
        "--dry-run", action="store_true", help="report what it would do (the only mode yet)"
    )
    g.add_argument("--key", type=Path, help="the prober's key file (default: probe setup's)")
    g.add_argument(
        "--server-key", required=True, metavar="PUBLIC_KEY", help="the gateways' public key"
    )
    g.add_argument(
        "--rounds", type=int, default=None, metavar="N", help="stop after N rounds (default: run)"
    )
    g.add_argument(
        "--out-of-service",
        action="append",
        default=[],
        metavar="GATEWAY",
        help="a gateway already out of service (drained): not judged",
    )


def run_guard(
    inventory: Inventory,
    key: ProbeKey,
    server: bytes,
    *,
    rounds: int | None,
    out_of_service: list[str],
    say: Callable[[str], None],
    policy: GuardPolicy | None = None,
) -> int:
    """Rounds of probes until `rounds` (None: until interrupted); returns the evictions it
    would have made."""
    gateways, _ = targets(inventory, [g.name for g in inventory.gateways])
    state = GuardState()
    shown: dict[str, Verdict] = {}
    would = 0
    n = 0
    while rounds is None or n < rounds:
        started = time.monotonic()
        results = probe(gateways, None, key, server, timeout=ROUND_TIMEOUT)
        answered = {r.target: r.ok for r in results}
        stamp = time.strftime("%H:%M:%S")
        for d in judge(
            policy or GuardPolicy(),
            state,
            time.monotonic(),
            answered,
            out_of_service=out_of_service,
        ):
            if d.verdict == "evict":
                would += 1
                say(f"{stamp} would evict {d.gateway}: {d.why}")
            elif shown.get(d.gateway) != d.verdict:
                say(f"{stamp} {d.gateway}: {d.verdict} ({d.why})")
            shown[d.gateway] = d.verdict
        n += 1
        time.sleep(max(0.0, started + ROUND_INTERVAL - time.monotonic()))
    return would


def cmd_guard(args: argparse.Namespace) -> int:
    if not args.dry_run:
        print(
            "wgconsole guard: eviction is not built yet; --dry-run reports what it would do",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.rounds is not None and args.rounds < 1:
        print("wgconsole guard: --rounds must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    problem = wireguard_key_problem(args.server_key)
    if problem is not None:
        print(f"wgconsole guard: --server-key: {problem}", file=sys.stderr)
        return EXIT_USAGE
    inventory = load_inventory(find_inventory(args.inventory))
    unknown = [g for g in args.out_of_service if g not in {x.name for x in inventory.gateways}]
    if unknown:
        print(f"wgconsole guard: no such gateway: {printable(', '.join(unknown))}", file=sys.stderr)
        return EXIT_USAGE
    try:
        key = ProbeKey.from_private(read_probe_key(args.key or default_probe_key_path()))
    except ProbeKeyError as exc:
        print(f"wgconsole guard: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    would = run_guard(
        inventory,
        key,
        base64.b64decode(args.server_key),
        rounds=args.rounds,
        out_of_service=args.out_of_service,
        say=lambda line: print(printable(line), flush=True),
    )
    print(f"dry run: {would} eviction(s) would have been made; nothing was changed")
    return EXIT_OK


def main(argv: list[str]) -> int:
    """`wgconsole guard ...` parsed as the full command line parses it, with only this
    command's imports (it runs for days on a director: no SSH, operations or console)."""
    args = parse_alone(add_parser, argv)
    try:
        return cmd_guard(args)
    except InventoryError as exc:
        print(f"wgconsole: {printable(str(exc), newlines=True)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
