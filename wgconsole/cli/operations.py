"""The command line of operations: drain, undrain, weight, rebalance, peer add/remove (a preview,
a typed confirmation, steps).

Each command prints its plan, asks the operator to type the target's name (unless --yes),
then prints every step as it is verified. Exit status 0 only when the result was verified.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wgconsole.cli.args import ArgParser
from wgconsole.cli.collecting import collector as make_collector
from wgconsole.cli.sites import one_site
from wgconsole.core.inventory import Inventory
from wgconsole.core.text import printable
from wgconsole.ops import catalog
from wgconsole.ops.hostcmd.clientconf import print_qr
from wgconsole.ops.machinery.audit import AuditLog, default_audit_path
from wgconsole.ops.machinery.context import OpContext, progress_line
from wgconsole.ops.machinery.operation import FollowUp, Operation, Planned, Refused, plan, run
from wgconsole.ops.procedures.peers.common import PeerAddResult
from wgconsole.poll.collector import FleetCollector

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2


def add_parsers(sub: argparse._SubParsersAction[ArgParser], global_options: ArgParser) -> None:
    """The operations' parsers; `global_options`: wgconsole's own, accepted after them too."""
    common = ArgParser(add_help=False, parents=[global_options])
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
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wait for the clients' handshakes on other gateways (the default; --no-wait: do not)",
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
    u.add_argument(
        "--rebalance",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="then move the clients sh now sends to it (default: ask when interactive)",
    )
    rb = sub.add_parser(
        "rebalance",
        parents=[common],
        help="move the clients whose LB entry is not where the sh table sends them",
    )
    rb.add_argument("--wait-timeout", type=float, default=60.0, metavar="S")
    w = sub.add_parser("weight", parents=[common], help="set a gateway's weight on every LB")
    w.add_argument("gateway")
    w.add_argument("value", metavar="N")
    lb = sub.add_parser("lb", parents=[global_options], help="the director pair's load balancers")
    lb_sub = lb.add_subparsers(dest="lb_command", required=True)
    al = lb_sub.add_parser(
        "align", parents=[common], help="give a backup director the VIP holder's sh table"
    )
    al.add_argument("lb", nargs="?", default=None, help="the backup (default: every one)")
    al.add_argument(
        "--ignore-unknown-keepalived",
        action="store_true",
        help="align a backup whose keepalived runs but could not be read (a reload may undo it)",
    )
    fo = sub.add_parser(
        "failover", parents=[common], help="move the VIP to another director (keepalived)"
    )
    fo.add_argument("--to", default=None, metavar="LB", help="default: the one VRRP elects next")
    fo.add_argument(
        "--allow-differing-tables",
        action="store_true",
        help="go ahead although the target's sh table differs (clients lose their session)",
    )
    peer = sub.add_parser(
        "peer", parents=[global_options], help="add or remove a peer on every gateway at once"
    )
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


def operation(args: argparse.Namespace) -> Operation:
    """The operation the command line names, made from its arguments."""
    if args.command == "drain":
        return catalog.Drain(
            args.gateway,
            wait=args.wait,
            wait_timeout=args.wait_timeout,
            resume=args.resume,
            break_lock=args.break_lock,
        )
    if args.command == "undrain":
        return catalog.Undrain(args.gateway, args.weight, break_lock=args.break_lock)
    if args.command == "weight":
        return catalog.Weight(args.gateway, args.value, break_lock=args.break_lock)
    if args.command == "rebalance":
        return catalog.Rebalance(wait_timeout=args.wait_timeout, break_lock=args.break_lock)
    if args.command == "lb":
        return catalog.LbAlign(
            args.lb,
            break_lock=args.break_lock,
            ignore_unknown_keepalived=args.ignore_unknown_keepalived,
        )
    if args.command == "failover":
        return catalog.Failover(
            args.to,
            allow_differing_tables=args.allow_differing_tables,
            break_lock=args.break_lock,
        )
    if args.command == "probe":
        return catalog.ProbeSetup(args.name, None if args.key is None else str(args.key))
    if args.peer_command == "add":
        return catalog.PeerAdd(
            args.name,
            args.public_key,
            args.address,
            args.keepalive,
            args.output,
            dry_run=args.dry_run,
        )
    return catalog.PeerRemove(args.name)


def _shown(text: str) -> str:
    return printable(text, newlines=True)


def _confirm(args: argparse.Namespace, planned: Planned) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        print("wgconsole: not a terminal: pass --yes to run without confirmation", file=sys.stderr)
        return False
    return planned.confirmed_by(input(f"Type {planned.target!r} to go ahead: "))


def cmd_from_args(args: argparse.Namespace) -> int:
    """The operation the command line names, on the inventory and hosts it names."""
    site = one_site(args, f"wgconsole {_command_words(args)}")
    collector = make_collector(args, site.inventory)
    try:
        return cmd_operation(args, site.inventory, collector, site=site.label)
    finally:
        collector.close()


def _command_words(args: argparse.Namespace) -> str:
    """`drain`, `peer add`, `lb align`, `probe setup`: the operation as typed."""
    sub = getattr(args, "peer_command", None) or getattr(args, "lb_command", None)
    if args.command == "probe":
        sub = "setup"
    return args.command if sub is None else f"{args.command} {sub}"


def cmd_operation(
    args: argparse.Namespace,
    inventory: Inventory,
    collector: FleetCollector,
    *,
    site: str | None = None,
) -> int:
    """Plan from a fresh fleet, show the plan, confirm, execute with visible steps. `site`:
    the site acted on when several are loaded (its preview, lock and audit record say it)."""
    if args.read_only and not args.dry_run:
        print("wgconsole: --read-only: no operation can run", file=sys.stderr)
        return EXIT_REFUSED
    op = operation(args)
    if getattr(args, "qr", False) and not sys.stdout.isatty():
        print(
            "wgconsole: --qr draws the private key: only onto an interactive terminal",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    audit = AuditLog(Path(args.audit_log) if args.audit_log else default_audit_path())
    # Plans, steps and outcomes quote hosts' output and names: printed printable (no control
    # character of theirs reaches the terminal), line breaks kept.
    progress = lambda p: print(f"  {_shown(progress_line(p))}", flush=True)  # noqa: E731
    ctx = OpContext(
        inventory,
        collector.transports,
        audit,
        progress,
        args.timeout,
        collector.parse_memos,
        site=site,
    )
    planned = plan(op, ctx, collector.read_fleet, {})
    if isinstance(planned, Refused):
        if planned.cause == "unreadable":
            print(f"wgconsole: FAILED: {_shown(planned.reason)}", file=sys.stderr)
            return EXIT_FAILED
        print(f"wgconsole: {_shown(planned.reason)}", file=sys.stderr)
        return EXIT_REFUSED
    print(_shown("\n".join(planned.preview)))
    if args.dry_run:
        return EXIT_OK
    if not _confirm(args, planned):
        print("cancelled: nothing was changed")
        return EXIT_REFUSED
    outcome = run(planned)
    if outcome.failed:
        print(f"wgconsole: FAILED: {_shown(outcome.summary)}", file=sys.stderr)
        return EXIT_FAILED
    print(_shown(outcome.summary))
    if getattr(args, "qr", False) and isinstance(outcome.result, PeerAddResult):
        print_qr(outcome.result.config, sys.stdout)
    if outcome.follow_up is not None and outcome.follow_up.kind == "rebalance":
        return _offer_rebalance(args, ctx, collector, outcome.follow_up)
    return EXIT_OK


def _offer_rebalance(
    args: argparse.Namespace, ctx: OpContext, collector: FleetCollector, follow_up: FollowUp
) -> int:
    """The follow-up of an undrain: the clients the restored table sends to the gateway are
    still on the others (keepalives keep their entries). `--rebalance` moves them,
    `--no-rebalance` does not; neither: asked on a terminal (without --yes), else only said."""
    if args.rebalance is False:
        return EXIT_OK
    planned = plan(follow_up.operation, ctx, collector.read_fleet, {})
    if isinstance(planned, Refused):
        print(f"rebalance not planned: {_shown(planned.reason)}")
        return EXIT_OK
    print()
    print(_shown("\n".join(planned.preview)))
    if planned.changes_nothing:
        return EXIT_OK
    if args.rebalance is None:
        if args.yes or not sys.stdin.isatty():
            print("not rebalanced: `wgconsole rebalance` moves them (or undrain --rebalance)")
            return EXIT_OK
        answer = input("Rebalance now? Type 'rebalance' to go ahead, anything else not to: ")
        if not planned.confirmed_by(answer):
            print("not rebalanced: `wgconsole rebalance` moves them later")
            return EXIT_OK
    outcome = run(planned)
    if outcome.failed:
        print(f"wgconsole: rebalance FAILED: {_shown(outcome.summary)}", file=sys.stderr)
        return EXIT_FAILED
    print(_shown(outcome.summary))
    return EXIT_OK
