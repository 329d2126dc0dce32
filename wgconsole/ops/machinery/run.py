"""The one locked, audited run of every operation: lock, steps, verification, audit record.

Every operation that changes the fleet (drain, undrain, weight, rebalance, lb align, failover,
peer add and remove, and the unattended ones to come) runs inside `audited_run`:

    with audited_run(ctx, "drain", gw.name, lock="drain gw-01", before=before) as run:
        run.tx.run(drain_steps)  # a Transaction: each step done, verified, maybe undone
        run.succeeded({"weight": 0}, outcome=RunOutcome.OK, detail="12.3 s")

It takes the service lock on every LB (none for a run that changes nothing), and writes ONE
audit record of how the run ended, with a typed outcome: `succeeded` writes it for a run that
went through; any exception that leaves the block (a failed step, a refusal found under the
lock, a bug, the operator's Ctrl-C) is recorded with its outcome, then raised again, unchanged.
The lock is released before the exception goes on, as it always was.

The record of a failure says what is there after it as far as the operation knows
(`after_failure`, for example the clients a rebalance moved before it stopped), and why, as the
exception's text. An operation that writes its own account of a failure (a peer change:
what each gateway did and how its rollback went) raises `RunFailed` with that account and
its outcome (`rolled back` when every change was undone and verified).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from enum import StrEnum

from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.errors import OpError
from wgconsole.ops.machinery.lock import service_lock
from wgconsole.ops.machinery.steps import Transaction


class RunOutcome(StrEnum):
    """How a run ended, as the audit log's `outcome` says it."""

    OK = "ok"  # every step done and verified
    INCOMPLETE = "incomplete"  # done and verified, short of its aim (a drain's idle clients)
    FAILED = "failed"  # a step failed or was refused: what was done before it stays
    ROLLED_BACK = "rolled back"  # a step failed; every change was undone, checked as before
    INTERRUPTED = "interrupted"  # the operator's interrupt (Ctrl-C) cut it short


class RunFailed(OpError):
    """A failure the operation gave its own account of, with the outcome it ended in."""

    def __init__(self, account: str, outcome: RunOutcome) -> None:
        super().__init__(account)
        self.outcome = outcome


def failure_outcome(exc: BaseException) -> RunOutcome:
    """The outcome a run ends in when `exc` leaves it."""
    if isinstance(exc, RunFailed):
        return exc.outcome
    if isinstance(exc, KeyboardInterrupt):
        return RunOutcome.INTERRUPTED
    return RunOutcome.FAILED


def failure_detail(exc: BaseException) -> str:
    """Why a run failed, for the audit log (an interrupt has no text of its own)."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return str(exc) or type(exc).__name__


@dataclass
class AuditedRun:
    """One operation's run, inside `audited_run`. `before` may be set once the run has read
    the hosts under the lock (a peer change reads every gateway first)."""

    ctx: OpContext
    action: str
    subject: str
    before: object = None
    after_failure: object = None  # what the record of a failure says is there after it
    outcome: RunOutcome | None = None  # once recorded
    tx: Transaction = field(init=False)  # what each step did (an operation's account uses it)

    def __post_init__(self) -> None:
        self.tx = Transaction(self.ctx)

    def succeeded(
        self, after: object, *, outcome: RunOutcome = RunOutcome.OK, detail: str = ""
    ) -> None:
        """The run went through: its record, with what is there now."""
        self._record(outcome, after, detail)

    def failed(self, exc: BaseException) -> None:
        """The record of the failure `exc` (unless the run's end is recorded already)."""
        if self.outcome is None:
            self._record(failure_outcome(exc), self.after_failure, failure_detail(exc))

    def _record(self, outcome: RunOutcome, after: object, detail: str) -> None:
        if self.outcome is not None:
            raise RuntimeError(f"{self.action} {self.subject}: its end is recorded already")
        self.outcome = outcome
        self.ctx.audit.record(
            self.action,
            self.subject,
            before=self.before,
            after=after,
            outcome=outcome.value,
            detail=detail,
            site=self.ctx.site,
        )


@contextmanager
def audited_run(
    ctx: OpContext,
    action: str,
    subject: str,
    *,
    lock: str | None,
    break_lock: bool = False,
    before: object = None,
    after_failure: object = None,
) -> Iterator[AuditedRun]:
    """The run of `action` on `subject` (the audit record's action and target) under the
    service lock labelled `lock` (None: a run that changes nothing takes no lock). See the
    module: every way out of it is recorded once."""
    run = AuditedRun(ctx, action, subject, before, after_failure)
    locked: AbstractContextManager[None] = (
        nullcontext() if lock is None else service_lock(ctx, lock, break_lock=break_lock)
    )
    try:
        with locked:
            yield run
    except (Exception, KeyboardInterrupt) as exc:
        run.failed(exc)
        raise
    if run.outcome is None:
        raise RuntimeError(f"{action} {subject}: the run ended without its record")
