"""A planned switchover of the VIP to another director (`wgconsole failover [--to LB]`).

How the VIP is moved: through keepalived's own VRRP, by a `track_file` on every director
(`poll.parsers.switchover`: the hook, and why it survives a reload). The number in a
director's file is added to its VRRP priority; wgconsole writes 0 on the target and, on every
other director whose priority would still be as high, the smallest negative number that puts
it below the target's. keepalived reads the file when it changes (no reload), the lowered
master advertises its new priority, and the target, now the highest, takes the VIP (VRRP
preemption) with the router addresses of the same instance. A reload or a restart of
keepalived reads the same files again, so the switchover stays; `failover --to` the former
holder writes 0 there again and gives the VIP back. A director whose config has no hook is
refused, with the lines to add: moving the VIP any other way (a priority edited into the
config, an address deleted by hand, keepalived stopped) is undone, or undoes the pair, at
the next reload or restart.

What happens to each client (the preview): its synced entry on the target keeps its gateway;
without one, the target's own sh table schedules its next packet; a bucket whose dest is
unavailable without sh-fallback drops it (`core.director`'s `failover_gateway`). Two
directors whose tables differ move the clients without a synced entry hashed to the
differing buckets, each losing its session: refused unless `--allow-differing-tables`
(`wgconsole lb align` first makes them equal).

Before the VIP moves, every gateway but a client's predicted one forgets it where it still
holds its endpoint (`handshake.forget_command`): the gateway it leaves, and any other that
kept a session of it. The target holds no entry of the client towards those gateways, so their
packets to it (persistent keepalives, handshake retries) would pass the target un-NATed and
the client would roam to that gateway's own address, bypassing the VIP (seen on the lab, for
a mover and for a session orphaned on a third gateway).
Afterwards: the VIP on the target alone; every client whose new gateway differs gets a
handshake initiated by that gateway as soon as the target's entry for it points there (the
drain's mechanism: through the LB's reverse NAT the client sees it from the VIP), so it is
not cut off for its ~2 minute rekey; and every active client is verified on the gateways:
the freshest handshake on its predicted gateway, and traffic received there since the
switchover began.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Literal

from wgconsole.core.director import vrrp_instance
from wgconsole.core.fleet import REJECT_AFTER_TIME, Fleet, normalize_endpoint
from wgconsole.core.inventory import Gateway, Host, Inventory
from wgconsole.core.lb_state import SWITCHOVER_TRACK_FILE
from wgconsole.core.records import IpvsConn, LbObservation, VrrpState, WgPeer
from wgconsole.core.sched import TAB_SIZE
from wgconsole.ops.hostcmd import trackfile
from wgconsole.ops.hostcmd.handshake import Kick, forget_command, initiate_command, read_peers_step
from wgconsole.ops.machinery.context import OpContext, failure, on_each
from wgconsole.ops.machinery.errors import OpError, ValidationError
from wgconsole.ops.machinery.pair import tables_step
from wgconsole.ops.machinery.readings import (
    entries_by_client,
    read_gateway,
    read_gateways,
    read_lb,
    vip_holder,
)
from wgconsole.ops.machinery.run import audited_run
from wgconsole.ops.machinery.steps import Step
from wgconsole.poll.parsers.director import parse_addresses
from wgconsole.poll.parsers.errors import ParseError
from wgconsole.poll.parsers.switchover import (
    HOOK_EXAMPLE,
    NoHook,
    SwitchoverHook,
    parse_switchover_hook,
    parse_switchover_value,
)
from wgconsole.poll.transport.base import CommandResult, privileged

POLL_INTERVAL = 1.0
# VRRP moves the VIP within a few advert intervals of the new priorities; generous, as the
# lab's emulated directors are slow.
VIP_MOVE_TIMEOUT = 60.0
# keepalived reads a track file on inotify; its effective priority shows it at the next dump.
PRIORITY_TIMEOUT = 30.0
# keepalived's limit: a tracked result below -253 puts the instance in FAULT.
_LOWEST_RESULT = -253
MAX_PRIORITY = 254  # 255 is the address owner's, which tracking never changes

# How a client's gateway after the switchover is known: its synced entry on the target, the
# target's own sh table, or nothing (dropped).
Reason = Literal["synced entry", "target's table", "dropped", "no LB entry"]


@dataclass(frozen=True, slots=True)
class DirectorHook:
    lb: Host
    instance: str
    state: VrrpState
    priority: int  # effective, as keepalived reports it
    hook: SwitchoverHook
    value: int  # in its switchover file now

    @property
    def neutral(self) -> int:
        """Its priority with 0 in the file."""
        return self.priority - self.value * self.hook.factor


@dataclass(frozen=True, slots=True)
class ClientFate:
    label: str
    public_key: str
    now: str | None  # its gateway now (LB entry, else the freshest handshake)
    after: str | None  # predicted; None: dropped
    reason: Reason
    source: str | None  # where the LB sees it from (its entry's client address:port)

    @property
    def moves(self) -> bool:
        return self.now is not None and self.after != self.now


@dataclass(frozen=True, slots=True)
class FailoverPlan:
    holder: str
    target: str
    hooks: tuple[DirectorHook, ...]
    values: dict[str, int]  # the new value of each director's file
    differing: int  # buckets of the target's table that differ from the holder's
    clients: tuple[ClientFate, ...]
    warnings: tuple[str, ...]

    @property
    def preempt_delay(self) -> float:
        """The target's keepalived preempt_delay: how much later than its adverts allow it
        takes the VIP."""
        return next(h.hook.preempt_delay for h in self.hooks if h.lb.name == self.target)

    def priority_after(self, lb: str) -> int:
        h = next(x for x in self.hooks if x.lb.name == lb)
        # keepalived keeps an effective priority within 1..254.
        return min(MAX_PRIORITY, max(1, h.neutral + self.values[lb] * h.hook.factor))

    def describe(self) -> list[str]:
        lines = [
            f"Failover: the VIP moves from {self.holder} to {self.target} (keepalived VRRP, "
            f"through the {SWITCHOVER_TRACK_FILE} track file on each director: no reload; a "
            "reload or restart keeps it).",
            "  director        state    priority now -> after   switchover file",
        ]
        for h in self.hooks:
            new = self.values[h.lb.name]
            change = f"{h.value} -> {new}" if new != h.value else f"{h.value} (unchanged)"
            after = self.priority_after(h.lb.name)
            lines.append(
                f"    {h.lb.name:<14} {h.state:<8} {h.priority:>4} -> {after:<4}"
                f"       {h.hook.file}: {change}"
            )
        if self.differing:
            lines.append(
                f"  !!! {self.target}'s sh table differs from {self.holder}'s in "
                f"{self.differing}/{TAB_SIZE} buckets: clients without a synced entry hashed "
                "there change gateway and lose their session !!!"
            )
        else:
            lines.append(
                f"  {self.target}'s sh table equals {self.holder}'s (all {TAB_SIZE} buckets)"
            )
        if self.preempt_delay:
            lines.append(
                f"  {self.target} has preempt_delay {self.preempt_delay:g}: it takes the VIP that "
                "many seconds after its priority is the highest; the clients that change gateway "
                "are forgotten by theirs first, and may shake hands again through "
                f"{self.holder} in between"
            )
        lines += [f"  warning: {w}" for w in self.warnings]
        moving = [c for c in self.clients if c.moves]
        lines.append(f"  clients: {len(self.clients)}, of which {len(moving)} would change gateway")
        for c in self.clients:
            lands = c.after or "DROPPED"
            if c.now is None:
                what = f"no LB entry now; its next packet -> {lands} ({c.reason})"
            elif c.moves:
                what = f"{c.now} -> {lands} ({c.reason}): CHANGES GATEWAY"
            else:
                what = f"stays on {c.now} ({c.reason})"
            lines.append(f"    {c.label:<20} {what}")
        lines.append(
            "  then: every gateway but a client's predicted one forgets it where it still holds "
            "its endpoint (the one it leaves, and any that kept a session of it: their "
            f"keepalives would reach it un-NATed through {self.target} and make it roam to "
            f"their own address); wait for the VIP on {self.target} alone; clients that change "
            "gateway get a handshake initiated by their new gateway; every active client "
            "verified on its predicted gateway."
        )
        lines.append(f"  to go back: wgconsole failover --to {self.holder}")
        return lines


def plan_failover(
    ctx: OpContext, fleet: Fleet, to: str | None, *, allow_differing_tables: bool = False
) -> FailoverPlan:
    inventory = ctx.inventory
    if len(inventory.load_balancers) < 2:
        raise ValidationError("one load balancer: there is no other director to fail over to")
    views = {v.name: v for v in fleet.load_balancers}
    holder = vip_holder(fleet, "move it")
    names = [lb.name for lb in inventory.load_balancers]
    if to is not None and to not in names:
        raise ValidationError(f"no load balancer named {to!r} in the inventory")
    target = to or fleet.failover_lb
    if target is None:
        raise ValidationError("no other director answers: there is nothing to fail over to")
    if target == holder:
        raise ValidationError(f"{target} already holds the VIP")
    view = views.get(target)
    if view is None or not view.reachable:
        raise ValidationError(f"{target} does not answer: it cannot take the VIP")
    if target != fleet.failover_lb:
        raise ValidationError(
            f"{target} is not the director VRRP would elect next ({fleet.failover_lb}): the "
            "clients' gateways after the switchover are predicted for that one only"
        )
    if view.service is None:
        raise ValidationError(f"{target} has no copy of the service: it would drop every client")
    differing = view.buckets_differing or 0
    clients = tuple(_fates(fleet))
    if differing and not allow_differing_tables:
        moving = [c.label for c in clients if c.moves]
        named = f" ({len(moving)} of today's clients: {', '.join(moving)})" if moving else ""
        raise ValidationError(
            f"{target}'s sh table differs from {holder}'s (the VIP holder's) in "
            f"{differing}/{TAB_SIZE} buckets: after the switchover, clients without a synced "
            f"entry hashed there change gateway and lose their session{named}. Run "
            f"`wgconsole lb align {target}` first, or pass --allow-differing-tables to go ahead."
        )
    # Read from the directors only once the fleet's own state allows it; all at once.
    hooks = tuple(on_each(inventory.load_balancers, lambda lb: _hook(ctx, lb)).values())
    taking = next(h for h in hooks if h.lb.name == target)
    if taking.state != "BACKUP":
        raise ValidationError(
            f"{target}'s VRRP instance is {taking.state}, not BACKUP: it cannot take over"
        )
    if taking.hook.nopreempt:
        raise ValidationError(
            f"{target}'s {taking.instance} has nopreempt: it never takes the VIP from a master "
            "whose priority drops below its own, so lowering the holder would not move it. "
            "Remove nopreempt there (and reload keepalived) first."
        )
    values = switchover_values(hooks, target)
    return FailoverPlan(
        holder, target, hooks, values, differing, clients, tuple(_warnings(fleet, clients))
    )


def switchover_values(hooks: tuple[DirectorHook, ...], target: str) -> dict[str, int]:
    """The file values that make `target` the one highest priority: 0 there, and on each
    other director the value nearest 0 that puts it below the target (0 when it already is)."""
    top = next(h for h in hooks if h.lb.name == target).neutral
    values = {}
    for h in hooks:
        if h.lb.name == target or h.neutral < top:
            values[h.lb.name] = 0
            continue
        needed = top - 1 - h.neutral  # what must be added to its priority (negative)
        factor = h.hook.factor
        value = math.floor(needed / factor) if factor > 0 else math.ceil(needed / factor)
        if value * factor < _LOWEST_RESULT:
            raise ValidationError(
                f"{h.lb.name}: its priority {h.neutral} cannot be brought below {top} with "
                f"the track's weight {factor} without putting it in FAULT"
            )
        values[h.lb.name] = value
    return values


def _hook(ctx: OpContext, lb: Host) -> DirectorHook:
    """One director's switchover hook: its keepalived, config and file, read now."""
    obs = read_lb(ctx, lb, conns=False, keepalived=True)
    instance = vrrp_instance(obs, _vip(ctx))
    if obs.keepalived is not None and instance is None and obs.keepalived.instances:
        names = ", ".join(i.name for i in obs.keepalived.instances)
        raise ValidationError(
            f"{lb.name}: keepalived runs several VRRP instances ({names}) and none lists the "
            f"VIP {_vip(ctx)} among its virtual addresses: which one moves it is unknown"
        )
    if obs.keepalived is None or instance is None:
        raise ValidationError(
            f"{lb.name}: no keepalived VRRP instance runs there: wgconsole moves the VIP only "
            "through keepalived"
        )
    hook = _parse_hook(ctx, lb, obs, instance.name)
    if isinstance(hook, NoHook):
        raise ValidationError(
            f"{lb.name}: keepalived's config ({obs.keepalived.config_path}) has no switchover "
            f"hook: {hook.reason}. Add this (the file on a persistent, writable path), create "
            f"its directory, and reload keepalived once:\n{HOOK_EXAMPLE}"
        )
    if hook.address_owner:
        raise ValidationError(
            f"{lb.name}: {instance.name} has priority 255 (the address owner): tracking cannot "
            "lower it, so it never gives the VIP up; give it a priority below 255"
        )
    return DirectorHook(
        lb, instance.name, instance.state, instance.priority, hook, read_value(ctx, lb, hook)
    )


