"""The gateway side on the real lab: sudo warning on stderr (an unresolvable host name) never
moves the gateway's private key into what a poll brings back, and a peer add and remove on a
gateway whose wg0.conf is a symlink into another directory (mode 0640, another group) change
the link's target, keep link, owner and mode, and keep the backups bounded.

The lab is shared: faults are on wg-gateway-02's sshd (restarted as it was in a `finally`) and
on wg-gateway-01's config file (put back as it was); the peer made here is removed again. The
private key is never put on a command line: the guest reads it from the lab's key file.
"""

from __future__ import annotations

import re
import shlex
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.conftest import Lab
from tests.lab.helpers import ensure_sudo_users, eventually, run_cli, start_sshd, stop_sshd
from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.inventory import Host
from wgconsole.core.keys import KeyPair
from wgconsole.ops.hostcmd import wgconf
from wgconsole.poll.collector import FleetCollector
from wgconsole.poll.transport.base import CommandResult, TransportError
from wgconsole.poll.transport.ssh import SshTransport

pytestmark = pytest.mark.lab

GW1, GW2 = "wg-gateway-01", "wg-gateway-02"


class _Recording:
    """A transport that keeps everything its host sent back, as received."""

    def __init__(self, inner: SshTransport, received: list[str]) -> None:
        self.inner = inner
        self.name = inner.name
        self.received = received

    def run(self, command: str, timeout: float, *, mutating: bool = False) -> CommandResult:
        result = self.inner.run(command, timeout, mutating=mutating)
        self.received += [result.stdout, result.stderr]
        return result

    def close(self) -> None:
        self.inner.close()


# Bound on an SSH session reaching the restarted sshd (its own bound on listening is the
# helper's); the poll itself keeps its 120 s per-host timeout.
PRECONDITION_SECONDS = 60.0


def _session_hostname(host: Host) -> str:
    """The host name an SSH session to `host` reports, or the transport's error (observed, for
    the message, while the sshd is not yet answering)."""
    transport = SshTransport(host)
    try:
        return transport.run("hostname", timeout=30.0).stdout.strip()
    except TransportError as exc:
        return f"({exc})"
    finally:
        transport.close()


def _sudo_inventory(lab: Lab, path: Path) -> Path:
    text = re.sub(
        r"(  - \{name: wg-gateway-02, host: 127\.0\.0\.1, port: \d+,)",
        r"\1 user: wgop, sudo: true,",
        lab.inventory_path.read_text(),
    )
    assert "user: wgop" in text, "the lab inventory's gateway line changed"
    path.write_text(text)
    return path


def test_a_sudo_warning_on_stderr_never_sends_the_private_key(lab: Lab, tmp_path: Path) -> None:
    """gateway-02 polled as `wgop` through `sudo -n`, with a host name sudo cannot resolve:
    sudo warns on stderr before `wg` prints its first line (the private key's)."""
    ensure_sudo_users(lab)
    key = (lab.dir / "wg" / "gateway.key").read_text().strip()
    assert len(key) == 44
    hostname = "wgc-nowhere-" + uuid.uuid4().hex[:6]
    inventory = load_inventory(_sudo_inventory(lab, tmp_path / "inventory-sudo.yaml"))
    received: list[str] = []

    def factory(host: Host) -> _Recording:
        return _Recording(SshTransport(host), received)

    gw2_host = next(h for h in inventory.hosts if h.name == GW2)
    stop_sshd(lab, "gw2")
    try:
        start_sshd(lab, "gw2", hostname)
        # The precondition, established before the poll: an SSH session to gateway-02, as
        # the poll makes them, answers from the sshd with the unresolvable host name.
        eventually(
            lambda: _session_hostname(gw2_host),
            accept=lambda name: name == hostname,
            timeout=PRECONDITION_SECONDS,
            what=f"an SSH session to {GW2} on the host called {hostname}",
        )
        collector = FleetCollector(inventory, transport_factory=factory, timeout=120.0)
        try:
            poll = collector.poll(("gateway",))
            fleet = collector.fleet(poll)
        finally:
            collector.close()
    finally:
        stop_sshd(lab, "gw2")
        start_sshd(lab, "gw2")
    everything = "".join(received)
    # Counted, never shown: a failed assertion's text is kept (tests/conftest.py).
    pieces = sum(part in everything for part in (key, key[:20], key[20:40]))
    assert pieces == 0, "the gateway's private key came back in a poll"
    (tmp_path / "gateway-polls.txt").write_text(everything)  # the secrets sweep reads it too
    gw2 = fleet.gateway(GW2)
    assert gw2 is not None, [(h.name, h.error) for h in fleet.hosts]
    assert gw2.reachable, [(h.name, h.error) for h in fleet.hosts]
    # The condition was there: sudo's warning came back, on its own section.
    assert re.search(rf"@@wgc:dump-err\n[^@]*unable to resolve host {hostname}", everything)
    assert gw2.public_key == lab.meta["gateway_public_key"]


