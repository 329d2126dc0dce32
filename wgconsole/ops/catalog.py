"""The operations the front ends offer, each an `Operation` (see `ops.machinery.operation`): drain,
undrain, weight, rebalance, peer add and peer remove, probe setup, and on a director pair
`lb align` and `failover`, with their previews and summaries written once.

Each is made from what the operator gave (the CLI's arguments, or the console's selection);
what is still missing is a `Field` the console asks for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from wgconsole.config.probe_key import default_probe_key_path
from wgconsole.core.fleet import Fleet
from wgconsole.ops.hostcmd.drainrecord import find_record
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.errors import ValidationError
from wgconsole.ops.machinery.operation import Field, FollowUp, Outcome, Planned, value
from wgconsole.ops.machinery.validate import gateway as find_gateway
from wgconsole.ops.machinery.validate import name as validate_name
from wgconsole.ops.machinery.validate import weight as valid_weight
from wgconsole.ops.procedures.align import execute_align, plan_align
from wgconsole.ops.procedures.drain import (
    DrainAction,
    execute_drain,
    execute_quiet,
    plan_drain,
)
from wgconsole.ops.procedures.failover import execute_failover, plan_failover
from wgconsole.ops.procedures.peers.add import execute_peer_add
from wgconsole.ops.procedures.peers.plan import plan_peer_add, plan_peer_remove, precheck_peer_add
from wgconsole.ops.procedures.peers.probe import execute_probe_setup, plan_probe_setup
from wgconsole.ops.procedures.peers.remove import execute_peer_remove
from wgconsole.ops.procedures.rebalance import (
    execute_rebalance,
    plan_rebalance,
    refuse_without_private_interface,
)
from wgconsole.ops.procedures.weight import WeightPlan, execute_weight, plan_undrain, plan_weight

GENERATED_KEY_NEEDS_FILE = (
    "a generated private key is written only to the client's config file: give an output "
    "file (--output FILE), or the public key of a key pair the client already has"
)


@dataclass(frozen=True, slots=True)
class _OnGateway:
    """An operation on one gateway, which the operator named or selected."""

    gateway: str
    verb: ClassVar[str]
    changes_clients: ClassVar[bool] = False

    @property
    def title(self) -> str:
        return f"{self.verb} {self.gateway}"

    @property
    def subject(self) -> str:
        return self.gateway

    @property
    def fields(self) -> tuple[Field, ...]:
        return ()

    def precheck(self, ctx: OpContext, values: Mapping[str, str]) -> None:
        find_gateway(ctx.inventory, self.gateway)


@dataclass(frozen=True, slots=True)
class Drain(_OnGateway):
    verb: ClassVar[DrainAction] = "drain"
    wait: bool = True
    wait_timeout: float = 180.0
    resume: bool = False
    break_lock: bool = False
    # An earlier fleet in which the gateway answered: who its clients are, when it no
    # longer can say (the guard keeps one; see `plan_drain`).
    known: Fleet | None = None

    def plan(self, ctx: OpContext, fleet: Fleet, values: Mapping[str, str]) -> Planned:
        record = find_record(ctx, find_gateway(ctx.inventory, self.gateway))
        plan = plan_drain(
            ctx.inventory,
            fleet,
            self.gateway,
            record,
            resume=self.resume,
            action=self.verb,
            known=self.known,
        )

        def execute() -> Outcome:
            r = execute_drain(
                ctx,
                plan,
                wait=self.wait,
                wait_timeout=self.wait_timeout,
                break_lock=self.break_lock,
            )
            moved = ", ".join(f"{k} -> {v}" for k, v in sorted(r.moved.items())) or "none"
            state = "complete" if r.complete else "NOT complete"
            return Outcome(
                f"{self.verb} of {r.gateway} {state} in {r.seconds:.1f} s; moved: {moved}"
            )

        return Planned(tuple(plan.describe()), self.gateway, execute)


@dataclass(frozen=True, slots=True)
class Evict(Drain):
    """The guard's drain of a gateway that stopped answering its probes: always fenced,
    refused when the gateway is already out of service. It does not wait for every client's
    handshake: each moved client is kicked, and the guard goes back to watching."""

    verb: ClassVar[DrainAction] = "evict"
    wait: bool = False


@dataclass(frozen=True, slots=True)
class QuietEvicted(_OnGateway):
    """The guard's follow-up to its eviction: the evicted gateway answers again (it came
    back), so its interface goes down, as a drain's would."""

    verb: ClassVar[str] = "evict-interface-down"

    def plan(self, ctx: OpContext, fleet: Fleet, values: Mapping[str, str]) -> Planned:
        gw = find_gateway(ctx.inventory, self.gateway)
        view = fleet.gateway(gw.name)
        state = {r.gateway: r.state for r in fleet.real_servers}.get(gw.name)
        if state != "evicted":
            raise ValidationError(f"{gw.name} is not evicted (its real server is {state})")
        if view is None or not view.reachable:
            raise ValidationError(
                f"{gw.name} does not answer: its interface stays as it is", kind="does-not-answer"
            )
        if view.link_up is not True:
            raise ValidationError(f"{gw.name}: {gw.interface} is already down")

        def execute() -> Outcome:
            execute_quiet(ctx, gw)
            return Outcome(f"{gw.name} is back: {gw.interface} taken down (it stays evicted)")

        preview = (f"{gw.name} (evicted) answers again: take {gw.interface} down",)
        return Planned(preview, gw.name, execute)