def _parse_hook(
    ctx: OpContext, lb: Host, obs: LbObservation, instance: str
) -> SwitchoverHook | NoHook:
    assert obs.keepalived is not None
    path = obs.keepalived.config_path
    if path is None:
        return NoHook("its config file is not known")
    command = privileged(["cat", path], sudo=lb.ssh.sudo)
    result = ctx.run(lb.name, command, mutating=False, check=False)
    if result.status != 0:
        raise OpError(failure(lb.name, command, result))
    try:
        return parse_switchover_hook(result.stdout, instance)
    except ParseError as exc:
        raise ValidationError(f"{lb.name}: keepalived's config: {exc}") from None


def read_value(ctx: OpContext, lb: Host, hook: SwitchoverHook) -> int:
    """The number in the director's switchover file (0 when the file is not there yet). Refused
    when the file or its directory is not safe to use (trackfile); never echoes its bytes."""
    command = trackfile.read_command(lb, hook.file)
    result = ctx.run(lb.name, command, mutating=False, check=False)
    if result.status == trackfile.NO_FILE:
        return 0
    if result.status != 0:
        raise OpError(_track_failure(lb, hook, command, result, reading=True))
    try:
        return parse_switchover_value(result.stdout)
    except ParseError as exc:
        raise OpError(f"{lb.name}: {hook.file}: {exc}") from None


