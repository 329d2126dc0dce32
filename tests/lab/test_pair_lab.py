"""The director pair (`wgconsole lab up --lbs 2`) on the real kernel.

Read straight from the kernel and from keepalived (ipvsadm, /proc, `ip addr`, keepalived's
SIGUSR1 data file), never through wgconsole's parsers: these tests show what the pair lab is,
so that the console's tests can rely on it. The failover test runs last in this file and puts
the pair back as it booted (keepalived restarted on the master, which then preempts).
"""

from __future__ import annotations

import re
import shlex
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.conftest import PairLab
from wgconsole.lab.topology import LB_LAN, LB_WAN, SYNC_ID, TUNNEL_GATEWAY
from wgconsole.poll.transport.ssh import SshTransport

pytestmark = pytest.mark.lab

SETTLE_SECONDS = 180.0
# The VRRP router addresses, as `ip -o addr` shows them: "IFNAME ADDRESS/LEN".
ROUTERS = {f"lan {LB_LAN}/24", f"wan {LB_WAN}/24"}


@pytest.fixture
def settled(pair_lab: PairLab) -> PairLab:
    pair_lab.wait_until("the pair is as it booted", pair_lab.settled, SETTLE_SECONDS)
    pair_lab.restore_clients()
    return pair_lab


@pytest.fixture
def lb_ssh(pair_lab: PairLab) -> Iterator[dict[str, SshTransport]]:
    """SSH to each director as the inventory says (the way wgconsole reaches them)."""
    transports = {lb.name: SshTransport(lb) for lb in pair_lab.inventory.load_balancers}
    yield transports
    for t in transports.values():
        t.close()


def _keepalived_report(ssh: SshTransport, pid_file: str) -> tuple[str, int]:
    """(state, priority) of the VRRP instance, from keepalived's own SIGUSR1 dump in the LB's
    /tmp (the director's private one, which its sshd shares)."""
    command = (
        "rm -f /tmp/keepalived.data; kill -USR1 $(cat " + shlex.quote(pid_file) + "); "
        "for i in $(seq 1 100); do "
        "grep -q '^   Priority = ' /tmp/keepalived.data 2>/dev/null && break; sleep 0.2; done; "
        "cat /tmp/keepalived.data"
    )
    result = ssh.run(command, timeout=120)
    assert result.status == 0, result.stderr
    state = re.search(r"^   State = (MASTER|BACKUP|FAULT)$", result.stdout, re.M)
    priority = re.search(r"^   Priority = (\d+)$", result.stdout, re.M)
    assert state, f"no VRRP instance in keepalived's data:\n{result.stdout}"
    assert priority, f"no VRRP instance in keepalived's data:\n{result.stdout}"
    return state.group(1), int(priority.group(1))


def _addresses(lab: PairLab, netns: str) -> set[str]:
    out = lab.ns(netns, ["ip", "-o", "-4", "addr", "show"])
    return {f"{f[1]} {f[3]}" for f in (line.split() for line in out.splitlines())}


def _service_in_kernel_order(lab: PairLab, netns: str) -> list[list[str]]:
    """/proc/net/ip_vs without its counters: the service line, then each dest in kernel
    order as (address, forwarding, weight)."""
    lines = lab.ns(netns, ["cat", "/proc/net/ip_vs"]).splitlines()[3:]
    return [line.split()[:3] for line in lines if line.strip()]


def _hex_ip(h: str) -> str:
    return socket.inet_ntoa(bytes.fromhex(h))


def _conns(lab: PairLab, netns: str) -> dict[str, str]:
    """client address:port -> dest address:port, from /proc/net/ip_vs_conn."""
    conns = {}
    for line in lab.ns(netns, ["cat", "/proc/net/ip_vs_conn"]).splitlines()[1:]:
        f = line.split()
        if len(f) >= 9 and f[0] == "UDP":
            conns[f"{_hex_ip(f[1])}:{int(f[2], 16)}"] = f"{_hex_ip(f[5])}:{int(f[6], 16)}"
    return conns


