"""The real-kernel lab, booted once per test session in its own directory and ports.

A lab test never skips: if the lab cannot boot, every lab test errors with the reason.
Set WGCONSOLE_TEST_LAB_KEEP=1 to leave the lab running after the session (for debugging);
an already running test lab in the same directory is reused.

`pair_lab` is the director pair (`lab up --lbs 2`), in a directory and ports of its own
(WGCONSOLE_TEST_PAIR_LAB_DIR, WGCONSOLE_TEST_PAIR_LAB_PORT), booted only when a test uses it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.lab.helpers import eventually
from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.inventory import Host, Inventory, SshSettings
from wgconsole.lab import manager
from wgconsole.lab.topology import TUNNEL_GATEWAY
from wgconsole.poll.transport.base import TransportError
from wgconsole.poll.transport.ssh import SshTransport

TEST_LAB_DIR = Path(os.environ.get("WGCONSOLE_TEST_LAB_DIR", "/var/lib/wgconsole-lab-test"))
TEST_BASE_PORT = int(os.environ.get("WGCONSOLE_TEST_LAB_PORT", "2320"))
# More clients for tests that need several per gateway (rebalance); the default stays 2.
TEST_CLIENTS = int(os.environ.get("WGCONSOLE_TEST_LAB_CLIENTS", "2"))
TEST_PAIR_LAB_DIR = Path(
    os.environ.get("WGCONSOLE_TEST_PAIR_LAB_DIR", "/var/lib/wgconsole-lab-pair-test")
)
TEST_PAIR_BASE_PORT = int(os.environ.get("WGCONSOLE_TEST_PAIR_LAB_PORT", "2420"))


@dataclass
class Lab:
    dir: Path
    inventory_path: Path
    inventory: Inventory
    meta: dict[str, Any]  # topology.json
    control: SshTransport

    def sh(self, command: str, timeout: float = 60.0, *, check: bool = True) -> str:
        """Run a shell command in the guest's root namespace (where every lab netns is visible)."""
        result = self.control.run(command, timeout=timeout)
        if check and result.status != 0:
            raise AssertionError(
                f"lab command failed ({result.status}): {command}\n{result.stdout}{result.stderr}"
            )
        return result.stdout

    def ns(self, netns: str, argv: list[str], timeout: float = 60.0, *, check: bool = True) -> str:
        return self.sh(
            "ip netns exec " + shlex.quote(netns) + " " + " ".join(shlex.quote(a) for a in argv),
            timeout=timeout,
            check=check,
        )

    def guest_clock(self) -> float:
        return float(self.sh("date +%s.%N"))


