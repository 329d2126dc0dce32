"""The lab's kernel state read directly (ipvsadm, /proc, wg), not through wgconsole's parsers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.lab.conftest import Lab


def run_cli(
    inventory: Path, *args: str, timeout: float = 300.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wgconsole", "-i", str(inventory), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cli_json(inventory: Path, *args: str) -> Any:
    res = run_cli(inventory, *args, "--json")
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    return json.loads(res.stdout)


def _hex_ip(h: str) -> str:
    return socket.inet_ntoa(bytes.fromhex(h))


@dataclass(frozen=True)
class KernelConn:
    client: str  # a.b.c.d:port
    virtual: str
    dest: str
    expires: int


def kernel_conns(lab: Lab) -> list[KernelConn]:
    out = lab.ns("lb", ["cat", "/proc/net/ip_vs_conn"])
    conns = []
    for line in out.splitlines()[1:]:
        f = line.split()
        if len(f) < 9 or f[0] != "UDP":
            continue
        conns.append(
            KernelConn(
                client=f"{_hex_ip(f[1])}:{int(f[2], 16)}",
                virtual=f"{_hex_ip(f[3])}:{int(f[4], 16)}",
                dest=f"{_hex_ip(f[5])}:{int(f[6], 16)}",
                expires=int(f[8]),
            )
        )
    return conns


def kernel_dests(lab: Lab, service: str) -> list[tuple[str, int]]:
    """(address:port, weight) of `service` (e.g. "10.77.255.1:51280") in kernel order."""
    out = lab.ns("lb", ["ipvsadm", "-Ln", "--nosort", "-u", service])
    dests = []
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "->" and f[1] != "RemoteAddress:Port":
            dests.append((f[1], int(f[3])))
    return dests


def handshakes(lab: Lab, netns: str) -> tuple[float, dict[str, int]]:
    """The gateway's own clock and `wg show wg0 latest-handshakes`, read in one command."""
    out = lab.ns(netns, ["sh", "-c", "date +%s.%N; wg show wg0 latest-handshakes"])
    lines = out.splitlines()
    latest = {}
    for line in lines[1:]:
        key, ts = line.split()
        latest[key] = int(ts)
    return float(lines[0]), latest


def endpoints(lab: Lab, netns: str) -> dict[str, str]:
    out = lab.ns(netns, ["wg", "show", "wg0", "endpoints"])
    return dict(line.split() for line in out.splitlines() if line.strip())
