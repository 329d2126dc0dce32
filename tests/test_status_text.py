"""`wgconsole status` speaks the console's vocabulary: one symbol and word per status."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from tests.console_support import fleets
from wgconsole.cli.status_text import print_status
from wgconsole.view import present

LAB = Path(__file__).parent / "fixtures" / "lab"


def _status(frame: str) -> str:
    out = io.StringIO()
    print_status(fleets([LAB / frame])[0], Console(file=out, width=250))
    return out.getvalue()


def test_status_words_are_the_consoles() -> None:
    fleet = fleets([LAB / "normal"])[0]
    text = _status("normal")
    for client in fleet.clients:
        assert present.handshake(client.status, client.handshake_age)[0] in text
    assert present.server_state("active")[0] in text
    assert present.reachable(ok=True)[0] in text
    assert present.severity("warning")[0] in text


def test_an_unreachable_host_reads_down_with_its_age() -> None:
    text = _status("gw2-unreachable")
    line = next(row for row in text.splitlines() if "wg-gateway-02" in row and "gateway " in row)
    assert present.reachable(ok=False)[0] in line
