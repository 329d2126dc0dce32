"""Fresh readings of hosts during an operation: every step is verified against these."""

from __future__ import annotations

import json
import time

from wgconsole.core.fleet import matching_service
from wgconsole.core.inventory import Gateway, Host
from wgconsole.core.records import GatewayObservation, IpvsDest, IpvsService, LbObservation
from wgconsole.ops.context import OpContext
from wgconsole.ops.errors import OpError
from wgconsole.poll.collector import observe_gateway, observe_lb
from wgconsole.poll.parsers.errors import ParseError
from wgconsole.poll.transport.base import TransportError, privileged, quote_argv

STATE_DIR = "/run/wgconsole"


def read_lb(ctx: OpContext, lb: Host, *, conns: bool) -> LbObservation:
    """A fresh reading of `lb`; with `conns` its connection table too, the costly part (about
    6 s for 50,000 entries on the emulated lab): a step that checks a weight or a flag
    never waits for it."""
    try:
        return observe_lb(lb, ctx.transports[lb.name], ctx.timeout, conns, ctx.parse_memos)[0]
    except (TransportError, ParseError, OSError) as exc:
        raise OpError(f"{lb.name}: cannot read IPVS: {exc}") from None


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


def _record_path(kind: str, gw: Gateway) -> str:
    return f"{STATE_DIR}/{kind}-{gw.name}.json"


def write_record(ctx: OpContext, lb: Host, kind: str, gw: Gateway, data: dict[str, object]) -> None:
    """Keep what an operation changed on the LB itself, so another bastion can undo it."""
    path = _record_path(kind, gw)
    text = json.dumps({**data, "written": round(time.time())})
    script = f"mkdir -p {STATE_DIR} && printf '%s' {quote_argv([text])} > {quote_argv([path])}"
    ctx.run(lb.name, privileged(["sh", "-c", script], lb.ssh.sudo))


def read_record(ctx: OpContext, lb: Host, kind: str, gw: Gateway) -> dict[str, object] | None:
    path = _record_path(kind, gw)
    result = ctx.run(lb.name, privileged(["cat", path], lb.ssh.sudo), mutating=False, check=False)
    if result.status != 0:
        return None
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def remove_record(ctx: OpContext, lb: Host, kind: str, gw: Gateway) -> None:
    ctx.run(lb.name, privileged(["rm", "-f", _record_path(kind, gw)], lb.ssh.sudo))