def write_value(ctx: OpContext, lb: Host, hook: SwitchoverHook, value: int) -> None:
    """Replace the file in one rename, from a fresh temporary beside it: keepalived never reads
    half a number. Refused when the file or its directory is not safe to use (trackfile)."""
    command = trackfile.write_command(lb, hook.file, value)
    result = ctx.run(lb.name, command, check=False)
    if result.status != 0:
        raise OpError(_track_failure(lb, hook, command, result, reading=False))


def _track_failure(
    lb: Host, hook: SwitchoverHook, command: str, result: CommandResult, *, reading: bool
) -> str:
    """Why the switchover file could not be used: the script's own reason, or the command's
    failure without its standard output (a read's is the file's bytes)."""
    if result.status == trackfile.REFUSED:
        reason = " ".join(result.stderr.split())[-300:]
        return (
            f"{lb.name}: switchover file {hook.file} refused: {reason}; wgconsole writes it as "
            "root only where nobody else can redirect the write (a regular file, not a symbolic "
            "link, in a directory only root can write)"
        )
    shown = replace(result, stdout="") if reading else result
    return failure(lb.name, command, shown)


def _fates(fleet: Fleet) -> Iterator[ClientFate]:
    for c in fleet.clients:
        active = c.lb_gateway is not None or c.status in ("fresh", "ageing")
        if not active:
            continue
        now = c.lb_gateway or c.handshake_gateway
        if c.lb_entry is None:
            reason: Reason = "no LB entry"
        elif c.failover_synced:
            reason = "synced entry"
        elif c.failover_gateway is None:
            reason = "dropped"
        else:
            reason = "target's table"
        source = str(c.lb_entry.client) if c.lb_entry is not None else c.endpoint
        yield ClientFate(c.label, c.public_key, now, c.failover_gateway, reason, source)


