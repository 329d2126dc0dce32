"""`wgconsole probe`: is each gateway's WireGuard up, judged by a completed handshake.

Exit 0 when every target answered, 1 when any did not, 2 when nothing could be probed (no
probe key, no server key). `--check GATEWAY` is the same for one gateway and prints nothing:
a keepalived MISC_CHECK. A probe needs no SSH when `--server-key` is given; without it the
gateways' public key is read from a poll (they must agree).

`probe setup` makes this machine's prober key and adds it to every gateway: an operation like
`peer add` (preview, confirmation, every gateway or none, audit), loaded only when asked for.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

from wgconsole.cli.args import parse_alone
from wgconsole.cli.sites import one_site
from wgconsole.config.inventory_file import InventoryError
from wgconsole.config.probe_key import ProbeKeyError, default_probe_key_path, read_probe_key
from wgconsole.core.inventory import Inventory
from wgconsole.core.text import printable
from wgconsole.core.wgkey import wireguard_key_problem
from wgconsole.probe.fleet_probe import VIP, targets, unknown_targets
from wgconsole.probe.handshake import ProbeKey
from wgconsole.probe.prober import DEFAULT_TIMEOUT, ProbeResult, Target, probe

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CANNOT = 2
SETUP = "setup"


class CannotProbe(Exception):
    """Nothing can be probed: says why and what to do (never a key's text)."""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "probe",
        parents=[common],
        help="is each gateway's WireGuard up: a real handshake to each, and through the VIP",
    )
    p.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help=f"gateway names or {VIP!r}; or {SETUP!r}: add this machine's prober key to every "
        "gateway",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--check",
        metavar="GATEWAY",
        help="probe that gateway's real-server address only; print nothing, exit 0 or 1 "
        "(a keepalived MISC_CHECK; needs --server-key)",
    )
    p.add_argument(
        "--key",
        type=Path,
        help="the prober's private key file (default: $XDG_STATE_HOME/wgconsole/probe.key)",
    )
    setup = p.add_argument_group(f"probe {SETUP}")
    setup.add_argument(
        "--name", default=None, help="the prober's name in the inventory (default: probe-HOST)"
    )
    setup.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    setup.add_argument("--dry-run", action="store_true", help="show the plan only")
    setup.add_argument("--audit-log", default=None, help="audit log (default: the operations')")
    p.add_argument(
        "--server-key",
        metavar="PUBLIC_KEY",
        help="the gateways' public key (default: read from the gateways over SSH)",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"time for each round of probes (default {DEFAULT_TIMEOUT:g})",
    )


def load_key(path: Path) -> ProbeKey:
    try:
        key = read_probe_key(path)
    except ProbeKeyError as exc:
        raise CannotProbe(str(exc)) from None
    return ProbeKey.from_private(key)


def _server_key(args: argparse.Namespace, inventory: Inventory) -> bytes:
    if args.server_key is None and args.check is not None:
        raise CannotProbe("--check needs --server-key: a health check never waits for SSH")
    if args.server_key is not None:
        problem = wireguard_key_problem(args.server_key)
        if problem:
            raise CannotProbe(f"--server-key: {problem}")
        return base64.b64decode(args.server_key)
    # Only here: SSH and the poll are imported when the key is not given.
    from wgconsole.cli.collecting import collector as make_collector

    collector = make_collector(args, inventory, read_only=True)
    try:
        fleet = collector.read_fleet()
    finally:
        collector.close()
    keys = {g.public_key for g in fleet.gateways if g.public_key}
    if len(keys) != 1:
        said = "no gateway told its public key" if not keys else "the gateways' keys differ"
        raise CannotProbe(f"{said}: give it with --server-key")
    return base64.b64decode(keys.pop())


def _targets(args: argparse.Namespace, inventory: Inventory) -> tuple[list[Target], Target | None]:
    if args.check is not None:
        gateways, _ = targets(inventory, [args.check])
        if not gateways:
            raise CannotProbe(f"--check {printable(args.check)}: no such gateway")
        return gateways, None
    unknown = unknown_targets(inventory, args.targets)
    if unknown:
        names = ", ".join(printable(t) for t in unknown)
        raise CannotProbe(f"no such target: {names} (gateway names, or {VIP})")
    return targets(inventory, args.targets)


def _line(r: ProbeResult) -> str:
    if r.ok:
        return f"✔ {r.target:<20} {r.address:<24} handshake in {r.rtt_ms:.1f} ms"
    return f"✘ {r.target:<20} {r.address:<24} {r.error}"


def _is_setup(args: argparse.Namespace) -> bool:
    """`probe setup`, unless a gateway is named `setup` (then that gateway is probed)."""
    if args.targets != [SETUP] or args.check is not None:
        return False
    inventory = one_site(args, "wgconsole probe").inventory
    return all(g.name != SETUP for g in inventory.gateways)


def _setup_options_misused(args: argparse.Namespace) -> str | None:
    if args.name is not None or args.yes or args.dry_run or args.audit_log is not None:
        return f"--name, --yes, --dry-run and --audit-log are for `probe {SETUP}`"
    return None


def cmd_probe(args: argparse.Namespace) -> int:
    if _is_setup(args):
        if args.json or args.server_key is not None:
            print(f"wgconsole probe {SETUP}: --json and --server-key are not its", file=sys.stderr)
            return EXIT_CANNOT
        # Only here: the operations, SSH and the poll (a health check never loads them).
        from wgconsole.cli.operations import cmd_from_args

        return cmd_from_args(args)
    try:
        misused = _setup_options_misused(args)
        if misused is not None:
            raise CannotProbe(misused)
        if not 0 < args.wait <= 60:
            raise CannotProbe("--wait must be more than 0 and at most 60 seconds")
        inventory = one_site(args, "wgconsole probe").inventory
        gateways, vip = _targets(args, inventory)
        key = load_key(args.key or default_probe_key_path())
        server = _server_key(args, inventory)
    except CannotProbe as exc:
        if args.check is None:
            print(f"wgconsole probe: {printable(str(exc))}", file=sys.stderr)
        return EXIT_CANNOT
    results = probe(gateways, vip, key, server, timeout=args.wait)
    if args.check is None and args.json:
        json.dump([r.as_json() for r in results], sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.check is None:
        for r in results:
            print(printable(_line(r)))
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def main(argv: list[str]) -> int:
    """`wgconsole probe ...` parsed as the full command line parses it (global options before
    or after the command), with only this command's imports."""
    args = parse_alone(add_parser, argv)
    try:
        return cmd_probe(args)
    except InventoryError as exc:
        if args.check is None:
            print(f"wgconsole: {printable(str(exc), newlines=True)}", file=sys.stderr)
        return EXIT_CANNOT
    except KeyboardInterrupt:
        return 130
