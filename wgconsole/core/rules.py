"""Rules every layer applies the same way: what a name may be, what a weight may be.

A gateway's name is part of a file name on every load balancer (its drain record,
`drain-<name>.json`), and the LB's poll recognises a record by that file name. So one rule
serves the inventory's names (load balancers, gateways, clients), the names an operator
gives (`peer add NAME`), and the records' file names: a name that the inventory accepts is
always a safe file name component, and its record is always recognised.
"""

from __future__ import annotations

import re

# ASCII only (explicit ranges, not \w): a name is the same bytes on every host and shell.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}"
NAME = re.compile(NAME_PATTERN)
NAME_RULE = "use letters, digits, '.', '_' or '-' (at most 63, no leading symbol)"

# Sums above 256 starve real servers in sh's 256-bucket table; one weight above is refused.
MAX_WEIGHT = 256

# Where operations keep their drain records and service locks on a load balancer (in /run:
# a reboot, which also empties the LB's IPVS table, forgets them too).
STATE_DIR = "/run/wgconsole"
# The keepalived track file through which `wgconsole failover` moves the VIP: its value is
# added to the VRRP priority of the instance that tracks it (ops/procedures/failover.py). Its
# name in keepalived's config; the file's path is whatever that config says.
SWITCHOVER_TRACK_FILE = "wgconsole_switchover"
# The exit status of an operation's read of a record that is not there (`[ -f P ] || exit 3`):
# told apart from a read that failed.
NO_RECORD_STATUS = 3
_DRAIN_RECORD = re.compile(rf"drain-(?P<gateway>{NAME_PATTERN})\.json")


def name_problem(value: str) -> str | None:
    """Why `value` is not a name (None: it is one)."""
    return None if NAME.fullmatch(value) else NAME_RULE


def drain_record_file(gateway: str) -> str:
    """The file name of `gateway`'s drain record on a load balancer (in the state directory)."""
    if not NAME.fullmatch(gateway):
        raise ValueError(f"not a gateway name: {gateway!r}")
    return f"drain-{gateway}.json"


def drain_record_path(gateway: str) -> str:
    return f"{STATE_DIR}/{drain_record_file(gateway)}"


def drain_record_gateway(file_name: str) -> str | None:
    """The gateway whose drain record `file_name` is; None: not a drain record's name."""
    match = _DRAIN_RECORD.fullmatch(file_name)
    return None if match is None else match.group("gateway")