# --- a symlinked wg0.conf ----------------------------------------------------------------------

GW1_DIR = "/run/wglab/gw1/wireguard"  # wg-gateway-01's /etc/wireguard (bind-mounted there)
MANAGED = "/run/wglab/gw1/managed"
OLD_BACKUPS = [f"wg0.conf{wgconf.BACKUP_SUFFIX}2000010{i}T000000Z-00000{i}" for i in range(1, 7)]


def _backups(lab: Lab, directory: str) -> list[str]:
    out = lab.sh(f"cd {directory} && ls -a", check=False)
    return sorted(n for n in out.split() if wgconf.BACKUP_SUFFIX in n)


def _state(lab: Lab, key: str) -> dict[str, str]:
    target = f"{MANAGED}/wg0.conf"
    out = lab.sh(
        f'echo "link=$(readlink {GW1_DIR}/wg0.conf)"; '
        f"echo \"mode=$(stat -c '%a %u:%g' {target})\"; "
        f'echo "count=$(grep -c -F -- {shlex.quote(key)} {target})"; '
        f'echo "temporaries=$(ls -a {GW1_DIR} {MANAGED} | grep -c -F -- {wgconf.TMP_SUFFIX})"',
        check=False,
    )
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.fixture
def symlinked_gw1(lab: Lab) -> Iterator[None]:
    """gateway-01's wg0.conf moved into another directory (0640, group wgop) and linked back,
    with six old backups; everything put back afterwards, backups made meanwhile removed."""
    ensure_sudo_users(lab)
    before = {d: _backups(lab, d) for d in (GW1_DIR, "/run/wglab/gw2/wireguard")}
    olds = " ".join(OLD_BACKUPS)
    lab.sh(
        f"set -e; mkdir -p {MANAGED}; mv {GW1_DIR}/wg0.conf {MANAGED}/wg0.conf; "
        f"chown 0:2001 {MANAGED}/wg0.conf; chmod 0640 {MANAGED}/wg0.conf; "
        f"ln -s {MANAGED}/wg0.conf {GW1_DIR}/wg0.conf; "
        f"cd {GW1_DIR}; for b in {olds}; do echo old > $b; chmod 600 $b; done"
    )
    try:
        yield
    finally:
        lab.sh(
            f"set -e; if [ -L {GW1_DIR}/wg0.conf ]; then rm {GW1_DIR}/wg0.conf; "
            f"mv {MANAGED}/wg0.conf {GW1_DIR}/wg0.conf; fi; "
            f"chown 0:0 {GW1_DIR}/wg0.conf; chmod 0600 {GW1_DIR}/wg0.conf; rm -rf {MANAGED}"
        )
        for directory, names in before.items():
            new = [n for n in _backups(lab, directory) if n not in names]
            if new:
                lab.sh(f"cd {directory} && rm -f -- " + " ".join(shlex.quote(n) for n in new))


def test_a_symlinked_wg0_conf_gets_the_peer_and_keeps_its_link_owner_and_mode(
    lab: Lab, tmp_path: Path, symlinked_gw1: None
) -> None:
    key = KeyPair.generate().public_key
    audit = ["--audit-log", str(tmp_path / "audit.jsonl")]
    add = run_cli(
        lab.inventory_path,
        "peer",
        "add",
        "lab-symlink",
        "--public-key",
        key,
        "--address",
        "10.255.0.202",
        "--yes",
        *audit,
    )
    print(add.stdout, add.stderr)
    try:
        assert add.returncode == 0, add.stdout + add.stderr
        after_add = _state(lab, key)
        assert after_add == {
            "link": f"{MANAGED}/wg0.conf",
            "mode": "640 0:2001",
            "count": "1",
            "temporaries": "0",
        }
        backups = _backups(lab, GW1_DIR)
        assert len(backups) == wgconf.BACKUPS_KEPT, backups
        assert OLD_BACKUPS[0] not in backups
        assert OLD_BACKUPS[1] not in backups
        modes = lab.sh(f"cd {GW1_DIR} && stat -c '%a' " + " ".join(backups)).split()
        assert set(modes) == {"600"}
    finally:
        remove = run_cli(lab.inventory_path, "peer", "remove", key, "--yes", *audit)
        print(remove.stdout, remove.stderr)
    assert remove.returncode == 0, remove.stdout + remove.stderr
    assert _state(lab, key) == {
        "link": f"{MANAGED}/wg0.conf",
        "mode": "640 0:2001",
        "count": "0",
        "temporaries": "0",
    }
    assert len(_backups(lab, GW1_DIR)) == wgconf.BACKUPS_KEPT
