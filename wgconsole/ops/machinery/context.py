"""What an operation runs with: the hosts' transports, the audit log and a progress sink."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from wgconsole.core.inventory import Host, Inventory
from wgconsole.ops.machinery.audit import AuditLog
from wgconsole.ops.machinery.errors import OpError
from wgconsole.poll.collector import ParseMemos
from wgconsole.poll.parsers.errors import redact
from wgconsole.poll.transport.base import (
    CommandResult,
    Transport,
    TransportError,
    privileged_part,
    sudo_refusal,
)

# A step begins, ends well or badly; a remark; a warning.
ProgressKind = Literal["step", "ok", "fail", "info", "warn"]
SYMBOLS: Mapping[ProgressKind, str] = {
    "step": "…",
    "ok": "✔",
    "fail": "✖",
    "info": " ",
    "warn": "⚠",
}


@dataclass(frozen=True, slots=True)
class Progress:
    """One line of an operation's visible progress."""

    kind: ProgressKind
    text: str
    seconds: float | None = None


def progress_line(p: Progress) -> str:
    """How every front end shows a progress line: its symbol, its text, how long it took."""
    took = f" ({p.seconds:.1f} s)" if p.seconds is not None and p.kind != "step" else ""
    return f"{SYMBOLS[p.kind]} {p.text}{took}"


ProgressSink = Callable[[Progress], None]


@dataclass
class OpContext:
    inventory: Inventory
    transports: Mapping[str, Transport]
    audit: AuditLog
    progress: ProgressSink = field(default=lambda p: None)
    timeout: float = 30.0
    # The collector's: an operation's readings then reuse what the polls parsed (a 10,000-peer
    # gateway read again is mostly lines the last poll had).
    parse_memos: ParseMemos | None = None
    # The site it acts on when several are loaded: its preview, lock and audit record say
    # which. None: the only one (they are as they were before there could be several).
    site: str | None = None

    def run(
        self,
        host: str,
        command: str,
        *,
        mutating: bool = True,
        check: bool = True,
        timeout: float | None = None,
    ) -> CommandResult:
        """`command` on `host`; `timeout` only to give a known-slow command longer."""
        limit = self.timeout if timeout is None else max(timeout, self.timeout)
        try:
            result = self.transports[host].run(command, timeout=limit, mutating=mutating)
        except TransportError as exc:
            raise OpError(f"{host}: {exc}") from None
        if check and result.status != 0:
            raise OpError(failure(host, command, result))
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


def failure(host: str, command: str, result: CommandResult) -> str:
    """Why a command failed, for the operator and the audit log.

    sudo refusing it is named as a missing right; otherwise the end of its output, with
    anything key-shaped redacted (a tool may echo what it was given).
    """
    output = result.stdout + result.stderr
    refusal = sudo_refusal(output)
    if refusal is not None:
        return f"{host}: missing sudo right for `{privileged_part(command)}` ({refusal})"
    return f"{host}: command failed (exit {result.status}): {redact(output.strip()[-500:])}"


_H = TypeVar("_H", bound=Host)
_T = TypeVar("_T")


def on_each(hosts: Iterable[_H], call: Callable[[_H], _T]) -> dict[str, _T]:
    """`call` on every host at once, one thread per host (each host has its own connection,
    whose commands run one at a time), by host name in the order given: for what does not
    depend on the other hosts (readings, a lock's release). A host whose call fails fails it
    all: the first such host in that order says why, once every call has ended."""
    hosts = list(hosts)
    if len(hosts) < 2:
        return {h.name: call(h) for h in hosts}
    with ThreadPoolExecutor(max_workers=len(hosts), thread_name_prefix="wgc-op") as pool:
        futures = [(h.name, pool.submit(call, h)) for h in hosts]
        return {name: future.result() for name, future in futures}
