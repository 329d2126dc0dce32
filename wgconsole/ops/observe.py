"""Fresh readings of hosts during an operation: every step is verified against these."""

from __future__ import annotations

import json
import time

from wgconsole.core.fleet import matching_service
from wgconsole.core.inventory import Gateway, Host
from wgconsole.core.lb_state import NO_RECORD_STATUS, STATE_DIR, drain_record_path
from wgconsole.core.op_checks import record_problem, way_out
from wgconsole.core.records import (
    DrainRecord,
    Endpoint,
    GatewayObservation,
    IpvsConn,
    IpvsDest,
    IpvsService,
    LbObservation,
)
from wgconsole.ops.context import OpContext, failure
from wgconsole.ops.errors import OpError
from wgconsole.poll.collector import observe_gateway, observe_lb
from wgconsole.poll.parsers.errors import ParseError
from wgconsole.poll.parsers.op_records import MAX_RECORD, parse_drain_record
from wgconsole.poll.transport.base import TransportError, privileged, quote_argv

# The exit status of the record read when the LB has no record.
_NO_RECORD = NO_RECORD_STATUS


def read_lb(ctx: OpContext, lb: Host, *, conns: bool) -> LbObservation:
    """A fresh reading of `lb`; with `conns` its connection table too, the costly part (about
    6 s for 50,000 entries on the emulated lab): a step that checks a weight or a flag
    never waits for it."""
    try:
        return observe_lb(lb, ctx.transports[lb.name], ctx.timeout, conns, ctx.parse_memos)[0]
    except (TransportError, ParseError, OSError) as exc:
        raise OpError(f"{lb.name}: cannot read IPVS: {exc}") from None


def entries_by_client(lb: LbObservation, virtual: Endpoint) -> dict[Endpoint, IpvsConn]:
    """Each client's entry for `virtual` as the kernel looks it up: the first one listed. An
    entry replaced through the sync protocol can linger a while (its expiry found it still
    referenced, by a packet in flight, and re-armed it) next to its replacement, which the
    kernel hashed at the head of the same chain and lists first."""
    entries: dict[Endpoint, IpvsConn] = {}
    for c in lb.conns:
        if c.virtual == virtual:
            entries.setdefault(c.client, c)
    return entries


def read_gateway(ctx: OpContext, gw: Gateway) -> GatewayObservation:
    try:
        return observe_gateway(gw, ctx.transports[gw.name], ctx.timeout, ctx.parse_memos)[0]
    except (TransportError, ParseError, OSError) as exc:
        raise OpError(f"{gw.name}: cannot read WireGuard: {exc}") from None


def service_on(ctx: OpContext, lb: Host) -> tuple[LbObservation, IpvsService]:
    obs = read_lb(ctx, lb, conns=False)
    svc = matching_service(ctx.inventory, obs)
    if svc is None:
        s = ctx.inventory.service
        raise OpError(f"{lb.name}: no IPVS service {s.protocol} {s.vip}:{s.port}")
    return obs, svc


def dest_of(svc: IpvsService, gw: Gateway) -> IpvsDest | None:
    for d in svc.dests:
        if d.endpoint == gw.real_server:
            return d
    return None


def write_drain_record(ctx: OpContext, lb: Host, gw: Gateway, data: dict[str, object]) -> None:
    """Keep what a drain changed on the LB itself, so another bastion can undo it."""
    path = drain_record_path(gw.name)
    text = json.dumps({**data, "written": round(time.time())})
    script = f"mkdir -p {STATE_DIR} && printf '%s' {quote_argv([text])} > {quote_argv([path])}"
    ctx.run(lb.name, privileged(["sh", "-c", script], lb.ssh.sudo))


def read_drain_record(ctx: OpContext, lb: Host, gw: Gateway) -> DrainRecord | None:
    """`gw`'s drain record on `lb`, validated as the poll validates it (a bad one keeps its
    `problem`); None: `lb` has none. At most one byte more than a record may hold is read."""
    path = quote_argv([drain_record_path(gw.name)])
    script = f"[ -f {path} ] || exit {_NO_RECORD}; head -c {MAX_RECORD + 1} {path}"
    command = privileged(["sh", "-c", script], lb.ssh.sudo)
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
    ctx.run(lb.name, privileged(["rm", "-f", drain_record_path(gw.name)], lb.ssh.sudo))
