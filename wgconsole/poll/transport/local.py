"""`host: local`: commands run on this machine itself (reads go over netlink, see `netlink`)."""

from __future__ import annotations

import subprocess
import time

from wgconsole.poll.transport.base import CommandResult, CommandTimeout, ReadOnlyViolation


class LocalTransport:
    def __init__(self, name: str, *, read_only: bool = False) -> None:
        self.name = name
        self.read_only = read_only

    def run(self, command: str, timeout: float, mutating: bool = False) -> CommandResult:
        if mutating and self.read_only:
            raise ReadOnlyViolation(f"{self.name}: read-only: refused to run a mutating command")
        started = time.monotonic()
        try:
            proc = subprocess.run(
                ["sh", "-c", command], capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise CommandTimeout(f"{self.name}: command timed out after {timeout:g} s") from None
        return CommandResult(
            stdout=proc.stdout,
            stderr=proc.stderr,
            status=proc.returncode,
            seconds=time.monotonic() - started,
            bytes_received=len(proc.stdout) + len(proc.stderr),
        )

    def close(self) -> None:
        pass