@dataclass(frozen=True, slots=True)
class Weight(_OnGateway):
    """A new weight on every LB; `value` None asks for it (the console's form)."""

    verb: ClassVar[str] = "weight"
    value: str | None = None
    break_lock: bool = False

    @property
    def fields(self) -> tuple[Field, ...]:
        if self.value is not None:
            return ()
        return (Field("weight", "new weight N (0..256)", placeholder="N"),)

    def _weight(self, values: Mapping[str, str]) -> str:
        return value(values, "weight", self.value) or ""

    def precheck(self, ctx: OpContext, values: Mapping[str, str]) -> None:
        find_gateway(ctx.inventory, self.gateway)
        valid_weight(self._weight(values))

    def plan(self, ctx: OpContext, fleet: Fleet, values: Mapping[str, str]) -> Planned:
        plan = plan_weight(ctx.inventory, fleet, self.gateway, self._weight(values))
        return _weight_planned(ctx, plan, break_lock=self.break_lock)


@dataclass(frozen=True, slots=True)
class Undrain(_OnGateway):
    """Back to service with the weight the drain recorded, or `weight`."""

    verb: ClassVar[str] = "undrain"
    weight: int | None = None
    break_lock: bool = False

    def precheck(self, ctx: OpContext, values: Mapping[str, str]) -> None:
        find_gateway(ctx.inventory, self.gateway)
        if self.weight is not None:
            valid_weight(self.weight)

    def plan(self, ctx: OpContext, fleet: Fleet, values: Mapping[str, str]) -> Planned:
        plan = plan_undrain(ctx, fleet, self.gateway, self.weight)
        # The clients the restored table sends back to it are still on the other gateways
        # (keepalives keep their entries): a rebalance moves them.
        follow_up = FollowUp(
            "rebalance",
            Rebalance(break_lock=self.break_lock),
            f"clients the restored table sends to {self.gateway} are still on other gateways "
            "(their keepalives keep their LB entries): a rebalance moves them",
        )
        return _weight_planned(ctx, plan, break_lock=self.break_lock, follow_up=follow_up)


def _weight_planned(
    ctx: OpContext, plan: WeightPlan, *, break_lock: bool, follow_up: FollowUp | None = None
) -> Planned:
    def execute() -> Outcome:
        execute_weight(ctx, plan, break_lock=break_lock)
        return Outcome(
            f"{plan.gateway.name} now has weight {plan.target} on every LB (verified)",
            follow_up=follow_up,
        )

    return Planned(tuple(plan.describe()), plan.gateway.name, execute)


