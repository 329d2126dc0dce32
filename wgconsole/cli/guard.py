"""`wgconsole guard`: probe every gateway in rounds and evict one that died (core.guard_policy
decides; cli.guard_actor acts: the `evict` operation, audited like an operator's).

`--dry-run` is what an operator runs before trusting a guard: the same probes and the same
rules, every verdict change printed with the time, `would evict` where the guard would act,
and nothing sent to any host but the probes.
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
from wgconsole.cli.sites import one_site
from wgconsole.cli.stopping import stop_on_sigterm
from wgconsole.config.inventory_file import InventoryError
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
        help="probe the gateways in rounds and evict one that stops answering",
    )
    g.add_argument("--dry-run", action="store_true", help="report what it would do; change nothing")
    g.add_argument("--key", type=Path, help="the prober's key file (default: probe setup's)")
    g.add_argument(
        "--server-key",
        metavar="PUBLIC_KEY",
        help="the gateways' public key (default: read from the gateways; needed with --dry-run)",
    )
    g.add_argument(
        "--audit-log", default=None, help="audit log (default: the operations' audit log)"
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
    out_of_service: Callable[[], set[str]],
    say: Callable[[str], None],
    policy: GuardPolicy | None = None,
    evict: Callable[[str], bool] | None = None,
    back: Callable[[dict[str, bool]], None] | None = None,
) -> int:
    """Rounds of probes until `rounds` (None: until interrupted: SIGINT, as systemd stops
    it); `evict` (None: a dry run) acts on a condemned gateway; `back` is told each round
    whether each gateway out of service answered its probe (an evicted one that answers came
    back). Returns the evictions made (or, dry, that would have been)."""
    gateways, _ = targets(inventory, [g.name for g in inventory.gateways])
    state = GuardState()
    shown: dict[str, Verdict] = {}
    evictions = 0
    n = 0
    try:
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
                out_of_service=sorted(out_of_service()),
            ):
                if d.verdict == "evict":
                    if _act(evict, d.gateway, f"{stamp} ", d.why, say):
                        evictions += 1
                    else:
                        # Not evicted: the policy must not count it as done (its rate limit).
                        state.forget_eviction(d.gateway)
                elif shown.get(d.gateway) != d.verdict:
                    say(f"{stamp} {d.gateway}: {d.verdict} ({d.why})")
                shown[d.gateway] = d.verdict
            if back is not None:
                back({g: answered.get(g, False) for g in sorted(state.out_of_service)})
            n += 1
            time.sleep(max(0.0, started + ROUND_INTERVAL - time.monotonic()))
    except KeyboardInterrupt:
        say("interrupted")
    return evictions


def _act(
    evict: Callable[[str], bool] | None,
    gateway: str,
    stamp: str,
    why: str,
    say: Callable[[str], None],
) -> bool:
    if evict is None:
        say(f"{stamp}would evict {gateway}: {why}")
        return True
    say(f"{stamp}evicting {gateway}: {why}")
    return evict(gateway)


def cmd_guard(args: argparse.Namespace) -> int:
    if args.rounds is not None and args.rounds < 1:
        return _usage("--rounds must be at least 1")
    if args.dry_run and args.server_key is None:
        # A dry run reads no host but by its probes: it is told the key.
        return _usage("--dry-run needs --server-key (a dry run connects to no host)")
    if not args.dry_run and args.read_only:
        return _usage("--read-only: the guard could evict nothing (use --dry-run)")
    if args.server_key is not None:
        problem = wireguard_key_problem(args.server_key)
        if problem is not None:
            return _usage(f"--server-key: {problem}")
    site = one_site(args, "wgconsole guard")
    inventory = site.inventory
    unknown = [g for g in args.out_of_service if g not in {x.name for x in inventory.gateways}]
    if unknown:
        return _usage(f"no such gateway: {', '.join(unknown)}")
    try:
        key = ProbeKey.from_private(read_probe_key(args.key or default_probe_key_path()))
    except ProbeKeyError as exc:
        return _usage(str(exc))
    say: Callable[[str], None] = lambda line: print(printable(line), flush=True)  # noqa: E731
    if args.dry_run:
        would = run_guard(
            inventory,
            key,
            base64.b64decode(args.server_key),
            rounds=args.rounds,
            out_of_service=lambda: set(args.out_of_service),
            say=say,
        )
        print(f"dry run: {would} eviction(s) would have been made; nothing was changed")
        return EXIT_OK
    return _guard(args, inventory, key, say, site=site.label)


def _guard(
    args: argparse.Namespace,
    inventory: Inventory,
    key: ProbeKey,
    say: Callable[[str], None],
    *,
    site: str | None = None,
) -> int:
    from wgconsole.cli.guard_actor import Evictor, server_key  # SSH and operations: only here

    stop_on_sigterm()
    evictor = Evictor(args, inventory, say, site=site)
    try:
        fleet = evictor.read()
        server = args.server_key or server_key(fleet)
        if server is None:
            return _usage(
                "the gateways did not show one public key (none answered, or they differ): "
                "give --server-key"
            )
        out = evictor.out() | set(args.out_of_service)
        names = ", ".join(g.name for g in inventory.gateways)
        say(f"guarding {names}; out of service now: {', '.join(sorted(out)) or 'none'}")
        evictor.start_refreshing()
        evictions = run_guard(
            inventory,
            key,
            base64.b64decode(server),
            rounds=args.rounds,
            out_of_service=lambda: evictor.out() | set(args.out_of_service),
            say=say,
            evict=evictor.evict,
            back=evictor.back,
        )
    finally:
        evictor.close()
    say(f"guard stopped: {evictions} eviction(s)")
    return EXIT_OK


def _usage(message: str) -> int:
    print(f"wgconsole guard: {printable(message)}", file=sys.stderr)
    return EXIT_USAGE


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
