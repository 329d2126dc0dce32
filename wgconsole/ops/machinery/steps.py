"""Steps, and the transaction that runs them: what every change an operation makes is built of.

A `Step` changes one thing on one host (`do`), then checks on the host that the change took
(`verify`), then may write down that it was done (`record`: the drain's record on every LB, from
which a run cut short is resumed), all as one line of the operation's progress
(`OpContext.step`). A step may know how to take its change back (`undo`), and how to tell that
its host is back as it was (the undo's `Check`, shared by the steps of one host).

A `Transaction` runs steps in order. On a failure or an interrupt (Ctrl-C) it undoes every step
it began that has an undo, newest first, including the one that failed (its command may have
been applied before the connection died), then runs each undo's check once, in the order the
steps ran, and raises again. What each step did and how its undo went stays in its `Attempt`,
for the operator's account of the failure.

Peer add and remove are all or nothing: every step on a gateway has an undo. A drain's and a
re-weight's steps have none (but the private sync daemon's start, undone by its removal): a
drain cut short is found from its record, finished by running
the drain again or rolled back by `undrain` (see procedures/drain.py), never undone behind the
operator's back. Every operation runs its steps in the one audited run (`run.audited_run`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.errors import OpError


@dataclass(frozen=True, eq=False)
class Check:
    """A reading that raises OpError unless its host is as expected."""

    title: str  # its progress line
    run: Callable[[], None]


@dataclass(frozen=True, eq=False)
class Undo:
    title: str  # what it does, for the progress line (`roll back HOST: TITLE`) and the report
    run: Callable[[], str]  # gives the host's one-word status ("" for none)
    done: str  # what the report says once it worked ("config restored")
    check: Check | None = None  # whether the host is back as it was


@dataclass(frozen=True, eq=False)
class Step:
    """One verified change. Compared by identity: two steps alike are still two changes."""

    title: str
    do: Callable[[], object] | None = None  # None: a step that only verifies
    verify: Callable[[], None] | None = None  # raises OpError unless the change is there
    record: Callable[[], None] | None = None  # once verified: write down that it was done
    undo: Undo | None = None
    host: str | None = None  # the host it changes; its progress line starts with it

    @property
    def label(self) -> str:
        return self.title if self.host is None else f"{self.host}: {self.title}"


@dataclass
class Attempt:
    """A step the transaction began, and what became of it and of its undo."""

    step: Step
    value: object = None  # what `do` gave
    done: bool = False  # `do` returned: the change was made (verified or not)
    error: str | None = None  # why it failed; None when it did not, or was interrupted
    undone: str | None = None  # the rollback: what its undo did, for the report
    not_undone: str | None = None  # the rollback: why its undo failed

    @property
    def failed_at(self) -> str | None:
        return None if self.error is None else f"{self.step.title}: {self.error}"


class Transaction:
    def __init__(self, ctx: OpContext) -> None:
        self.ctx = ctx
        self.attempts: dict[Step, Attempt] = {}  # in the order the steps began
        self.checked: dict[Check, str | None] = {}  # after a rollback: None, or why not as before

    def run(
        self,
        steps: Iterable[Step],
        *,
        discard: Callable[[], None] | None = None,
        account: Callable[[BaseException], Exception] | None = None,
    ) -> None:
        """Each step in order, or none of those with an undo.

        `steps` is consumed one step at a time, after the previous one is verified: a
        generator may read the hosts, or use what an earlier step found, to build the next.
        On a failure or an interrupt: `discard` first (what the failure makes useless), then
        the rollback, then the exception again, or `account(exception)` instead: the caller's
        report of the failure and its rollback (an exception raised in the rollback itself,
        an interrupt included, goes up as it is).
        """
        try:
            for step in steps:
                self._run(step)
        except (Exception, KeyboardInterrupt) as exc:
            if discard is not None:
                discard()
            self.roll_back()
            if account is None:
                raise
            raise account(exc) from None

    def _run(self, step: Step) -> None:
        attempt = self.attempts[step] = Attempt(step)
        try:
            with self.ctx.step(step.label):
                if step.do is not None:
                    attempt.value = step.do()
                attempt.done = True
                if step.verify is not None:
                    step.verify()
                if step.record is not None:
                    step.record()
        except Exception as exc:
            attempt.error = str(exc)
            raise

    def roll_back(self) -> None:
        """Every step begun undone, newest first; then the undos' checks, once each.

        An undo or a check that fails is noted in its attempt (or `checked`) and the rollback
        goes on: the operator must learn about every host.
        """
        begun = [a for a in self.attempts.values() if a.step.undo is not None]
        for attempt in reversed(begun):
            self._undo(attempt)
        checks = [a.step.undo.check for a in begun if a.step.undo and a.step.undo.check]
        for check in dict.fromkeys(checks):
            try:
                with self.ctx.step(check.title):
                    check.run()
                self.checked[check] = None
            except OpError as exc:
                self.checked[check] = str(exc)

    def _undo(self, attempt: Attempt) -> None:
        undo = attempt.step.undo
        assert undo is not None
        where = f"roll back {attempt.step.host}" if attempt.step.host else "roll back"
        try:
            with self.ctx.step(f"{where}: {undo.title}"):
                status = undo.run()
            attempt.undone = f"{undo.done} ({status})" if status else undo.done
        except OpError as exc:
            attempt.not_undone = f"{undo.title}: {exc}"

    def attempt(self, step: Step | None) -> Attempt | None:
        """What became of `step`; None when it never began (or there was no such step)."""
        return None if step is None else self.attempts.get(step)

    @property
    def rolled_back(self) -> bool:
        """After `roll_back`: every undo worked and every check found its host as before."""
        return all(a.not_undone is None for a in self.attempts.values()) and all(
            why is None for why in self.checked.values()
        )