def _in_packets(lab: PairLab, netns: str) -> int:
    vip = f"{lab.meta['vip']}:{lab.meta['port']}"
    out = lab.ns(netns, ["ipvsadm", "-Ln", "--stats", "--exact", "-u", vip])
    line = next(x for x in out.splitlines() if x.startswith("UDP"))
    return int(line.split()[3])


def _tunnel_ping(lab: PairLab, client_netns: str) -> bool:
    out = lab.sh(
        f"ip netns exec {shlex.quote(client_netns)} ping -c 3 -i 0.5 -W 5 {TUNNEL_GATEWAY} "
        ">/dev/null && echo ok || echo failed",
        timeout=120,
    )
    return out.strip() == "ok"


def test_the_pair_comes_up_with_the_vip_on_the_intended_master_alone(
    settled: PairLab, lb_ssh: dict[str, SshTransport]
) -> None:
    lab = settled
    master, backup = lab.directors
    assert lab.pair["master"] == master["name"] == "wg-lb-1"
    assert (master["initial_state"], backup["initial_state"]) == ("MASTER", "BACKUP")
    assert [lb.name for lb in lab.inventory.load_balancers] == ["wg-lb-1", "wg-lb-2"]
    assert lab.vip_holders() == [master["netns"]]
    # The routers the gateways and clients use are VRRP addresses: on the master only, next
    # to each director's own real addresses.
    master_addrs = _addresses(lab, master["netns"])
    backup_addrs = _addresses(lab, backup["netns"])
    assert master_addrs >= ROUTERS
    assert not ROUTERS & backup_addrs
    for d, addrs in ((master, master_addrs), (backup, backup_addrs)):
        assert {f"lan {d['lan']}/24", f"wan {d['wan']}/24"} <= addrs
    # keepalived's own report, read over SSH to each LB like an operator would.
    for d in lab.directors:
        state, priority = _keepalived_report(lb_ssh[d["name"]], d["pid"])
        assert (state, priority) == (d["initial_state"], d["priority"])
        # The config in the lab directory is the one running, and keepalived accepts it.
        conf = Path(d["keepalived_conf"]).read_text()
        assert f"priority {d['priority']}" in conf
        assert f"lvs_sync_daemon lan VI_WG id {SYNC_ID}" in conf
        lab.ns(d["netns"], ["keepalived", "--config-test", "-f", d["keepalived_conf"]])
    # Each director's /tmp is its own: the dumps did not land in the guest's.
    assert lab.sh("ls /tmp/keepalived.* 2>/dev/null || true").strip() == ""


def test_both_directors_run_the_sync_daemon_and_hold_the_same_table(settled: PairLab) -> None:
    lab = settled
    master, backup = (d["netns"] for d in lab.directors)
    common = f"(mcast=lan, syncid={SYNC_ID},"
    assert lab.sync_daemon(master).startswith(f"master sync daemon {common}")
    assert lab.sync_daemon(backup).startswith(f"backup sync daemon {common}")
    # The same dests in the same kernel order (newest first: the last gateway added first).
    order = _service_in_kernel_order(lab, master)
    assert order == _service_in_kernel_order(lab, backup)
    gateways = [g["lan"] for g in lab.meta["topology"]["gateways"]]
    assert [_hex_ip(r[1].split(":")[0]) for r in order[1:]] == gateways[::-1]
    sysctls = ["expire_nodest_conn", "sync_threshold", "sync_version", "sync_refresh_period"]
    read = "cd /proc/sys/net/ipv4/vs && cat " + " ".join(sysctls)
    assert lab.ns(master, ["sh", "-c", read]) == lab.ns(backup, ["sh", "-c", read])


def test_a_clients_new_entry_is_synced_onto_the_backup(settled: PairLab) -> None:
    lab = settled
    master, backup = (d["netns"] for d in lab.directors)
    client = lab.meta["topology"]["clients"][1]
    # A new source port makes a new entry on the master, which the backup has never seen.
    port = 40000 + int(lab.guest_clock()) % 20000
    source = f"{client['wan']}:{port}"
    assert source not in _conns(lab, backup)
    lab.ns(client["netns"], ["wg", "set", "wg0", "listen-port", str(port)])
    assert _tunnel_ping(lab, client["netns"])
    lab.wait_until(
        f"the master's entry for {source} is synced onto the backup",
        lambda: source in _conns(lab, backup),
    )
    assert _conns(lab, backup)[source] == _conns(lab, master)[source]


