"""What wgconsole's operations keep on a load balancer, and the names they use there.

The drain records and service locks live in one state directory on every LB; the poll reads
them back (`poll.parsers.op_records`), the operations write them. A drain record's file name
carries its gateway's name, which the one name rule (`core.input_rules`) keeps safe.
"""

from __future__ import annotations

import re

from wgconsole.core.input_rules import NAME, NAME_PATTERN

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
