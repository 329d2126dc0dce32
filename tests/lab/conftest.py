"""The real-kernel lab, booted once per test session in its own directory and ports.

A lab test never skips: if the lab cannot boot, every lab test errors with the reason.
Set WGCONSOLE_TEST_LAB_KEEP=1 to leave the lab running after the session (for debugging);
an already running test lab in the same directory is reused.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.inventory import Host, Inventory, SshSettings
from wgconsole.lab import manager
from wgconsole.poll.transport.ssh import SshTransport

TEST_LAB_DIR = Path(os.environ.get("WGCONSOLE_TEST_LAB_DIR", "/var/lib/wgconsole-lab-test"))
TEST_BASE_PORT = int(os.environ.get("WGCONSOLE_TEST_LAB_PORT", "2320"))


@dataclass
class Lab:
    dir: Path
    inventory_path: Path
    inventory: Inventory
    meta: dict[str, object]
    control: SshTransport

    def sh(self, command: str, timeout: float = 60.0, check: bool = True) -> str:
        """Run a shell command in the guest's root namespace (where every lab netns is visible)."""
        result = self.control.run(command, timeout=timeout)
        if check and result.status != 0:
            raise AssertionError(
                f"lab command failed ({result.status}): {command}\n{result.stdout}{result.stderr}"
            )
        return result.stdout

    def ns(self, netns: str, argv: list[str], timeout: float = 60.0, check: bool = True) -> str:
        return self.sh(
            "ip netns exec " + shlex.quote(netns) + " " + " ".join(shlex.quote(a) for a in argv),
            timeout=timeout,
            check=check,
        )

    def guest_clock(self) -> float:
        return float(self.sh("date +%s.%N"))


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    started = False
    if manager.qemu_pid(TEST_LAB_DIR) is None or not (TEST_LAB_DIR / "ready").exists():
        manager.lab_down(TEST_LAB_DIR)
        manager.lab_up(gateways=2, clients=2, base_port=TEST_BASE_PORT, lab=TEST_LAB_DIR)
        started = True
    meta = json.loads((TEST_LAB_DIR / "topology.json").read_text())
    topo = meta["topology"]
    control = SshTransport(
        Host(
            name="lab-control",
            host="127.0.0.1",
            ssh=SshSettings(
                port=topo["control_port"],
                identity_file=str(TEST_LAB_DIR / "id_ed25519"),
                known_hosts=str(TEST_LAB_DIR / "known_hosts"),
            ),
        )
    )
    inv_path = TEST_LAB_DIR / "inventory.yaml"
    yield Lab(TEST_LAB_DIR, inv_path, load_inventory(inv_path), meta, control)
    control.close()
    if started and not os.environ.get("WGCONSOLE_TEST_LAB_KEEP"):
        manager.lab_down(TEST_LAB_DIR)
