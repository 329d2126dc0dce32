"""What the lab tests share: `eventually` (the one wait loop), the lab's names (VIP, clients),
`status`, settling the lab clients, a gateway's sshd stopped and started, and the lab's kernel
state read directly (ipvsadm, /proc, wg), not through wgconsole's parsers."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from wgconsole.lab.guest_script import restart_gateway_sshd_command, sudo_setup_command
from wgconsole.lab.topology import TUNNEL_GATEWAY
from wgconsole.ops.machinery.errors import LockedError

if TYPE_CHECKING:  # conftest imports this module (PairLab.wait_until)
    from tests.lab.conftest import Lab

T = TypeVar("T")


def _timing(kind: str, what: str, started: float) -> None:
    """With WGCONSOLE_TEST_TIMING=FILE, one line per wait and CLI run: where the suite's time
    goes (a profile, never an assertion)."""
    path = os.environ.get("WGCONSOLE_TEST_TIMING")
    if path:
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{time.monotonic() - started:7.1f} {kind} {test} {what}\n")


def eventually(
    observe: Callable[[], T],
    *,
    timeout: float,
    what: str,
    interval: float = 1.0,
    accept: Callable[[T], object] = bool,
) -> T:
    """Call `observe` until `accept` holds for what it returns (by default: until it returns
    something truthy), every `interval` s, and return that value. After `timeout` s it raises
    an AssertionError saying `what` was awaited and the last value observed. An exception
    from `observe` is not retried: it fails the test as it would have without the wait.

    Checked, then the deadline, then a sleep: the condition is always looked at once more
    after the deadline's last sleep."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        value = observe()
        if accept(value):
            _timing("wait", what, started)
            return value
        if time.monotonic() > deadline:
            shown = f"\n{value}" if isinstance(value, str) else f" {value!r}"
            raise AssertionError(f"not within {timeout:.0f} s: {what}; last observed:{shown}")
        time.sleep(interval)


def retry_locked(action: Callable[[], T], *, timeout: float, interval: float) -> T:
    """`action`, again while it raises LockedError (another test's operation holds the
    service lock for a moment); after `timeout` s the LockedError is raised."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except LockedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


# --- the lab's names ---------------------------------------------------------------------------


def vip(lab: Lab) -> str:
    """The service, VIP:port."""
    return f"{lab.meta['vip']}:{lab.meta['port']}"


def client_netns(lab: Lab) -> dict[str, str]:
    """Client name -> its netns, as the lab booted them."""
    return {c["name"]: c["netns"] for c in lab.meta["topology"]["clients"]}


# --- the CLI -----------------------------------------------------------------------------------


def run_cli(
    inventory: Path, *args: str, timeout: float = 300.0
) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "wgconsole", "-i", str(inventory), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    _timing("cli", " ".join(args[:2]), started)
    return res


def cli_json(inventory: Path, *args: str) -> Any:
    res = run_cli(inventory, *args, "--json")
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    return json.loads(res.stdout)


def status(lab: Lab, *args: str) -> Any:
    """`status --json` on the lab's inventory; every host must answer (exit 0)."""
    return cli_json(lab.inventory_path, "status", *args)


# --- the lab clients ---------------------------------------------------------------------------


def restore_endpoints(lab: Lab) -> None:
    """Lab-only repair of clients that roamed to a gateway's own address (bypassing-lb): no
    gateway-side action can bring such a client back (docs/domain/connections-and-timeouts.md);
    on a real fleet the client's own Endpoint must be reset, which is what the lab does to its
    own clients here."""
    for ns in client_netns(lab).values():
        peer, endpoint = lab.ns(ns, ["wg", "show", "wg0", "endpoints"]).split()
        if endpoint != vip(lab):
            lab.ns(ns, ["wg", "set", "wg0", "peer", peer, "endpoint", vip(lab)])