def _warnings(fleet: Fleet, clients: tuple[ClientFate, ...]) -> Iterator[str]:
    for f in fleet.findings:
        if f.code in ("sync-daemon-missing", "keepalived-drift", "director-drift"):
            yield f.message
    dropped = [c.label for c in clients if c.after is None]
    if dropped:
        yield f"clients the target would drop: {', '.join(dropped)}"
    bypassing = [c.label for c in fleet.clients if "bypassing-lb" in c.findings]
    if bypassing:
        yield (
            f"clients bypassing the VIP do not follow it: {', '.join(bypassing)} "
            "(they talk to a gateway's own address)"
        )


@dataclass
class FailoverResult:
    started: float
    seconds: float = 0.0
    vip_moved_after: float | None = None
    kicked: dict[str, str] = field(default_factory=dict)  # client -> gateway that initiated
    verified: dict[str, str] = field(default_factory=dict)  # client -> gateway it is on
    # Bytes each gateway had received from each client (gateway, key), read once the VIP was
    # on the target alone: what the verification counts traffic since the switchover from.
    received_after_move: dict[tuple[str, str], int] | None = None


def execute_failover(
    ctx: OpContext, plan: FailoverPlan, *, break_lock: bool = False
) -> FailoverResult:
    result = FailoverResult(started=time.time())
    before = {"holder": plan.holder, "values": {h.lb.name: h.value for h in plan.hooks}}
    lock = f"failover to {plan.target}"
    with audited_run(
        ctx, "failover", plan.target, lock=lock, break_lock=break_lock, before=before
    ) as run:
        run.tx.run(_steps(ctx, plan, result))
        result.seconds = time.time() - result.started
        after = {"holder": plan.target, "values": plan.values, "kicked": result.kicked}
        run.succeeded(after, detail=f"{result.seconds:.1f} s")
    return result


