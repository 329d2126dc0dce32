"""The command line of operations: drain, undrain, weight (a preview, a typed confirmation, steps).

Each command prints its plan, asks the operator to type the target's name (unless --yes),
then prints every step as it is verified. Exit status 0 only when the result was verified.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from wgconsole.core.inventory import Inventory
from wgconsole.core.whereis import WhereIsError
from wgconsole.ops.audit import AuditLog, default_audit_path
from wgconsole.ops.context import OpContext, Progress
from wgconsole.ops.errors import OpError, ValidationError
from wgconsole.poll.collector import FleetCollector

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2

SYMBOLS = {"step": "…", "ok": "✔", "fail": "✖", "info": " ", "warn": "⚠"}


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    common.add_argument("--dry-run", action="store_true", help="show the plan only")
    common.add_argument(
        "--break-lock",
        action="store_true",
        help="take the LB lock even if another operator holds it",
    )
    common.add_argument(
        "--audit-log", default=None, help=f"audit log (default {default_audit_path()})"
    )
    d = sub.add_parser("drain", parents=[common], help="drain a gateway (really: see README)")
    d.add_argument("gateway")
    d.add_argument(
        "--no-wait",
        dest="wait",
        action="store_false",
        help="do not wait for the clients' handshakes on other gateways",
    )
    d.add_argument("--wait-timeout", type=float, default=180.0, metavar="S")
    d.add_argument(
        "--resume",
        action="store_true",
        help="only finish a drain that was cut short (refused if there is none)",
    )
    u = sub.add_parser("undrain", parents=[common], help="return a drained gateway to service")
    u.add_argument("gateway")
    u.add_argument("--weight", type=int, default=None, help="instead of the recorded weight")
    w = sub.add_parser("weight", parents=[common], help="set a gateway's weight on every LB")
    w.add_argument("gateway")
    w.add_argument("value", metavar="N")
    peer = sub.add_parser("peer", help="add or remove a peer on every gateway at once")
    peer_sub = peer.add_subparsers(dest="peer_command", required=True)
    pa = peer_sub.add_parser("add", parents=[common], help="a new client on every gateway")
    pa.add_argument("name")
    pa.add_argument("--public-key", default=None, help="the client's key (else one is generated)")
    pa.add_argument("--address", default=None, help="tunnel address (else the next free one)")
    pa.add_argument(
        "--output",
        default=None,
        metavar="FILE",
        help="write the client config here (mode 0600); needed for a generated key",
    )
    pa.add_argument("--keepalive", type=int, default=None)
    pa.add_argument(
        "--qr",
        action="store_true",
        help="also draw the config (private key included) as a QR code on this terminal",
    )
    pr = peer_sub.add_parser("remove", parents=[common], help="a client off every gateway")
    pr.add_argument("name", help="inventory client name or public key")


def _print_progress(p: Progress) -> None:
    took = f" ({p.seconds:.1f} s)" if p.seconds is not None and p.kind != "step" else ""
    print(f"  {SYMBOLS.get(p.kind, ' ')} {p.text}{took}", flush=True)


def _confirm(args: argparse.Namespace, target: str) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        print("wgconsole: not a terminal: pass --yes to run without confirmation", file=sys.stderr)
        return False
    typed = input(f"Type {target!r} to go ahead: ").strip()
    return typed == target


def run_op(
    args: argparse.Namespace,
    inventory: Inventory,
    collector: FleetCollector,
    plan_and_run: Callable[[OpContext], tuple[list[str], Callable[[], str] | None]],
    target: str,
) -> int:
    """Plan from a fresh snapshot, show it, confirm, execute with visible steps."""
    if args.read_only and not args.dry_run:
        print("wgconsole: --read-only: no operation can run", file=sys.stderr)
        return EXIT_REFUSED
    audit = AuditLog(Path(args.audit_log) if args.audit_log else default_audit_path())
    ctx = OpContext(inventory, collector.transports, audit, _print_progress, args.timeout)
    try:
        lines, execute = plan_and_run(ctx)
        print("\n".join(lines))
        if execute is None or args.dry_run:
            return EXIT_OK
        if not _confirm(args, target):
            print("cancelled: nothing was changed")
            return EXIT_REFUSED
        summary = execute()
    except (ValidationError, WhereIsError) as exc:
        print(f"wgconsole: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except OpError as exc:
        print(f"wgconsole: FAILED: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(summary)
    return EXIT_OK


def cmd_drain(args: argparse.Namespace, inventory: Inventory, collector: FleetCollector) -> int:
    from wgconsole.ops.drain import execute_drain, find_record, plan_drain
    from wgconsole.ops.validate import gateway as find_gateway

    def go(ctx: OpContext) -> tuple[list[str], Callable[[], str] | None]:
        gw = find_gateway(inventory, args.gateway)  # checked before anything is sent
        fleet = collector.read_fleet()
        record = find_record(ctx, gw)
        plan = plan_drain(inventory, fleet, args.gateway, record, resume=args.resume)

        def execute() -> str:
            r = execute_drain(
                ctx,
                plan,
                wait=args.wait,
                wait_timeout=args.wait_timeout,
                break_lock=args.break_lock,
            )
            moved = ", ".join(f"{k} -> {v}" for k, v in sorted(r.moved.items())) or "none"
            state = "complete" if r.complete else "NOT complete"
            return f"drain of {r.gateway} {state} in {r.seconds:.1f} s; moved: {moved}"

        return plan.describe(), execute

    return run_op(args, inventory, collector, go, args.gateway)


def cmd_weight(args: argparse.Namespace, inventory: Inventory, collector: FleetCollector) -> int:
    from wgconsole.ops.validate import gateway as find_gateway
    from wgconsole.ops.validate import weight as valid_weight
    from wgconsole.ops.weight import execute_weight, plan_undrain, plan_weight

    def go(ctx: OpContext) -> tuple[list[str], Callable[[], str] | None]:
        # The operator's input is checked before anything is sent.
        find_gateway(inventory, args.gateway)
        if args.command != "undrain":
            valid_weight(args.value)
        elif args.weight is not None:
            valid_weight(args.weight)
        fleet = collector.read_fleet()
        if args.command == "undrain":
            plan = plan_undrain(ctx, fleet, args.gateway, args.weight)
        else:
            plan = plan_weight(inventory, fleet, args.gateway, args.value)

        def execute() -> str:
            execute_weight(ctx, plan, break_lock=args.break_lock)
            return f"{plan.gateway.name} now has weight {plan.target} on every LB (verified)"

        return plan.describe(), execute

    return run_op(args, inventory, collector, go, args.gateway)


def cmd_peer(args: argparse.Namespace, inventory: Inventory, collector: FleetCollector) -> int:
    from wgconsole.ops.clientconf import print_qr
    from wgconsole.ops.peers import (
        execute_peer_add,
        execute_peer_remove,
        plan_peer_add,
        plan_peer_remove,
        precheck_peer_add,
    )

    if args.peer_command == "add" and args.qr and not sys.stdout.isatty():
        print(
            "wgconsole: --qr draws the private key: only onto an interactive terminal",
            file=sys.stderr,
        )
        return EXIT_REFUSED

    def go(ctx: OpContext) -> tuple[list[str], Callable[[], str] | None]:
        if args.peer_command == "add":
            precheck_peer_add(args.name, args.public_key, args.address, args.keepalive)
        fleet = collector.read_fleet()
        if args.peer_command == "remove":
            rplan = plan_peer_remove(inventory, fleet, args.name)
            return rplan.describe(), lambda: "\n".join(execute_peer_remove(ctx, rplan).summary())
        aplan = plan_peer_add(
            inventory, fleet, args.name, args.public_key, args.address, keepalive=args.keepalive
        )
        if aplan.generate_key and not args.output and not args.dry_run:
            raise ValidationError(
                "a generated private key is written only to the client's config file: "
                "give --output FILE (or --public-key for a key the client already has)"
            )

        def execute() -> str:
            result = execute_peer_add(ctx, aplan, keepalive=args.keepalive, output=args.output)
            lines = [*result.summary(), "", result.display_config()]
            if args.qr:
                print("\n".join(lines))
                print_qr(result.config, sys.stdout)
                return ""
            return "\n".join(lines)

        return aplan.describe(), execute

    return run_op(args, inventory, collector, go, args.name)
