"""Operations cut short: what a drain or undrain left on the load balancers and gateways.

A drain writes its record on every LB before it changes anything and leaves it there when it
is done (undrain reads the weight to restore from it, then removes it). So a record alone is
not a half-done drain: the kernel's state is. A finished drain leaves, on every LB, the
gateway's real server present at weight 0 with sh-fallback on and expire_nodest_conn=1, the
gateway's interface down, and a record past the real server's delete and re-add (before that,
the flows were not moved). Anything else with a record present is an operation that did not
get to its end (connection lost, operator interrupt, a failed step), or an undrain cut short,
which leaves the same kind of mixture. Either way out is the same: run `drain` again to
finish, or `undrain` to return the gateway to service.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from wgconsole.core.fleet import matching_service, normalize_endpoint
from wgconsole.core.inventory import Gateway, Inventory
from wgconsole.core.lb_state import drain_record_path
from wgconsole.core.records import (
    DrainPhase,
    DrainRecord,
    GatewayObservation,
    IpvsService,
    LbObservation,
    LockRecord,
)

# Phases a drain records before its real server is deleted and added back: a record still in
# one of them means the drain never moved the existing flows, whatever the weight shows.
UNFINISHED_PHASES: frozenset[DrainPhase] = frozenset({"started", "deleted"})


@dataclass(frozen=True, slots=True)
class DrainCheck:
    gateway: str
    lb: str
    record: DrainRecord
    problems: tuple[str, ...]  # what differs from a finished drain; empty: finished
    lock: LockRecord | None  # an operation holds (or died holding) the LB's service lock

    @property
    def half_done(self) -> bool:
        return bool(self.problems)


def drain_problems(
    gw: Gateway, service: IpvsService | None, *, expire_nodest: bool | None, link_up: bool | None
) -> list[str]:
    """How the state differs from the one a finished drain of `gw` leaves (on one LB)."""
    problems = []
    if service is None:
        problems.append("the service is missing")
    else:
        target = normalize_endpoint(gw.real_server)
        dest = next((d for d in service.dests if normalize_endpoint(d.endpoint) == target), None)
        if dest is None:
            problems.append("its real server was deleted and not added back at weight 0")
        elif dest.weight != 0:
            problems.append(f"its real server has weight {dest.weight}, not 0")
        if service.scheduler == "sh" and not service.sh_fallback:
            problems.append("sh-fallback is off")
    if expire_nodest is False:
        problems.append("expire_nodest_conn is 0")
    if link_up is True:
        problems.append(f"{gw.interface} is still up")
    return problems


def drain_checks(
    inventory: Inventory,
    lbs: Mapping[str, LbObservation | None],
    gateways: Mapping[str, GatewayObservation | None],
) -> Iterator[DrainCheck]:
    """One check per drain record on an answering LB, for gateways in the inventory."""
    by_name = {gw.name: gw for gw in inventory.gateways}
    for lb in inventory.load_balancers:
        obs = lbs.get(lb.name)
        if obs is None:
            continue
        service = matching_service(inventory, obs)
        for record in obs.drain_records:
            gw = by_name.get(record.gateway)
            if gw is None:
                continue
            gw_obs = gateways.get(gw.name)
            # A fenced gateway's interface may come back up on its own (it returned): the
            # LBs drop what it sends, so that is no unfinished step.
            link_up = None if gw_obs is None or record.fenced else gw_obs.link_up
            problems = drain_problems(
                gw, service, expire_nodest=obs.expire_nodest_conn, link_up=link_up
            )
            if record.problem is not None:
                problems.insert(0, record_problem(record))
            elif not problems and record.phase in UNFINISHED_PHASES:
                # Weight 0 and the interface down, but the real server never deleted and
                # re-added: existing flows still point at the gateway that no longer answers.
                problems.append(
                    f"it stopped at step '{record.phase}': flows to it were not moved yet"
                )
            yield DrainCheck(
                gw.name, lb.name, record, tuple(problems), obs.locks[0] if obs.locks else None
            )


def record_problem(record: DrainRecord) -> str:
    """What is wrong with a bad record, naming its file (the LB is said by the caller)."""
    return f"its record {drain_record_path(record.gateway)} cannot be used: {record.problem}"


def way_out(gateway: str, *, bad_record: bool = False) -> str:
    if bad_record:
        # Neither drain nor a plain undrain goes on from a record they cannot read.
        return (
            f"`wgconsole undrain {gateway} --weight N` returns it to service with weight N and "
            f"removes the record; `wgconsole drain {gateway}` can then start afresh"
        )
    return (
        f"`wgconsole drain {gateway}` finishes the drain; "
        f"`wgconsole undrain {gateway}` rolls it back (returns it to service)"
    )


def describe_lock(lock: LockRecord, now: float) -> str:
    if lock.problem is not None:
        where = lock.file or "its owner file"
        return f"an unknown operation ({where} cannot be used: {lock.problem})"
    age = "" if lock.since is None else f" since {max(0.0, now - lock.since):.0f} s"
    return f"{lock.action!r} by {lock.operator}{age}"