def _steps(ctx: OpContext, plan: FailoverPlan, result: FailoverResult) -> Iterator[Step]:
    """No step has an undo: a switchover half made is reported as it is, and `failover --to`
    either director finishes it or takes it back."""
    # Ahead of the switchover, every gateway but a client's predicted one forgets it where it
    # still holds its endpoint: the one it leaves, and any other that kept a session of it
    # (a client whose entry and handshake are on different gateways). The target holds no
    # entry of the client towards those, so their packets to it (persistent keepalives,
    # handshake retries) would pass un-NATed and make it roam (seen on the lab: a session
    # orphaned by a table rebuilt on the holder roamed its client after the switchover).
    gateways = {g.name: g for g in ctx.inventory.gateways}
    left = {c.now for c in plan.clients if c.moves}
    leaving: dict[str, list[WgPeer]] = {}
    for name, gw in gateways.items():
        away = [c for c in plan.clients if c.after != name]
        if not away:
            continue
        keys = {c.public_key for c in away}
        title = f"read its peers for the {len(away)} client(s) that will not be on it"
        read = read_peers_step(ctx, gw, keys, title, leaving)
        # A gateway a client leaves must be read (its forget is what keeps that client on the
        # VIP); one that may only hold an orphaned session is not worth the switchover.
        yield read if name in left else _best_effort(ctx, read, gw.name, leaving)
    forgotten = {
        name: [p for p in peers if p.endpoint is not None] for name, peers in leaving.items()
    }
    for name in sorted(forgotten):
        if forgotten[name]:
            yield _forget(ctx, gateways[name], forgotten)
    # The target's value first: it never lowers anyone.
    order = sorted(plan.hooks, key=lambda h: h.lb.name != plan.target)
    for h in order:
        if plan.values[h.lb.name] != h.value:
            yield _write_step(ctx, plan, h)
    yield Step(
        f"the VIP moves to {plan.target}",
        do=lambda: _wait_vip(ctx, plan, result),
    )
    if plan.preempt_delay:
        # During the target's preempt_delay a forgotten client may have shaken hands again
        # through the holder with the gateway it leaves: forgotten again, now that the VIP
        # has moved and no packet of it goes there any more.
        for name in sorted(forgotten):
            if forgotten[name]:
                yield _forget(ctx, gateways[name], forgotten)
    keepalive = ctx.inventory.tunnel.keepalive or 15
    # A client's next packet is at most a keepalive away; a new handshake a few round trips.
    timeout = 3 * keepalive + 30
    yield Step(
        "clients that change gateway: their new gateway initiates the handshake",
        do=lambda: _kick_movers(ctx, plan, result, timeout),
    )
    yield Step(
        "every active client on its predicted gateway",
        do=lambda: _verify_clients(ctx, plan, result, timeout),
    )
    check = tables_step(ctx, f"`failover --to {plan.target}`")
    if check is not None:
        yield check


