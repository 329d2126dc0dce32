"""The command line of operations: drain, undrain, weight (a preview, a typed confirmation, steps).

Each command prints its plan, asks the operator to type the target's name (unless --yes),
then prints every step as it is verified. Exit status 0 only when the result was verified.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from wgconsole.collect import FleetCollector
from wgconsole.inventory_types import Inventory
from wgconsole.ops.audit import AuditLog, default_audit_path
from wgconsole.ops.context import OpContext, Progress
from wgconsole.ops.errors import OpError, ValidationError

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
    u = sub.add_parser("undrain", parents=[common], help="return a drained gateway to service")
    u.add_argument("gateway")
    u.add_argument("--weight", type=int, default=None, help="instead of the recorded weight")
    w = sub.add_parser("weight", parents=[common], help="set a gateway's weight on every LB")
    w.add_argument("gateway")
    w.add_argument("value", metavar="N")


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
        if not _confirm(args, args.gateway):
            print("cancelled: nothing was changed")
            return EXIT_REFUSED
        summary = execute()
    except ValidationError as exc:
        print(f"wgconsole: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except OpError as exc:
        print(f"wgconsole: FAILED: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(summary)
    return EXIT_OK


def cmd_drain(args: argparse.Namespace, inventory: Inventory, collector: FleetCollector) -> int:
    from wgconsole.ops.drain import execute_drain, plan_drain

    def go(ctx: OpContext) -> tuple[list[str], Callable[[], str] | None]:
        plan = plan_drain(inventory, collector.snapshot(), args.gateway)

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

    return run_op(args, inventory, collector, go)


def cmd_weight(args: argparse.Namespace, inventory: Inventory, collector: FleetCollector) -> int:
    from wgconsole.ops.weight import execute_weight, plan_undrain, plan_weight

    def go(ctx: OpContext) -> tuple[list[str], Callable[[], str] | None]:
        fleet = collector.snapshot()
        if args.command == "undrain":
            plan = plan_undrain(ctx, fleet, args.gateway, args.weight)
        else:
            plan = plan_weight(inventory, fleet, args.gateway, args.value)

        def execute() -> str:
            execute_weight(ctx, plan, break_lock=args.break_lock)
            return f"{plan.gateway.name} now has weight {plan.target} on every LB (verified)"

        return plan.describe(), execute

    return run_op(args, inventory, collector, go)
