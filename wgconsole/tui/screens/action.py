"""One operation from the console: its inputs, a preview, a typed confirmation, visible steps.

The screen never plans or runs anything on the UI thread (both send commands over SSH): a
thread worker calls the planner, which returns the preview lines, the name the operator must
type and the function that executes it; a second worker executes it. Progress events come
back through `app.call_from_thread`; the outcome stays on screen until dismissed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from wgconsole.core.whereis import WhereIsError
from wgconsole.ops.context import OpContext, Progress, ProgressSink
from wgconsole.ops.errors import OpError, ValidationError

SYMBOLS = {"step": "…", "ok": "✔", "fail": "✖", "info": " ", "warn": "⚠"}


@dataclass(frozen=True)
class Field:
    """An input the operation asks for before planning."""

    name: str
    label: str
    required: bool = True
    placeholder: str = ""


@dataclass(frozen=True)
class Planned:
    lines: list[str]
    target: str  # what the operator types to go ahead
    execute: Callable[[], str]


Planner = Callable[[OpContext, Mapping[str, str]], Planned]
ContextFactory = Callable[[ProgressSink], OpContext]
Recorder = Callable[[str, str], None]


def progress_line(p: Progress) -> str:
    took = f" ({p.seconds:.1f} s)" if p.seconds is not None and p.kind != "step" else ""
    return f"{SYMBOLS.get(p.kind, ' ')} {p.text}{took}"


class ActionScreen(ModalScreen[None]):
    """States: asking (fields) → planning → confirming → running → done (or refused)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Cancel / close", tooltip="cancel (nothing is sent) or close"),
    ]

    def __init__(
        self,
        title: str,
        subject: str,
        planner: Planner,
        make_context: ContextFactory,
        record: Recorder,
        fields: Sequence[Field] = (),
    ) -> None:
        super().__init__()
        self.title_text = title
        self.subject = subject
        self.planner = planner
        self.make_context = make_context
        self.record = record
        self.fields = tuple(fields)
        self.state = "asking" if self.fields else "planning"
        self.planned: Planned | None = None
        self.steps: list[str] = []
        self._open_step: tuple[int, str] | None = None
        self.outcome: str | None = None
        self.failed = False

    # --- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="action-box"):
            yield Label(self.title_text, id="action-title")
            with VerticalScroll(id="action-body"):
                for f in self.fields:
                    yield Label(f.label + ("" if f.required else " (optional)"))
                    yield Input(placeholder=f.placeholder, id=f"field-{f.name}")
                yield Static("", id="action-plan")
                yield Static("", id="action-steps")
                yield Static("", id="action-outcome")
            yield Input(placeholder="type the target's name", id="action-confirm", disabled=True)
            with Horizontal(id="action-buttons"):
                if self.fields:
                    yield Button("Preview", id="action-preview", variant="primary")
                yield Button("Run", id="action-run", variant="error", disabled=True)
                yield Button("Cancel", id="action-close")

    def on_mount(self) -> None:
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
        missing = [f.label for f in self.fields if f.required and not values[f.name]]
        if missing:
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
            ctx = self.make_context(self.sink)
            planned = self.planner(ctx, values)
        except (ValidationError, WhereIsError) as exc:
            self._from_thread(self._refused, str(exc))
        except OpError as exc:
            self._from_thread(self._refused, f"cannot plan: {exc}")
        except Exception as exc:  # a bug must show, not end the console
            self._from_thread(self._refused, f"cannot plan: {type(exc).__name__}: {exc}")
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
        self._show_plan("\n".join(planned.lines))
        box = self.query_one("#action-confirm", Input)
        box.placeholder = f"type {planned.target} to enable Run"
        box.disabled = False
        box.focus()

    def _show_plan(self, text: str) -> None:
        self.query_one("#action-plan", Static).update(text)

    # --- confirming -----------------------------------------------------------------------

    @property
    def confirmed(self) -> bool:
        return (
            self.planned is not None
            and self.query_one("#action-confirm", Input).value.strip() == self.planned.target
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
        execute = self.planned.execute
        self.run_worker(
            lambda: self._run_worker(execute), thread=True, group="action", exit_on_error=False
        )

    def _run_worker(self, execute: Callable[[], str]) -> None:
        # Worker thread: results go back through call_from_thread only.
        try:
            summary = execute()
        except OpError as exc:
            self._from_thread(self._done, str(exc), True)
        except Exception as exc:
            self._from_thread(self._done, f"{type(exc).__name__}: {exc}", True)
        else:
            self._from_thread(self._done, summary, False)

    def sink(self, progress: Progress) -> None:
        """The operation's progress sink: called on the worker thread."""
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
        self.query_one("#action-steps", Static).update("\n".join(self.steps))

    def _done(self, text: str, failed: bool) -> None:
        self.state = "done"
        self.failed = failed
        self.outcome = text
        self.record(self.subject, f"{self.title_text}: {'FAILED: ' if failed else 'done: '}{text}")
        if not self.is_attached:
            return
        prefix = "✖ FAILED: " if failed else "✔ "
        self.query_one("#action-outcome", Static).update(prefix + text)
        close = self.query_one("#action-close", Button)
        close.label = "Close"
        close.disabled = False
        close.focus()

    def action_close(self) -> None:
        if self.state == "running":
            self.notify("the operation is running: wait for its outcome", severity="warning")
            return
        if self.state in ("asking", "planning", "confirming"):
            self.record(self.subject, f"{self.title_text}: cancelled: nothing was sent")
        self.dismiss(None)
