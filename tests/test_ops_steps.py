"""The step type and its transaction: order, progress, rollback newest first, the rollback's
checks, interrupts, and what each attempt keeps for the operator's report.

The operations built on it are tested whole in test_ops_peers (rollbacks on fake gateways),
test_interrupted_ops (drains cut short) and test_read_only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from tests.observations import make_inventory
from wgconsole.ops.machinery.audit import AuditLog
from wgconsole.ops.machinery.context import OpContext, Progress
from wgconsole.ops.machinery.errors import OpError
from wgconsole.ops.machinery.steps import Check, Step, Transaction, Undo


class World:
    """A transaction's context whose progress and actions land in one journal, in order."""

    def __init__(self, tmp_path: Path) -> None:
        self.journal: list[str] = []
        self.ctx = OpContext(make_inventory(), {}, AuditLog(tmp_path / "audit.jsonl"), self.show)

    def show(self, p: Progress) -> None:
        self.journal.append(f"{p.kind} {p.text}")

    def act(self, what: str, result: object = None) -> Callable[[], object]:
        def action() -> object:
            self.journal.append(what)
            return result

        return action

    def fail(self, what: str, exc: BaseException) -> Callable[[], NoReturn]:
        def action() -> NoReturn:
            self.journal.append(what)
            raise exc

        return action

    def undo(self, what: str, check: Check | None = None, status: str = "") -> Undo:
        def action() -> str:
            self.journal.append(what)
            return status

        return Undo(what, action, f"{what} done", check)

    def check(self, host: str) -> Check:
        return Check(f"verify {host} is back", lambda: self.journal.append(f"check {host}"))


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_steps_run_in_order_each_as_one_verified_progress_line(world: World) -> None:
    first = Step(
        "first",
        do=world.act("do 1", "said 1"),
        verify=lambda: world.journal.append("verify 1"),
        record=lambda: world.journal.append("record 1"),
        host="h1",
    )
    second = Step("second", verify=lambda: world.journal.append("verify 2"))
    tx = Transaction(world.ctx)
    tx.run([first, second])
    assert world.journal == [
        "step h1: first",
        "do 1",
        "verify 1",
        "record 1",
        "ok h1: first",
        "step second",
        "verify 2",
        "ok second",
    ]
    one = tx.attempt(first)
    assert one is not None
    assert one.done
    assert one.value == "said 1"
    assert one.error is None
    assert tx.attempt(None) is None
    assert tx.attempt(Step("never run")) is None


def test_a_failure_undoes_every_step_begun_newest_first_then_checks_each_host_once(
    world: World,
) -> None:
    h1, h2 = world.check("h1"), world.check("h2")
    a = Step("a", do=world.act("do a"), undo=world.undo("undo a", h1, "gone"), host="h1")
    b = Step("b", do=world.act("do b"), undo=world.undo("undo b", h1), host="h1")
    c = Step("c", do=world.act("do c"), undo=world.undo("undo c", h2), host="h2")
    # The failed step is undone too: its command may have been applied before it failed.
    d = Step("d", do=world.fail("do d", OpError("boom")), undo=world.undo("undo d", h2), host="h2")
    built: list[str] = []

    def steps() -> Iterator[Step]:
        for step in (a, b, c, d):
            built.append(step.title)
            yield step
        built.append("after")
        yield Step("never", do=world.act("do never"))

    tx = Transaction(world.ctx)
    with pytest.raises(OpError, match="boom"):
        tx.run(steps())
    assert built == ["a", "b", "c", "d"]  # nothing is built after a failure
    rollback = world.journal[world.journal.index("fail h2: d: boom") + 1 :]
    assert rollback == [
        "step roll back h2: undo d",
        "undo d",
        "ok roll back h2: undo d",
        "step roll back h2: undo c",
        "undo c",
        "ok roll back h2: undo c",
        "step roll back h1: undo b",
        "undo b",
        "ok roll back h1: undo b",
        "step roll back h1: undo a",
        "undo a",
        "ok roll back h1: undo a",
        # In the order the steps ran, once per check.
        "step verify h1 is back",
        "check h1",
        "ok verify h1 is back",
        "step verify h2 is back",
        "check h2",
        "ok verify h2 is back",
    ]
    failed = tx.attempt(d)
    assert failed is not None
    assert not failed.done
    assert failed.failed_at == "d: boom"
    undone = [attempt.undone for attempt in tx.attempts.values()]
    assert undone == ["undo a done (gone)", "undo b done", "undo c done", "undo d done"]
    assert tx.checked == {h1: None, h2: None}
    assert tx.rolled_back


