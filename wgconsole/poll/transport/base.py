"""What every transport offers: run one command on a host, with a timeout."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class TransportError(Exception):
    """The host could not be reached or the command could not be run (not a command failure).

    The message does not name the host: whoever reports it does (once).
    """


class HostKeyError(TransportError):
    """The host's key is unknown or changed: the host is not trusted until the operator acts."""


class HostKeyUnknown(HostKeyError):
    """known_hosts has no key for the host (and new keys are not accepted)."""


class HostKeyChanged(HostKeyError):
    """The host offered another key than known_hosts holds: someone else may be answering."""


class CommandTimeout(TransportError):
    pass


class ReadOnlyViolation(TransportError):
    """A mutating command was attempted through a read-only transport."""


# What one command may return (stdout and stderr together) before it is stopped. The largest
# legitimate output is an LB poll's connection table: 3.3 MB for 50,000 IPv4 entries (README,
# Scale; ~66 bytes a line), and an IPv6 line is about 2.5x as long, ~8 MB for as many; a
# gateway's dump of 10,000 peers is 0.9 MB. 16 MiB is twice the IPv6 case and 5x the measured
# one, while it bounds what a runaway or hostile host can make the bastion hold: the bytes read
# and their decoded copy, ~32 MiB a host at most (64 MiB arriving grew the bastion by 133 MiB).
MAX_OUTPUT = 16 * 1024 * 1024


def size_text(n: int) -> str:
    """`n` bytes in the unit that says it exactly: 16 MiB, 100 KiB, 1500 bytes."""
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


class OutputTooLarge(TransportError):
    """A command's output went over the transport's cap: it was stopped, its output dropped."""

    def __init__(self, cap: int) -> None:
        super().__init__(
            f"output over {size_text(cap)}: the command was stopped and its output dropped "
            "(more than any host's poll or operation step returns)"
        )
        self.cap = cap


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

    def run(self, command: str, timeout: float, *, mutating: bool = False) -> CommandResult:
        """Run `command` (a shell string whose parts the caller already quoted)."""
        ...

    def close(self) -> None: ...


class RunningCommand(Protocol):
    """A command still running on a host, read as it prints (a capture): lines as they come,
    a request to end (EOF on its standard input), and a close that ends it for good."""

    def read(self, wait: float) -> tuple[list[str], list[str]]:
        """The complete stdout and stderr lines that came within `wait` seconds (may be
        none); OutputTooLarge past the transport's cap."""
        ...

    @property
    def ended(self) -> bool:
        """The command exited and everything it printed was read."""
        ...

    @property
    def status(self) -> int | None: ...

    def stop(self) -> None:
        """Close its standard input: a command written to end on EOF ends (gracefully)."""
        ...

    def close(self) -> None: ...


class StreamingTransport(Transport, Protocol):
    """A transport that can also start a command and hand its output over as it comes."""

    def start(self, command: str, timeout: float) -> RunningCommand:
        """Start `command` (never mutating); `timeout` bounds connecting and starting it."""
        ...


class LineBuffer:
    """Bytes in, complete lines out (the last partial line kept until its end comes), and
    the byte cap every transport keeps on what one command may return."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.total = 0
        self._pending = bytearray()

    def add(self, chunk: bytes) -> list[str]:
        self.total += len(chunk)
        if self.total > self.cap:
            raise OutputTooLarge(self.cap)
        self._pending += chunk
        *lines, rest = bytes(self._pending).split(b"\n")
        self._pending = bytearray(rest)
        return [line.decode("utf-8", "replace") for line in lines]

    def rest(self) -> list[str]:
        rest, self._pending = bytes(self._pending), bytearray()
        return [rest.decode("utf-8", "replace")] if rest else []


def quote_argv(argv: Sequence[str]) -> str:
    """The one way a command line is built from values: every part shell-quoted."""
    return " ".join(shlex.quote(a) for a in argv)


def privileged(argv: Sequence[str], *, sudo: bool) -> str:
    """`argv` quoted, through `sudo -n` when the host says so (never prompts: -n)."""
    return quote_argv(["sudo", "-n", *argv] if sudo else argv)


# What sudo prints when it will not run a command without a password or rule (`-n` never
# prompts). sudo 1.9: "sudo: a password is required"; "Sorry, user U is not allowed to
# execute 'CMD' as root on H."; older: "U is not in the sudoers file."; and no sudo at all.
_SUDO_REFUSALS = (
    re.compile(r"^sudo: (a password is required|a terminal is required[^\n]*)$", re.M),
    re.compile(r"^Sorry, user \S+ is not allowed to execute [^\n]*$", re.M),
    re.compile(r"^(sudo: )?\S+ is not in the sudoers file[^\n]*$", re.M),
    re.compile(r"^(sudo: (command )?not found|[^\n]*: sudo: (command )?not found)$", re.M),
)


def sudo_refusal(output: str) -> str | None:
    """sudo's own refusal in a command's output (a missing sudo right), or None."""
    for pattern in _SUDO_REFUSALS:
        match = pattern.search(output)
        if match:
            return match.group(0).strip()
    return None


def privileged_part(command: str) -> str:
    """The command that `sudo -n` was asked to run in `command`, shortened for a message.

    `sudo -n sh -c 'SCRIPT' sh ARGS` becomes `sh -c <script>`; anything else its first words.
    """
    try:
        words = shlex.split(command)
    except ValueError:
        return command[:60]
    for i in range(len(words) - 1):
        if words[i] == "sudo" and words[i + 1] == "-n":
            rest = words[i + 2 :]
            break
    else:
        rest = words
    if rest[:2] == ["sh", "-c"]:
        return "sh -c <script>"
    shown = []
    for word in rest:
        if word in ("&&", "||", ";", "|") or "\n" in word:
            break
        shown.append(word)
    return " ".join(shown[:6])