@dataclass(frozen=True, slots=True)
class PeerAdd:
    """A new client on every gateway. `name` None asks for name, key, address and file; a
    generated key needs an output file unless this is a dry run (nothing is generated then)."""

    name: str | None = None
    public_key: str | None = None
    address: str | None = None
    keepalive: int | None = None
    output: str | None = None
    dry_run: bool = False
    changes_clients: ClassVar[bool] = True

    @property
    def title(self) -> str:
        return "peer add" if self.name is None else f"peer add {self.name}"

    @property
    def subject(self) -> str:
        return self.name or "peer add"

    @property
    def fields(self) -> tuple[Field, ...]:
        if self.name is not None:
            return ()
        return (
            Field("name", "client name"),
            Field("public_key", "public key (else one is generated)", required=False),
            Field("address", "tunnel address (else the next free one)", required=False),
            Field(
                "output", "client config file to write (needed for a generated key)", required=False
            ),
        )

    def _values(self, values: Mapping[str, str]) -> tuple[str, str | None, str | None, str | None]:
        return (
            value(values, "name", self.name) or "",
            value(values, "public_key", self.public_key),
            value(values, "address", self.address),
            value(values, "output", self.output),
        )

    def precheck(self, ctx: OpContext, values: Mapping[str, str]) -> None:
        name, key, address, _ = self._values(values)
        precheck_peer_add(name, key, address, self.keepalive)

    def plan(self, ctx: OpContext, fleet: Fleet, values: Mapping[str, str]) -> Planned:
        name, key, address, output = self._values(values)
        plan = plan_peer_add(ctx.inventory, fleet, name, key, address, keepalive=self.keepalive)
        if plan.generate_key and not output and not self.dry_run:
            raise ValidationError(GENERATED_KEY_NEEDS_FILE)

        def execute() -> Outcome:
            result = execute_peer_add(ctx, plan, keepalive=self.keepalive, output=output)
            summary = "\n".join([*result.summary(), "", result.display_config()])
            return Outcome(summary, result=result)

        return Planned(tuple(plan.describe()), name, execute)


@dataclass(frozen=True, slots=True)
class PeerRemove:
    """A client off every gateway, by inventory name or public key; `label` names it."""

    name_or_key: str
    label: str | None = None
    changes_clients: ClassVar[bool] = True
    fields: ClassVar[tuple[Field, ...]] = ()

    @property
    def title(self) -> str:
        return f"peer remove {self.subject}"

    @property
    def subject(self) -> str:
        return self.label or self.name_or_key

    def precheck(self, ctx: OpContext, values: Mapping[str, str]) -> None:
        return None

    def plan(self, ctx: OpContext, fleet: Fleet, values: Mapping[str, str]) -> Planned:
        plan = plan_peer_remove(ctx.inventory, fleet, self.name_or_key)

        def execute() -> Outcome:
            result = execute_peer_remove(ctx, plan)
            return Outcome("\n".join(result.summary()), result=result)

        return Planned(tuple(plan.describe()), plan.label, execute)


@dataclass(frozen=True, slots=True)
class ProbeSetup:
    """This machine's prober key as a peer without AllowedIPs on every gateway, and under
    `probes:` in the inventory (see ops.procedures.peers.probe); the target to type is the
    prober's name."""

    name: str | None = None
    key_file: str | None = None
    changes_clients: ClassVar[bool] = False
    fields: ClassVar[tuple[Field, ...]] = ()

    @property
    def title(self) -> str:
        return "probe setup"

    @property
    def subject(self) -> str:
        return self.name or "probe setup"

    def precheck(self, ctx: OpContext, values: Mapping[str, str]) -> None:
        if self.name is not None:
            validate_name(self.name)

    def plan(self, ctx: OpContext, fleet: Fleet, values: Mapping[str, str]) -> Planned:
        path = default_probe_key_path() if self.key_file is None else Path(self.key_file)
        plan = plan_probe_setup(ctx.inventory, fleet, self.name, path)

        def execute() -> Outcome:
            result = execute_probe_setup(ctx, plan)
            return Outcome("\n".join(result.summary()), result=result)

        return Planned(tuple(plan.describe()), plan.name, execute)


@dataclass(frozen=True, slots=True)
class Rebalance:
    """Move exactly the clients whose LB entry is not where the current sh table sends them
    (see ops.procedures.rebalance); the target to type is `rebalance`."""

    wait_timeout: float = 60.0
    break_lock: bool = False
    fields: ClassVar[tuple[Field, ...]] = ()
    changes_clients: ClassVar[bool] = False
    title: ClassVar[str] = "rebalance"
    subject: ClassVar[str] = "rebalance"

    def precheck(self, ctx: OpContext, values: Mapping[str, str]) -> None:
        return None

    def plan(self, ctx: OpContext, fleet: Fleet, values: Mapping[str, str]) -> Planned:
        plan = plan_rebalance(ctx.inventory, fleet)
        refuse_without_private_interface(ctx, plan)

        def execute() -> Outcome:
            if not plan.moves:
                return Outcome("rebalance: nothing to move; nothing was changed", result=plan)
            r = execute_rebalance(
                ctx, plan, break_lock=self.break_lock, wait_timeout=self.wait_timeout
            )
            return Outcome(r.summary(), result=r)

        return Planned(tuple(plan.describe()), "rebalance", execute, changes_nothing=not plan.moves)


