"""What an operation runs with: the hosts' transports, the audit log and a progress sink."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from wgconsole.inventory_types import Inventory
from wgconsole.ops.audit import AuditLog
from wgconsole.ops.errors import OpError
from wgconsole.transport.base import CommandResult, Transport, TransportError


@dataclass(frozen=True, slots=True)
class Progress:
    """One line of an operation's visible progress."""

    kind: str  # "step", "ok", "fail", "info", "warn"
    text: str
    seconds: float | None = None


ProgressSink = Callable[[Progress], None]


@dataclass
class OpContext:
    inventory: Inventory
    transports: Mapping[str, Transport]
    audit: AuditLog
    progress: ProgressSink = field(default=lambda p: None)
    timeout: float = 30.0

    def run(
        self, host: str, command: str, *, mutating: bool = True, check: bool = True
    ) -> CommandResult:
        try:
            result = self.transports[host].run(command, timeout=self.timeout, mutating=mutating)
        except TransportError as exc:
            raise OpError(f"{host}: {exc}") from None
        if check and result.status != 0:
            output = (result.stdout + result.stderr).strip()[-500:]
            raise OpError(f"{host}: command failed (exit {result.status}): {output}")
        return result

    def info(self, text: str) -> None:
        self.progress(Progress("info", text))

    def warn(self, text: str) -> None:
        self.progress(Progress("warn", text))

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        started = time.monotonic()
        self.progress(Progress("step", title))
        try:
            yield
        except Exception as exc:
            self.progress(Progress("fail", f"{title}: {exc}", time.monotonic() - started))
            raise
        self.progress(Progress("ok", title, time.monotonic() - started))
