"""One operation as every front end drives it: fields to ask, a plan, a preview, a typed
confirmation, steps with progress, an outcome with its summary, an audit record.

The CLI (`wgconsole drain gw-01 --yes`) and the console (a key on a gateway's row) build the
same `Operation` and run it the same way:

1. `plan(op, ctx, read_fleet, values)`: the operator's input is checked first (nothing is sent
   for a name or a weight that cannot be right), then a fresh fleet is read and the operation
   planned from it. Nothing is changed. The answer is a `Planned` (preview lines, the name to
   type to go ahead, the execution) or a `Refused` (why; nothing was changed).
2. The front end shows the preview and asks for `Planned.target` to be typed (`confirmed_by`).
3. `run(planned)`: the execution, whose steps report through the context's progress sink, in
   the one locked, audited run (`machinery.run.audited_run`); the answer is an `Outcome`
   (summary, or the error of the step that failed, and what to offer next: `follow_up`).

The front ends differ only in how they show these: printed lines and an exit status, or a modal
screen whose planning and running happen in thread workers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from wgconsole.core.fleet import Fleet
from wgconsole.core.whereis import WhereIsError
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.errors import OpError, RefusalKind, ValidationError

FleetReader = Callable[[], Fleet]


@dataclass(frozen=True, slots=True)
class Field:
    """An input an operation asks for before planning (the console's form; the CLI's arguments
    fill the same values)."""

    name: str
    label: str
    required: bool = True
    placeholder: str = ""


# What a follow-up is; the CLI's options for it are per kind (`undrain --rebalance`).
FollowUpKind = Literal["rebalance"]


@dataclass(frozen=True, slots=True)
class FollowUp:
    """An operation to offer once another has run (after an undrain: a rebalance), and why.
    Both front ends offer it: the CLI asks (or runs it with `--rebalance`), the console opens
    it; it is planned afresh, shown and confirmed like any other."""

    kind: FollowUpKind
    operation: Operation
    why: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an execution ended with. `result` is the operation's own result object (the CLI
    draws a peer add's config as a QR code from it); `follow_up` what to offer next."""

    summary: str
    failed: bool = False
    result: object = None
    follow_up: FollowUp | None = None


@dataclass(frozen=True, slots=True)
class Planned:
    preview: tuple[str, ...]
    target: str  # what the operator types to go ahead
    execute: Callable[[], Outcome]
    changes_nothing: bool = False  # the plan found nothing to do (a rebalance with no move)

    def confirmed_by(self, typed: str) -> bool:
        return typed.strip() == self.target


# "input": the operator's input or the fleet's state forbids it (exit 2 on the CLI);
# "unreadable": the fleet could not be read or planned from (the CLI's exit 1).
RefusalCause = Literal["input", "unreadable"]


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str
    cause: RefusalCause = "input"
    kind: RefusalKind | None = None


class Operation(Protocol):
    @property
    def title(self) -> str:
        """What it is, for titles and the log: `drain gw-01`."""

    @property
    def subject(self) -> str:
        """Whom it concerns: the gateway or client name (the log's subject)."""

    @property
    def fields(self) -> tuple[Field, ...]:
        """What the console asks for before planning (the CLI passes them as arguments)."""

    @property
    def changes_clients(self) -> bool:
        """True when it edits the inventory's `clients:` (a console then re-reads them)."""

    def precheck(self, ctx: OpContext, values: Mapping[str, str]) -> None:
        """Raise ValidationError on input that needs no fleet state: before anything is sent."""

    def plan(self, ctx: OpContext, fleet: Fleet, values: Mapping[str, str]) -> Planned:
        """Plan from a fresh fleet; raise ValidationError (refused) or OpError; change nothing."""


def plan(
    op: Operation, ctx: OpContext, read_fleet: FleetReader, values: Mapping[str, str]
) -> Planned | Refused:
    """Check the input, read the fleet, plan. Never changes anything."""
    missing = missing_fields(op, values)
    if missing:
        return Refused(f"needed: {', '.join(missing)}")
    try:
        op.precheck(ctx, values)
        planned = op.plan(ctx, read_fleet(), values)
    except ValidationError as exc:
        return Refused(str(exc), kind=exc.kind)
    except WhereIsError as exc:
        return Refused(str(exc))
    except OpError as exc:
        return Refused(str(exc), "unreadable")
    if ctx.site is None:
        return planned
    # Among several sites the preview says first which one it changes.
    return replace(planned, preview=(f"site: {ctx.site}", *planned.preview))


def missing_fields(op: Operation, values: Mapping[str, str]) -> list[str]:
    """The labels of the required fields left empty."""
    return [f.label for f in op.fields if f.required and not values.get(f.name, "").strip()]


def run(planned: Planned) -> Outcome:
    """Execute a confirmed plan; a failed step (its error) is the outcome, never raised."""
    try:
        return planned.execute()
    except OpError as exc:
        return Outcome(str(exc), failed=True)


def value(values: Mapping[str, str], name: str, given: str | None) -> str | None:
    """The operator's value of a field: the form's, else the one given when the operation was
    made (the CLI's argument); an empty field is no value."""
    typed = values.get(name, "").strip()
    return typed or given
