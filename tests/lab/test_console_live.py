"""The console itself, live in tmux against the lab: read with capture-pane like a person would.

Both gateways, both clients with their handshake ages and LB gateway must show; when
gateway-01's wg0 goes down in the lab, the console must say so within two poll intervals
(plus the poll's own duration) and keep updating the rest; `q` must quit the process.
Only gw1's wg0 link state is touched, and it is always brought back up.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from tests.lab.conftest import Lab
from tests.lab.helpers import eventually

pytestmark = pytest.mark.lab

INTERVAL = 2.0
SIZE = (160, 50)
GW1, GW2 = "wg-gateway-01", "wg-gateway-02"
CLIENTS = ("wg-client-0", "wg-client-1")
AGE = re.compile(r"(✔ fresh|⚠ ageing|✖ stale|∅ never)( \d+[smhd]\S*)?")
POLL = re.compile(r"poll (\d+)s ago \((\d+\.\d)s\)")


def _tmux(*args: str) -> str:
    return subprocess.run(
        ["tmux", *args], check=True, capture_output=True, text=True, timeout=30
    ).stdout


class Pane:
    def __init__(self, session: str) -> None:
        self.session = session

    def text(self) -> str:
        return _tmux("capture-pane", "-p", "-t", self.session)

    def keys(self, *keys: str) -> None:
        _tmux("send-keys", "-t", self.session, *keys)

    def wait(self, what: str, ok: Callable[[str], bool], timeout: float) -> str:
        return eventually(
            self.text, accept=ok, timeout=timeout, interval=0.25, what=f"the console shows {what}"
        )


@pytest.fixture
def pane(lab: Lab) -> Iterator[Pane]:
    session = f"wgc-live-{os.getpid()}"
    command = " ".join(
        shlex.quote(a)
        for a in (
            sys.executable,
            "-m",
            "wgconsole",
            "-i",
            str(lab.inventory_path),
            "--interval",
            str(INTERVAL),
        )
    )
    # The pane outlives the console so that its exit status can be read.
    shell = f"{command}; echo CONSOLE-EXITED-$?; sleep 60"
    _tmux(
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        str(SIZE[0]),
        "-y",
        str(SIZE[1]),
        "-e",
        "TERM=xterm-256color",
        shell,
    )
    try:
        yield Pane(session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, timeout=30)


def _line(screen: str, word: str) -> str:
    return next((line for line in screen.splitlines() if word in line), "")


def _host_line(screen: str, name: str) -> str:
    """The gateway's row in the Hosts table (not its real server row)."""
    pattern = re.compile(rf"^\s*{re.escape(name)}\s+gateway\s+")
    return next((line for line in screen.splitlines() if pattern.match(line)), "")


def _poll_seconds(screen: str) -> float:
    match = POLL.search(screen)
    return float(match.group(2)) if match else 0.0


def test_console_live_shows_the_lab_and_a_gateway_going_down(lab: Lab, pane: Pane) -> None:
    overview = pane.wait(
        "both gateways and a first poll",
        lambda s: GW1 in s and GW2 in s and POLL.search(s) is not None,
        timeout=120,
    )
    assert "✔ up" in _host_line(overview, GW1)
    assert "✔ up" in _host_line(overview, GW2)

    pane.keys("2")
    clients = pane.wait(
        "both clients with handshake ages",
        lambda s: all(AGE.search(_line(s, c)) for c in CLIENTS),
        timeout=30,
    )
    for client in CLIENTS:
        line = _line(clients, client)
        # LB gateway and handshake gateway columns, then the age with its status word.
        assert re.search(r"wg-gateway-0\d\s+wg-gateway-0\d\s+(✔ fresh|⚠ ageing)", line), line

    pane.keys("1")
    pane.wait("the overview again", lambda s: "Real servers" in s, timeout=10)
    poll_seconds = _poll_seconds(pane.text())
    started = time.monotonic()
    lab.ns("gw1", ["ip", "link", "set", "wg0", "down"])
    try:
        budget = 2 * INTERVAL + poll_seconds + 3.0  # +3 s: capture-pane and the lab command
        down = pane.wait(
            "gateway-01's interface down",
            lambda s: "interface-down" in s and GW1 in _line(s, "interface-down"),
            timeout=budget + 30,
        )
        took = time.monotonic() - started
        assert took <= budget, f"took {took:.1f}s, over {budget:.1f}s:\n{down}"
        # The rest keeps updating: gateway-02 still answers with fresh data, and the next
        # poll comes as usual.
        assert "✔ up" in _host_line(down, GW2)
        seen = POLL.search(down)
        assert seen is not None
        later = pane.wait(
            "another poll after the interface went down",
            lambda s: (m := POLL.search(s)) is not None and m.group(0) != seen.group(0),
            timeout=3 * INTERVAL + poll_seconds + 5,
        )
        assert "interface-down" in later
        host_line = _host_line(later, GW2)
        assert "✔ up" in host_line
        assert "stale" not in host_line
        pane.keys("4")
        log = pane.wait("the event in the log", lambda s: "interface is down" in s, timeout=10)
        assert f"{GW1}: interface is down" in log
    finally:
        lab.ns("gw1", ["ip", "link", "set", "wg0", "up"])

    pane.keys("q")
    pane.wait("the console exiting", lambda s: "CONSOLE-EXITED-" in s, timeout=30)
    assert "CONSOLE-EXITED-0" in pane.text()
