"""The `wgconsole` command line: the console itself, `status`, `whereis` and `lab`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from wgconsole.cli import guard as cli_guard
from wgconsole.cli import metrics as cli_metrics
from wgconsole.cli import operations as cli_ops
from wgconsole.cli import probe as cli_probe
from wgconsole.cli import trace as cli_trace
from wgconsole.cli.args import ArgParser, add_global_options, global_options
from wgconsole.cli.collecting import collector as make_collector
from wgconsole.cli.sites import all_sites, one_site
from wgconsole.config.inventory_file import InventoryError
from wgconsole.config.paths import lab_inventory_path, state_dir
from wgconsole.config.probe_key import ProbeKeyError, optional_probe_key
from wgconsole.config.sites import Site
from wgconsole.core.fleet import matching_service
from wgconsole.core.inventory import Inventory
from wgconsole.core.records import LbObservation
from wgconsole.core.text import printable
from wgconsole.lab.manager import LabError
from wgconsole.poll.sites import SiteCollectors
from wgconsole.probe.handshake import ProbeKey
from wgconsole.tui.options import ConsoleOptions

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_PARTIAL = 2  # some hosts did not answer, or the input was rejected


def _parser() -> argparse.ArgumentParser:
    p = ArgParser(
        prog="wgconsole",
        description="Operations console for WireGuard gateways behind an IPVS load balancer.",
    )
    add_global_options(p, after_command=False)
    common = global_options()
    sub = p.add_subparsers(dest="command")

    st = sub.add_parser("status", parents=[common], help="one snapshot of the whole fleet")
    st.add_argument("--json", action="store_true", help="machine-readable output")

    wi = sub.add_parser(
        "whereis", parents=[common], help="the gateway the kernel's sh scheduler picks for sources"
    )
    wi.add_argument("addresses", nargs="+", metavar="ADDR[:PORT]")
    wi.add_argument(
        "--weight",
        action="append",
        default=[],
        metavar="NAME=N",
        help="as if gateway NAME had weight N (an edit: kernel order unchanged)",
    )
    wi.add_argument(
        "--remove",
        action="append",
        default=[],
        metavar="NAME",
        help="as if gateway NAME were deleted from the service",
    )
    wi.add_argument(
        "--readd",
        action="append",
        default=[],
        metavar="NAME[=N]",
        help="as if NAME were deleted and added again (it moves to the head)",
    )
    wi.add_argument("--json", action="store_true")

    cli_ops.add_parsers(sub, common)
    cli_metrics.add_parser(sub, common)
    cli_probe.add_parser(sub, common)
    cli_guard.add_parser(sub, common)
    cli_trace.add_parser(sub, common)

    lab = sub.add_parser("lab", help="the real-kernel lab (QEMU): up, down, status")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True)
    up = lab_sub.add_parser("up", help="boot the lab and write its inventory")
    up.add_argument("--gateways", type=int, default=2)
    up.add_argument("--clients", type=int, default=2)
    up.add_argument(
        "--base-port", type=int, default=2220, help="first 127.0.0.1 port forwarded into the lab"
    )
    up.add_argument(
        "--lbs",
        type=int,
        choices=(1, 2),
        default=1,
        help="1: one LB; 2: a director pair (keepalived VRRP + IPVS sync daemon)",
    )
    lab_sub.add_parser("down", help="stop the lab and remove its state")
    ls = lab_sub.add_parser("status", help="is a lab running, and where is its inventory")
    ls.add_argument("--json", action="store_true")

    sub.add_parser("console", parents=[common], help="the live console (the default)")
    return p


CONSOLE_AMONG_SITES = "the console (its Sites view is not built yet)"


def _site_label(args: argparse.Namespace) -> str | None:
    """The name an operation carries among several sites (`--site`); None for the only one."""
    if getattr(args, "site", None) is None:
        return None
    return one_site(args, CONSOLE_AMONG_SITES).label


def _inventory(args: argparse.Namespace) -> Inventory:
    """The one site's inventory a command that acts on one site reads (refused, with the
    candidates, when several are loaded and --site names none)."""
    command = args.command or "console"
    what = CONSOLE_AMONG_SITES if command == "console" else f"wgconsole {command}"
    return one_site(args, what).inventory


def _last_answers_path() -> Path:
    return state_dir() / "last-answers.json"


def _load_last_answers(inventory: Inventory) -> dict[str, float]:
    """When each host last answered a `status` run with this inventory (bastion clock)."""
    try:
        data = json.loads(_last_answers_path().read_text())
        seen = data.get(os.path.abspath(inventory.path), {})
        return {str(k): float(v) for k, v in seen.items() if isinstance(v, int | float)}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def _save_last_answers(inventory: Inventory, seen: dict[str, float]) -> None:
    path = _last_answers_path()
    try:
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                data = {}
        except (OSError, ValueError):
            data = {}
        data[os.path.abspath(inventory.path)] = seen
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)
    except OSError:
        pass  # only the age of a lost host's last answer is lost


def cmd_status(args: argparse.Namespace) -> int:
    sites = all_sites(args)
    if len(sites) > 1:
        return _status_of_sites(args, sites)
    inventory = sites[0].inventory
    collector = make_collector(args, inventory, last_success=_load_last_answers(inventory))
    try:
        fleet = collector.read_fleet()
        _save_last_answers(inventory, collector.last_successes)
    finally:
        collector.close()
    if args.json:
        json.dump(fleet.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        from wgconsole.cli.status_text import print_status

        print_status(fleet)
    return EXIT_OK if all(h.reachable for h in fleet.hosts) else EXIT_PARTIAL


def _status_of_sites(args: argparse.Namespace, sites: Sequence[Site]) -> int:
    """`status` of several sites, read at once, each by its own collector within its own
    deadline: `{"sites": [{"site": NAME, ...one site's object...}]}` (a site that gave no
    reading at all: `{"site": NAME, "error": WHY}`), or a line per site and the full text of
    those with findings. Exit 0 only if every host of every site answered."""
    collectors = SiteCollectors(
        (s.name, make_collector(args, s.inventory, last_success=_load_last_answers(s.inventory)))
        for s in sites
    )
    try:
        readings = collectors.read_fleets()
        for site in sites:
            if readings[site.name].value is not None:
                _save_last_answers(site.inventory, collectors.collectors[site.name].last_successes)
    finally:
        collectors.close()
    if args.json:
        out = [
            {"site": name, "error": r.error}
            if r.value is None
            else {"site": name, **r.value.to_json()}
            for name, r in readings.items()
        ]
        json.dump({"sites": out}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        from wgconsole.cli.status_text import print_sites

        print_sites([(name, r.value, r.error) for name, r in readings.items()])
    complete = all(
        r.value is not None and all(h.reachable for h in r.value.hosts) for r in readings.values()
    )
    return EXIT_OK if complete else EXIT_PARTIAL


def _name_value(items: Sequence[str], option: str, default: int | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep and default is None:
            raise ValueError(f"{option} {item!r}: expected NAME=N")
        try:
            out[name] = int(value) if sep else int(default or 0)
        except ValueError:
            raise ValueError(f"{option} {item!r}: N must be an integer") from None
        if not 0 <= out[name] <= 65535:
            raise ValueError(f"{option} {item!r}: weight out of range")
    return out


def cmd_whereis(args: argparse.Namespace) -> int:
    from wgconsole.core.whereis import WhereIsError, place, proposed_table

    inventory = _inventory(args)
    try:
        weights = _name_value(args.weight, "--weight", None)
        readded = _name_value(args.readd, "--readd", 1)
    except ValueError as exc:
        print(f"wgconsole: {printable(str(exc))}", file=sys.stderr)
        return EXIT_PARTIAL
    collector = make_collector(args, inventory)
    try:
        # The services and weights are all it needs: not the 50,000-entry connection table.
        poll = collector.poll(roles=("lb",), lb_conns=False)
    finally:
        collector.close()
    service = None
    errors = []
    for hp in poll.hosts:
        if isinstance(hp.observation, LbObservation):
            service = matching_service(inventory, hp.observation)
            if service is not None:
                break
        elif hp.error:
            errors.append(f"{hp.name}: {hp.error}")
    if service is None:
        print(
            "wgconsole: the service was not found on any answering load balancer", file=sys.stderr
        )
        for e in errors:
            print(f"  {printable(e)}", file=sys.stderr)
        return EXIT_PARTIAL
    try:
        model = proposed_table(
            inventory, service, weights=weights, removed=args.remove, readded=readded
        )
        placements = place(inventory, model, args.addresses)
    except WhereIsError as exc:
        print(f"wgconsole: {printable(str(exc))}", file=sys.stderr)
        return EXIT_PARTIAL
    if args.json:
        json.dump([p.to_json() for p in placements], sys.stdout)
        sys.stdout.write("\n")
    else:
        for p in placements:
            target = p.gateway or "DROPPED (no available real server for its bucket)"
            print(printable(f"{p.address:<24} bucket {p.bucket:>3}  ->  {target}"))
    return EXIT_OK


def cmd_lab(args: argparse.Namespace) -> int:
    from wgconsole.lab import manager

    if args.lab_command == "up":
        topo = manager.lab_up(args.gateways, args.clients, args.base_port, lbs=args.lbs)
        inv = lab_inventory_path()
        print(f"lab ready: {len(topo.gateways)} gateways, {len(topo.clients)} clients")
        if topo.directors:
            print(
                "director pair: "
                + ", ".join(f"{d.name} ({d.initial_state})" for d in topo.directors)
            )
        print(f"inventory: {inv}")
        print(f"try: wgconsole -i {inv} status")
        return EXIT_OK
    if args.lab_command == "down":
        was = manager.lab_down()
        print("lab stopped and removed" if was else "no lab was running (state removed)")
        return EXIT_OK
    status = manager.lab_status()
    if args.json:
        print(json.dumps(status))
    else:
        for k, v in status.items():
            print(f"{k}: {v}")
    return EXIT_OK if status["running"] else EXIT_ERROR


def console_options(args: argparse.Namespace) -> ConsoleOptions:
    """The console's options from the command line. The handshake probes run when this
    machine has a prober key (`wgconsole probe setup`) at the default path."""
    audit = getattr(args, "audit_log", None)
    key = optional_probe_key(None)
    return ConsoleOptions(
        interval=args.interval,
        read_only=args.read_only,
        theme=args.theme,
        accept_new_host_keys=args.accept_new_host_keys,
        timeout=args.timeout,
        audit_log=Path(audit) if audit else None,
        probe_key=None if key is None else ProbeKey.from_private(key),
    )


def cmd_console(args: argparse.Namespace) -> int:
    inventory = _inventory(args)
    try:
        # Among several sites (`--site`), its operations carry the site it acts on.
        options = replace(console_options(args), site=_site_label(args))
    except ProbeKeyError as exc:
        print(f"wgconsole: {printable(str(exc))}", file=sys.stderr)
        return EXIT_PARTIAL
    # Imported here: the status, whereis and lab commands never pay for Textual's import.
    from wgconsole.tui.app import run_console

    return run_console(options, inventory)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "console"
    handlers = {
        "status": cmd_status,
        "whereis": cmd_whereis,
        "lab": cmd_lab,
        "console": cmd_console,
        "drain": cli_ops.cmd_from_args,
        "undrain": cli_ops.cmd_from_args,
        "weight": cli_ops.cmd_from_args,
        "rebalance": cli_ops.cmd_from_args,
        "lb": cli_ops.cmd_from_args,
        "failover": cli_ops.cmd_from_args,
        "peer": cli_ops.cmd_from_args,
        "metrics": cli_metrics.cmd_metrics,
        "probe": cli_probe.cmd_probe,
        "guard": cli_guard.cmd_guard,
        "trace": cli_trace.cmd_trace,
    }
    try:
        return handlers[command](args)
    except InventoryError as exc:
        # Hosts' text, names and file contents are printed printable (core.text).
        print(f"wgconsole: {printable(str(exc), newlines=True)}", file=sys.stderr)
        return EXIT_PARTIAL
    except LabError as exc:
        print(f"wgconsole lab: {printable(str(exc), newlines=True)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
