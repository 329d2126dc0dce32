"""The drain's record on every load balancer: what a drain changed (its previous weight, when
it began, its last step), written before anything changes and kept up to date, so that another
bastion can finish a drain cut short (`drain` again) or roll it back (`undrain`).

The one place that reads, writes and removes it: the drain writes it, undrain removes it, both
read it (and `status` finds a drain cut short from it: the fleet's `half-done-drain` finding).
"""

from __future__ import annotations

import json
import time

from wgconsole.core.fleet import Fleet
from wgconsole.core.inventory import Gateway, Host
from wgconsole.core.lb_state import NO_RECORD_STATUS, STATE_DIR, drain_record_path
from wgconsole.core.op_checks import record_problem, way_out
from wgconsole.core.records import DrainRecord
from wgconsole.ops.machinery.context import OpContext, failure
from wgconsole.ops.machinery.errors import OpError, ValidationError
from wgconsole.poll.parsers.op_records import MAX_RECORD, parse_drain_record
from wgconsole.poll.transport.base import privileged, quote_argv

# The exit status of the record read when the LB has no record.
_NO_RECORD = NO_RECORD_STATUS


def write_drain_record(ctx: OpContext, lb: Host, gw: Gateway, data: dict[str, object]) -> None:
    """Keep what a drain changed on the LB itself, so another bastion can undo it."""
    path = drain_record_path(gw.name)
    text = json.dumps({**data, "written": round(time.time())})
    script = f"mkdir -p {STATE_DIR} && printf '%s' {quote_argv([text])} > {quote_argv([path])}"
    ctx.run(lb.name, privileged(["sh", "-c", script], sudo=lb.ssh.sudo))


def read_drain_record(ctx: OpContext, lb: Host, gw: Gateway) -> DrainRecord | None:
    """`gw`'s drain record on `lb`, validated as the poll validates it (a bad one keeps its
    `problem`); None: `lb` has none. At most one byte more than a record may hold is read."""
    path = quote_argv([drain_record_path(gw.name)])
    script = f"[ -f {path} ] || exit {_NO_RECORD}; head -c {MAX_RECORD + 1} {path}"
    command = privileged(["sh", "-c", script], sudo=lb.ssh.sudo)
    result = ctx.run(lb.name, command, mutating=False, check=False)
    if result.status == _NO_RECORD:
        return None
    if result.status != 0:
        # A record that is there but cannot be read is not "no record".
        raise OpError(failure(lb.name, command, result))
    return parse_drain_record(gw.name, result.stdout)


def bad_record(lb: Host, record: DrainRecord) -> str:
    """Why an operation refuses to go on from `record` (on `lb`), and the way out."""
    return f"{lb.name}: {record_problem(record)}; {way_out(record.gateway, bad_record=True)}"


def remove_drain_record(ctx: OpContext, lb: Host, gw: Gateway) -> None:
    ctx.run(lb.name, privileged(["rm", "-f", drain_record_path(gw.name)], sudo=lb.ssh.sudo))


def interrupted_drain(fleet: Fleet, gateway: str) -> str | None:
    """What a drain of `gateway` cut short left, from the fleet's half-done-drain finding."""
    for f in fleet.findings:
        if f.code == "half-done-drain" and f.subject == gateway:
            return f.message
    return None


def find_record(ctx: OpContext, gw: Gateway) -> DrainRecord | None:
    """The drain record of `gw` on the first LB that has one (read-only); every LB's is read
    and validated: one that cannot be used on any LB refuses the drain (ValidationError)."""
    found = None
    for lb in ctx.inventory.load_balancers:
        record = read_drain_record(ctx, lb, gw)
        if record is not None and record.problem is not None:
            raise ValidationError(bad_record(lb, record))
        found = found or record
    return found
