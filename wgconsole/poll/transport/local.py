"""`host: local`: commands run on this machine itself (reads go over netlink, see `netlink`)."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time

from wgconsole.poll.transport.base import (
    MAX_OUTPUT,
    CommandResult,
    CommandTimeout,
    LineBuffer,
    OutputTooLarge,
    ReadOnlyViolation,
)


class LocalTransport:
    def __init__(self, name: str, *, read_only: bool = False, max_output: int = MAX_OUTPUT) -> None:
        self.name = name
        self.read_only = read_only
        self.max_output = max_output

    def run(self, command: str, timeout: float, *, mutating: bool = False) -> CommandResult:
        if mutating and self.read_only:
            raise ReadOnlyViolation(f"{self.name}: read-only: refused to run a mutating command")
        started = time.monotonic()
        # Its own process group: a command stopped (timed out, or over the cap) is stopped with
        # everything it started, as sshd's end of a closed channel would be.
        proc = subprocess.Popen(
            ["sh", "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = self._read(proc, started + timeout)
            proc.wait(max(0.0, started + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise CommandTimeout(f"{self.name}: command timed out after {timeout:g} s") from None
        finally:
            if proc.poll() is None:
                _kill(proc)
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        return CommandResult(
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            status=proc.returncode,
            seconds=time.monotonic() - started,
            bytes_received=len(out) + len(err),
        )

    def _read(self, proc: subprocess.Popen[bytes], deadline: float) -> tuple[bytes, bytes]:
        """Both pipes to their end, never holding more than one byte past the cap."""
        assert proc.stdout is not None
        assert proc.stderr is not None
        cap = self.max_output
        buffers = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
        with selectors.DefaultSelector() as selector:
            for fd in buffers:
                selector.register(fd, selectors.EVENT_READ)
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired(proc.args, 0)
                for key, _ in selector.select(left):
                    fd = int(key.fd)
                    total = sum(len(b) for b in buffers.values())
                    chunk = os.read(fd, min(1 << 16, cap + 1 - total))
                    if not chunk:
                        selector.unregister(fd)
                        continue
                    buffers[fd] += chunk
                    if total + len(chunk) > cap:
                        raise OutputTooLarge(cap)
        return bytes(buffers[proc.stdout.fileno()]), bytes(buffers[proc.stderr.fileno()])

    def start(self, command: str, timeout: float) -> LocalRunningCommand:
        """`command` started on this machine, read as its output comes."""
        del timeout  # starting a local process does not wait on anything
        proc = subprocess.Popen(
            ["sh", "-c", command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        return LocalRunningCommand(proc, self.max_output)

    def close(self) -> None:
        pass


class LocalRunningCommand:
    """A started local command, read as its output comes (base.RunningCommand)."""

    def __init__(self, proc: subprocess.Popen[bytes], cap: int) -> None:
        assert proc.stdout is not None
        assert proc.stderr is not None
        self._proc = proc
        self._buffers = {
            proc.stdout.fileno(): LineBuffer(cap),
            proc.stderr.fileno(): LineBuffer(cap),
        }
        self._out = proc.stdout.fileno()
        self._selector = selectors.DefaultSelector()
        for fd in self._buffers:
            self._selector.register(fd, selectors.EVENT_READ)

    def read(self, wait: float) -> tuple[list[str], list[str]]:
        got: dict[int, list[str]] = {fd: [] for fd in self._buffers}
        if not self._selector.get_map():
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(wait)
            return [], []
        for key, _ in self._selector.select(wait):
            fd = int(key.fd)
            chunk = os.read(fd, 1 << 16)
            if chunk:
                got[fd].extend(self._buffers[fd].add(chunk))
            else:
                self._selector.unregister(fd)
                got[fd].extend(self._buffers[fd].rest())
        err = [line for fd, lines in got.items() if fd != self._out for line in lines]
        return got[self._out], err

    @property
    def ended(self) -> bool:
        return not self._selector.get_map() and self._proc.poll() is not None

    @property
    def status(self) -> int | None:
        return self._proc.returncode if self.ended else None

    def stop(self) -> None:
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()

    def close(self) -> None:
        if self._proc.poll() is None:
            _kill(self._proc)
        self._selector.close()
        for pipe in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group had ended already
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
