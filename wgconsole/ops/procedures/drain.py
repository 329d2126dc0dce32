"""Drain a gateway before maintenance, the way the kernel really lets one drain.

Weight 0 alone does not drain (docs/domain/connections-and-timeouts.md): without sh-fallback it
black-holes the new clients
hashed to the gateway, existing UDP flows never move (keepalives refresh their entries), and a
gateway that keeps sending to its old clients through an LB that lost their entries makes them
roam to its own address. So a drain here is:

1. sh-fallback on the service and expire_nodest_conn=1, on every LB (the fixes);
2. under the LBs' sync lock (`ops.machinery.lock.sync_lock`, as rebalance takes it), the sync
   mechanism readied ahead of the clients' gap (`ops.hostcmd.syncmove`): which backup sync
   daemon receives on each LB (a standby's own, else the private one on `wgcsync`, started
   now: its start is the one step with an undo, its removal);
3. weight 0: new clients go elsewhere (an eviction, or a gateway that does not answer, is
   fenced on every LB first: `ops.hostcmd.fence`);
4. the gateway's wg interface down: it can no longer talk to its clients (no roaming back);
5. each planned client's LB entry re-pointed to its new gateway (the sh model after the
   drain) on every LB at once, through the IPVS sync protocol, each checked in the LB's table
   by the send itself; then each client re-pointed on every LB is kicked by its new gateway
   (`handshake.initiate_command`, one `wg set` per gateway, from the peers read before
   anything changed): through the LB's reverse NAT the client sees it from the VIP, and a
   keepalive-only client moves within a round trip instead of at its next keepalive. Steps 4
   and 5 are the clients' interruption: one command on each of three hosts, nothing read in
   between. An eviction of an unreachable gateway re-points the clients the LB's entries and
   an earlier fleet name (`_known_clients`) after step 3;
6. the dest deleted: the entries still on it (clients not re-pointed: bypassing ones are
   never, nor clients without an LB entry or dropped by the table; all of them where the
   mechanism cannot run: no `dummy` module, `backup_only` not 0, another backup daemon, a
   failed send, the sync lock held elsewhere, each said in a warning) expire on the client's
   next packet, which is scheduled to another gateway; the delete and a tight watch of the
   LB's table (`entrywatch`) are one command on the LB, which returns as soon as those
   clients' new entries exist, and their new gateways then kick them as in step 5 (the way
   every client moved before re-pointing, kept as the fallback);
7. the dest added back at weight 0, drained, once no entry points to it; the private sync
   daemon removed (also one left by a run cut short, found by the plan), the LBs' other sync
   daemons checked unchanged;
8. progress judged by handshakes on the gateways, until every client has shaken hands with
   another gateway since the drain began.

The drain's record on every LB (its previous weight, when it began, its last step) is written
before anything changes and kept up to date, so a drain cut short (connection lost, operator
interrupt, a failed step) is found by the next run: `status` shows a `half-done-drain`
finding, and `drain` run again (or `drain --resume`) picks up from the record, keeping the
weight to restore; `undrain` rolls it back. Every step is idempotent for that reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import Literal

from wgconsole.core.fleet import REJECT_AFTER_TIME, Fleet, ServiceView
from wgconsole.core.inventory import Gateway, Host, Inventory
from wgconsole.core.op_checks import record_problem, way_out
from wgconsole.core.records import DrainRecord, Endpoint, IpvsConn, IpvsService, WgPeer
from wgconsole.core.sched import ShTable
from wgconsole.core.whereis import proposed_table
from wgconsole.ops.hostcmd import entrysync, entrywatch, fence, lbcmd, syncmove
from wgconsole.ops.hostcmd.drainrecord import (
    interrupted_drain,
    read_drain_record,
    write_drain_record,
)
from wgconsole.ops.hostcmd.handshake import Kick, initiate_command
from wgconsole.ops.hostcmd.syncmove import SIDE_EFFECTS
from wgconsole.ops.machinery.context import OpContext, on_each
from wgconsole.ops.machinery.errors import LockedError, OpError, ValidationError
from wgconsole.ops.machinery.lock import sync_lock
from wgconsole.ops.machinery.pair import tables_step
from wgconsole.ops.machinery.readings import (
    dest_of,
    read_gateway,
    read_lb,
    read_lbs,
    service_on,
)
from wgconsole.ops.machinery.run import RunOutcome, audited_run
from wgconsole.ops.machinery.steps import Step
from wgconsole.ops.machinery.validate import gateway as find_gateway
from wgconsole.poll.parsers.errors import ParseError
from wgconsole.poll.parsers.link import parse_link_state
from wgconsole.poll.transport.base import privileged

DrainAction = Literal["drain", "evict"]

POLL_INTERVAL = 1.0
# How long the delete's own watch waits for the first moved client (clients that send data
# come back within their sending interval; an idle one is left to the next watches).
FIRST_WATCH_S = 2.0
# One watch command at most (then the LB answers other commands, a console's poll among them).
WATCH_S = 3.0


@dataclass(frozen=True, slots=True)
class ClientOnGateway:
    label: str
    public_key: str
    endpoint: str | None
    by_lb_entry: bool
    by_handshake: bool
    handshake_age: float | None
    bypassing: bool
    destination: str | None  # where the sh model sends it after the drain; None: dropped
    # Its LB entry's client address:port (masquerade keeps the client's own); None: no entry
    # to it on the LB, or not known.
    entry: Endpoint | None = None


@dataclass(frozen=True, slots=True)
class DrainPlan:
    gateway: Gateway
    service: ServiceView
    previous_weight: int
    fixes: tuple[str, ...]
    preflight: tuple[str, ...]
    clients: tuple[ClientOnGateway, ...]
    share_after: dict[str, int]
    # Set when a drain of this gateway was cut short: what it left, and when it began.
    interrupted: str | None = None
    began: float | None = None
    # The gateway does not answer: its interface cannot be taken down, the LBs fence it.
    unreachable: bool = False
    # Every LB drops what it sends from its WireGuard port until `undrain` (hostcmd.fence):
    # an eviction's gateway, and any the drain cannot reach.
    fence: bool = False
    action: DrainAction = "drain"
    # The clients whose LB entries are re-pointed to their new gateways through the IPVS sync
    # protocol (ops.hostcmd.syncmove), by label; the others move on their next packet.
    repoint: tuple[str, ...] = ()
    # Why clients move on their next packet instead (an LB where the sync mechanism cannot
    # run, a client it cannot re-point): shown, and warned about when the drain runs.
    old_way: tuple[str, ...] = ()
    # The LBs where the private backup sync daemon would receive (no other backup daemon).
    private_on: tuple[str, ...] = ()
    # The LBs where the private daemon runs now: a run cut short left it (removed by this one).
    leftover_on: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        verb = "Evict" if self.action == "evict" else "Drain"
        lines = [
            f"{verb} {self.gateway.name} ({self.gateway.real_server}) on "
            f"{self.service.protocol} {self.service.vip}:{self.service.port}, "
            f"weight {self.previous_weight} -> 0.",
        ]
        if self.unreachable:
            lines.append(
                f"  {self.gateway.name} DOES NOT ANSWER: its {self.gateway.interface} cannot be "
                "taken down; the LBs fence it instead, and its clients move without it"
            )
        if self.interrupted:
            lines.append(f"  RESUMING an interrupted drain: {self.interrupted}")
            lines.append(
                f"  (this run finishes it; `wgconsole undrain {self.gateway.name}` would roll it "
                f"back to weight {self.previous_weight} instead)"
            )
        lines += [f"  preflight: {p}" for p in self.preflight]
        lines += [f"  fix: {f}" for f in self.fixes]
        lines.append(f"  clients on {self.gateway.name} now: {len(self.clients)}")
        for c in self.clients:
            how = "+".join(
                w for w, on in (("LB entry", c.by_lb_entry), ("handshake", c.by_handshake)) if on
            )
            dest = c.destination or "DROPPED"
            note = "  BYPASSING the LB: it will not move" if c.bypassing else ""
            lines.append(f"    {c.label:<20} {c.endpoint or '-':<22} ({how}) -> {dest}{note}")
        share = ", ".join(f"{k} {v}" for k, v in self.share_after.items())
        lines.append(f"  buckets after the drain: {share}")
        fencing = (
            f"fence {self.gateway.name} on every LB (what it sends from its WireGuard port is "
            "dropped until `undrain`); "
            if self.fence
            else ""
        )
        down = "" if self.unreachable else f"{self.gateway.interface} down on {self.gateway.name}; "
        if self.repoint:
            moving = (
                f"re-point the LB entries of {len(self.repoint)} client(s) "
                f"({', '.join(self.repoint)}) to their new gateways through the IPVS sync "
                "protocol, and their new gateways initiate the handshakes at once (they move "
                "within a round trip); delete the real server so that the other entries to it "
                "move on their next packet"
            )
        else:
            moving = (
                "delete the real server so its entries move on their next packet; new gateways "
                "initiate the handshakes"
            )
        lines += [
            f"  steps: sh-fallback + expire_nodest_conn on every LB; {fencing}weight 0; {down}"
            f"{moving}; re-add it at weight 0.",
        ]
        if self.repoint:
            lines.append(f"  also: {SIDE_EFFECTS}")
        lines += [f"  on their next packet, not re-pointed: {why}" for why in self.old_way]
        if self.leftover_on:
            lines.append(
                "  the private sync daemon left by a run cut short is removed on "
                f"{', '.join(self.leftover_on)}"
            )
        return lines


def plan_drain(
    inventory: Inventory,
    fleet: Fleet,
    name: str,
    record: DrainRecord | None = None,
    *,
    resume: bool = False,
    action: DrainAction = "drain",
    known: Fleet | None = None,
) -> DrainPlan:
    """The drain of `name`; `record` is its drain record on an LB, if one exists (see
    `find_record`): a drain cut short is then resumed, keeping the weight it recorded. A
    record that cannot be used is refused: the weight to restore is not known.

    `action` "evict" is the guard's: the same drain, always fenced, refused when the gateway
    is already out of service (another guard, or an operator, took it out). `known` is an
    earlier fleet in which the gateway answered: a gateway that does not answer now cannot
    say who its clients are, and the LB's entries to it only give their addresses."""
    gw = find_gateway(inventory, name)
    svc = fleet.service
    if svc is None:
        raise ValidationError("the service is not on any answering load balancer")
    if action == "evict" and record is not None and interrupted_drain(fleet, gw.name) is None:
        raise ValidationError(
            f"{gw.name} is already out of service (drained or evicted)",
            kind="already-out-of-service",
        )
    dest = dest_of(svc.raw, gw)
    interrupted = interrupted_drain(fleet, gw.name) if record is not None else None
    if resume and interrupted is None:
        raise ValidationError(
            f"nothing to resume: no drain of {gw.name} was cut short "
            "(no drain record on the LB, or the drain it records is finished)"
        )
    if dest is None and record is None:
        raise ValidationError(f"{gw.name} ({gw.real_server}) is not a real server of the service")
    if record is not None and (record.problem is not None or record.previous_weight is None):
        raise ValidationError(f"{record_problem(record)}; {way_out(gw.name, bad_record=True)}")
    if record is not None and record.previous_weight is not None:
        previous_weight = record.previous_weight
    else:
        previous_weight = dest.weight if dest else 0
    began = record.started if record is not None else None
    others = [d for d in svc.dests if d.endpoint != gw.real_server and d.weight > 0]
    if not others:
        raise ValidationError(f"no other gateway with weight > 0: draining {gw.name} drops all")
    preflight, fixes = [], []
    if not svc.sh_fallback:
        preflight.append(
            "no sh-fallback: with weight 0 alone, new clients hashed to it would be dropped"
        )
        fixes.append("enable sh-fallback on the service (every LB)")
    if not svc.expire_nodest_conn:
        preflight.append("expire_nodest_conn=0: existing flows would never move")
        fixes.append("set net.ipv4.vs.expire_nodest_conn=1 (every LB)")
    after = _after_model(inventory, fleet, gw)
    names = {g.real_server: g.name for g in inventory.gateways}
    clients = []
    for c in fleet.clients:
        by_entry = c.lb_gateway == gw.name
        by_hs = c.handshake_gateway == gw.name and c.status in ("fresh", "ageing")
        if not (by_entry or by_hs):
            continue
        bypassing = "bypassing-lb" in c.findings
        source = c.lb_entry.client if c.lb_entry else _endpoint(c.endpoint)
        destination = None
        if source is not None:
            picked = after.pick(source.address, source.port).dest
            destination = None if picked is None else names.get(picked, str(picked))
        clients.append(
            ClientOnGateway(
                c.label,
                c.public_key,
                c.endpoint,
                by_entry,
                by_hs,
                c.handshake_age,
                bypassing,
                destination,
                c.lb_entry.client if by_entry and c.lb_entry is not None else None,
            )
        )
    view = fleet.gateway(gw.name)
    unreachable = view is not None and not view.reachable
    if unreachable and known is not None:
        listed = {c.public_key for c in clients}
        vip = inventory.service.endpoint
        clients += _known_clients(fleet, known, gw, after, names, listed, vip)
    bypass = [c.label for c in clients if c.bypassing]
    if bypass:
        preflight.append(
            f"clients bypassing the LB will not move: {', '.join(bypass)} "
            "(they talk to the gateway's own address)"
        )
    share = {
        (names.get(k, str(k)) if k is not None else "dropped"): v
        for k, v in after.effective_share().items()
    }
    fenced = action == "evict" or unreachable or (record is not None and record.fenced)
    repoint, old_way, private_on = _repoint_plan(inventory, fleet, clients)
    return DrainPlan(
        gw,
        svc,
        previous_weight,
        tuple(fixes),
        tuple(preflight),
        tuple(clients),
        share,
        interrupted,
        began if interrupted else None,
        unreachable=unreachable,
        fence=fenced,
        action=action,
        repoint=repoint,
        old_way=old_way,
        private_on=private_on,
        leftover_on=_leftover_on(inventory, fleet),
    )