@dataclass
class PairLab(Lab):
    """The director pair: `director_pair` in topology.json says who is who (master first)."""

    @property
    def pair(self) -> dict[str, Any]:
        pair: dict[str, Any] = self.meta["director_pair"]
        return pair

    @property
    def directors(self) -> list[dict[str, Any]]:
        directors: list[dict[str, Any]] = self.pair["directors"]
        return directors

    def director(self, name: str) -> dict[str, Any]:
        return next(d for d in self.directors if d["name"] == name)

    def on_director(self, netns: str, command: str, timeout: float = 60.0) -> str:
        """Run a shell command where the director's keepalived and sshd live (its network
        namespace and its mount namespace with the private /tmp), as an SSH session would."""
        target = f"$(cat /run/wglab/sshd-{netns}.pid)"
        return self.sh(f"nsenter -t {target} -m -n sh -c {shlex.quote(command)}", timeout=timeout)

    def vip_holders(self) -> list[str]:
        """The directors (netns) whose lo holds the VIP, from their addresses."""
        vip = str(self.meta["vip"])
        out = self.sh(
            " ; ".join(
                f"echo {d['netns']} $(ip -n {d['netns']} -o -4 addr show dev lo)"
                for d in self.directors
            )
        )
        return [line.split()[0] for line in out.splitlines() if f" {vip}/32 " in f"{line} "]

    def sync_daemon(self, netns: str) -> str:
        return self.ns(netns, ["ipvsadm", "-Ln", "--daemon"]).strip()

    def wait_until(self, what: str, check: Callable[[], bool], seconds: float = 120.0) -> None:
        eventually(check, timeout=seconds, what=what)

    def clients_off_vip(self) -> list[str]:
        """The clients (netns) whose peer endpoint is no longer the VIP: a client that got an
        authenticated packet from a gateway's own address roamed there
        (docs/domain/connections-and-timeouts.md), as one
        does when a director that takes the VIP (back) holds no entry for the gateway it is
        on and forwards the gateway's packets un-NATed."""
        vip = f"{self.meta['vip']}:{self.meta['port']}"
        off = []
        for c in self.meta["topology"]["clients"]:
            out = self.ns(c["netns"], ["wg", "show", "wg0", "endpoints"])
            if any(line.split()[1:] != [vip] for line in out.splitlines() if line.strip()):
                off.append(c["netns"])
        return off

    def restore_clients(self) -> None:
        """Every client's tunnel back through the VIP, working, as the lab booted it: a test
        that moves the VIP may leave one roamed to a gateway's own address (the next test would
        see no entry of it on any director), or on a gateway without its session (its packets
        dropped until it shakes hands again at its own timers)."""
        vip = f"{self.meta['vip']}:{self.meta['port']}"
        for netns in self.clients_off_vip():
            key = self.ns(netns, ["wg", "show", "wg0", "public-key"]).strip()
            for gw in self.meta["topology"]["gateways"]:
                self._forget_on(gw["netns"], key)
            self.sh(
                f"ip netns exec {netns} sh -c "
                + shlex.quote(f'wg set wg0 peer "$(wg show wg0 peers)" endpoint {vip}')
            )
        for c in self.meta["topology"]["clients"]:

            def works(n: str = c["netns"]) -> bool:
                return "ok" in self.sh(
                    f"ip netns exec {n} ping -c 1 -W 2 {TUNNEL_GATEWAY} >/dev/null "
                    "&& echo ok || echo failed"
                )

            self.wait_until(f"{c['netns']}'s tunnel works through the VIP", works, seconds=180.0)

    def _forget_on(self, gateway_netns: str, key: str) -> None:
        """The gateway's peer `key` re-created without its endpoint and session, when it holds
        one: a client that roamed to a gateway's own address did so because that gateway kept
        a session of it whose packets reach it un-NATed, and would again at its next
        keepalive once the client is pointed back at the VIP. (Read with the per-field
        `wg show`s: `dump` would carry the gateway's private key.)"""

        def field(what: str) -> str:
            for line in self.ns(gateway_netns, ["wg", "show", "wg0", what]).splitlines():
                parts = line.split("\t")
                if parts[0] == key:
                    return parts[1].strip()
            return ""

        if field("endpoints") in ("", "(none)"):
            return
        allowed = ",".join(field("allowed-ips").split())
        keepalive = field("persistent-keepalive")
        keepalive = "0" if keepalive in ("", "off") else keepalive
        forget = (
            f"wg set wg0 peer {key} remove && wg set wg0 peer {key} allowed-ips {allowed} "
            f"persistent-keepalive {keepalive}"
        )
        self.ns(gateway_netns, ["sh", "-c", forget])

    def settled(self) -> bool:
        """As the lab boots: the intended master alone holds the VIP and runs the master sync
        daemon, the backup runs the backup one."""
        master, backup = (d["netns"] for d in self.directors)
        return (
            self.vip_holders() == [master]
            and self.sync_daemon(master).startswith("master sync daemon")
            and self.sync_daemon(backup).startswith("backup sync daemon")
        )


def _control(lab_dir: Path, meta: dict[str, Any]) -> SshTransport:
    return SshTransport(
        Host(
            name="lab-control",
            host="127.0.0.1",
            ssh=SshSettings(
                port=meta["topology"]["control_port"],
                identity_file=str(lab_dir / "id_ed25519"),
                known_hosts=str(lab_dir / "known_hosts"),
            ),
        )
    )


def _running(lab_dir: Path) -> bool:
    return manager.qemu_pid(lab_dir) is not None and (lab_dir / "ready").exists()


