"""The one locked, audited run every operation goes through (ops.machinery.run), and the typed
parts of an operation the front ends act on: a plan that changes nothing, a follow-up.

The run's own behaviour is tested here with plain steps and a recorded stand-in for the lock;
the operations' use of it against tests.fakeworld (real command lines, a fake kernel).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.fakeworld import GW2, World, make_world
from wgconsole.core.inventory import Inventory
from wgconsole.ops import catalog
from wgconsole.ops.hostcmd.drainrecord import find_record
from wgconsole.ops.machinery import run as run_module
from wgconsole.ops.machinery.audit import AuditLog
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.errors import LockedError, OpError
from wgconsole.ops.machinery.operation import FollowUp, Planned, plan
from wgconsole.ops.machinery.operation import run as run_planned
from wgconsole.ops.machinery.run import RunFailed, RunOutcome, audited_run
from wgconsole.ops.machinery.steps import Step
from wgconsole.ops.machinery.validate import gateway as find_gateway
from wgconsole.ops.procedures.drain import execute_drain, plan_drain
from wgconsole.ops.procedures.weight import execute_weight, plan_undrain, plan_weight
from wgconsole.poll.transport.base import CommandResult, Transport

# --- the run itself ---------------------------------------------------------------------


class _Locks:
    """A stand-in for the service lock: what was taken and released, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, refuse: bool = False) -> None:
        self.events: list[str] = []

        @contextmanager
        def service_lock(ctx: OpContext, label: str, *, break_lock: bool = False) -> Iterator[None]:
            if refuse:
                raise LockedError("lb-01: locked by someone else")
            self.events.append(f"take {label} break={break_lock}")
            try:
                yield
            finally:
                self.events.append(f"release {label}")

        monkeypatch.setattr(run_module, "service_lock", service_lock)


def _ctx(tmp_path: Path) -> OpContext:
    inventory: Inventory = None  # type: ignore[assignment]  # the steps here read no host
    return OpContext(inventory, {}, AuditLog(tmp_path / "audit.jsonl"))


def _entries(ctx: OpContext) -> list[dict[str, Any]]:
    return ctx.audit.entries()


def test_a_run_that_goes_through_is_audited_once_under_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locks = _Locks(monkeypatch)
    ctx = _ctx(tmp_path)
    done: list[str] = []
    with audited_run(ctx, "weight", "gw", lock="weight gw", before={"weight": 1}) as run:
        run.tx.run([Step("one", do=lambda: done.append("one"))])
        locks.events.append("audited" if _entries(ctx) else "not yet")
        run.succeeded({"weight": 2}, detail="0.1 s")
        locks.events.append("audited" if _entries(ctx) else "not yet")
    assert done == ["one"]
    assert locks.events == ["take weight gw break=False", "not yet", "audited", "release weight gw"]
    (entry,) = _entries(ctx)
    assert (entry["action"], entry["target"], entry["outcome"]) == ("weight", "gw", "ok")
    assert (entry["before"], entry["after"], entry["detail"]) == (
        {"weight": 1},
        {"weight": 2},
        "0.1 s",
    )
    assert run.outcome is RunOutcome.OK


def test_a_failed_step_is_audited_failed_after_the_lock_is_released_then_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locks = _Locks(monkeypatch)
    ctx = _ctx(tmp_path)

    def verify() -> None:
        locks.events.append("verify")
        raise OpError("lb-01: gw does not show weight 2")

    moved: dict[str, str] = {}
    with (
        pytest.raises(OpError, match="does not show weight 2"),
        audited_run(
            ctx, "rebalance", "svc", lock="rebalance", before=[], after_failure={"moved": moved}
        ) as run,
    ):
        moved["alpha"] = "gw-01"  # what was done before the failure, as it is filled in
        run.tx.run([Step("set", do=lambda: None, verify=verify)])
        run.succeeded({"moved": moved})
    assert locks.events == ["take rebalance break=False", "verify", "release rebalance"]
    (entry,) = _entries(ctx)
    assert (entry["outcome"], entry["detail"]) == ("failed", "lb-01: gw does not show weight 2")
    assert entry["after"] == {"moved": {"alpha": "gw-01"}}
    assert entry["before"] == []


