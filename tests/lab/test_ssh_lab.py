"""SSH on the real lab: a ProxyJump chain of two hops (the guest's control sshd, then a
gateway's sshd on the management segment) to the other gateway, each hop's host key checked
against known_hosts; and a host sending more than the output cap allows.

The lab's sshds permit TCP forwarding (OpenSSH's default), which is what a jump host does.
Nothing in the lab is changed: the chain needs only a test-owned ssh_config and known_hosts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import Lab
from tests.lab.helpers import eventually
from wgconsole.core.inventory import Host, SshSettings
from wgconsole.lab.topology import MGMT_ROOT
from wgconsole.poll.collector import FleetCollector
from wgconsole.poll.transport.base import (
    MAX_OUTPUT,
    HostKeyChanged,
    HostKeyUnknown,
    OutputTooLarge,
)
from wgconsole.poll.transport.ssh import SshTransport

pytestmark = pytest.mark.lab

LB, GW1 = "wg-lb", "wg-gateway-01"
ALIAS = "gw2-through-two-hops"


def _topology(lab: Lab) -> dict[str, Any]:
    topo: dict[str, Any] = lab.meta["topology"]
    return topo


def _host_key(lab: Lab, netns: str) -> str:
    """`TYPE BASE64` of the lab's host key for `netns` (or "control")."""
    return " ".join((lab.dir / "hostkeys" / f"{netns}.pub").read_text().split()[:2])


def _chain(lab: Lab, tmp_path: Path, known: dict[str, str]) -> SshTransport:
    """A transport to gateway-02 through the control sshd, then gateway-01; `known`:
    known_hosts lines by name (as OpenSSH writes them: `[host]:port` unless port 22)."""
    topo = _topology(lab)
    gw1, gw2 = topo["gateways"][0], topo["gateways"][1]
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host {ALIAS}\n"
        f"  HostName {gw2['mgmt']}\n"
        f"  ProxyJump root@127.0.0.1:{topo['control_port']},root@{gw1['mgmt']}\n"
    )
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(f"{name} {key}\n" for name, key in known.items()))
    settings = SshSettings(identity_file=str(lab.dir / "id_ed25519"), known_hosts=str(known_hosts))
    return SshTransport(Host("chained", ALIAS, settings), ssh_config=str(config))


def _all_keys(lab: Lab) -> dict[str, str]:
    topo = _topology(lab)
    gw1, gw2 = topo["gateways"][0], topo["gateways"][1]
    return {
        f"[127.0.0.1]:{topo['control_port']}": _host_key(lab, "control"),
        gw1["mgmt"]: _host_key(lab, gw1["netns"]),
        gw2["mgmt"]: _host_key(lab, gw2["netns"]),
    }


def test_a_two_hop_proxy_jump_reaches_the_host_through_both(lab: Lab, tmp_path: Path) -> None:
    topo = _topology(lab)
    gw1, gw2 = topo["gateways"][0], topo["gateways"][1]
    transport = _chain(lab, tmp_path, _all_keys(lab))
    try:
        out = transport.run("echo $SSH_CONNECTION; ip -o -4 addr show", timeout=120).stdout
        client, _, server, port = out.splitlines()[0].split()
        # gateway-02 was reached from gateway-01's address: the last hop...
        assert (client, server, port) == (gw1["mgmt"], gw2["mgmt"], "22")
        assert f"inet {gw2['mgmt']}/" in out
        # ...and gateway-01 from the guest's own (the control sshd): the first hop. The
        # bastion reaches the lab only through 127.0.0.1 forwards, never from MGMT_ROOT.
        sessions = lab.ns(gw1["netns"], ["ss", "-Htn", "state", "established"]).splitlines()
        into_sshd = [line.split() for line in sessions if f"{gw1['mgmt']}:22 " in f"{line} "]
        assert any(f[-1].startswith(f"{MGMT_ROOT}:") for f in into_sshd), sessions
        assert transport.run("echo again", timeout=60).stdout == "again\n"
        assert transport.connects == 1  # the chain is kept, like any connection
    finally:
        transport.close()


def test_a_hops_host_key_is_checked_like_the_hosts(lab: Lab, tmp_path: Path) -> None:
    gw1 = _topology(lab)["gateways"][0]
    keys = _all_keys(lab)
    (tmp_path / "unknown").mkdir()
    (tmp_path / "changed").mkdir()
    unknown = _chain(lab, tmp_path / "unknown", {k: v for k, v in keys.items() if k != gw1["mgmt"]})
    changed = _chain(lab, tmp_path / "changed", {**keys, gw1["mgmt"]: _host_key(lab, "control")})
    try:
        with pytest.raises(HostKeyUnknown) as err:
            unknown.run("true", timeout=120)
        assert str(err.value).startswith(
            f"unknown host key for jump host 2 of 2 [{gw1['mgmt']}]:22"
        )
        with pytest.raises(HostKeyChanged) as changed_err:
            changed.run("true", timeout=120)
        assert str(changed_err.value).startswith(
            f"HOST KEY CHANGED for jump host 2 of 2 {gw1['mgmt']}: refusing to connect"
        )
        assert (unknown.connects, changed.connects) == (0, 0)
    finally:
        unknown.close()
        changed.close()


def _yes_running(lab: Lab) -> bool:
    return lab.sh("pgrep -x yes || true").strip() != ""


def test_output_over_the_cap_is_the_hosts_error_and_the_next_command_works(lab: Lab) -> None:
    gw = next(g for g in lab.inventory.gateways if g.name == GW1)
    transport = SshTransport(gw)
    try:
        with pytest.raises(OutputTooLarge, match=r"^output over 16 MiB: the command was stopped"):
            transport.run(f"head -c {MAX_OUTPUT + 1} /dev/zero", timeout=600)
        assert transport.run("echo ok", timeout=60).stdout == "ok\n"
        # A smaller cap of its own, on stderr, from a command that never ends by itself: it is
        # stopped at the cap (not at the timeout), and the host's `yes` ends with the channel.
        transport.max_output = 64 * 1024
        with pytest.raises(OutputTooLarge, match=r"^output over 64 KiB: "):
            transport.run("yes >&2", timeout=600)
        eventually(
            lambda: not _yes_running(lab),
            timeout=60,
            interval=0.5,
            what="the host's `yes` ended with its channel",
        )
        assert transport.run("echo ok", timeout=60).stdout == "ok\n"
        assert transport.connects == 1  # the connection was kept throughout
    finally:
        transport.close()


def test_a_poll_over_the_cap_is_that_hosts_error_and_the_next_poll_works(lab: Lab) -> None:
    collector = FleetCollector(lab.inventory, timeout=120.0)
    try:
        lb = collector.transports[LB]
        assert isinstance(lb, SshTransport)
        lb.max_output = 256  # an LB poll is larger: as if it had sent too much
        first = {h.name: h for h in collector.poll().hosts}
        error = first[LB].error
        assert error is not None, error
        assert error.startswith("output over 256 bytes: "), error
        assert all(h.error is None for n, h in first.items() if n != LB)
        lb.max_output = MAX_OUTPUT
        second = {h.name: h for h in collector.poll().hosts}
        assert all(h.error is None for h in second.values()), second
        assert lb.connects == 1
    finally:
        collector.close()
