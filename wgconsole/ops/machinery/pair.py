"""The director pair's tables, read fresh during an operation: every LB must send a new client
to the gateway the VIP holder's table sends it to.

Two directors hash a client alike only when their services hold the same dests in the same
kernel order with the same weights and sh flags (docs/domain/director-pair.md). Every
operation that changes the
LBs' services makes the same changes in the same order on each, and ends with
`tables_step`: the 256 buckets of every LB compared with the VIP holder's, read from the
kernels after the change. An operation whose result leaves a backup hashing differently is
not finished, and says so (with the way out: `wgconsole lb align`).

The tables are `core.director`'s (built by `core.sched` from each LB's kernel order): the
same ones `status` shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from wgconsole.core.director import Pair, director_views, pair_of
from wgconsole.core.fleet import normalize_endpoint
from wgconsole.core.inventory import Inventory
from wgconsole.core.records import LbObservation
from wgconsole.core.sched import TAB_SIZE
from wgconsole.ops.machinery.context import OpContext, on_each
from wgconsole.ops.machinery.errors import OpError
from wgconsole.ops.machinery.readings import read_lb
from wgconsole.ops.machinery.steps import Step


@dataclass(frozen=True, slots=True)
class PairReading:
    """Every LB read now (no connection table), and the pair made of them."""

    observations: Mapping[str, LbObservation]
    pair: Pair
    pair_inventory: Inventory

    @property
    def holder(self) -> str | None:
        return self.pair.reference

    def differing(self) -> dict[str, int]:
        """Buckets of each other LB's table whose gateway differs from the holder's (all 256
        when it has no sh service), as `status` counts them."""
        reachable = dict.fromkeys(self.observations, True)
        views = director_views(self.pair, self.pair_inventory, reachable, {})
        return {
            v.name: v.buckets_differing
            for v in views
            if not v.is_reference and v.buckets_differing is not None
        }


def read_pair(ctx: OpContext) -> PairReading:
    """A fresh reading of every LB, all at once; one that cannot be read fails the
    operation's step.

    The VIP holder (the reference) is known from the addresses when exactly one director has
    the VIP: keepalived's report is read (it costs a signal and a dump on each director) only
    when it is not, since the pair then falls back on VRRP's MASTER (`core.director.pair_of`)."""
    lbs = ctx.inventory.load_balancers
    observations = on_each(lbs, lambda lb: read_lb(ctx, lb, conns=False))
    vip = normalize_endpoint(ctx.inventory.service.endpoint).address
    holders = [n for n, o in observations.items() if vip in (o.addresses or ())]
    known = all(o.addresses is not None for o in observations.values())
    if len(holders) != 1 or not known:
        observations = on_each(lbs, lambda lb: read_lb(ctx, lb, conns=False, keepalived=True))
    return PairReading(observations, pair_of(ctx.inventory, dict(observations)), ctx.inventory)


def tables_differ(reading: PairReading) -> str | None:
    """Why the LBs do not hash alike (None: they do), with the way out."""
    differing = {name: n for name, n in reading.differing().items() if n}
    if not differing:
        return None
    parts = [
        f"{name}'s sh table differs from {reading.holder}'s (the VIP holder's) in "
        f"{n}/{TAB_SIZE} buckets"
        for name, n in sorted(differing.items())
    ]
    fix = " ".join(f"`wgconsole lb align {name}`" for name in sorted(differing))
    return (
        f"{'; '.join(parts)}: after a failover, new clients and clients without a synced "
        f"entry hashed there would go to another gateway. {fix} gives it the holder's table."
    )


def tables_step(ctx: OpContext, action: str) -> Step | None:
    """The last step of an operation on the LBs: every LB's table equals the VIP holder's.
    None with one LB (nothing to compare)."""
    if len(ctx.inventory.load_balancers) < 2:
        return None

    def verify() -> None:
        why = tables_differ(read_pair(ctx))
        if why is not None:
            raise OpError(f"{action} is NOT finished: {why}")

    return Step("every director's 256-bucket table equals the VIP holder's", verify=verify)