def test_an_interrupt_is_audited_interrupted_and_raised_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locks = _Locks(monkeypatch)
    ctx = _ctx(tmp_path)

    def do() -> None:
        raise KeyboardInterrupt

    with (
        pytest.raises(KeyboardInterrupt),
        audited_run(ctx, "drain", "gw", lock="drain gw", before={"weight": 1}) as run,
    ):
        run.tx.run([Step("first", do=lambda: None), Step("second", do=do)])
        run.succeeded({"weight": 0})
    assert locks.events[-1] == "release drain gw"
    (entry,) = _entries(ctx)
    assert (entry["outcome"], entry["detail"], entry["after"]) == (
        "interrupted",
        "interrupted",
        None,
    )
    assert entry["before"] == {"weight": 1}


def test_an_unexpected_exception_is_audited_failed_and_raised_unchanged(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    with pytest.raises(ZeroDivisionError), audited_run(ctx, "lb align", "lb-02", lock=None) as run:
        run.tx.run([Step("divide", do=lambda: 1 / 0)])
        run.succeeded({})
    (entry,) = _entries(ctx)
    assert entry["outcome"] == "failed"
    assert entry["detail"] == "division by zero"


def test_a_lock_held_elsewhere_is_audited_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _Locks(monkeypatch, refuse=True)
    ctx = _ctx(tmp_path)
    ran: list[str] = []
    with (
        pytest.raises(LockedError),
        audited_run(ctx, "failover", "lb-02", lock="failover to lb-02") as run,
    ):
        ran.append("body")
        run.succeeded({})
    assert ran == []
    (entry,) = _entries(ctx)
    assert entry["outcome"] == "failed"
    assert "locked by someone else" in entry["detail"]


def test_an_operations_own_account_keeps_its_outcome(tmp_path: Path) -> None:
    """A peer change's account (what each gateway did, how its rollback went) is the record's
    detail, with the outcome it found: rolled back."""
    ctx = _ctx(tmp_path)

    def account(exc: BaseException) -> Exception:
        return RunFailed(
            f"peer add x failed: {exc}\nEvery gateway is back.", RunOutcome.ROLLED_BACK
        )

    def do() -> None:
        raise OpError("gw-02: connection lost")

    undone: list[str] = []
    with pytest.raises(RunFailed) as raised, audited_run(ctx, "peer add", "x", lock=None) as run:
        run.before = {"gw-01": {"live": None}}  # read under the lock
        run.tx.run([Step("add", do=do)], discard=lambda: undone.append("file"), account=account)
        run.succeeded({})
    assert raised.value.outcome is RunOutcome.ROLLED_BACK
    assert undone == ["file"]
    (entry,) = _entries(ctx)
    assert entry["outcome"] == "rolled back"
    assert entry["before"] == {"gw-01": {"live": None}}
    assert entry["detail"] == "peer add x failed: gw-02: connection lost\nEvery gateway is back."


def test_a_run_must_end_with_its_record(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    with (
        pytest.raises(RuntimeError, match="without its record"),
        audited_run(ctx, "weight", "gw", lock=None),
    ):
        pass
    with (
        pytest.raises(RuntimeError, match="recorded already"),
        audited_run(ctx, "weight", "gw", lock=None) as run,
    ):
        run.succeeded({})
        run.succeeded({})
    assert [e["outcome"] for e in _entries(ctx)] == ["ok"]  # the second success: not recorded


def test_the_outcomes_are_the_audit_logs_words() -> None:
    assert [o.value for o in RunOutcome] == [
        "ok",
        "incomplete",
        "failed",
        "rolled back",
        "interrupted",
    ]


# --- the operations through it (tests.fakeworld) ----------------------------------------


class _InterruptAfter:
    """A host whose operator presses Ctrl-C as its `n`-th changing command is sent."""

    def __init__(self, inner: Transport, world: World, n: int) -> None:
        self.inner, self.world, self.n = inner, world, n

    def run(self, command: str, timeout: float, *, mutating: bool = True) -> CommandResult:
        if mutating:
            self.n -= 1
            if self.n == 0:
                raise KeyboardInterrupt
        return self.inner.run(command, timeout, mutating=mutating)

    def close(self) -> None:
        self.inner.close()


def _world_ctx(world: World, interrupt_after: int | None = None) -> OpContext:
    transports = world.transports()
    if interrupt_after is not None:
        transports = {
            name: _InterruptAfter(t, world, interrupt_after)  # type: ignore[misc]
            for name, t in transports.items()
        }
    return OpContext(world.inventory, transports, AuditLog(world.root / "audit.jsonl"))


def test_a_weight_that_goes_through_is_audited_ok(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    ctx = _world_ctx(world)
    fleet = world.collector(timeout=60.0).read_fleet()
    execute_weight(ctx, plan_weight(world.inventory, fleet, GW2, 3))
    (entry,) = ctx.audit.entries()
    assert (entry["action"], entry["target"], entry["outcome"]) == ("weight", GW2, "ok")
    assert (entry["before"], entry["after"]) == ({"weight": 1}, {"weight": 3})


def test_a_drain_interrupted_is_audited_then_the_interrupt_goes_on(tmp_path: Path) -> None:
    """Ctrl-C in the middle of a drain: recorded as interrupted, raised again, and the lock
    released on the way out (the undrain after it needs no --break-lock)."""
    world = make_world(tmp_path)
    fleet = world.collector(timeout=60.0).read_fleet()
    ctx = _world_ctx(world, interrupt_after=4)
    gw = find_gateway(world.inventory, GW2)
    plan = plan_drain(world.inventory, fleet, GW2, find_record(_world_ctx(world), gw))
    with pytest.raises(KeyboardInterrupt):
        execute_drain(ctx, plan, wait=True, wait_timeout=5)
    (entry,) = ctx.audit.entries()
    assert (entry["action"], entry["target"], entry["outcome"]) == ("drain", GW2, "interrupted")
    assert entry["before"]["weight"] == 1
    assert entry["after"] is None

    ctx = _world_ctx(world)
    undrain = plan_undrain(ctx, world.collector(timeout=60.0).read_fleet(), GW2)
    execute_weight(ctx, undrain)
    assert [e["outcome"] for e in ctx.audit.entries()] == ["interrupted", "ok"]


# --- typed parts of an operation: changes nothing, follow-up ----------------------------


def _planned(op: Any, world: World) -> Planned:
    ctx = _world_ctx(world)
    planned = plan(op, ctx, world.collector(timeout=60.0).read_fleet, {})
    assert isinstance(planned, Planned), planned
    return planned


def test_an_undrain_offers_a_rebalance_as_a_typed_follow_up(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    ctx = _world_ctx(world)
    fleet = world.collector(timeout=60.0).read_fleet()
    execute_weight(ctx, plan_weight(world.inventory, fleet, GW2, 0))
    outcome = run_planned(_planned(catalog.Undrain(GW2, 1, break_lock=True), world))
    assert not outcome.failed
    follow_up = outcome.follow_up
    assert isinstance(follow_up, FollowUp)
    assert follow_up.kind == "rebalance"
    assert follow_up.operation == catalog.Rebalance(break_lock=True)
    assert GW2 in follow_up.why
    assert "rebalance moves them" in follow_up.why
    # A weight offers nothing.
    outcome = run_planned(_planned(catalog.Weight(GW2, "2"), world))
    assert not outcome.failed
    assert outcome.follow_up is None


def test_a_rebalance_with_nothing_to_move_says_so_typed(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    planned = _planned(catalog.Rebalance(), world)
    assert planned.changes_nothing
    outcome = run_planned(planned)
    assert not outcome.failed
    assert "nothing to move" in outcome.summary
    assert world.sent
    assert all(not s.mutating for s in world.sent)  # no lock, no change
    # A plan that changes something says so too.
    drain = _planned(catalog.Drain(GW2), world)
    assert not drain.changes_nothing