def settle_clients(
    lab: Lab,
    *,
    timeout: float,
    interval: float = 5.0,
    pings: int = 1,
    repair: bool = True,
    read: Callable[[], Any] | None = None,
    want: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Until every lab client is on one gateway by LB entry and by handshake (with `want`, on
    that gateway: client name -> gateway), each pinging through its tunnel before every look;
    returns `status`'s clients then. `repair` first points a roamed client back at the VIP
    (`restore_endpoints`); `read` is the status reading (default: `status(lab)`)."""
    if repair:
        restore_endpoints(lab)
    reading = read or (lambda: status(lab))
    netns = list(client_netns(lab).values())

    def look() -> list[dict[str, Any]]:
        for ns in netns:
            lab.ns(ns, ["ping", "-c", str(pings), "-W", "3", TUNNEL_GATEWAY], check=False)
        clients: list[dict[str, Any]] = reading()["clients"]
        return clients

    def settled(clients: list[dict[str, Any]]) -> bool:
        by_name = {c["name"]: c for c in clients}
        return all(
            c["lb_gateway"] and c["lb_gateway"] == c["handshake_gateway"] for c in clients
        ) and all(by_name[n]["lb_gateway"] == g for n, g in (want or {}).items())

    return eventually(
        look, accept=settled, timeout=timeout, interval=interval, what="the lab clients settle"
    )


def ensure_sudo_users(lab: Lab) -> None:
    """The lab's sudo users (wgop with wgconsole's sudo rights, wgnone without), made once."""
    if lab.sh("[ -e /run/wglab/sudo-ready ] && echo yes", check=False).strip() != "yes":
        lab.sh(sudo_setup_command(lab.dir))
    assert lab.sh("[ -e /run/wglab/sudo-ready ] && echo yes", check=False).strip() == "yes"


# --- a gateway's sshd ---------------------------------------------------------------------------

SSHD_STOP_SECONDS = 60.0  # bound on a killed sshd's processes being gone (emulated guest)
SSHD_START_SECONDS = 60.0  # bound on a started sshd listening (it loads its keys first)


def sshd_alive(lab: Lab, netns: str) -> bool:
    """The process in the gateway's sshd pid file is alive (sshd writes the file once it
    listens)."""
    out = lab.sh(f"kill -0 $(cat /run/wglab/sshd-{netns}.pid) 2>/dev/null && echo up", check=False)
    return out.strip() == "up"


def _sshd_pids(lab: Lab, netns: str) -> list[str]:
    out = lab.sh(
        f"for p in $(ip netns pids {netns}); do "
        '[ "$(cat /proc/$p/comm 2>/dev/null)" = sshd ] && echo "$p"; done; true'
    )
    return out.split()


def stop_sshd(lab: Lab, netns: str) -> None:
    """Its listener (by pid file) and its sessions (sshd processes in that namespace, by pid),
    and until they are gone: a listener still closing would reset a connection made to it, and
    take the port from an sshd started next (which, daemonized, would not say so)."""
    lab.sh(
        f"kill $(cat /run/wglab/sshd-{netns}.pid) 2>/dev/null; "
        f"for p in $(ip netns pids {netns}); do "
        '[ "$(cat /proc/$p/comm 2>/dev/null)" = sshd ] && kill "$p"; done; true'
    )
    eventually(
        lambda: _sshd_pids(lab, netns),
        accept=lambda pids: not pids,
        timeout=SSHD_STOP_SECONDS,
        interval=0.2,
        what=f"{netns}'s sshd processes gone",
    )


def start_sshd(lab: Lab, netns: str, hostname: str | None = None) -> None:
    """Start the gateway's sshd as the lab does (unless it runs), and until it listens; with
    `hostname`, in a UTS namespace of its own where the host is called that (every SSH session
    inherits it), and then it always starts (stop the running one first)."""
    if hostname is None and sshd_alive(lab, netns):
        return
    command = restart_gateway_sshd_command(lab.dir, netns)
    prefix = f"ip netns exec {netns} "
    assert command.startswith(prefix + "sh -c "), command
    if hostname is not None:
        inner = f"hostname {shlex.quote(hostname)} && {command[len(prefix) :]}"
        command = prefix + "unshare --uts sh -c " + shlex.quote(inner)
    lab.sh(command)
    eventually(
        lambda: sshd_alive(lab, netns),
        timeout=SSHD_START_SECONDS,
        interval=0.2,
        what=f"{netns}'s sshd listening (its pid file names a live process)",
    )


# --- the kernel, read directly -------------------------------------------------------------------


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
