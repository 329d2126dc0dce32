"""One operation from the console: its inputs, a preview, a typed confirmation, visible steps.

The operation is an `ops.machinery.operation.Operation`, planned and run as the CLI does
(`plan`, `run`); this screen only shows it. It never plans or runs anything on the UI thread
(both send commands over SSH): a thread worker plans, a second worker executes. Progress events
come back through `app.call_from_thread`; the outcome stays on screen until dismissed, with the
follow-up it offers (after an undrain: a rebalance), which opens as an action of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from typing import ClassVar, Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from wgconsole.core.text import PRINTABLE_ONLY, printable
from wgconsole.ops.machinery.context import OpContext, Progress, ProgressSink, progress_line
from wgconsole.ops.machinery.operation import (
    FleetReader,
    FollowUp,
    Operation,
    Outcome,
    Planned,
    Refused,
    missing_fields,
    plan,
    run,
)
from wgconsole.tui.widgets.colours import plain

ContextFactory = Callable[[ProgressSink], OpContext]
Recorder = Callable[[str, str], None]
State = Literal["asking", "planning", "refused", "confirming", "running", "done"]


class ActionScreen(ModalScreen[None]):
    """States: asking (fields) → planning → confirming → running → done (or refused)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Cancel / close", tooltip="cancel (nothing is sent) or close"),
    ]

    def __init__(
        self,
        op: Operation,
        read_fleet: FleetReader,
        make_context: ContextFactory,
        record: Recorder,
        after_run: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.op = op
        self.title_text = op.title
        self.subject = op.subject
        self.read_fleet = read_fleet
        self.make_context = make_context
        self.record = record
        self.after_run = after_run
        self.fields = op.fields
        self.state: State = "asking" if self.fields else "planning"
        self.planned: Planned | None = None
        self.steps: list[str] = []
        self._open_step: tuple[int, str] | None = None
        self.outcome: str | None = None
        self.failed = False
        self.follow_up: FollowUp | None = None  # offered by the outcome

    # --- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # Titles, plans, steps and outcomes quote names and hosts' output: shown as Text, never
        # as markup (see colours.plain); a paste with control characters is refused.
        with Vertical(id="action-box"):
            yield Label(plain(self.title_text), id="action-title")
            with VerticalScroll(id="action-body"):
                for f in self.fields:
                    yield Label(plain(f.label + ("" if f.required else " (optional)")))
                    yield Input(
                        placeholder=printable(f.placeholder),
                        id=f"field-{f.name}",
                        restrict=PRINTABLE_ONLY,
                    )
                yield Static("", id="action-plan", markup=False)
                yield Static("", id="action-steps", markup=False)
                yield Static("", id="action-outcome", markup=False)
            yield Input(
                placeholder="type the target's name",
                id="action-confirm",
                disabled=True,
                restrict=PRINTABLE_ONLY,
            )
            with Horizontal(id="action-buttons"):
                if self.fields:
                    yield Button("Preview", id="action-preview", variant="primary")
                yield Button("Run", id="action-run", variant="error", disabled=True)
                # Shown once the outcome offers a follow-up (after an undrain: rebalance).
                yield Button("", id="action-follow-up", variant="primary", disabled=True)
                yield Button("Cancel", id="action-close")

    def on_mount(self) -> None:
        self.query_one("#action-follow-up", Button).display = False
        if self.fields:
            self.query_one(f"#field-{self.fields[0].name}", Input).focus()
        else:
            self._plan({})

    # --- planning -------------------------------------------------------------------------

    def values(self) -> dict[str, str]:
        return {
            f.name: self.query_one(f"#field-{f.name}", Input).value.strip() for f in self.fields
        }

    def _preview(self) -> None:
        if self.state not in ("asking", "refused"):
            return
        values = self.values()
        missing = missing_fields(self.op, values)
        if missing:  # asked again at once: no worker, nothing to refuse yet
            self._show_plan(f"✖ needed: {', '.join(missing)}")
            return
        self._plan(values)

    def _plan(self, values: dict[str, str]) -> None:
        self.state = "planning"
        for f in self.fields:
            self.query_one(f"#field-{f.name}", Input).disabled = True
        if self.fields:
            self.query_one("#action-preview", Button).disabled = True
        self._show_plan("… planning from a fresh snapshot of every host")
        self.run_worker(
            lambda: self._plan_worker(values), thread=True, group="action", exit_on_error=False
        )

    def _plan_worker(self, values: dict[str, str]) -> None:
        # Worker thread: never touch widgets here.
        try:
            planned = plan(self.op, self.make_context(self.sink), self.read_fleet, values)
        except Exception as exc:  # a bug must show, not end the console
            planned = Refused(f"{type(exc).__name__}: {exc}", "unreadable")
        if isinstance(planned, Refused):
            reason = planned.reason
            self._from_thread(
                self._refused, reason if planned.cause == "input" else f"cannot plan: {reason}"
            )
        else:
            self._from_thread(self._planned, planned)

    def _from_thread(self, callback: Callable[..., object], *args: object) -> None:
        with suppress(RuntimeError):  # the app is closing
            self.app.call_from_thread(callback, *args)

    def _refused(self, reason: str) -> None:
        if not self.is_attached:
            return
        self.state = "refused"
        self._show_plan(f"✖ refused: {reason}\nnothing was sent")
        self.record(self.subject, f"{self.title_text}: refused: {reason}")
        if self.fields:  # let the operator correct the inputs
            for f in self.fields:
                self.query_one(f"#field-{f.name}", Input).disabled = False
            self.query_one("#action-preview", Button).disabled = False
        self.query_one("#action-close", Button).label = "Close"

    def _planned(self, planned: Planned) -> None:
        if not self.is_attached:
            return
        self.planned = planned
        self.state = "confirming"
        self._show_plan("\n".join(planned.preview))
        box = self.query_one("#action-confirm", Input)
        box.placeholder = f"type {printable(planned.target)} to enable Run"
        box.disabled = False
        box.focus()

    def _show_plan(self, text: str) -> None:
        self.query_one("#action-plan", Static).update(plain(text, newlines=True))

    # --- confirming -----------------------------------------------------------------------

    @property
    def confirmed(self) -> bool:
        return self.planned is not None and self.planned.confirmed_by(
            self.query_one("#action-confirm", Input).value
        )

    @on(Input.Changed, "#action-confirm")
    def _typed(self, event: Input.Changed) -> None:
        self.query_one("#action-run", Button).disabled = not (
            self.state == "confirming" and self.confirmed
        )

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "action-confirm":
            if self.state == "confirming" and self.confirmed:
                self.start_run()
        else:
            self._preview()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "action-run":
            self.start_run()
        elif event.button.id == "action-preview":
            self._preview()
        elif event.button.id == "action-follow-up":
            self.open_follow_up()
        else:
            self.action_close()

    # --- running --------------------------------------------------------------------------

    def start_run(self) -> None:
        if self.state != "confirming" or not self.confirmed or self.planned is None:
            return
        self.state = "running"
        self.query_one("#action-confirm", Input).disabled = True
        self.query_one("#action-run", Button).disabled = True
        self.query_one("#action-close", Button).disabled = True
        self.record(self.subject, f"{self.title_text}: started")
        planned = self.planned
        self.run_worker(
            lambda: self._run_worker(planned), thread=True, group="action", exit_on_error=False
        )

    def _run_worker(self, planned: Planned) -> None:
        # Worker thread: results go back through call_from_thread only.
        try:
            outcome = run(planned)
        except Exception as exc:  # a bug must show, not end the console
            outcome = Outcome(f"{type(exc).__name__}: {exc}", failed=True)
        self._from_thread(self._done, outcome)

    def sink(self, progress: Progress) -> None:
        """The operation's progress sink: called on the worker thread.

        Showing a step must never stop the operation: an error raised here would surface in
        the middle of its steps (a rollback cut short, no audit record). The outcome and the
        audit record do not depend on this display.
        """
        with suppress(Exception):
            self._from_thread(self._progress, progress)

    def _progress(self, progress: Progress) -> None:
        if not self.is_attached:
            return
        line = progress_line(progress)
        opened = self._open_step
        if (
            progress.kind in ("ok", "fail")
            and opened is not None
            and (progress.text == opened[1] or progress.text.startswith(opened[1] + ": "))
        ):
            self.steps[opened[0]] = line  # the step's end replaces its "…" line
            self._open_step = None
        else:
            if progress.kind == "step":
                self._open_step = (len(self.steps), progress.text)
            self.steps.append(line)
        self.query_one("#action-steps", Static).update(plain("\n".join(self.steps), newlines=True))

    def _done(self, outcome: Outcome) -> None:
        text, failed = outcome.summary, outcome.failed
        self.state = "done"
        self.failed = failed
        self.outcome = text
        self.follow_up = outcome.follow_up
        if self.after_run is not None:
            self.after_run()
        self.record(self.subject, f"{self.title_text}: {'FAILED: ' if failed else 'done: '}{text}")
        if not self.is_attached:
            return
        prefix = "✖ FAILED: " if failed else "✔ "
        if outcome.follow_up is not None:
            text += f"\nnext: {outcome.follow_up.operation.title}? {outcome.follow_up.why}"
            offer = self.query_one("#action-follow-up", Button)
            offer.label = plain(f"{outcome.follow_up.operation.title.capitalize()}…")
            offer.display = True
            offer.disabled = False
        self.query_one("#action-outcome", Static).update(plain(prefix + text, newlines=True))
        close = self.query_one("#action-close", Button)
        close.label = "Close"
        close.disabled = False
        close.focus()

    def open_follow_up(self) -> None:
        """The outcome's follow-up, in a screen of its own: planned afresh, previewed and
        confirmed like any operation."""
        follow_up = self.follow_up
        if self.state != "done" or follow_up is None:
            return
        op = follow_up.operation
        after = self.after_run if op.changes_clients else None
        self.dismiss(None)
        self.app.push_screen(
            ActionScreen(op, self.read_fleet, self.make_context, self.record, after)
        )

    def action_close(self) -> None:
        if self.state == "running":
            self.notify("the operation is running: wait for its outcome", severity="warning")
            return
        if self.state in ("asking", "planning", "confirming"):
            self.record(self.subject, f"{self.title_text}: cancelled: nothing was sent")
        self.dismiss(None)