def _restore_master(lab: PairLab, lb_ssh: dict[str, SshTransport]) -> None:
    """Put the pair back as it booted: keepalived again on the master, in its own mount
    namespace (started over SSH, as an operator would); it preempts with its priority."""
    master = lab.directors[0]
    restart = lb_ssh[master["name"]].run(master["keepalived_start"], timeout=120)
    assert restart.status == 0, restart.stderr
    lab.wait_until("the master takes the VIP back", lab.settled, SETTLE_SECONDS)


def test_a_clients_tunnel_survives_killing_the_masters_keepalived(
    settled: PairLab, lb_ssh: dict[str, SshTransport]
) -> None:
    lab = settled
    master, backup = lab.directors
    clients = [c["netns"] for c in lab.meta["topology"]["clients"]]
    assert all(_tunnel_ping(lab, c) for c in clients)
    before = _in_packets(lab, backup["netns"])
    try:
        # SIGTERM: keepalived gives the addresses up and tells the backup (priority 0).
        lab.sh(f"kill $(cat {shlex.quote(master['pid'])})")
        lab.wait_until("the backup takes the VIP", lambda: lab.vip_holders() == [backup["netns"]])
        lab.wait_until(
            "the router addresses follow the VIP",
            lambda: (
                _addresses(lab, backup["netns"]) >= ROUTERS
                and not ROUTERS & _addresses(lab, master["netns"])
            ),
        )
        lab.wait_until(
            "the new master's sync daemon sends, the old one's is stopped",
            lambda: (
                lab.sync_daemon(backup["netns"]).startswith("master sync daemon")
                and lab.sync_daemon(master["netns"]) == ""
            ),
        )
        lab.wait_until(
            "every client's tunnel answers through the new master",
            lambda: all(_tunnel_ping(lab, c) for c in clients),
        )
        # The traffic really crosses the former backup now.
        assert _in_packets(lab, backup["netns"]) > before
    finally:
        _restore_master(lab, lb_ssh)
    assert all(_tunnel_ping(lab, c) for c in clients)


def test_a_crashed_masters_addresses_stay_while_the_backup_takes_over(
    settled: PairLab, lb_ssh: dict[str, SshTransport]
) -> None:
    lab = settled
    master, backup = lab.directors
    clients = [c["netns"] for c in lab.meta["topology"]["clients"]]
    before = _in_packets(lab, backup["netns"])
    try:
        # SIGKILL to keepalived and its VRRP child: nothing gives the addresses up, so both
        # directors hold the VIP and the routers (the "two VIP holders" case); the backup's
        # gratuitous ARPs take the traffic, and the kernel's master sync daemon runs on.
        lab.sh(f"kill -KILL $(cat {shlex.quote(master['pid'])} {shlex.quote(master['vrrp_pid'])})")
        lab.wait_until(
            "the backup takes the VIP too",
            lambda: lab.vip_holders() == [master["netns"], backup["netns"]],
        )
        assert _addresses(lab, master["netns"]) >= ROUTERS
        lab.wait_until(
            "the routers on the backup", lambda: _addresses(lab, backup["netns"]) >= ROUTERS
        )
        lab.wait_until(
            "both directors run a master sync daemon",
            lambda: all(
                lab.sync_daemon(d["netns"]).startswith("master sync daemon") for d in lab.directors
            ),
        )
        lab.wait_until(
            "every client's tunnel answers through the backup",
            lambda: (
                all(_tunnel_ping(lab, c) for c in clients)
                and _in_packets(lab, backup["netns"]) > before
            ),
        )
    finally:
        # keepalived clears its addresses when it starts, then preempts.
        _restore_master(lab, lb_ssh)
    assert all(_tunnel_ping(lab, c) for c in clients)