@pytest.fixture(scope="session", autouse=True)
def bastion_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The lab tests' CLI runs keep their bastion state (audit log, last answers, a probe key)
    apart from this machine's own: a probe key of this machine's would make `wgconsole
    metrics` probe the lab's addresses from here, where they are not routed (they would
    leave this machine's network namespace)."""
    before = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("bastion-state"))
    yield
    if before is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = before


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    started = False
    if not _running(TEST_LAB_DIR):
        manager.lab_down(TEST_LAB_DIR)
        manager.lab_up(gateways=2, clients=TEST_CLIENTS, base_port=TEST_BASE_PORT, lab=TEST_LAB_DIR)
        started = True
    meta = json.loads((TEST_LAB_DIR / "topology.json").read_text())
    control = _control(TEST_LAB_DIR, meta)
    inv_path = TEST_LAB_DIR / "inventory.yaml"
    yield Lab(TEST_LAB_DIR, inv_path, load_inventory(inv_path), meta, control)
    control.close()
    if started and not os.environ.get("WGCONSOLE_TEST_LAB_KEEP"):
        manager.lab_down(TEST_LAB_DIR)


# The pair lab's early stop: set while a pair lab this session booted is up.
_pair_down: list[Callable[[], None]] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Stop the pair lab's guest after the last test that uses it, rather than at the end of
    the session: the tests after it (tests/conftest.py orders them) run without an idle
    guest beside them. Its fixture's own teardown then finds nothing left to stop."""
    yield
    if not _pair_down or "pair_lab" not in getattr(item, "fixturenames", ()):
        return
    items = item.session.items
    later = items[items.index(item) + 1 :] if item in items else []
    if not any("pair_lab" in getattr(i, "fixturenames", ()) for i in later):
        _pair_down.pop()()


def _boot_pair(lab_dir: Path) -> None:
    manager.lab_down(lab_dir)

    def up() -> bool:
        # A QEMU just killed may hold its forwarded ports for a moment after lab_down.
        try:
            manager.lab_up(gateways=2, clients=2, base_port=TEST_PAIR_BASE_PORT, lab=lab_dir, lbs=2)
        except manager.LabError as exc:
            if "ports in use" not in str(exc):
                raise
            return False
        return True

    eventually(up, timeout=60, what="the pair lab's ports free to boot it", interval=2)


@pytest.fixture(scope="session")
def pair_lab() -> Iterator[PairLab]:
    lab_dir = TEST_PAIR_LAB_DIR
    started = False
    reusable = _running(lab_dir) and "director_pair" in json.loads(
        (lab_dir / "topology.json").read_text()
    )
    if not reusable:
        _boot_pair(lab_dir)
        started = True
    meta = json.loads((lab_dir / "topology.json").read_text())
    inv_path = lab_dir / "inventory.yaml"
    pair = PairLab(lab_dir, inv_path, load_inventory(inv_path), meta, _control(lab_dir, meta))

    def down() -> None:
        pair.control.close()
        if started and not os.environ.get("WGCONSOLE_TEST_LAB_KEEP"):
            manager.lab_down(lab_dir)

    _pair_down[:] = [down]
    yield pair
    if _pair_down:
        _pair_down.pop()()


def _answers(lab: Lab) -> bool:
    """Whether the guest runs a command for us, on the kept connection or a new one."""
    for fresh in (False, True):
        if fresh:
            lab.control.close()
            lab.control = _control(lab.dir, lab.meta)
        try:
            if lab.control.run("true", timeout=60).status == 0:
                return True
        except TransportError:
            continue
    return False


@pytest.fixture(autouse=True)
def _pair_guest_answers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Before each pair test: the pair's emulated guest still answers. Once in a clean-clone
    run its guest stopped answering between two passing tests (QEMU alive, no command run,
    no new SSH session), and every later pair test failed on that, not on what it tests. The
    guest's logs are kept under the session's basetemp and the lab is booted again, as at the
    start of the session; what a test asserts is unchanged."""
    if "pair_lab" not in request.fixturenames:
        return
    lab: PairLab = request.getfixturevalue("pair_lab")
    if _answers(lab):
        return
    kept = tmp_path_factory.mktemp("pair-lab-unanswering")
    for log in [lab.dir / "console.log", lab.dir / "guest.log", *lab.dir.glob("keepalived/*.log")]:
        if log.is_file():
            shutil.copy(log, kept / log.name)
    print(f"the pair lab's guest did not answer; its logs are in {kept}; booting it again")
    lab.control.close()
    _boot_pair(lab.dir)
    lab.meta = json.loads((lab.dir / "topology.json").read_text())
    lab.inventory = load_inventory(lab.inventory_path)
    lab.control = _control(lab.dir, lab.meta)
