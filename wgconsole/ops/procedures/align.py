"""`wgconsole lb align [LB]`: give a backup director's service the VIP holder's table.

Two directors send a new client to the same gateway only when their services hold the same
dests in the same kernel order, with the same weights, forwarding and sh flags
(docs/domain/director-pair.md).
The order is the one thing no edit can set: a dest goes to the head of the list when it is
added, and stays where it is when edited. So the backup's list is rebuilt from its tail: the
longest tail of the holder's list that the backup already holds in that order is kept, every
other dest of the backup is deleted, and the holder's remaining dests are added oldest first
(each add goes to the head), with the holder's weights and forwarding; kept dests whose weight
or forwarding differ are edited; scheduler and sh flags are set with `ipvsadm -E`, and
expire_nodest_conn as the holder's. Afterwards the backup's 256 buckets are compared with the
holder's, read from both kernels.

Never the VIP holder: it carries the traffic, and its table is the reference. A backup carries
none while it is not the holder, so rebuilding its list moves no client now; the preview names
the clients it concerns (those whose failover gateway it changes).

keepalived: where it owns the service (a `virtual_server` block in the backup's config), a
reload re-applies that block, its weights and its real servers (one it adds goes to the head of
the kernel's list). The alignment is made only when that block already says what the holder
has (the same real servers, weights and sh flags): then a reload changes nothing. Otherwise the
operation refuses and says what the block must say first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from wgconsole.core.fleet import DirectorView, Fleet, normalize_endpoint
from wgconsole.core.inventory import Host, Service
from wgconsole.core.records import Endpoint, IpvsDest, IpvsService, ServiceFlag
from wgconsole.core.sched import TAB_SIZE
from wgconsole.ops.hostcmd import lbcmd
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.errors import OpError, ValidationError
from wgconsole.ops.machinery.pair import read_pair, tables_step
from wgconsole.ops.machinery.readings import read_lb, vip_holder
from wgconsole.ops.machinery.run import audited_run
from wgconsole.ops.machinery.steps import Step
from wgconsole.poll.transport.base import privileged

SH_FLAGS = int(ServiceFlag.SH_FALLBACK) | int(ServiceFlag.SH_PORT)


@dataclass(frozen=True, slots=True)
class Rebuild:
    """What makes one backup's dest list the holder's: deletes, then adds, then edits."""

    deletes: tuple[Endpoint, ...]
    adds: tuple[IpvsDest, ...]  # in the order to run: the holder's oldest first
    edits: tuple[IpvsDest, ...]  # kept dests, with the holder's weight and forwarding


def rebuild(holder: Sequence[IpvsDest], backup: Sequence[IpvsDest]) -> Rebuild:
    """The fewest deletes and adds that give `backup` the kernel order of `holder`.

    The dests not deleted keep their relative order and end up behind every added one, so
    they must be a tail of the holder's list, in the holder's order: the longest such tail
    is kept.
    """
    order = [d.endpoint for d in holder]
    present = [d.endpoint for d in backup]
    kept: list[Endpoint] = []
    for k in range(len(order), -1, -1):
        tail = order[len(order) - k :]
        if [e for e in present if e in tail] == tail:
            kept = tail
            break
    mine = {d.endpoint: d for d in backup}
    deletes = tuple(e for e in present if e not in kept)
    adds = tuple(reversed(holder[: len(holder) - len(kept)]))
    edits = tuple(
        d
        for d in holder
        if d.endpoint in kept
        and (mine[d.endpoint].weight, mine[d.endpoint].forward) != (d.weight, d.forward)
    )
    return Rebuild(deletes, adds, edits)


@dataclass(frozen=True, slots=True)
class AlignTarget:
    lb: Host
    service: IpvsService | None  # its copy now; None: it has none (created)
    rebuild: Rebuild
    service_edit: bool  # scheduler or sh flags differ
    expire_nodest: bool | None  # set it to this (the holder's); None: already equal
    differing: int  # buckets now
    moves: tuple[tuple[str, str, int], ...]  # (gateway in its buckets, in the holder's, count)
    clients: tuple[tuple[str, str, str], ...]  # (client, failover gateway now, after)
    notes: tuple[str, ...]

    @property
    def changes(self) -> bool:
        r = self.rebuild
        return bool(
            self.service is None
            or r.deletes
            or r.adds
            or r.edits
            or self.service_edit
            or self.expire_nodest is not None
        )


@dataclass(frozen=True, slots=True)
class AlignPlan:
    holder: str
    reference: IpvsService
    targets: tuple[AlignTarget, ...]

    @property
    def name(self) -> str:
        """What the operator types: the one LB aligned, or `align` for several."""
        return self.targets[0].lb.name if len(self.targets) == 1 else "align"

    def describe(self) -> list[str]:
        ref = self.reference
        order = ", ".join(f"{d.endpoint} w{d.weight}" for d in ref.dests)
        flags = ",".join(n for n in ref.flag_names() if n.startswith("sh-")) or "none"
        lines = [
            f"Align with {self.holder} (the VIP holder, not touched): scheduler "
            f"{ref.scheduler}, sh flags {flags}, kernel order {order or 'no dests'}."
        ]
        for t in self.targets:
            lines.append(
                f"  {t.lb.name}: {t.differing}/{TAB_SIZE} buckets differ from {self.holder}'s"
                + ("" if t.changes else " and nothing else differs: nothing to do")
            )
            lines += [f"    buckets {n:>3}: {a} -> {b}" for a, b, n in t.moves]
            if t.service is None:
                lines.append(f"    create the service ({ref.scheduler}, flags {flags})")
            elif t.service_edit:
                lines.append(f"    set scheduler {ref.scheduler} and sh flags {flags}")
            lines += [f"    delete {e}" for e in t.rebuild.deletes]
            lines += [
                f"    add {d.endpoint} weight {d.weight} {d.forward} (to the head)"
                for d in t.rebuild.adds
            ]
            lines += [
                f"    edit {d.endpoint}: weight {d.weight} {d.forward} (stays in place)"
                for d in t.rebuild.edits
            ]
            if t.expire_nodest is not None:
                lines.append(f"    net.ipv4.vs.expire_nodest_conn = {int(t.expire_nodest)}")
            if t.clients:
                lines.append(f"    clients whose failover gateway this changes: {len(t.clients)}")
                lines += [f"      {c}: {a} -> {b}" for c, a, b in t.clients]
            elif t.differing:
                lines.append("    no current client's failover gateway changes")
            lines += [f"    note: {n}" for n in t.notes]
        lines.append(
            "  no client moves now (a backup carries no traffic); afterwards every director's "
            "256 buckets are compared with the holder's."
        )
        return lines


def plan_align(
    fleet: Fleet,
    service: Service,
    lbs: Sequence[Host],
    name: str | None,
    *,
    ignore_unknown_keepalived: bool = False,
) -> AlignPlan:
    """`ignore_unknown_keepalived`: align a backup whose keepalived runs but could not be read
    (whether it owns the service, and a reload would undo the alignment, is unknown); the
    preview says so. Without it such a backup is refused."""
    views = {v.name: v for v in fleet.load_balancers}
    if len(lbs) < 2:
        raise ValidationError("one load balancer: there is no other director to align")
    if name is not None and name not in views:
        raise ValidationError(f"no load balancer named {name!r} in the inventory")
    holder = vip_holder(fleet, "align with it")
    if name == holder:
        raise ValidationError(
            f"{holder} holds the VIP: its table is the reference and it carries the traffic; "
            "`lb align` changes backups only"
        )
    reference = views[holder].service
    if reference is None:
        raise ValidationError(f"{holder} (the VIP holder) has no copy of the service")
    names = [name] if name is not None else [lb.name for lb in lbs if lb.name != holder]
    targets = []
    for n in names:
        view = views[n]
        if not view.reachable:
            raise ValidationError(f"{n} does not answer")
        host = next(lb for lb in lbs if lb.name == n)
        target = _target(
            fleet,
            service,
            host,
            view,
            views[holder],
            ignore_unknown_keepalived=ignore_unknown_keepalived,
        )
        if name is not None or target.changes:
            targets.append(target)
    if not targets:
        raise ValidationError(f"every director already has {holder}'s service and table")
    return AlignPlan(holder, reference, tuple(targets))


def _target(
    fleet: Fleet,
    service: Service,
    lb: Host,
    view: DirectorView,
    holder: DirectorView,
    *,
    ignore_unknown_keepalived: bool,
) -> AlignTarget:
    ref = holder.service
    assert ref is not None
    svc = view.service
    work = rebuild(ref.dests, svc.dests if svc is not None else ())
    service_edit = svc is not None and (
        svc.scheduler != ref.scheduler or (svc.flags & SH_FLAGS) != (ref.flags & SH_FLAGS)
    )
    expire = holder.expire_nodest_conn
    set_expire = (
        expire if expire is not None and view.expire_nodest_conn not in (None, expire) else None
    )
    moves: Counter[tuple[str, str]] = Counter()
    if view.table is not None and holder.table is not None:
        for a, b in zip(view.table, holder.table, strict=True):
            if a != b:
                moves[(a or "dropped", b or "dropped")] += 1
    clients = tuple(
        (c.label, c.failover_gateway or "dropped", c.lb_gateway)
        for c in fleet.clients
        if lb.name == fleet.failover_lb
        and c.lb_gateway is not None
        and not c.failover_synced
        and c.failover_gateway != c.lb_gateway
    )
    notes = list(_keepalived(lb.name, view, ref, ignore_unknown=ignore_unknown_keepalived))
    return AlignTarget(
        lb,
        svc,
        work,
        service_edit,
        set_expire,
        view.buckets_differing or 0,
        tuple((a, b, n) for (a, b), n in sorted(moves.items())),
        clients,
        tuple(notes),
    )


def _keepalived(
    name: str, view: DirectorView, ref: IpvsService, *, ignore_unknown: bool
) -> Iterator[str]:
    """Refuse when a keepalived reload would undo the alignment, or when whether it would is
    unknown (unless told to go ahead); notes otherwise."""
    if view.keepalived_unknown:
        why = "; ".join(p for p in view.problems if "keepalived" in p) or "its report failed"
        if not ignore_unknown:
            raise ValidationError(
                f"keepalived runs on {name} but could not be read ({why}): whether it owns the "
                "service, and a reload would re-apply another table, is unknown. Poll again "
                "once it can be read, or align anyway with --ignore-unknown-keepalived."
            )
        yield (
            f"whether keepalived owns the service on {name} is unknown (it could not be read: "
            f"{why}); aligning anyway as --ignore-unknown-keepalived asks: a reload may undo it"
        )
        return
    if view.vrrp_source is None:
        return  # no keepalived runs there
    if view.keepalived_managed is None:
        raise ValidationError(
            f"{name}: whether keepalived owns the service is not known (its config could not "
            "be read, or it has `include` lines, which are not followed): a reload might "
            "re-apply another table. Make its config readable in one file first."
        )
    if not view.keepalived_managed:
        yield f"keepalived on {name} does not own the service: a reload leaves it as aligned"
        return
    ka = view.keepalived_service
    assert ka is not None
    config = {normalize_endpoint(r.endpoint): r.weight for r in ka.real_servers}
    wanted = {normalize_endpoint(d.endpoint): d.weight for d in ref.dests}
    problems = []
    if config != wanted:
        said = ", ".join(f"{e} weight {w}" for e, w in config.items()) or "none"
        need = ", ".join(f"{e} weight {w}" for e, w in wanted.items())
        problems.append(f"its real servers are {said}; they must be {need}")
    if ka.flags != ref.flags & SH_FLAGS:
        problems.append("its sh flags differ from the holder's")
    if ka.scheduler is not None and ka.scheduler != ref.scheduler:
        problems.append(f"its lb_algo is {ka.scheduler}, the holder's {ref.scheduler}")
    if problems:
        raise ValidationError(
            f"{name}: keepalived owns the service (a virtual_server block in its config), and "
            f"a reload re-applies that block: {'; '.join(problems)}. A reload would undo the "
            "alignment; make the block say the holder's real servers, weights and flags, "
            "reload keepalived, then align."
        )
    unguarded = [str(r.endpoint) for r in ka.real_servers if not r.inhibit_on_failure]
    yield (
        f"keepalived owns the service on {name} and its virtual_server says the holder's real "
        "servers and weights: a reload leaves the alignment as it is"
    )
    if unguarded:
        yield (
            f"without inhibit_on_failure, a failed then passing health check of "
            f"{', '.join(unguarded)} deletes and re-adds it (to the head of the list): the "
            "tables differ again until the next align"
        )


def execute_align(ctx: OpContext, plan: AlignPlan, *, break_lock: bool = False) -> None:
    before = {t.lb.name: t.differing for t in plan.targets}
    lock = f"lb align {plan.name}"
    with audited_run(
        ctx, "lb align", plan.name, lock=lock, break_lock=break_lock, before=before
    ) as run:
        run.tx.run(_steps(ctx, plan))
        run.succeeded(dict.fromkeys(before, 0))


def _steps(ctx: OpContext, plan: AlignPlan) -> Iterator[Step]:
    """None has an undo: a backup half rebuilt carries no traffic, and the next align (or the
    same one run again) finishes it."""
    service = ctx.inventory.service
    ref = plan.reference
    flags = [n for n in ref.flag_names() if n.startswith("sh-")]
    for t in plan.targets:
        lb = t.lb
        yield _still_a_backup(ctx, lb)
        if t.service is None:
            yield _run(ctx, lb, "create the service", _add_service(lb, service, ref, flags))
        elif t.service_edit:
            yield _run(
                ctx,
                lb,
                f"scheduler {ref.scheduler}, sh flags {','.join(flags) or 'none'}",
                lbcmd.set_sched_flags(lb, service, ref, flags),
            )
        for e in t.rebuild.deletes:
            yield _run(ctx, lb, f"delete {e}", lbcmd.delete_dest(lb, service, e))
        for d in t.rebuild.adds:
            command = lbcmd.add_dest(lb, service, d.endpoint, d.forward, d.weight)
            yield _run(ctx, lb, f"add {d.endpoint} weight {d.weight} (to the head)", command)
        for d in t.rebuild.edits:
            command = lbcmd.set_weight(lb, service, d.endpoint, d.forward, d.weight)
            yield _run(ctx, lb, f"{d.endpoint} weight {d.weight} {d.forward}", command)
        if t.expire_nodest is not None:
            command = lbcmd.set_expire_nodest(lb, value=t.expire_nodest)
            yield _run(ctx, lb, f"expire_nodest_conn={int(t.expire_nodest)}", command)
        yield _same_service(ctx, plan, lb)
    check = tables_step(ctx, f"`lb align {' '.join(t.lb.name for t in plan.targets)}`")
    if check is not None:
        yield check


def _still_a_backup(ctx: OpContext, lb: Host) -> Step:
    """The plan saw `lb` without the VIP; VRRP may have moved it since (while the preview was
    open). Read under the lock, before the first change to it: align never rebuilds the table
    that carries the traffic (with expire_nodest_conn its deletes would flush live entries)."""

    def verify() -> None:
        addresses = read_lb(ctx, lb, conns=False).addresses
        if addresses is None:
            raise OpError(
                f"{lb.name}: its addresses could not be read: whether it holds the VIP now is "
                "not known; nothing changed there"
            )
        if ctx.inventory.service.vip in addresses:
            raise OpError(
                f"{lb.name} now holds the VIP (VRRP moved it after the plan): its table carries "
                "the traffic; nothing changed there. Plan `lb align` again."
            )

    return Step("still a backup (not the VIP holder, read now)", verify=verify, host=lb.name)


def _run(ctx: OpContext, lb: Host, title: str, command: str) -> Step:
    return Step(title, do=lambda: ctx.run(lb.name, command), host=lb.name)


def _add_service(lb: Host, service: Service, ref: IpvsService, flags: list[str]) -> str:
    argv = ["ipvsadm", "-A", lbcmd.PROTOCOL_OPTION[service.protocol]]
    argv += [f"{service.vip}:{service.port}", "-s", ref.scheduler]
    if flags:
        argv += ["-b", ",".join(flags)]
    if ref.timeout:
        argv += ["-p", str(ref.timeout)]
    return privileged(argv, sudo=lb.ssh.sudo)


def _same_service(ctx: OpContext, plan: AlignPlan, lb: Host) -> Step:
    """Its dests, order, weights, forwarding, scheduler and sh flags are the holder's, both
    read now (the holder's too: it is the reference, whatever the plan saw)."""

    def verify() -> None:
        reading = read_pair(ctx)
        ref = reading.pair.services.get(plan.holder)
        mine = reading.pair.services.get(lb.name)
        if ref is None or mine is None:
            raise OpError(f"{lb.name}: the service is not on both {lb.name} and {plan.holder}")
        if _shape(mine) != _shape(ref):
            raise OpError(
                f"{lb.name}: its service is {_describe(mine)}, {plan.holder}'s {_describe(ref)}"
            )

    return Step(
        f"same dests, kernel order, weights and flags as {plan.holder}", verify=verify, host=lb.name
    )


def _shape(svc: IpvsService) -> tuple[object, ...]:
    dests = tuple((d.endpoint, d.weight, d.forward) for d in svc.dests)
    return (svc.scheduler, svc.flags & SH_FLAGS, dests)


def _describe(svc: IpvsService) -> str:
    order = ", ".join(f"{d.endpoint} w{d.weight}" for d in svc.dests)
    return f"{svc.scheduler} flags {svc.flags & SH_FLAGS:#x} [{order}]"
