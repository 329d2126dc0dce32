"""`wgconsole guard` inside a lab guest: bench-ops' unplanned cases and the guard's lab test.

The guard probes the gateways' WireGuard ports, which only a machine inside the lab's network
reaches (this machine has only the lab's SSH forwards). So it runs in the guest, in a namespace
of its own on the clients' segment (a bastion there: the LB routes it to the gateways'
management and LAN addresses), with the lab's inventory rewritten to the hosts' management
addresses. Its output goes to a file in the lab directory (the guest sees that directory),
every line stamped with the guest's clock so that its moments line up with the clients' pings.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wgconsole.lab.topology import LB_LAN, LB_WAN

BASTION_NETNS = "bst"
BASTION_ADDRESS = "10.77.1.50/24"
# Every line of the guard's output with the guest's time (bash's, no process per line).
_STAMP = 'while IFS= read -r line; do printf "%s %s\\n" "$EPOCHREALTIME" "$line"; done'

Sh = Callable[..., str]


def add_bastion(sh: Sh) -> None:
    """The bastion namespace, afresh."""
    ns = BASTION_NETNS
    sh(
        f"ip netns del {ns} 2>/dev/null; ip link del {ns}-wan 2>/dev/null; "
        f"ip netns add {ns} && ip link add {ns}-wan type veth peer name wan netns {ns} && "
        f"ip link set {ns}-wan master br-wan up && ip -n {ns} addr add {BASTION_ADDRESS} dev wan "
        f"&& ip -n {ns} link set lo up && ip -n {ns} link set wan up && "
        f"ip -n {ns} route add default via {LB_WAN}"
    )


def guest_inventory(lab: Path, topology: dict[str, Any]) -> Path:
    """The lab's inventory as a machine inside the lab reads it: each host at its management
    address, host keys recorded afresh in a file of its own."""
    text = (lab / "inventory.yaml").read_text()
    for host in [topology["lb"], *topology.get("backup_lbs", []), *topology["gateways"]]:
        text = text.replace(
            f"host: 127.0.0.1, port: {host['ssh_port']}", f"host: {host['mgmt']}, port: 22"
        )
    known = lab / "known_hosts-guest"
    known.unlink(missing_ok=True)
    text = text.replace(str(lab / "known_hosts"), str(known))
    path = lab / "inventory-guest.yaml"
    path.write_text(text)
    return path


class GuestGuard:
    """One `wgconsole guard` in the bastion namespace, stopped with SIGTERM as its service
    manager stops it (a background job's SIGINT is ignored: the shell starts it so)."""

    def __init__(
        self,
        sh: Sh,
        lab: Path,
        inventory: Path,
        key: Path,
        cwd: Path,
        *,
        netns: str = BASTION_NETNS,
        startup: float = 240.0,
    ) -> None:
        self.sh = sh
        self.log = lab / "guest-guard.log"
        self.pid = lab / "guest-guard.pid"
        self.audit = lab / "guest-guard-audit.jsonl"
        for f in (self.log, self.pid, self.audit):
            f.unlink(missing_ok=True)
        argv = [
            sys.executable,
            "-u",
            "-m",
            "wgconsole",
            "-i",
            str(inventory),
            "--accept-new-host-keys",
            "guard",
            "--key",
            str(key),
            "--audit-log",
            str(self.audit),
        ]
        inner = f"cd {shlex.quote(str(cwd))} && exec ip netns exec {netns} " + shlex.join(argv)
        # Every descriptor away from the SSH channel's, or the command would wait for the
        # guard to end; the pid is the guard's (the stamping loop ends with its output).
        sh(
            f"setsid bash -c {shlex.quote(f'({inner}) 2>&1 & echo $! >{self.pid}; wait')} "
            f"</dev/null 2>&1 | bash -c {shlex.quote(_STAMP)} >{self.log} 2>&1 &"
        )
        self.wait_for("guarding ", timeout=startup, what="the guard starts its rounds")

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines())

    def lines(self) -> list[tuple[float, str]]:
        """(guest time, line) of everything the guard printed so far."""
        out = []
        text = self.log.read_text() if self.log.exists() else ""
        for row in text.splitlines():
            stamp, _, line = row.partition(" ")
            try:
                out.append((float(stamp), line))
            except ValueError:
                continue
        return out

    def wait_for(self, needle: str, *, timeout: float, what: str) -> tuple[float, str]:
        """The first line holding `needle`; a guard that exited or failed is an error."""
        deadline = time.monotonic() + timeout
        while True:
            for at, line in self.lines():
                if needle in line:
                    return at, line
                if "Traceback" in line or line.startswith("wgconsole"):
                    raise RuntimeError(f"the guard failed before {what}: {line}")
            if time.monotonic() > deadline:
                tail = "\n".join(line for _, line in self.lines()[-20:])
                raise RuntimeError(f"{what}: not within {timeout:.0f} s\n{tail}")
            time.sleep(0.5)

    def stop(self) -> None:
        self.sh(
            f"kill -TERM $(cat {self.pid}) 2>/dev/null; for i in $(seq 300); do "
            f"kill -0 $(cat {self.pid}) 2>/dev/null || exit 0; sleep 0.2; done; "
            f"kill -KILL $(cat {self.pid}) 2>/dev/null; true",
            timeout=120,
        )


def restore_gateway_links(netns: str) -> str:
    """The guest command that brings a gateway that left the network back (links and route)."""
    return (
        f"ip -n {netns} link set lan up; ip -n {netns} link set mgmt up; "
        f"ip -n {netns} route replace default via {LB_LAN}"
    )