def _best_effort(ctx: OpContext, read: Step, gw: str, into: dict[str, list[WgPeer]]) -> Step:
    """`read`, whose failure is a warning (nothing of that gateway forgotten), not the end of
    the switchover."""
    assert read.verify is not None
    verify = read.verify

    def tolerant() -> None:
        try:
            verify()
        except OpError as exc:
            into[gw] = []
            ctx.warn(
                f"{gw} not read ({exc}): a session it may still hold of a client that will not "
                "be on it is not forgotten, and could make that client roam"
            )

    return replace(read, verify=tolerant)


def _forget(ctx: OpContext, gw: Gateway, leaving: dict[str, list[WgPeer]]) -> Step:
    """Once the VIP is on the target, the target holds no entry of a moving client towards its
    old gateway, so that gateway's packets to it (its persistent keepalives, replies) would
    pass un-NATed and the client would roam to the gateway's own address
    (docs/domain/connections-and-timeouts.md). So the
    old gateway forgets it first, as rebalance does; the client loses nothing it would keep:
    its session there ends with the switchover anyway."""
    peers = leaving.get(gw.name, [])

    def do() -> None:
        for command in forget_command(gw, peers):
            ctx.run(gw.name, command)

    return Step(
        f"forget the session of {len(peers)} client(s) that will leave it "
        "(it cannot make them roam)",
        do=do,
        host=gw.name,
    )


