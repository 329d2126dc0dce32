"""What every transport offers: run one command on a host, with a timeout."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class TransportError(Exception):
    """The host could not be reached or the command could not be run (not a command failure)."""


class HostKeyError(TransportError):
    """The host's key is unknown or changed: the host is not trusted until the operator acts."""


class CommandTimeout(TransportError):
    pass


class ReadOnlyViolation(TransportError):
    """A mutating command was attempted through a read-only transport."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    stdout: str
    stderr: str
    status: int
    seconds: float
    bytes_received: int


class Transport(Protocol):
    """A host that runs commands. Implementations keep one connection and reuse it."""

    name: str

    def run(self, command: str, timeout: float, mutating: bool = False) -> CommandResult:
        """Run `command` (a shell string whose parts the caller already quoted)."""
        ...

    def close(self) -> None: ...


def quote_argv(argv: Sequence[str]) -> str:
    """The one way a command line is built from values: every part shell-quoted."""
    return " ".join(shlex.quote(a) for a in argv)


def privileged(argv: Sequence[str], sudo: bool) -> str:
    """`argv` quoted, through `sudo -n` when the host says so (never prompts: -n)."""
    return quote_argv(["sudo", "-n", *argv] if sudo else argv)
