"""The fleet collector a command line's global options describe (one place for them)."""

from __future__ import annotations

import argparse

from wgconsole.core.inventory import Inventory
from wgconsole.poll.collector import FleetCollector


def collector(
    args: argparse.Namespace,
    inventory: Inventory,
    *,
    last_success: dict[str, float] | None = None,
    read_only: bool = False,
    poll_deadline: float | None = None,
) -> FleetCollector:
    """`read_only`: read-only whatever the command line says (a command that only reads);
    `poll_deadline`: a poll's deadline when it is not the command timeout."""
    return FleetCollector(
        inventory,
        accept_new_host_keys=args.accept_new_host_keys,
        read_only=read_only or args.read_only,
        timeout=args.timeout,
        last_success=last_success,
        poll_deadline=poll_deadline,
    )