def _write_step(ctx: OpContext, plan: FailoverPlan, h: DirectorHook) -> Step:
    value = plan.values[h.lb.name]
    expected = plan.priority_after(h.lb.name)

    def verify() -> None:
        deadline = time.monotonic() + PRIORITY_TIMEOUT
        while True:
            if read_value(ctx, h.lb, h.hook) != value:
                raise OpError(f"{h.lb.name}: {h.hook.file} does not hold {value}")
            reading = read_lb(ctx, h.lb, conns=False, keepalived=True)
            instance = vrrp_instance(reading, _vip(ctx))
            if instance is not None and instance.priority == expected:
                return
            if time.monotonic() > deadline:
                now = "unknown" if instance is None else str(instance.priority)
                raise OpError(
                    f"{h.lb.name}: keepalived's priority is {now}, not {expected}, "
                    f"{PRIORITY_TIMEOUT:.0f} s after {h.hook.file} was written: is it tracked "
                    "by the running config (reloaded since the hook was added)?"
                )
            time.sleep(POLL_INTERVAL)

    return Step(
        f"{h.hook.file} = {value} (VRRP priority {h.priority} -> {expected})",
        do=lambda: write_value(ctx, h.lb, h.hook, value),
        verify=verify,
        host=h.lb.name,
    )


def vip_holders(ctx: OpContext) -> list[str]:
    """The directors whose addresses include the VIP, read now (addresses only: quick), all
    at once."""

    def holds(lb: Host) -> bool:
        result = ctx.run(lb.name, "ip -o addr show", mutating=False)
        try:
            return _vip(ctx) in parse_addresses(result.stdout)
        except ParseError as exc:
            raise OpError(f"{lb.name}: {exc}") from None

    return [name for name, held in on_each(ctx.inventory.load_balancers, holds).items() if held]


def _wait_vip(ctx: OpContext, plan: FailoverPlan, result: FailoverResult) -> None:
    # keepalived's preempt_delay on the target holds the VIP back that long after it sees
    # the lower-priority master.
    allowed = VIP_MOVE_TIMEOUT + plan.preempt_delay
    deadline = time.monotonic() + allowed
    while True:
        holders = vip_holders(ctx)
        if holders == [plan.target]:
            result.vip_moved_after = time.time() - result.started
            ctx.info(f"the VIP is on {plan.target} alone, {result.vip_moved_after:.1f} s in")
            return
        if time.monotonic() > deadline:
            raise OpError(
                f"the VIP is on {', '.join(holders) or 'no director'}, not on {plan.target} "
                f"alone, {allowed:.0f} s after the priorities changed (VRRP adverts "
                f"between the directors? preempt on {plan.target}?). `wgconsole failover --to "
                f"{plan.holder}` puts the priorities back."
            )
        time.sleep(POLL_INTERVAL)


def _target_entries(ctx: OpContext, target: Host) -> dict[str, IpvsConn]:
    vip = ctx.inventory.service.endpoint
    entries = entries_by_client(read_lb(ctx, target, conns=True), vip)
    return {str(client): c for client, c in entries.items()}


def _kick_movers(
    ctx: OpContext, plan: FailoverPlan, result: FailoverResult, timeout: float
) -> None:
    """As soon as the target's entry for a client points to another gateway than the one it
    had, that gateway initiates the handshake (never before: the client would roam to the
    gateway's own address)."""
    target = _host(ctx.inventory, plan.target)
    by_server = {g.real_server: g for g in ctx.inventory.gateways}
    pending = {c.public_key: c for c in plan.clients if c.now is not None and c.source}
    peers: dict[str, dict[str, WgPeer]] = {}  # each new gateway's peers, read at its first kick
    deadline = time.monotonic() + timeout
    # The gateways' counters as they are now that the VIP has moved, read beside the first
    # look at the target's entries (never delaying a kick): the verification's baseline.
    entries: dict[str, IpvsConn] | None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="wgc-op") as pool:
        counters = pool.submit(_received, ctx)
        entries = _target_entries(ctx, target) if pending else {}
        result.received_after_move = counters.result()
    baseline = result.received_after_move
    while pending and time.monotonic() < deadline:
        if entries is None:
            entries = _target_entries(ctx, target)
        for key, c in list(pending.items()):
            entry = entries.get(c.source or "")
            if entry is None:
                continue
            gw = by_server.get(entry.dest)
            del pending[key]
            if gw is None or gw.name == c.now:
                continue
            kick = Kick(_peer_on(ctx, gw, key, peers), str(entry.client))
            for command in initiate_command(gw, [kick]):
                ctx.run(gw.name, command)
            # Re-created by the kick, after the baseline: its counters began again at 0.
            baseline[(gw.name, key)] = 0
            result.kicked[c.label] = gw.name
            ctx.info(f"{c.label}: {plan.target}'s entry is on {gw.name}; {gw.name} initiated")
        entries = None
        if pending:
            time.sleep(POLL_INTERVAL)
    for c in pending.values():
        ctx.info(f"{c.label}: no entry on {plan.target} yet (idle); its next packet is scheduled")