def _load_balancer(ctx: OpContext, name: str | None) -> None:
    if name is not None and name not in {lb.name for lb in ctx.inventory.load_balancers}:
        raise ValidationError(f"no load balancer named {name!r} in the inventory")


@dataclass(frozen=True, slots=True)
class _OnDirectors:
    """An operation on the director pair, for one named director (`director`; None: the one
    the operation finds itself)."""

    verb: ClassVar[str]
    on: ClassVar[str]  # between the verb and the director's name in the title
    fields: ClassVar[tuple[Field, ...]] = ()
    changes_clients: ClassVar[bool] = False

    @property
    def director(self) -> str | None:
        raise NotImplementedError

    @property
    def title(self) -> str:
        return self.verb if self.director is None else f"{self.verb}{self.on}{self.director}"

    @property
    def subject(self) -> str:
        return self.director or "load balancers"

    def precheck(self, ctx: OpContext, values: Mapping[str, str]) -> None:
        _load_balancer(ctx, self.director)


@dataclass(frozen=True, slots=True)
class LbAlign(_OnDirectors):
    """A backup director's service rebuilt to the VIP holder's table (see
    ops.procedures.align); `lb` None: every backup whose service differs. Never the VIP holder."""

    verb: ClassVar[str] = "lb align"
    on: ClassVar[str] = " "
    lb: str | None = None
    break_lock: bool = False
    # Align a backup whose keepalived runs but could not be read (see plan_align).
    ignore_unknown_keepalived: bool = False

    @property
    def director(self) -> str | None:
        return self.lb

    def plan(self, ctx: OpContext, fleet: Fleet, values: Mapping[str, str]) -> Planned:
        inventory = ctx.inventory
        plan = plan_align(
            fleet,
            inventory.service,
            inventory.load_balancers,
            self.lb,
            ignore_unknown_keepalived=self.ignore_unknown_keepalived,
        )

        def execute() -> Outcome:
            execute_align(ctx, plan, break_lock=self.break_lock)
            names = ", ".join(t.lb.name for t in plan.targets)
            return Outcome(
                f"{names}: the same service and 256-bucket table as {plan.holder} (verified)",
                result=plan,
            )

        return Planned(tuple(plan.describe()), plan.name, execute)


@dataclass(frozen=True, slots=True)
class Failover(_OnDirectors):
    """A planned switchover of the VIP to director `to` (None: the one VRRP elects next), see
    ops.procedures.failover. Refused when that director's table differs from the holder's, unless
    `allow_differing_tables`."""

    verb: ClassVar[str] = "failover"
    on: ClassVar[str] = " to "
    to: str | None = None
    allow_differing_tables: bool = False
    break_lock: bool = False

    @property
    def director(self) -> str | None:
        return self.to

    def plan(self, ctx: OpContext, fleet: Fleet, values: Mapping[str, str]) -> Planned:
        plan = plan_failover(
            ctx, fleet, self.to, allow_differing_tables=self.allow_differing_tables
        )

        def execute() -> Outcome:
            r = execute_failover(ctx, plan, break_lock=self.break_lock)
            kicked = ", ".join(f"{k} -> {v}" for k, v in sorted(r.kicked.items())) or "none"
            where = ", ".join(f"{k} on {v}" for k, v in sorted(r.verified.items())) or "none"
            moved = "?" if r.vip_moved_after is None else f"{r.vip_moved_after:.1f}"
            return Outcome(
                f"failover to {plan.target} complete in {r.seconds:.1f} s (the VIP moved after "
                f"{moved} s); handshakes initiated: {kicked}; verified: {where}",
                result=r,
            )

        return Planned(tuple(plan.describe()), plan.target, execute)