def test_a_failed_verification_is_a_failure_of_a_change_made(world: World) -> None:
    step = Step(
        "s",
        do=world.act("do"),
        verify=world.fail("verify", OpError("not there")),
        record=lambda: world.journal.append("record"),
        undo=world.undo("undo"),
    )
    tx = Transaction(world.ctx)
    with pytest.raises(OpError, match="not there"):
        tx.run([step])
    attempt = tx.attempt(step)
    assert attempt is not None
    assert attempt.done
    assert attempt.error == "not there"
    assert "record" not in world.journal
    assert "undo" in world.journal


def test_an_interrupt_rolls_back_and_goes_on_up(world: World) -> None:
    a = Step("a", do=world.act("do a"), undo=world.undo("undo a"), host="h")
    b = Step("b", do=world.fail("do b", KeyboardInterrupt()), undo=world.undo("undo b"), host="h")
    tx = Transaction(world.ctx)
    with pytest.raises(KeyboardInterrupt):
        tx.run([a, b])
    # No failure line for an interrupt (ctx.step shows errors only), but both are undone.
    assert not [line for line in world.journal if line.startswith("fail")]
    assert world.journal[-6:] == [
        "step roll back h: undo b",
        "undo b",
        "ok roll back h: undo b",
        "step roll back h: undo a",
        "undo a",
        "ok roll back h: undo a",
    ]
    interrupted = tx.attempt(b)
    assert interrupted is not None
    assert interrupted.error is None
    assert not interrupted.done


def test_discard_comes_first_and_account_replaces_the_error(world: World) -> None:
    step = Step("s", do=world.fail("do", OpError("boom")), undo=world.undo("undo"))
    seen: list[BaseException] = []

    def account(exc: BaseException) -> Exception:
        seen.append(exc)
        world.journal.append(f"account rolled_back={tx.rolled_back}")
        return OpError("the report")

    tx = Transaction(world.ctx)
    with pytest.raises(OpError, match="the report") as info:
        tx.run([step], discard=lambda: world.journal.append("discard"), account=account)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    assert [str(e) for e in seen] == ["boom"]
    tail = world.journal[world.journal.index("fail s: boom") + 1 :]
    assert tail == ["discard", "step roll back: undo", "undo", "ok roll back: undo", tail[-1]]
    assert tail[-1] == "account rolled_back=True"


def test_a_rollback_that_cannot_undo_or_verify_says_so_and_goes_on(world: World) -> None:
    h1 = world.check("h1")
    broken = Check("verify h2 is back", world.fail("check h2", OpError("still there")))
    a = Step("a", do=world.act("do a"), undo=world.undo("undo a", h1), host="h1")
    unreachable = Undo("undo b", world.fail("undo b", OpError("no route")), "b undone", broken)
    b = Step("b", do=world.act("do b"), undo=unreachable, host="h2")
    c = Step("c", do=world.fail("do c", OpError("boom")), host="h2")  # nothing to undo
    tx = Transaction(world.ctx)
    with pytest.raises(OpError, match="boom"):
        tx.run([a, b, c])
    assert "undo a" in world.journal  # the undo that failed did not stop the others
    attempt_b = tx.attempt(b)
    assert attempt_b is not None
    assert attempt_b.undone is None
    assert attempt_b.not_undone == "undo b: no route"
    assert tx.checked == {h1: None, broken: "still there"}
    assert not tx.rolled_back


def test_steps_without_undo_leave_things_as_they_are(world: World) -> None:
    """The drain's way: a cut drain is recorded and resumed, never undone behind one's back."""
    steps = [Step("a", do=world.act("do a")), Step("b", do=world.fail("do b", OpError("boom")))]
    with pytest.raises(OpError, match="boom"):
        Transaction(world.ctx).run(steps)
    assert world.journal[-1] == "fail b: boom"


def test_a_failure_between_steps_rolls_back_too(world: World) -> None:
    a = Step("a", do=world.act("do a"), undo=world.undo("undo a"))

    def steps() -> Iterator[Step]:
        yield a
        raise OpError("cannot read the host")

    with pytest.raises(OpError, match="cannot read the host"):
        Transaction(world.ctx).run(steps())
    assert world.journal[-3:] == ["step roll back: undo a", "undo a", "ok roll back: undo a"]


def test_an_interrupt_during_the_rollback_is_not_accounted_as_the_failure(world: World) -> None:
    stubborn = Undo("undo a", world.fail("undo a", KeyboardInterrupt()), "a undone")
    a = Step("a", do=world.act("do a"), undo=stubborn)
    b = Step("b", do=world.fail("do b", OpError("boom")))
    accounted: list[BaseException] = []

    def account(exc: BaseException) -> Exception:
        accounted.append(exc)
        return OpError("report")

    with pytest.raises(KeyboardInterrupt):
        Transaction(world.ctx).run([a, b], account=account)
    assert accounted == []


def test_steps_are_distinct_even_when_alike(world: World) -> None:
    one, two = Step("same", do=world.act("x")), Step("same", do=world.act("x"))
    tx = Transaction(world.ctx)
    tx.run([one, two])
    assert one != two
    assert len(tx.attempts) == 2