def _repointable(inventory: Inventory, c: ClientOnGateway) -> str | None:
    """Why `c`'s entry cannot be re-pointed (None: it can): it needs an IPv4 LB entry through
    the LB (a client bypassing it has none to move) and a gateway of the inventory to go to."""
    if c.bypassing:
        return f"{c.label}: bypassing the LB"
    if c.entry is None:
        return f"{c.label}: no LB entry to it (its next packet is scheduled afresh)"
    if c.destination is None:
        return f"{c.label}: dropped by the table after the drain"
    if c.destination not in {g.name for g in inventory.gateways}:
        return f"{c.label}: {c.destination} is not a gateway of the inventory"
    if ":" in c.entry.address:
        return f"{c.label}: an IPv6 entry (the sync messages carry IPv4 entries only)"
    return None


def _repoint_plan(
    inventory: Inventory, fleet: Fleet, clients: list[ClientOnGateway]
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(the clients to re-point, why others move on their next packet, the LBs where the
    private daemon receives). A client is re-pointed on every LB or on none: its new gateway
    may initiate only once the entry that carries its packets points there, so an LB where
    the sync mechanism cannot run leaves every client to the old way."""
    repoint: list[str] = []
    old_way: list[str] = []
    for c in clients:
        why = _repointable(inventory, c)
        if why is None:
            repoint.append(c.label)
        elif not c.bypassing and c.destination is not None:
            old_way.append(why)
    if not repoint:
        return (), tuple(old_way), ()
    private_on = syncmove.private_receiver_lbs(inventory, fleet)
    blocked = []
    for lb in inventory.load_balancers:
        view = syncmove.director(fleet, lb.name)
        if view is None or not view.reachable:
            blocked.append(f"{lb.name} was not read: the sync mechanism is not known to work there")
            continue
        value = syncmove.backup_only(view)
        if lb.name in private_on and value != 0:
            shown = "unknown (not read)" if value is None else str(value)
            blocked.append(
                f"{lb.name}: net.ipv4.vs.backup_only is {shown}, and with 1 the private "
                "backup sync daemon would stop the forwarding of every IPVS service there"
            )
    if blocked:
        return (), (*old_way, *(f"every client, as {b}" for b in blocked)), ()
    return tuple(repoint), tuple(old_way), private_on


def _leftover_on(inventory: Inventory, fleet: Fleet) -> tuple[str, ...]:
    out = []
    for lb in inventory.load_balancers:
        view = syncmove.director(fleet, lb.name)
        daemons = () if view is None or view.sync_daemons is None else view.sync_daemons
        if any(d.interface == entrysync.INTERFACE for d in daemons):
            out.append(lb.name)
    return tuple(out)


def _known_clients(
    fleet: Fleet,
    known: Fleet,
    gw: Gateway,
    after: ShTable,
    names: dict[Endpoint, str],
    listed: set[str],
    vip: Endpoint,
) -> list[ClientOnGateway]:
    """The clients behind the LB's entries to `gw` now, named from `known` (their endpoints
    as the gateways showed them then: masquerade keeps a client's source address and port)."""
    by_endpoint = {c.endpoint: c for c in known.clients if c.endpoint}
    found = []
    for conn in fleet.conns:
        if conn.dest != gw.real_server or conn.virtual != vip:
            continue
        c = by_endpoint.get(str(conn.client))
        if c is None or c.public_key in listed:
            continue
        listed.add(c.public_key)
        picked = after.pick(conn.client.address, conn.client.port).dest
        destination = None if picked is None else names.get(picked, str(picked))
        found.append(
            ClientOnGateway(
                c.label,
                c.public_key,
                c.endpoint,
                by_lb_entry=True,
                by_handshake=False,
                handshake_age=None,
                bypassing=False,
                destination=destination,
                entry=conn.client,
            )
        )
    return found


def _endpoint(text: str | None) -> Endpoint | None:
    if not text or ":" not in text:
        return None
    addr, _, port = text.rpartition(":")
    return Endpoint(addr.strip("[]"), int(port))


def _after_model(inventory: Inventory, fleet: Fleet, gw: Gateway) -> ShTable:
    assert fleet.service is not None
    # Deleted and re-added at weight 0: it moves to the head of the kernel's list.
    model = proposed_table(inventory, fleet.service.raw, readded={gw.name: 0})
    return ShTable(model.dests, fallback=True, port_hashing=model.port_hashing)


@dataclass
class DrainResult:
    gateway: str
    started: float
    seconds: float = 0.0
    since: float = 0.0  # when the drain began (an interrupted one: its first run)
    moved: dict[str, str] = field(default_factory=dict)  # client label -> new gateway
    remaining: list[str] = field(default_factory=list)
    readded: bool = False
    complete: bool = False
    rx_before: dict[tuple[str, str], int] = field(default_factory=dict)
    # (gateway, client key) -> the peer as that gateway showed it before the drain changed
    # anything: what the fast handshake re-creates it from.
    peers: dict[tuple[str, str], WgPeer] = field(default_factory=dict)
    # The clients whose entries were re-pointed on every LB and kicked at once (also in
    # `moved`), in the order they were kicked.
    repointed: list[str] = field(default_factory=list)


def execute_drain(
    ctx: OpContext,
    plan: DrainPlan,
    *,
    wait: bool = True,
    wait_timeout: float = 180.0,
    break_lock: bool = False,
) -> DrainResult:
    gw = plan.gateway
    now = time.time()
    result = DrainResult(gateway=gw.name, started=now, since=plan.began or now)
    before = {
        "weight": plan.previous_weight,
        "flags": list(plan.service.flags),
        "expire_nodest_conn": plan.service.expire_nodest_conn,
    }
    lock = f"{plan.action} {gw.name}"
    with audited_run(
        ctx, plan.action, gw.name, lock=lock, break_lock=break_lock, before=before
    ) as run:
        with _sync_lock(ctx, plan, break_lock=break_lock) as synced:
            steps = _drain_steps(
                ctx, plan, result, wait=wait, wait_timeout=wait_timeout, synced=synced
            )
            run.tx.run(steps)
        result.seconds = time.time() - result.started
        run.succeeded(
            {
                "weight": 0,
                "moved": result.moved,
                "repointed": result.repointed,
                "remaining": result.remaining,
            },
            outcome=RunOutcome.OK if result.complete else RunOutcome.INCOMPLETE,
            detail=f"{result.seconds:.1f} s",
        )
    return result


@contextmanager
def _sync_lock(ctx: OpContext, plan: DrainPlan, *, break_lock: bool) -> Iterator[bool]:
    """The LBs' sync lock, as rebalance takes it, when the drain re-points entries or removes
    a private daemon left by a run cut short; True when held. Held by another operation (a
    rebalance of another service): the drain goes on without it, the old way, never worse."""
    if not (plan.repoint or plan.leftover_on):
        yield False
        return
    stack = ExitStack()
    try:
        action = f"{plan.action} {plan.gateway.name}"
        stack.enter_context(sync_lock(ctx, action, break_lock=break_lock))
    except LockedError as exc:
        ctx.warn(f"the IPVS sync lock is held ({exc}): the clients move on their next packet")
        yield False
        return
    with stack:
        yield True


def _drain_steps(
    ctx: OpContext,
    plan: DrainPlan,
    result: DrainResult,
    *,
    wait: bool,
    wait_timeout: float,
    synced: bool = False,
) -> Iterator[Step]:
    """The drain's steps, each built once the previous one is verified (from what it found).

    None has an undo but the private sync daemon's start (its removal): a drain cut short
    stays as it is, recorded on every LB, for the operator to finish (`drain` again) or roll
    back (`undrain`). `synced`: the sync lock is held, so entries may be re-pointed.
    """
    gw = plan.gateway
    result.peers = peers_before(ctx, plan)
    result.rx_before = {k: p.rx_bytes for k, p in result.peers.items()}
    lbs = ctx.inventory.load_balancers
    # Each LB's forwarding method and whether the real server is still there, read before
    # wg0 goes down: from then on until the new handshakes, every round trip is lost traffic.
    forward: dict[str, str | None] = {}
    present: dict[str, bool] = {}
    weights: dict[str, int] = {}
    for lb in lbs:
        yield _record_start(ctx, lb, plan, result)
        # One reading for both fixes: ipvsadm -E does not touch the sysctl.
        obs, svc = service_on(ctx, lb)
        if not svc.sh_fallback:
            yield _sh_fallback(ctx, lb, svc)
        if not obs.expire_nodest_conn:
            yield _expire_nodest(ctx, lb)
        dest = dest_of(svc, gw)
        present[lb.name] = dest is not None
        forward[lb.name] = dest.forward if dest is not None else "masq"
        weights[lb.name] = dest.weight if dest is not None else 0
    # The sync mechanism made ready ahead of the clients' gap (a fenced gateway's clients
    # lose their traffic from the fence on).
    move = _SyncMove(ctx, plan, result, synced=synced)
    yield from move.prepare()
    for lb in lbs:
        if plan.fence:
            yield _fence(ctx, lb, gw)
        if present[lb.name] and weights[lb.name] != 0:
            yield _weight_zero(ctx, lb, gw, forward[lb.name])
    mover = _Mover(ctx, plan, result)
    if not plan.unreachable:
        yield _interface_down(ctx, gw, best_effort=plan.fence)
    # The gap: the entries re-pointed on every LB at once, then their new gateways initiate.
    yield from move.repoint(mover)
    for i, lb in enumerate(lbs):
        # The last LB's delete watches for the first moved clients in the same round trip.
        yield _delete(
            ctx,
            lb,
            plan,
            result,
            present=present[lb.name],
            mover=mover if i == len(lbs) - 1 else None,
        )
    yield Step(
        "move the clients: new gateways initiate their handshakes",
        do=mover.finish,
    )
    if not result.remaining:
        for lb in ctx.inventory.load_balancers:
            yield _readd(ctx, lb, plan, result, forward.get(lb.name, "masq"))
        result.readded = True
    else:
        ctx.warn(
            f"{len(result.remaining)} client(s) still have entries to {gw.name}: it stays out of "
            "the service until they expire; `undrain` adds it back"
        )
    yield from move.finish()
    if wait:
        yield Step(
            "wait for every client to shake hands with another gateway",
            do=lambda: _wait_handshakes(ctx, plan, result, wait_timeout),
        )
    else:
        result.complete = not result.remaining
    # Every LB got the same changes in the same order; a backup left hashing differently
    # from the VIP holder means the drain is not finished (ops.machinery.pair).
    check = tables_step(ctx, f"`drain {gw.name}`")
    if check is not None:
        yield check
    if result.complete:
        for lb in ctx.inventory.load_balancers:
            _write(ctx, lb, plan, result, "done")


def _record_start(ctx: OpContext, lb: Host, plan: DrainPlan, result: DrainResult) -> Step:
    """Before anything changes on the LB: a drain cut short from here on is found again."""
    return Step(
        f"record the drain (previous weight {plan.previous_weight})",
        do=lambda: _write(ctx, lb, plan, result, "started"),
        host=lb.name,
    )


def _sh_fallback(ctx: OpContext, lb: Host, svc: IpvsService) -> Step:
    flags = ["sh-fallback"] + (["sh-port"] if svc.sh_port else [])

    def verify() -> None:
        if not service_on(ctx, lb)[1].sh_fallback:
            raise OpError(f"{lb.name}: sh-fallback is still off after ipvsadm -E")

    command = lbcmd.set_sched_flags(lb, ctx.inventory.service, svc, flags)
    return Step(
        "enable sh-fallback", do=lambda: ctx.run(lb.name, command), verify=verify, host=lb.name
    )


def _expire_nodest(ctx: OpContext, lb: Host) -> Step:
    def verify() -> None:
        if not read_lb(ctx, lb, conns=False).expire_nodest_conn:
            raise OpError(f"{lb.name}: expire_nodest_conn is still 0")

    command = lbcmd.set_expire_nodest(lb, value=True)
    return Step(
        "expire_nodest_conn=1", do=lambda: ctx.run(lb.name, command), verify=verify, host=lb.name
    )


def _weight_zero(ctx: OpContext, lb: Host, gw: Gateway, forward: str | None) -> Step:
    command = lbcmd.set_weight(lb, ctx.inventory.service, gw.real_server, forward, 0)
    title = f"weight 0 on {gw.name} (new clients go elsewhere)"
    return _to_weight_zero(ctx, lb, gw, title, command, "does not show weight 0")


def _to_weight_zero(
    ctx: OpContext,
    lb: Host,
    gw: Gateway,
    title: str,
    command: str,
    otherwise: str,
    record: Callable[[], None] | None = None,
) -> Step:
    """`command` on `lb`, verified by `gw` showing weight 0 there (else: `gw` `otherwise`)."""

    def verify() -> None:
        d = dest_of(service_on(ctx, lb)[1], gw)
        if d is None or d.weight != 0:
            raise OpError(f"{lb.name}: {gw.name} {otherwise}")

    return Step(
        title, do=lambda: ctx.run(lb.name, command), verify=verify, record=record, host=lb.name
    )


def _fence(ctx: OpContext, lb: Host, gw: Gateway) -> Step:
    def verify() -> None:
        if gw.real_server not in fence.fenced_on(ctx, lb):
            raise OpError(f"{lb.name}: {gw.name} is not in the fence")

    return Step(
        f"fence {gw.name}: nothing it sends from {gw.real_server} is forwarded",
        do=lambda: fence.fence(ctx, lb, gw.real_server),
        verify=verify,
        host=lb.name,
    )


def _interface_down(ctx: OpContext, gw: Gateway, *, best_effort: bool = False) -> Step:
    """Down, and its state read back in the same command: the delete follows at once.
    `best_effort` (the gateway is fenced): a gateway whose interface cannot be taken down
    (its host half-dead, wg0 gone) does not stop the clients' move."""
    state: list[bool | None] = []

    def do() -> None:
        down = privileged(["ip", "link", "set", "dev", gw.interface, "down"], sudo=gw.ssh.sudo)
        show = privileged(["ip", "-o", "link", "show", "dev", gw.interface], sudo=gw.ssh.sudo)
        try:
            out = ctx.run(gw.name, f"{down} && {show}").stdout
            state.append(parse_link_state(out))
        except OpError as exc:
            if not best_effort:
                raise
            state.append(False)
            ctx.warn(f"{gw.interface} not taken down ({exc}); the fence holds it")
        except ParseError as exc:
            raise OpError(f"{gw.name}: {exc}") from None

    def verify() -> None:
        if not state or state[-1]:
            raise OpError(f"{gw.name}: {gw.interface} is still up")

    return Step(
        f"{gw.interface} down (it can no longer make clients roam to it)",
        do=do,
        verify=verify,
        host=gw.name,
    )


def _delete(
    ctx: OpContext,
    lb: Host,
    plan: DrainPlan,
    result: DrainResult,
    *,
    present: bool,
    mover: _Mover | None,
) -> Step:
    """Delete the real server (`present`: it was there before wg0 went down); with `mover`,
    watch this LB for the first moved clients in the same command, and have their new
    gateways initiate before the delete is verified."""
    gw = plan.gateway

    def do() -> None:
        delete = lbcmd.delete_dest(lb, ctx.inventory.service, gw.real_server)
        if mover is None or not mover.pending:
            if present:
                ctx.run(lb.name, delete)
            return
        mover.watch(lb, FIRST_WATCH_S, first=delete if present else None)

    def verify() -> None:
        if dest_of(service_on(ctx, lb)[1], gw) is not None:
            raise OpError(f"{lb.name}: {gw.name} is still a real server")

    return Step(
        f"delete {gw.name} so its entries move on their next packet",
        do=do,
        verify=verify,
        record=lambda: _write(ctx, lb, plan, result, "deleted"),
        host=lb.name,
    )


def _readd(
    ctx: OpContext, lb: Host, plan: DrainPlan, result: DrainResult, forward: str | None
) -> Step:
    gw = plan.gateway
    command = lbcmd.add_dest(lb, ctx.inventory.service, gw.real_server, forward, 0)
    title = f"add {gw.name} back at weight 0 (drained)"
    record = lambda: _write(ctx, lb, plan, result, "readded")  # noqa: E731
    return _to_weight_zero(ctx, lb, gw, title, command, "was not added back at weight 0", record)


def _write(ctx: OpContext, lb: Host, plan: DrainPlan, result: DrainResult, phase: str) -> None:
    data = {
        "gateway": plan.gateway.name,
        "previous_weight": plan.previous_weight,
        "started": result.since,
        "phase": phase,
        "fenced": plan.fence,
        "action": plan.action,
    }
    write_drain_record(ctx, lb, plan.gateway, data)


def _entries(ctx: OpContext) -> list[IpvsConn]:
    vip = ctx.inventory.service.endpoint
    conns: list[IpvsConn] = []
    for obs in read_lbs(ctx, conns=True).values():
        conns += [c for c in obs.conns if c.virtual == vip]
    return conns


class _Mover:
    """The clients still to move: watched for on the LBs, kicked on their new gateways."""

    def __init__(self, ctx: OpContext, plan: DrainPlan, result: DrainResult) -> None:
        self.ctx, self.plan, self.result = ctx, plan, result
        self.by_server = {g.real_server: g for g in ctx.inventory.gateways}
        self.pending: dict[str, ClientOnGateway] = {}
        self.endpoints: dict[str, Endpoint] = {}
        for c in plan.clients:
            endpoint = _endpoint(c.endpoint)
            if endpoint is not None and not c.bypassing:
                self.pending[c.public_key] = c
                self.endpoints[c.public_key] = endpoint

    def watch(self, lb: Host, seconds: float, first: str | None = None) -> None:
        """One watch of `lb` (after `first`, in the same command); kick what it found."""
        clients = [self.endpoints[k] for k in self.pending]
        command = entrywatch.watch_command(
            lb,
            self.ctx.inventory.service.endpoint,
            clients,
            away_from=self.plan.gateway.real_server,
            seconds=seconds,
        )
        if first is not None:
            command = entrywatch.then_watch(first, command)
        out = self.ctx.run(lb.name, command, timeout=seconds + self.ctx.timeout).stdout
        try:
            entries = entrywatch.parse_watch(out)
        except ParseError as exc:
            raise OpError(f"{lb.name}: {exc}") from None
        self.kick(entries)

    def kick(self, entries: list[IpvsConn]) -> None:
        """Each pending client with a new entry: its new gateway initiates, now."""
        where = {e.client: e.dest for e in entries if e.dest != self.plan.gateway.real_server}
        batches: dict[str, list[Kick]] = {}
        labels: dict[str, list[str]] = {}
        for key, client in list(self.pending.items()):
            dest = where.get(self.endpoints[key])
            target = self.by_server.get(dest) if dest is not None else None
            if target is None:
                continue
            del self.pending[key]
            peer = self.result.peers.get((target.name, key))
            if peer is None:
                # Never add a peer the gateway does not have: the client shakes hands itself.
                self.result.moved[client.label] = target.name
                self.ctx.warn(
                    f"{client.label}: LB entry now on {target.name}, which has no such peer "
                    "(its peers differ from the other gateways'): not initiated"
                )
                continue
            batches.setdefault(target.name, []).append(Kick(peer, str(self.endpoints[key])))
            labels.setdefault(target.name, []).append(client.label)
        for name, kicks in batches.items():
            target = next(g for g in self.ctx.inventory.gateways if g.name == name)
            for command in initiate_command(target, kicks):
                self.ctx.run(name, command)
            for label in labels[name]:
                self.result.moved[label] = name
                self.ctx.info(f"{label}: LB entry now on {name}; {name} initiated")

    def finish(self) -> None:
        """Watch until every client moved (each moves on its next packet: within a keepalive
        interval, plus slack), then note who did not."""
        ctx = self.ctx
        keepalive = ctx.inventory.tunnel.keepalive or 15
        deadline = time.monotonic() + 3 * keepalive + 10
        lbs = ctx.inventory.load_balancers
        chunk = WATCH_S / len(lbs)
        while self.pending and time.monotonic() < deadline:
            for lb in lbs:
                if self.pending:
                    self.watch(lb, min(chunk, max(0.0, deadline - time.monotonic())))
        gw = self.plan.gateway
        still = {str(c.client) for c in _entries(ctx) if c.dest == gw.real_server}
        self.result.remaining = [c.label for c in self.pending.values() if c.endpoint in still]
        for c in self.pending.values():
            if c.endpoint not in still:
                ctx.info(f"{c.label}: no LB entry (idle); its next packet is scheduled afresh")


class _SyncMove:
    """The re-point of the planned clients' LB entries to their new gateways (the IPVS sync
    protocol, ops.hostcmd.syncmove, as rebalance does it) and their new gateways' kicks.

    Never worse than the old way: an LB where the mechanism turns out unusable (another
    backup daemon the kernel would conflict with, no dummy interface, a daemon that does not
    start, a send whose entries do not show up) is warned about, and the clients concerned
    are left to the delete (their entries move on their next packet, `_Mover`)."""

    def __init__(self, ctx: OpContext, plan: DrainPlan, result: DrainResult, *, synced: bool):
        self.ctx, self.plan, self.result = ctx, plan, result
        self.synced = synced
        self.lbs = ctx.inventory.load_balancers
        self.receivers: dict[str, entrysync.Receiver] = {}
        self.daemons: dict[str, str] = {}  # the other sync daemons, as read before
        self.started: list[str] = []  # LBs where the private daemon was (being) started
        self.unusable: list[str] = []  # why the mechanism cannot be used
        # Each LB's re-pointed clients (by key), as its send commands confirmed them.
        self.done_on: dict[str, set[str]] = {}

    @property
    def usable(self) -> bool:
        return self.synced and bool(self.plan.repoint) and not self.unusable

    def _cannot(self, why: str) -> None:
        self.unusable.append(why)
        self.ctx.warn(f"{why}: the clients move on their next packet instead")

    def prepare(self) -> Iterator[Step]:
        for why in self.plan.old_way:
            self.ctx.warn(f"not re-pointed, moves on its next packet: {why}")
        if not self.synced or not self.plan.repoint:
            return
        for lb in self.lbs:
            yield self._receiver(lb)
        for lb in self.lbs:
            if self.usable and self.receivers[lb.name].ours:
                yield self._lenient(syncmove.daemon_up(self.ctx, lb), lb)

    def _receiver(self, lb: Host) -> Step:
        def verify() -> None:
            listing = syncmove.daemon_listing(self.ctx, lb)
            try:
                to = syncmove.read_receiver(lb, listing, self.plan.private_on, "the drain")
                problem = syncmove.interface_problem(self.ctx, lb.name) if to.ours else None
            except OpError as exc:
                self._cannot(str(exc))
                return
            if problem is not None:
                self._cannot(f"{lb.name}: no dummy interface for the private daemon: {problem}")
                return
            self.receivers[lb.name] = to
            self.daemons[lb.name] = "\n".join(syncmove.others(listing))
            self.ctx.info(f"{lb.name}: the re-pointed entries go to {to.describe()}")

        return Step(
            "sync daemons read (which one receives the re-pointed entries)",
            verify=verify,
            host=lb.name,
        )

    def _lenient(self, step: Step, lb: Host) -> Step:
        """`step` (the private daemon's start), its failure a fallback rather than the
        drain's; its undo kept (it removes a daemon half-started too)."""

        def do() -> None:
            self.started.append(lb.name)
            try:
                if step.do is not None:
                    step.do()
                if step.verify is not None:
                    step.verify()
            except OpError as exc:
                self._cannot(str(exc))

        return replace(step, do=do, verify=None)

    def _moving(self) -> list[tuple[ClientOnGateway, Gateway]]:
        gateways = {g.name: g for g in self.ctx.inventory.gateways}
        out = []
        for c in self.plan.clients:
            if c.label not in self.plan.repoint or c.destination is None:
                continue
            target = gateways[c.destination]
            if (target.name, c.public_key) not in self.result.peers:
                # Never add a peer the gateway does not have: the client shakes hands itself.
                self.ctx.warn(
                    f"{c.label}: {target.name} has no such peer: not re-pointed, it moves on "
                    "its next packet"
                )
                continue
            out.append((c, target))
        return out

    def repoint(self, mover: _Mover) -> Iterator[Step]:
        """On every LB at once, then the kicks, on every new gateway at once."""
        if not self.usable:
            return
        moving = self._moving()
        if not moving:
            return
        svc = self.ctx.inventory.service
        entries = {
            c.public_key: entrysync.Entry(svc.protocol, c.entry, svc.endpoint, t.real_server)
            for c, t in moving
            if c.entry is not None
        }

        def send(lb: Host) -> set[str]:
            keys = list(entries)
            done: set[str] = set()
            for i in range(0, len(keys), syncmove.PER_SEND):
                chunk = keys[i : i + syncmove.PER_SEND]
                try:
                    to = self.receivers[lb.name]
                    syncmove.send_entries(self.ctx, lb, [entries[k] for k in chunk], to)
                except OpError as exc:
                    self.ctx.warn(
                        f"{lb.name}: {len(chunk)} entr(ies) not re-pointed ({exc}): those "
                        "clients move on their next packet"
                    )
                    continue
                done.update(chunk)
            return done

        def do() -> None:
            self.done_on = on_each(self.lbs, send)

        yield Step(
            f"re-point {len(entries)} client(s)' entries to their new gateways on every LB "
            "through the IPVS sync protocol (each checked in the LB's table)",
            do=do,
        )
        yield Step(
            "their new gateways initiate the handshakes at once (through the re-pointed entries)",
            do=lambda: self._kick(moving, mover),
        )

    def _kick(self, moving: list[tuple[ClientOnGateway, Gateway]], mover: _Mover) -> None:
        """Only the clients re-pointed on every LB: a kick before the entry that carries the
        client's packets points to the new gateway would make the client roam to its address."""
        everywhere = set.intersection(*self.done_on.values()) if self.done_on else set()
        batches: dict[str, list[Kick]] = {}
        labels: dict[str, list[str]] = {}
        targets: dict[str, Gateway] = {}
        for c, target in moving:
            if c.public_key not in everywhere or c.entry is None:
                continue
            peer = self.result.peers[(target.name, c.public_key)]
            batches.setdefault(target.name, []).append(Kick(peer, str(c.entry)))
            labels.setdefault(target.name, []).append(c.label)
            targets[target.name] = target

        def kick(gw: Gateway) -> None:
            for command in initiate_command(gw, batches[gw.name]):
                self.ctx.run(gw.name, command)

        on_each(list(targets.values()), kick)
        for c, target in moving:
            if c.label in labels.get(target.name, []):
                mover.pending.pop(c.public_key, None)
                self.result.moved[c.label] = target.name
                self.result.repointed.append(c.label)
                self.ctx.info(f"{c.label}: LB entry re-pointed to {target.name}; it initiated")

    def finish(self) -> Iterator[Step]:
        """The private daemon removed where it ran (started now, or left by a run cut short),
        and the LBs' other sync daemons found as they were."""
        if not self.synced:
            return
        for lb in self.lbs:
            if lb.name in self.started:
                yield syncmove.daemon_down(self.ctx, lb)
            elif lb.name in self.plan.leftover_on:
                title = "private sync daemon removed (left by a run cut short)"
                yield syncmove.daemon_down(self.ctx, lb, title)
        for lb in self.lbs:
            if lb.name in self.daemons:
                yield syncmove.daemons_unchanged(self.ctx, lb, self.daemons, "drain")


def peers_before(ctx: OpContext, plan: DrainPlan) -> dict[tuple[str, str], WgPeer]:
    """The other gateways' peers, by (gateway, client key), before anything moves."""
    out = {}
    for g in ctx.inventory.gateways:
        if g.name == plan.gateway.name:
            continue
        obs = read_gateway(ctx, g)
        for p in obs.interface.peers if obs.interface else ():
            out[(g.name, p.public_key)] = p
    return out


def _wait_handshakes(ctx: OpContext, plan: DrainPlan, result: DrainResult, timeout: float) -> None:
    """Until each client talks to another gateway: a handshake since the drain began or, when
    that gateway still held a valid session with it (handshake under REJECT_AFTER_TIME), data
    received from it since then. Judged on each gateway's own clock."""
    gw = plan.gateway
    waiting = {c.public_key: c.label for c in plan.clients if not c.bypassing}
    others = [g for g in ctx.inventory.gateways if g.name != gw.name]
    deadline = time.monotonic() + timeout
    last_report = 0.0
    while waiting and time.monotonic() < deadline:
        asked = time.time()
        for g in others:
            obs = read_gateway(ctx, g)
            if obs.interface is None:
                continue
            # The drain's start on this gateway's own clock.
            since = result.since + (obs.clock - asked)
            for p in obs.interface.peers:
                if p.public_key not in waiting:
                    continue
                handshake = p.latest_handshake >= since - 1
                session = 0 < obs.clock - p.latest_handshake < REJECT_AFTER_TIME
                baseline = result.rx_before.get((g.name, p.public_key), p.rx_bytes)
                if handshake or (session and p.rx_bytes > baseline):
                    label = waiting.pop(p.public_key)
                    result.moved[label] = g.name
                    how = "handshake" if handshake else "traffic on its valid session"
                    ctx.info(
                        f"{label}: {how} on {g.name} "
                        f"{time.time() - result.started:.1f} s after the drain began"
                    )
        if waiting and time.monotonic() - last_report > 10:
            ctx.info(f"still waiting for: {', '.join(sorted(waiting.values()))}")
            last_report = time.monotonic()
        if waiting:
            time.sleep(POLL_INTERVAL)
    result.remaining = sorted(set(result.remaining) | set(waiting.values()))
    result.complete = not result.remaining
    if result.remaining:
        raise OpError(
            f"not every client moved within {timeout:.0f} s: {', '.join(result.remaining)}"
        )


def execute_quiet(ctx: OpContext, gw: Gateway) -> None:
    """An evicted gateway that came back: its interface down, as a drain takes it down.

    The fence on the LBs already drops what it sends through them; a client with another
    path to the gateway's own address (one L2 segment, docs/domain/connections-and-timeouts.md
    C5) is only kept off it this way. Under the service lock, and only while it is still
    evicted there: an operator's `undrain` re-creates its interface before it restores the
    weight, and must not see it taken down again half-way.
    """
    action = "evict-interface-down"
    with audited_run(ctx, action, gw.name, lock=f"{action} {gw.name}") as run:
        run.tx.run([_still_evicted(ctx, gw), _interface_down(ctx, gw)])
        run.succeeded({"interface": "down"})


def _still_evicted(ctx: OpContext, gw: Gateway) -> Step:
    def verify() -> None:
        for lb in ctx.inventory.load_balancers:
            record = read_drain_record(ctx, lb, gw)
            dest = dest_of(service_on(ctx, lb)[1], gw)
            if record is None or not record.evicted or (dest is not None and dest.weight != 0):
                raise OpError(f"{lb.name}: {gw.name} is no longer evicted: its interface is left")

    return Step(f"{gw.name} still evicted on every LB", verify=verify)
