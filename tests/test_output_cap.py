"""A command may return so much and no more: past the cap it is stopped, its output dropped,
and that is the host's error; the transport's next command works (the local transport here;
SSH in tests/lab/test_ssh_lab.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from wgconsole.poll.transport.base import (
    MAX_OUTPUT,
    OutputTooLarge,
    TransportError,
    size_text,
)
from wgconsole.poll.transport.local import LocalTransport


def test_output_over_the_default_cap_is_the_hosts_error() -> None:
    transport = LocalTransport("here")
    with pytest.raises(TransportError) as err:
        transport.run(f"head -c {MAX_OUTPUT + 1} /dev/zero", timeout=60)
    assert str(err.value).startswith("output over 16 MiB: ")
    assert transport.run("echo ok", timeout=60).stdout == "ok\n"


def test_output_up_to_the_cap_is_returned_whole() -> None:
    result = LocalTransport("here", max_output=100_000).run("head -c 100000 /dev/zero", 60)
    assert (len(result.stdout), result.bytes_received, result.status) == (100_000, 100_000, 0)


@pytest.mark.parametrize(
    "command",
    [
        "head -c 300000 /dev/zero",
        "head -c 300000 /dev/zero >&2",
        "head -c 60000 /dev/zero; head -c 60000 /dev/zero >&2",  # the two together
        "yes",  # never ends by itself: stopped at the cap, not at the timeout
    ],
)
def test_a_cap_of_its_own_counts_stdout_and_stderr(command: str) -> None:
    transport = LocalTransport("here", max_output=100 * 1024)
    with pytest.raises(OutputTooLarge, match=r"^output over 100 KiB: the command was stopped"):
        transport.run(command, timeout=600)
    assert transport.run("echo ok >&2", timeout=60).stderr == "ok\n"


def _alive_in_group(pgid: int) -> list[int]:
    """Processes of process group `pgid` that have not exited (zombies have)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended while listed
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def test_a_stopped_command_is_stopped_with_what_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    transport = LocalTransport("here", max_output=1024)
    with pytest.raises(OutputTooLarge):
        transport.run(f"echo $$ > {pid_file}; yes | cat", timeout=600)
    pgid = int(pid_file.read_text())  # sh leads a process group of its own
    # SIGKILL is delivered, not yet acted on, when kill() returns: wait for it, bounded.
    deadline = time.monotonic() + 30
    while _alive_in_group(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _alive_in_group(pgid) == []


def test_sizes_are_said_in_the_unit_that_says_them_exactly() -> None:
    assert [size_text(n) for n in (16 << 20, 100 << 10, 1500, 1)] == [
        "16 MiB",
        "100 KiB",
        "1500 bytes",
        "1 bytes",
    ]