def _peer_on(ctx: OpContext, gw: Gateway, key: str, peers: dict[str, dict[str, WgPeer]]) -> WgPeer:
    """The peer `key` as `gw` has it (what the kick re-creates it from); `gw` is read once, at
    its first kick. A gateway without the peer fails the step, as it always has: the kick never
    adds a peer a gateway does not have."""
    if gw.name not in peers:
        obs = read_gateway(ctx, gw)
        found = obs.interface.peers if obs.interface else ()
        peers[gw.name] = {p.public_key: p for p in found}
    peer = peers[gw.name].get(key)
    if peer is None:
        raise OpError(f"{gw.name}: no peer {key} on {gw.interface}")
    return peer


def _received(ctx: OpContext) -> dict[tuple[str, str], int]:
    """Bytes each gateway has received from each peer, by (gateway, key), read now."""
    return {
        (name, p.public_key): p.rx_bytes
        for name, obs in read_gateways(ctx).items()
        for p in (obs.interface.peers if obs.interface else ())
    }


def _verify_clients(
    ctx: OpContext, plan: FailoverPlan, result: FailoverResult, timeout: float
) -> None:
    """Each client that was active: its freshest handshake is on its predicted gateway and
    that gateway received from it since the switchover began (judged on each gateway's own
    clock)."""
    waiting = {c.public_key: c for c in plan.clients if c.now is not None and c.after}
    for c in plan.clients:
        if c.now is not None and c.after is None:
            ctx.warn(f"{c.label}: dropped by {plan.target}'s table, as predicted")
    # Counted from the reading taken once the VIP had moved (the kick step's); without one,
    # from this step's first reading.
    rx_before = result.received_after_move
    deadline = time.monotonic() + timeout
    while True:
        latest: dict[str, tuple[float, str]] = {}
        received: dict[tuple[str, str], int] = {}
        for name, obs in read_gateways(ctx).items():
            if obs.interface is None:
                continue
            for p in obs.interface.peers:
                received[(name, p.public_key)] = p.rx_bytes
                age = obs.clock - p.latest_handshake if p.latest_handshake else math.inf
                if p.public_key not in latest or age < latest[p.public_key][0]:
                    latest[p.public_key] = (age, name)
        if rx_before is None:
            rx_before = received
        for key, c in list(waiting.items()):
            age, gw = latest.get(key, (math.inf, ""))
            grew = received.get((gw, key), 0) > rx_before.get((gw, key), 0)
            if age < REJECT_AFTER_TIME and grew:
                result.verified[c.label] = gw
                if c.after is not None and gw != c.after:
                    raise OpError(
                        f"{c.label} is on {gw}, not on {c.after} as predicted ({c.reason})"
                    )
                del waiting[key]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise OpError(
                "not verified on their predicted gateway within "
                f"{timeout:.0f} s: "
                + ", ".join(f"{c.label} (-> {c.after or 'dropped'})" for c in waiting.values())
            )
        time.sleep(POLL_INTERVAL)


def _vip(ctx: OpContext) -> str:
    return normalize_endpoint(ctx.inventory.service.endpoint).address


def _host(inventory: Inventory, name: str) -> Host:
    return next(lb for lb in inventory.load_balancers if lb.name == name)
