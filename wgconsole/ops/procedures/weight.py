"""Re-weight a gateway, and undrain one: previews of the 256 buckets and of who would move."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from wgconsole.core.fleet import Fleet, ServiceView
from wgconsole.core.inventory import Gateway, Host, Inventory
from wgconsole.core.sched import ShTable, moved_clients
from wgconsole.core.whereis import proposed_table
from wgconsole.ops.hostcmd import fence, lbcmd
from wgconsole.ops.hostcmd.drainrecord import (
    bad_record,
    interrupted_drain,
    read_drain_record,
    remove_drain_record,
)
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.errors import OpError, ValidationError
from wgconsole.ops.machinery.pair import tables_step
from wgconsole.ops.machinery.readings import (
    dest_of,
    read_gateway,
    service_on,
)
from wgconsole.ops.machinery.run import audited_run
from wgconsole.ops.machinery.steps import Step
from wgconsole.ops.machinery.validate import MAX_WEIGHT
from wgconsole.ops.machinery.validate import gateway as find_gateway
from wgconsole.ops.machinery.validate import weight as valid_weight
from wgconsole.poll.transport.base import privileged


@dataclass(frozen=True, slots=True)
class WeightPlan:
    action: str  # "weight" or "undrain"
    gateway: Gateway
    service: ServiceView
    current: int | None  # None: not a real server now (a drain left it out)
    target: int
    share_before: dict[str, int]
    share_after: dict[str, int]
    moves: tuple[tuple[str, str, str], ...]  # (client, from, to) on reconnection
    warnings: tuple[str, ...]
    interface_down: bool = False  # down or missing: re-created from its config file
    interrupted: str | None = None  # a drain of the gateway that was cut short
    peers: int = 0  # on the gateway's interface now (what re-creating it must remove)
    fenced: bool = False  # an eviction's (or unreachable drain's) fence to take off every LB

    def describe(self) -> list[str]:
        now = "not in the service" if self.current is None else f"weight {self.current}"
        lines = [f"{self.action} {self.gateway.name}: {now} -> weight {self.target} (every LB)"]
        if self.interrupted and self.action == "undrain":
            lines.append(f"  ROLLING BACK an interrupted drain: {self.interrupted}")
        elif self.interrupted:
            lines.append(
                f"  warning: a drain of {self.gateway.name} was cut short: {self.interrupted}"
            )
        lines += [f"  warning: {w}" for w in self.warnings]
        if self.fenced:
            lines.append(
                f"  {self.gateway.name} is fenced on the LBs (evicted, or drained while it did "
                "not answer): the fence comes off after its interface is re-created"
            )
        if self.interface_down:
            why = "was fenced" if self.fenced else "is down or missing"
            lines.append(
                f"  {self.gateway.interface} on {self.gateway.name} {why}: "
                f"re-create it from "
                f"{self.gateway.config} (it forgets its old clients' endpoints, so it cannot make "
                "them roam to its own address) and bring it up"
            )
        lines.append("  buckets (of 256):  gateway  before -> after")
        for name in sorted(set(self.share_before) | set(self.share_after)):
            b, a = self.share_before.get(name, 0), self.share_after.get(name, 0)
            lines.append(f"    {name:<24} {b:>4} -> {a:>4}")
        if self.moves:
            lines.append(f"  clients that would move on reconnection: {len(self.moves)}")
            lines += [f"    {c}: {f} -> {t}" for c, f, t in self.moves]
        else:
            lines.append("  no current client would move on reconnection")
        lines.append("  existing UDP flows stay where they are (their entries are refreshed)")
        return lines


def _share(inventory: Inventory, model: ShTable) -> dict[str, int]:
    names = {g.real_server: g.name for g in inventory.gateways}
    return {
        (names.get(k, str(k)) if k is not None else "dropped"): v
        for k, v in model.effective_share().items()
    }


def _plan(
    inventory: Inventory,
    fleet: Fleet,
    gw: Gateway,
    target: int,
    action: str,
    *,
    interface_down: bool = False,
    peers: int = 0,
    fenced: bool = False,
) -> WeightPlan:
    svc = fleet.service
    if svc is None:
        raise ValidationError("the service is not on any answering load balancer")
    dest = dest_of(svc.raw, gw)
    before = proposed_table(inventory, svc.raw)
    if dest is None:
        after = proposed_table(inventory, svc.raw, readded={gw.name: target})
    else:
        after = proposed_table(inventory, svc.raw, weights={gw.name: target})
    warnings = []
    total = sum(d.weight for d in after.dests)
    if total > MAX_WEIGHT:
        warnings.append(
            f"the weights add up to {total} > 256: sh's 256 buckets saturate and some real "
            "servers get fewer buckets than their weight (or none)"
        )
    if target == 0 and not svc.sh_fallback:
        warnings.append(
            "weight 0 without sh-fallback drops the new clients hashed to it; use `drain`"
        )
    names = {g.real_server: g.name for g in inventory.gateways}
    labels = {
        (c.lb_entry.client.address, c.lb_entry.client.port): c.label
        for c in fleet.clients
        if c.lb_entry is not None
    }
    moves = tuple(
        (
            labels[(m.address, m.port)],
            names.get(m.before, str(m.before)) if m.before else "dropped",
            names.get(m.after, str(m.after)) if m.after else "dropped",
        )
        for m in moved_clients(before, after, labels)
    )
    return WeightPlan(
        action,
        gw,
        svc,
        None if dest is None else dest.weight,
        target,
        _share(inventory, before),
        _share(inventory, after),
        moves,
        tuple(warnings),
        interface_down,
        interrupted_drain(fleet, gw.name),
        peers,
        fenced,
    )


def plan_weight(inventory: Inventory, fleet: Fleet, name: str, value: int | str) -> WeightPlan:
    return _plan(inventory, fleet, find_gateway(inventory, name), valid_weight(value), "weight")


def plan_undrain(ctx: OpContext, fleet: Fleet, name: str, weight: int | None = None) -> WeightPlan:
    """Back to the weight it had before the drain (from the drain's record on the LB).

    A record that cannot be used refuses it, unless the weight is given: `--weight N` is the
    way out of a bad record (undrain removes the record)."""
    gw = find_gateway(ctx.inventory, name)
    fenced = False
    for lb in ctx.inventory.load_balancers:
        # A fence without its record (removed by hand, or by `undrain --weight` of a bad one)
        # still comes off.
        fenced = fenced or gw.real_server in fence.fenced_on(ctx, lb, missing_ok=True)
        record = read_drain_record(ctx, lb, gw)
        if record is None:
            continue
        fenced = fenced or record.fenced
        if weight is not None:
            continue
        if record.problem is not None or record.previous_weight is None:
            raise ValidationError(bad_record(lb, record))
        weight = record.previous_weight
    if weight is None:
        weight = _weight_from_audit(ctx, gw.name)
    if weight is None:
        raise ValidationError(
            f"no record of {gw.name}'s weight before a drain; give it with --weight N"
        )
    gv = next((g for g in fleet.gateways if g.name == gw.name), None)
    if gv is not None and not gv.reachable:
        raise ValidationError(
            f"{gw.name} does not answer: undrain would send clients to a gateway that cannot "
            "be checked (or answer them); undrain it once it answers again"
        )
    # Missing counts as down: a drain cut short, or a re-creation that failed half-way,
    # must not end in weight > 0 on a gateway that has no interface to answer with. A
    # fenced gateway came back on its own with its old clients' endpoints: re-created too.
    down = gv is not None and gv.reachable and (gv.link_up is not True or fenced)
    peers = (gv.peer_count or 0) if gv is not None else 0
    return _plan(
        ctx.inventory,
        fleet,
        gw,
        valid_weight(weight),
        "undrain",
        interface_down=down,
        peers=peers,
        fenced=fenced,
    )


def _weight_from_audit(ctx: OpContext, name: str) -> int | None:
    for entry in reversed(ctx.audit.entries()):
        before = entry.get("before")
        if (
            entry.get("action") == "drain"
            and entry.get("target") == name
            and isinstance(before, dict)
        ):
            w = before.get("weight")
            if isinstance(w, int) and not isinstance(w, bool) and 0 < w <= MAX_WEIGHT:
                return w
            return None
    return None


# A generous bound on the kernel's time to remove one peer (see execute_weight).
PEER_REMOVAL_S = 0.05


def fresh_interface(gw: Gateway) -> str:
    """Bring a drained gateway's interface back without its old clients' endpoints.

    Brought up as it was, it would resume keepalives to the clients it had before the drain;
    the LB forwards those without reverse NAT (their entries now point elsewhere), and the
    clients roam to the gateway's own address, bypassing the VIP for good. Re-created from its
    config file (which has no client endpoints), it stays silent until clients hash to it.
    """
    down = privileged(["wg-quick", "down", gw.config], sudo=gw.ssh.sudo)
    up = privileged(["wg-quick", "up", gw.config], sudo=gw.ssh.sudo)
    return f"{down} >/dev/null 2>&1; {up}"


def execute_weight(ctx: OpContext, plan: WeightPlan, *, break_lock: bool = False) -> None:
    gw = plan.gateway
    after = {"weight": plan.target}
    with audited_run(
        ctx,
        plan.action,
        gw.name,
        lock=f"{plan.action} {gw.name}",
        break_lock=break_lock,
        before={"weight": plan.current},
        after_failure=after,
    ) as run:
        run.tx.run(_weight_steps(ctx, plan))
        run.succeeded(after)


def _weight_steps(ctx: OpContext, plan: WeightPlan) -> Iterator[Step]:
    """No step has an undo: a weight half set is reported (and audited) as it is, and running
    the same command again finishes it."""
    if plan.interface_down:
        yield _fresh_interface(ctx, plan)
    for lb in ctx.inventory.load_balancers:
        if plan.fenced:
            # After the interface is fresh (it can no longer make anyone roam), before
            # clients are sent to it (its answers must get through).
            yield _unfence(ctx, lb, plan.gateway)
        yield _set_weight(ctx, lb, plan.gateway, plan.target)
        if plan.action == "undrain":
            remove_drain_record(ctx, lb, plan.gateway)
    # The same change on every LB must leave them hashing alike (ops.machinery.pair).
    check = tables_step(ctx, f"`{plan.action} {plan.gateway.name}`")
    if check is not None:
        yield check


def _fresh_interface(ctx: OpContext, plan: WeightPlan) -> Step:
    gw = plan.gateway

    def do() -> None:
        # Deleting the old interface costs the kernel (6.1) one RCU grace period per peer with
        # RTNL held (netif_napi_del): ~25 ms each in the emulated lab, 4 minutes for 10,000
        # peers. Harmless (the gateway is drained), but it must not time out half-way and
        # leave no interface.
        ctx.run(gw.name, fresh_interface(gw), timeout=plan.peers * PEER_REMOVAL_S)

    def verify() -> None:
        obs = read_gateway(ctx, gw)
        if not obs.link_up:
            raise OpError(f"{gw.name}: {gw.interface} is still down")
        # A peer that routes nothing (a prober's: the guard probes it at once) is no client
        # that could roam to it.
        if obs.interface and any(p.endpoint and p.allowed_ips for p in obs.interface.peers):
            raise OpError(f"{gw.name}: {gw.interface} still knows client endpoints")

    return Step(
        f"{gw.interface} re-created from {gw.config} and up", do=do, verify=verify, host=gw.name
    )


def _unfence(ctx: OpContext, lb: Host, gw: Gateway) -> Step:
    def verify() -> None:
        if gw.real_server in fence.fenced_on(ctx, lb, missing_ok=True):
            raise OpError(f"{lb.name}: {gw.name} is still fenced")

    def do() -> None:
        # The record may outlive the fence (the LB rebooted): deleting what is not there fails.
        if gw.real_server in fence.fenced_on(ctx, lb, missing_ok=True):
            ctx.run(lb.name, fence.unfence_command(lb, gw.real_server))

    return Step(
        f"no fence for {gw.name}",
        do=do,
        verify=verify,
        host=lb.name,
    )


def _set_weight(ctx: OpContext, lb: Host, gw: Gateway, target: int) -> Step:
    """On one LB: the weight set, or the real server added back with it (a drain deleted it)."""
    service = ctx.inventory.service

    def do() -> None:
        d = dest_of(service_on(ctx, lb)[1], gw)
        if d is None:
            cmd = lbcmd.add_dest(lb, service, gw.real_server, "masq", target)
        else:
            cmd = lbcmd.set_weight(lb, service, gw.real_server, d.forward, target)
        ctx.run(lb.name, cmd)

    def verify() -> None:
        d = dest_of(service_on(ctx, lb)[1], gw)
        if d is None or d.weight != target:
            raise OpError(f"{lb.name}: {gw.name} does not show weight {target}")

    return Step(f"{gw.name} weight {target}", do=do, verify=verify, host=lb.name)
