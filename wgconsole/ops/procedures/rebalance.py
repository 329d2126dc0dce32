"""Rebalance: move exactly the clients whose LB entry is not where the current sh table sends
them (after an undrain, a weight change, a gateway added), and nobody else.

Keepalives refresh a client's IPVS entry forever, so a table change moves nobody: one gateway
keeps everyone until clients reconnect from a new port. IPVS has no command to delete or edit
one connection entry; the mechanisms measured on the lab's 6.1 kernel (README, Operations):

- delete + re-add the real server the clients are on, with expire_nodest_conn=1: its entries
  are flushed one jiffy after the delete, but every packet that arrives while it is out of the
  table is scheduled without it (clients that should stay go elsewhere), the re-add puts it at
  the head of the kernel's list (another table unless it was first), and after the flush the
  gateway's own packets to its clients pass the LB without reverse NAT until each client sends
  again: measured with clients pinging every 100 ms, all three clients that should have stayed
  were sent to the other gateway and roamed to the old gateway's own address (58% loss).
- a shortened UDP timeout (`ipvsadm --set 0 0 2`, 47 s): the client pinging every 100 ms kept
  its entry (it would never move), and every idle client's entry expired between keepalives,
  after which its gateway's next keepalive passed the LB without reverse NAT: all four idle
  clients, the one to move and three that should stay, roamed to their gateway's own address.
  It also changes every UDP service on the LB.
- the IPVS sync protocol (`ops.hostcmd.entrysync`): a backup sync daemon that receives an entry
  for a client whose entry points elsewhere replaces it. Exactly the clients concerned change; no
  other entry, dest, order, weight, flag or timeout. This is what rebalance does.

Per moved client, in this order (its gateways' peers are read first, ahead of the gap):
1. its old gateway forgets its session and endpoint (`handshake.forget_command`: the peer
   re-created as read, in one `wg set`): from the moment its entry moves, that gateway's
   packets would make the client roam;
2. its entry is re-pointed to the new gateway on every LB, checked in each LB's table (on a
   director pair's standby through keepalived's own backup sync daemon: `ops.hostcmd.entrysync`);
3. the new gateway initiates a fresh handshake through the new entry, the drain's way
   (`handshake.initiate_command`: the peer re-created and kicked in one `wg set`, so that
   WireGuard's 5 s limit between initiations does not hold it back): the client sees it from
   the VIP;
4. verified: a handshake on the new gateway since the move, from the client's address as the
   LB entry shows it, and the entry still on the new gateway.
The table (dests in kernel order, weights, flags) and the LB's other sync daemons are checked
identical before and after.
A moved client's traffic stops from step 1 until the handshake of step 3 completes (one command
on each of three hosts, then a round trip); clients already where the table sends them are not
touched at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from wgconsole.core.fleet import DirectorView, Fleet, ServiceView
from wgconsole.core.inventory import Gateway, Host, Inventory
from wgconsole.core.rebalance import GatewayBalance, balance, fleet_choice, misplaced, share_text
from wgconsole.core.records import Endpoint, IpvsService, WgPeer
from wgconsole.ops.hostcmd import entrysync
from wgconsole.ops.hostcmd.handshake import Kick, forget_command, initiate_command, read_peers_step

# Re-exported (`as`): rebalance's callers and tests find them here.
from wgconsole.ops.hostcmd.syncmove import BACKUP_ONLY as BACKUP_ONLY
from wgconsole.ops.hostcmd.syncmove import SIDE_EFFECTS as SIDE_EFFECTS
from wgconsole.ops.hostcmd.syncmove import (
    backup_only,
    daemon_down,
    daemon_up,
    daemons_unchanged,
    director,
    interface_problem,
    private_receiver_lbs,
    receiver_step,
    repoint_step,
)
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.errors import OpError, ValidationError
from wgconsole.ops.machinery.lock import sync_lock
from wgconsole.ops.machinery.readings import entries_by_client, read_gateway, read_lb, service_on
from wgconsole.ops.machinery.run import audited_run
from wgconsole.ops.machinery.steps import Step

POLL_INTERVAL = 1.0
# Active statuses: a client with no session now is left to the table (below).
_SESSION = ("fresh", "ageing")

NOTHING_TO_MOVE = "  nothing to move: every client with an LB entry is where sh sends it"


@dataclass(frozen=True, slots=True)
class Move:
    label: str
    public_key: str
    source: Endpoint  # its LB entry's client address:port
    origin: str  # the gateway its LB entry points to now
    target: str  # where the current table sends it


# A service's sh table as the kernel builds it: (dest, weight) in kernel order, and its flags.
TableKey = tuple[tuple[tuple[str, int], ...], int, str]


def table_key(service: IpvsService) -> TableKey:
    return (
        tuple((str(d.endpoint), d.weight) for d in service.dests),
        service.flags,
        service.scheduler,
    )


@dataclass(frozen=True, slots=True)
class RebalancePlan:
    service: ServiceView
    moves: tuple[Move, ...]
    skipped: tuple[tuple[str, str], ...]  # (client, why it is not moved)
    untouched: int  # clients with an LB entry already where the table sends them
    balance: tuple[GatewayBalance, ...]
    table: TableKey
    # The LBs where the private backup sync daemon would start (no other backup daemon there,
    # or unknown), each checked at plan time: net.ipv4.vs.backup_only=0.
    private_on: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        lines = [
            f"Rebalance {self.service.label}: move {len(self.moves)} client(s) whose LB entry is "
            "not where the sh table sends them; "
            f"{self.untouched} already there are not touched.",
            "  clients per gateway (LB entries): now -> after a rebalance (the table's share)",
        ]
        shares = share_text(self.balance)
        lines += [f"    {name:<24} {text}" for name, text in shares.items()]
        if self.moves:
            lines.append("  moves:")
            lines += [
                f"    {m.label:<20} {m.source!s:<22} {m.origin} -> {m.target}" for m in self.moves
            ]
        else:
            lines.append(NOTHING_TO_MOVE)
        for label, why in self.skipped:
            lines.append(f"  not moved: {label}: {why}")
        if self.moves:
            lines += [
                "  how: per client, its old gateway forgets its session (so that it cannot make "
                "the client roam to its own address), its entry is re-pointed on every LB "
                "through the IPVS sync protocol, and its new gateway initiates the handshake "
                "through the LB (the client still sees the VIP); verified per client",
                f"  also: {SIDE_EFFECTS}",
                "  checked: net.ipv4.vs.backup_only=0 on "
                f"{', '.join(self.private_on) or 'no LB'} (where the private daemon starts: "
                "with 1, a backup sync daemon stops the forwarding of every IPVS service)",
                "  a moved client's traffic stops from the moment its old gateway forgets it "
                "until its new handshake (about one round trip after its entry moves)",
            ]
        return lines


def plan_rebalance(inventory: Inventory, fleet: Fleet) -> RebalancePlan:
    svc = fleet.service
    if svc is None:
        raise ValidationError("the service is not on any answering load balancer")
    if svc.scheduler != "sh":
        raise ValidationError(f"the service uses the {svc.scheduler!r} scheduler, not sh")
    choice = fleet_choice(inventory, fleet)
    found = misplaced(fleet.clients, choice)
    moves, skipped = [], []
    gateways = {g.name for g in inventory.gateways}
    for m in found:
        c = m.client
        if c.status not in _SESSION:
            skipped.append(
                (
                    c.label,
                    f"no session now ({c.status}): its entry expires after its last packet, "
                    "and its next packet then goes where sh sends it",
                )
            )
        elif ":" in m.source.address:
            skipped.append((c.label, "an IPv6 entry: rebalance moves IPv4 entries only"))
        elif m.now not in gateways or m.sh not in gateways:
            skipped.append((c.label, f"{m.now} -> {m.sh}: not a gateway of the inventory"))
        else:
            moves.append(Move(c.label, c.public_key, m.source, m.now, m.sh))
    with_entry = sum(1 for c in fleet.clients if c.lb_entry is not None)
    private_on = private_receiver_lbs(inventory, fleet) if moves else ()
    for lb in private_on:
        _refuse_backup_only(lb, director(fleet, lb))
    return RebalancePlan(
        svc,
        tuple(moves),
        tuple(skipped),
        with_entry - len(found),
        balance(inventory, fleet),
        table_key(svc.raw),
        private_on,
    )


def _refuse_backup_only(lb: str, view: DirectorView | None) -> None:
    """ValidationError unless net.ipv4.vs.backup_only is known to be 0 on `lb`."""
    value = backup_only(view)
    if value == 0:
        return
    stops = (
        "a backup sync daemon there would stop forwarding every IPVS service until it stops, "
        "and rebalance starts one"
    )
    fix = (
        "set it to 0 for the rebalance (`sysctl -w net.ipv4.vs.backup_only=0`) or move "
        "clients with drain/undrain"
    )
    if value is None:
        raise ValidationError(
            f"net.ipv4.vs.backup_only on {lb} is unknown (not read): if it is 1, {stops}; "
            f"check that {lb} answers and {fix}"
        )
    raise ValidationError(f"net.ipv4.vs.backup_only={value} on {lb}: {stops}; {fix}")


def refuse_without_private_interface(ctx: OpContext, plan: RebalancePlan) -> None:
    """ValidationError, before any change, for an LB where the private daemon would start but
    its `dummy` interface cannot be made (module not loaded, autoload off, modules disabled:
    containers and hardened hosts), with the cause and the fix."""
    if not plan.moves:
        return
    for name in plan.private_on:
        reason = interface_problem(ctx, name)
        if reason is not None:
            raise ValidationError(
                f"{name}: rebalance needs a dummy network interface there ({entrysync.INTERFACE}, "
                f"for its private backup sync daemon), and {reason}. Load the module first "
                "(`modprobe dummy`, and `dummy` in /etc/modules-load.d/ to keep it), or move "
                "clients with drain/undrain; nothing was changed"
            )


@dataclass
class RebalanceResult:
    started: float
    seconds: float = 0.0
    moved: dict[str, str] = field(default_factory=dict)  # client -> new gateway, verified
    took: dict[str, float] = field(default_factory=dict)  # client -> s from forget to handshake
    not_verified: dict[str, str] = field(default_factory=dict)  # client -> why
    forgotten_at: float = 0.0

    def summary(self) -> str:
        moved = ", ".join(
            f"{k} -> {v} ({self.took.get(k, 0.0):.1f} s)" for k, v in sorted(self.moved.items())
        )
        text = f"rebalance: {len(self.moved)} client(s) moved and verified in {self.seconds:.1f} s"
        if moved:
            text += f": {moved}"
        if self.not_verified:
            bad = "; ".join(f"{k}: {v}" for k, v in sorted(self.not_verified.items()))
            text += f"; NOT verified: {bad}"
        return text + "; the sh table is unchanged on every LB"


def execute_rebalance(
    ctx: OpContext, plan: RebalancePlan, *, break_lock: bool = False, wait_timeout: float = 60.0
) -> RebalanceResult:
    result = RebalanceResult(started=time.time())
    before = [
        {"client": m.label, "source": str(m.source), "from": m.origin, "to": m.target}
        for m in plan.moves
    ]
    after = {"moved": result.moved}  # filled in as clients move: a failure's record too
    with audited_run(
        ctx,
        "rebalance",
        plan.service.label,
        lock="rebalance" if plan.moves else None,  # nothing to move: nothing is changed
        break_lock=break_lock,
        before=before,
        after_failure=after,
    ) as run:
        if plan.moves:
            # One sync mechanism per LB at a time: another service's rebalance would use (and
            # its teardown stop) the same backup daemon.
            with sync_lock(ctx, f"rebalance {plan.service.label}", break_lock=break_lock):
                run.tx.run(_steps(ctx, plan, result, wait_timeout))
        result.seconds = time.time() - result.started
        run.succeeded(after, detail=f"{result.seconds:.1f} s")
    return result


def _by_name(inventory: Inventory) -> dict[str, Gateway]:
    return {g.name: g for g in inventory.gateways}


def _steps(
    ctx: OpContext, plan: RebalancePlan, result: RebalanceResult, wait_timeout: float
) -> Iterator[Step]:
    """Only the sync daemon's start has an undo (its removal): a client moved stays moved, and
    one whose old gateway forgot it but whose entry did not move re-handshakes with that
    gateway on its own (it still has the peer)."""
    tables: dict[str, TableKey] = {}
    lbs = ctx.inventory.load_balancers
    for lb in lbs:
        yield _table_as_planned(ctx, lb, plan, tables)
    receivers: dict[str, entrysync.Receiver] = {}
    daemons: dict[str, str] = {}
    for lb in lbs:
        yield receiver_step(ctx, lb, plan.private_on, receivers, daemons, "rebalance")
    for lb in lbs:
        if receivers[lb.name].ours:
            yield daemon_up(ctx, lb)
    gateways = _by_name(ctx.inventory)
    origins = sorted({m.origin for m in plan.moves})
    targets = sorted({m.target for m in plan.moves})
    # Ahead of the clients' gap: the gateways' peers as they are (the forget and the kick
    # re-create them).
    kicks: dict[str, list[Kick]] = {}
    for name in targets:
        moving = [m for m in plan.moves if m.target == name]
        yield _read_peers(ctx, gateways[name], moving, kicks)
    leaving: dict[str, list[WgPeer]] = {}
    for name in origins:
        moving = [m for m in plan.moves if m.origin == name]
        keys = {m.public_key for m in moving}
        title = f"read its peers for the {len(moving)} client(s) leaving it"
        yield read_peers_step(ctx, gateways[name], keys, title, leaving)
    # The gap: one command on each host, in this order.
    for name in origins:
        yield _forget(ctx, gateways[name], leaving, result)
    for lb in lbs:
        yield _repoint(ctx, lb, plan, receivers[lb.name])
    for name in targets:
        yield _kick(ctx, gateways[name], kicks)
    yield Step(
        "wait for each moved client's handshake with its new gateway",
        do=lambda: _wait_handshakes(ctx, plan, result, wait_timeout),
    )
    for name in origins:
        yield _old_gateway_silent(ctx, gateways[name], [m for m in plan.moves if m.origin == name])
    for lb in lbs:
        yield _entries_on_targets(ctx, lb, plan, "moved entries still on their new gateways")
    for lb in lbs:
        if receivers[lb.name].ours:
            yield daemon_down(ctx, lb)
    for lb in lbs:
        yield _table_unchanged(ctx, lb, tables)
    for lb in lbs:
        yield daemons_unchanged(ctx, lb, daemons, "rebalance")


def _table_as_planned(
    ctx: OpContext, lb: Host, plan: RebalancePlan, tables: dict[str, TableKey]
) -> Step:
    def verify() -> None:
        key = table_key(service_on(ctx, lb)[1])
        tables[lb.name] = key
        if lb.name == plan.service.lb and key != plan.table:
            raise OpError(
                f"{lb.name}: the sh table changed since the plan (dests, order, weights or "
                "flags): plan again"
            )

    return Step("sh table recorded (as planned)", verify=verify, host=lb.name)


def _table_unchanged(ctx: OpContext, lb: Host, tables: dict[str, TableKey]) -> Step:
    def verify() -> None:
        now = table_key(service_on(ctx, lb)[1])
        if now != tables.get(lb.name):
            raise OpError(
                f"{lb.name}: the sh table is not the one the rebalance started from: "
                f"before {tables.get(lb.name)}, now {now}"
            )

    return Step(
        "sh table unchanged (dests, kernel order, weights, flags)", verify=verify, host=lb.name
    )


def _forget(
    ctx: OpContext, gw: Gateway, leaving: dict[str, list[WgPeer]], result: RebalanceResult
) -> Step:
    """One `wg set` (`handshake.forget_command`): the entry moves right after it (every command
    here adds to the moved clients' gap), and a re-created peer has no endpoint by
    construction."""

    def do() -> None:
        result.forgotten_at = result.forgotten_at or time.time()
        for command in forget_command(gw, leaving.get(gw.name, [])):
            ctx.run(gw.name, command)

    return Step(
        "forget the session of the client(s) leaving it (it cannot make them roam)",
        do=do,
        host=gw.name,
    )


def _repoint(ctx: OpContext, lb: Host, plan: RebalancePlan, to: entrysync.Receiver) -> Step:
    gateways = _by_name(ctx.inventory)
    vip = ctx.inventory.service.endpoint
    entries = [
        entrysync.Entry(
            ctx.inventory.service.protocol, m.source, vip, gateways[m.target].real_server
        )
        for m in plan.moves
    ]
    return repoint_step(ctx, lb, entries, to)


def _old_gateway_silent(ctx: OpContext, gw: Gateway, moves: list[Move]) -> Step:
    """A client that re-handshook with its old gateway between the forget and the move (a
    data-sending client does after ~15 s without answers) taught it its endpoint again: forget
    it again, before that gateway's next packet makes the client roam."""
    keys = {m.public_key: m.label for m in moves}

    def do() -> None:
        obs = read_gateway(ctx, gw)
        again = [
            p
            for p in (obs.interface.peers if obs.interface else ())
            if p.public_key in keys and p.endpoint is not None
        ]
        if again:
            names = ", ".join(sorted(keys[p.public_key] for p in again))
            ctx.warn(f"{gw.name} learned {names} again: forgotten")
            for command in forget_command(gw, again):
                ctx.run(gw.name, command)

    return Step("no session left with the clients that left it", do=do, host=gw.name)


def _entries_verifier(ctx: OpContext, lb: Host, plan: RebalancePlan) -> Callable[[], None]:
    gateways = _by_name(ctx.inventory)
    vip = ctx.inventory.service.endpoint

    def verify() -> None:
        entries = entries_by_client(read_lb(ctx, lb, conns=True), vip)
        conns = {client: c.dest for client, c in entries.items()}
        wrong = [
            f"{m.label} on {conns.get(m.source, 'no entry')}"
            for m in plan.moves
            if conns.get(m.source) != gateways[m.target].real_server
        ]
        if wrong:
            raise OpError(f"{lb.name}: entries not on their new gateway: {', '.join(wrong)}")

    return verify


def _entries_on_targets(ctx: OpContext, lb: Host, plan: RebalancePlan, title: str) -> Step:
    return Step(title, verify=_entries_verifier(ctx, lb, plan), host=lb.name)


def _read_peers(
    ctx: OpContext, gw: Gateway, moves: list[Move], kicks: dict[str, list[Kick]]
) -> Step:
    def verify() -> None:
        obs = read_gateway(ctx, gw)
        peers = {p.public_key: p for p in obs.interface.peers} if obs.interface else {}
        missing = [m.label for m in moves if m.public_key not in peers]
        if missing:
            raise OpError(f"{gw.name}: no peer for {', '.join(missing)}: they cannot move there")
        kicks[gw.name] = [Kick(peers[m.public_key], str(m.source)) for m in moves]

    return Step(
        f"read its peers for the {len(moves)} client(s) coming to it", verify=verify, host=gw.name
    )


def _kick(ctx: OpContext, gw: Gateway, kicks: dict[str, list[Kick]]) -> Step:
    """The drain's fast handshake (`ops.hostcmd.handshake`): each peer re-created as it was read and
    initiating at once, in one `wg set`."""
    mine = kicks.get(gw.name, [])

    def do() -> None:
        for command in initiate_command(gw, mine):
            ctx.run(gw.name, command)

    return Step(
        f"initiate the handshake with {len(mine)} client(s), through their new entries",
        do=do,
        host=gw.name,
    )


def _wait_handshakes(
    ctx: OpContext, plan: RebalancePlan, result: RebalanceResult, timeout: float
) -> None:
    """Until each moved client has shaken hands with its new gateway since its old one forgot
    it (on the new gateway's own clock), from the address its LB entry shows."""
    gateways = _by_name(ctx.inventory)
    waiting = {m.public_key: m for m in plan.moves}
    since_bastion = result.forgotten_at or result.started
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for name in sorted({m.target for m in waiting.values()}):
            asked = time.time()
            obs = read_gateway(ctx, gateways[name])
            if obs.interface is None:
                continue
            since = since_bastion + (obs.clock - asked)
            for p in obs.interface.peers:
                m = waiting.get(p.public_key)
                if m is None or m.target != name:
                    continue
                if p.latest_handshake >= since - 1 and p.endpoint == m.source:
                    del waiting[p.public_key]
                    result.moved[m.label] = name
                    result.took[m.label] = time.time() - since_bastion
                    ctx.info(f"{m.label}: handshake on {name} from {m.source}")
        if waiting:
            time.sleep(POLL_INTERVAL)
    for m in waiting.values():
        result.not_verified[m.label] = f"no handshake on {m.target} within {timeout:.0f} s"
    if waiting:
        raise OpError(
            "no handshake on the new gateway within "
            f"{timeout:.0f} s: {', '.join(sorted(m.label for m in waiting.values()))} (their "
            "entries are on the new gateway: they re-handshake on their own within ~2 min)"
        )
