"""Fresh readings of hosts during an operation: every step is verified against these; and
who holds the VIP, from a fleet snapshot. Readings only: nothing here changes a host."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from wgconsole.core.fleet import Fleet, matching_service
from wgconsole.core.inventory import Gateway, Host
from wgconsole.core.records import (
    Endpoint,
    GatewayObservation,
    IpvsConn,
    IpvsDest,
    IpvsService,
    LbObservation,
)
from wgconsole.ops.machinery.context import OpContext, on_each
from wgconsole.ops.machinery.errors import OpError, ValidationError
from wgconsole.poll.collector import observe_gateway, observe_lb
from wgconsole.poll.parsers.errors import ParseError
from wgconsole.poll.transport.base import TransportError


def read_lb(ctx: OpContext, lb: Host, *, conns: bool, keepalived: bool = False) -> LbObservation:
    """A fresh reading of `lb`; with `conns` its connection table too, the costly part (about
    6 s for 50,000 entries on the emulated lab): a step that checks a weight or a flag
    never waits for it. With `keepalived` keepalived's VRRP report too (it is signalled for a
    dump, then waited for: ~1.5 s of a director's reading on the lab); only a step that looks
    at VRRP asks for it, without it the observation has none."""
    try:
        return observe_lb(
            lb,
            ctx.transports[lb.name],
            ctx.timeout,
            conns=conns,
            keepalived=keepalived,
            memos=ctx.parse_memos,
        )[0]
    except (TransportError, ParseError, OSError) as exc:
        raise OpError(f"{lb.name}: cannot read IPVS: {exc}") from None


def read_lbs(
    ctx: OpContext, *, conns: bool, keepalived: bool = False
) -> Mapping[str, LbObservation]:
    """Every LB read now (see read_lb), all at once; by name, in inventory order."""
    return on_each(
        ctx.inventory.load_balancers,
        lambda lb: read_lb(ctx, lb, conns=conns, keepalived=keepalived),
    )


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


def read_gateways(
    ctx: OpContext, gateways: Iterable[Gateway] | None = None
) -> Mapping[str, GatewayObservation]:
    """Every gateway (or those given) read now, all at once; by name, in inventory order."""
    chosen = ctx.inventory.gateways if gateways is None else gateways
    return on_each(chosen, lambda gw: read_gateway(ctx, gw))


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


def vip_holder(fleet: Fleet, purpose: str) -> str:
    """The one director holding the VIP, from every director's addresses; refused when one
    cannot be read (who holds it is then not known) or when none or several hold it."""
    unknown = [v.name for v in fleet.load_balancers if not v.reachable or v.holds_vip is None]
    if unknown:
        raise ValidationError(
            f"who holds the VIP is not known: {', '.join(unknown)} did not answer (or its "
            f"addresses could not be read); every director must be read to {purpose}"
        )
    holders = [v.name for v in fleet.load_balancers if v.holds_vip]
    if len(holders) != 1:
        raise ValidationError(
            f"the VIP must be on exactly one director to {purpose} (held by: "
            f"{', '.join(holders) or 'none'}); see the vip-held-* finding in `wgconsole status`"
        )
    return holders[0]
