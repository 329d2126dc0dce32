"""What wgconsole knows of the director pair, checked against the real kernel and keepalived.

Each test reads the pair through wgconsole's own poll (FleetCollector over SSH, as `status`
does) and compares it with what the lab says independently: `ip addr`, /proc/net/ip_vs (kernel
order), /proc/net/ip_vs_conn, `ipvsadm -Ln --daemon` and keepalived's own SIGUSR1 dump. Every
test puts the pair back as it booted (tables in the same order, VIP on the master).
"""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.conftest import PairLab
from tests.lab.helpers import run_cli
from wgconsole.core.fleet import Fleet
from wgconsole.lab.guest_script import SWITCHOVER_FILE
from wgconsole.lab.topology import SYNC_ID, TUNNEL_GATEWAY
from wgconsole.poll.collector import FleetCollector
from wgconsole.poll.transport.ssh import SshTransport

pytestmark = pytest.mark.lab

SETTLE_SECONDS = 180.0


# ip_vs_sync.c IPVS_SYNC_FLUSH_TIME: how long a master may hold a partly filled sync buffer.
SYNC_FLUSH_SECONDS = 2.0


@pytest.fixture
def settled(pair_lab: PairLab) -> PairLab:
    pair_lab.wait_until("the pair is as it booted", pair_lab.settled, SETTLE_SECONDS)
    pair_lab.restore_clients()
    return pair_lab


@pytest.fixture
def lb_ssh(pair_lab: PairLab) -> Iterator[dict[str, SshTransport]]:
    transports = {lb.name: SshTransport(lb) for lb in pair_lab.inventory.load_balancers}
    yield transports
    for t in transports.values():
        t.close()


def _poll(lab: PairLab) -> Fleet:
    collector = FleetCollector(lab.inventory, timeout=120)
    try:
        return collector.read_fleet()
    finally:
        collector.close()


def _keepalived_report(ssh: SshTransport, pid_file: str) -> tuple[str, int]:
    """(state, effective priority) from keepalived's SIGUSR1 text dump: not the JSON dump that
    wgconsole reads, and not its parser."""
    command = (
        "rm -f /tmp/keepalived.data; kill -USR1 $(cat " + shlex.quote(pid_file) + "); "
        "for i in $(seq 1 100); do "
        "grep -q '^   Effective priority = ' /tmp/keepalived.data 2>/dev/null && break; "
        "sleep 0.2; done; cat /tmp/keepalived.data"
    )
    result = ssh.run(command, timeout=120)
    assert result.status == 0, result.stderr
    state = re.search(r"^   State = (\w+)$", result.stdout, re.M)
    priority = re.search(r"^   Effective priority = (\d+)$", result.stdout, re.M)
    assert state, result.stdout
    assert priority, result.stdout
    return state.group(1), int(priority.group(1))


def _kernel_order(lab: PairLab, netns: str) -> list[tuple[str, int]]:
    """The service's dests from /proc/net/ip_vs, in kernel order: (address:port, weight)."""
    out = lab.ns(netns, ["cat", "/proc/net/ip_vs"])
    dests = []
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 3 and f[0] == "->" and ":" in f[1] and f[1] != "RemoteAddress:Port":
            address, port = f[1].split(":")
            dests.append((f"{socket.inet_ntoa(bytes.fromhex(address))}:{int(port, 16)}", int(f[3])))
    return dests


def _table(dests: list[tuple[str, int]]) -> list[str]:
    """The 256 buckets as ip_vs_sh_reassign fills them: each dest, in kernel order, for
    `weight` consecutive buckets (at least one), round and round."""
    table: list[str] = []
    index = count = 0
    while len(table) < 256:
        table.append(dests[index][0])
        count += 1
        if count >= dests[index][1]:
            index, count = (index + 1) % len(dests), 0
    return table


def _listing(lab: PairLab, netns: str) -> list[list[str]]:
    """`ipvsadm -Ln` (sorted by address) without its connection counters."""
    out = lab.ns(netns, ["ipvsadm", "-Ln"])
    return [line.split()[:4] for line in out.splitlines()[3:] if line.strip()]


def _readd(lab: PairLab, netns: str, oldest_first: list[tuple[str, int]]) -> None:
    """Delete every dest of the service, then add them in `oldest_first` order (each add goes
    to the head: the last one added is first in kernel order)."""
    vip = f"{lab.meta['vip']}:{lab.meta['port']}"
    commands = [f"ipvsadm -d -u {vip} -r {a}" for a, _ in oldest_first]
    commands += [f"ipvsadm -a -u {vip} -r {a} -m -w {w}" for a, w in oldest_first]
    lab.ns(netns, ["sh", "-c", " && ".join(commands)])


def _gateway_of(lab: PairLab, real_server: str) -> str:
    return next(g.name for g in lab.inventory.gateways if str(g.real_server) == real_server)


def _conns(lab: PairLab, netns: str) -> dict[str, str]:
    """client address:port -> dest address:port, from /proc/net/ip_vs_conn."""
    conns = {}
    for line in lab.ns(netns, ["cat", "/proc/net/ip_vs_conn"]).splitlines()[1:]:
        f = line.split()
        if len(f) >= 9 and f[0] == "UDP":
            ip = socket.inet_ntoa(bytes.fromhex(f[1]))
            dest = socket.inet_ntoa(bytes.fromhex(f[5]))
            conns[f"{ip}:{int(f[2], 16)}"] = f"{dest}:{int(f[6], 16)}"
    return conns


def _ping(lab: PairLab, client_netns: str) -> bool:
    out = lab.sh(
        f"ip netns exec {shlex.quote(client_netns)} ping -c 3 -i 0.5 -W 3 {TUNNEL_GATEWAY} "
        ">/dev/null && echo ok || echo failed",
        timeout=120,
    )
    return out.strip() == "ok"


def _pair_state(lab: PairLab) -> str:
    """What a failed wait needs to be understood: both directors' addresses, entries and
    daemons, and each client's neighbours and tunnel, as the lab sees them."""
    parts = [f"VIP holders {lab.vip_holders()}"]
    for d in lab.directors:
        for argv in (["ip", "-br", "addr"], ["cat", "/proc/net/ip_vs_conn"], ["ipvsadm", "-Ln"]):
            out = lab.ns(d["netns"], argv, check=False)
            parts.append(f"--- {d['name']} {' '.join(argv)}\n{out}")
        parts.append(f"--- {d['name']} sync: {lab.sync_daemon(d['netns'])}")
    for c in lab.meta["topology"]["clients"]:
        for argv in (
            ["ip", "neigh"],
            ["ip", "route"],
            ["wg", "show", "wg0", "listen-port"],
            ["wg", "show", "wg0", "endpoints"],
        ):
            out = lab.ns(c["netns"], argv, check=False)
            parts.append(f"--- {c['netns']} {' '.join(argv)}\n{out}")
        hs = lab.ns(c["netns"], ["wg", "show", "wg0", "latest-handshakes"], check=False)
        parts.append(f"--- {c['netns']} handshakes at {lab.guest_clock():.0f}\n{hs}")
    return "\n".join(parts)


def _cli(lab: PairLab, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as an operator runs it, with a generous per-host timeout (emulated directors)."""
    audit = str(tmp_path / "audit.jsonl")
    return run_cli(
        lab.inventory_path, *args, "--yes", "--audit-log", audit, "--timeout", "120", timeout=900
    )


def _endpoint_on(lab: PairLab, gateway: str, client: dict[str, str]) -> str:
    """The endpoint `gateway` has for `client`'s peer (`(none)` once forgotten)."""
    netns = next(g["netns"] for g in lab.meta["topology"]["gateways"] if g["name"] == gateway)
    key = lab.ns(client["netns"], ["wg", "show", "wg0", "public-key"]).strip()
    for line in lab.ns(netns, ["wg", "show", "wg0", "endpoints"]).splitlines():
        if line.split("\t")[0] == key:
            return line.split("\t")[1]
    raise AssertionError(f"{gateway} has no peer for {client['netns']}")


def _new_source_port(lab: PairLab, client: dict[str, str]) -> str:
    """Give the client a source port the LBs have never seen (a new IPVS entry on the VIP
    holder at its next packet); its source address:port as the LB sees it."""
    port = 20000 + int(lab.guest_clock() * 1000) % 30000
    lab.ns(client["netns"], ["wg", "set", "wg0", "listen-port", str(port)])
    return f"{client['wan']}:{port}"


def test_status_reports_the_pair_as_keepalived_and_the_kernel_do(
    settled: PairLab, lb_ssh: dict[str, SshTransport]
) -> None:
    lab = settled
    fleet = _poll(lab)
    assert all(h.reachable for h in fleet.hosts), [h.error for h in fleet.hosts]
    views = {v.name: v for v in fleet.load_balancers}
    holders = lab.vip_holders()
    for d in lab.directors:
        view = views[d["name"]]
        assert view.holds_vip == (d["netns"] in holders)
        assert (view.vrrp_state, view.vrrp_priority) == _keepalived_report(
            lb_ssh[d["name"]], d["pid"]
        )
        assert view.vrrp_source == "data"
        daemon = lab.sync_daemon(d["netns"])
        assert [(s.role, s.interface, s.syncid) for s in view.sync_daemons or ()] == [
            (daemon.split()[0], "lan", SYNC_ID)
        ]
        assert view.buckets_differing == 0
        assert view.problems == ()
    master, backup = lab.directors
    assert (fleet.vip_holder, fleet.failover_lb) == (master["name"], backup["name"])
    doc = fleet.to_json()
    assert [(lb["name"], lb["holds_vip"], lb["vrrp_state"]) for lb in doc["load_balancers"]] == [
        (master["name"], True, "MASTER"),
        (backup["name"], False, "BACKUP"),
    ]
    # The clients' entries were synced at boot: each keeps its gateway.
    assert all(c["failover_gateway"] == c["lb_gateway"] for c in doc["clients"])


def test_a_table_mismatch_planted_on_the_backup_is_counted_exactly(settled: PairLab) -> None:
    lab = settled
    master, backup = (d["netns"] for d in lab.directors)
    booted = _kernel_order(lab, backup)
    assert booted == _kernel_order(lab, master)
    try:
        # Deleted and re-added in the other order: newest first, so the old head goes first.
        _readd(lab, backup, booted)
        planted = _kernel_order(lab, backup)
        assert planted == booted[::-1]
        assert _listing(lab, backup) == _listing(lab, master)  # ipvsadm -Ln cannot tell
        ours, theirs = _table(_kernel_order(lab, master)), _table(planted)
        expected = sum(a != b for a, b in zip(ours, theirs, strict=True))
        assert expected == 256  # two dests of weight 1 in opposite orders: every bucket
        fleet = _poll(lab)
        view = next(v for v in fleet.load_balancers if v.name == lab.directors[1]["name"])
        assert view.buckets_differing == expected
        finding = next(f for f in fleet.findings if f.code == "backup-table-differs")
        assert f"{expected}/256 buckets" in finding.message
    finally:
        _readd(lab, backup, booted[::-1])
    assert _kernel_order(lab, backup) == _kernel_order(lab, master)


def test_failover_gateway_predicted_is_where_the_backup_sends_each_client(
    settled: PairLab, tmp_path: Path
) -> None:
    """One client's entry synced onto the backup, the other's not (the backup's sync daemon
    stopped while it got its entry), and the backup's table the other way round: the poll
    predicts each client's gateway after a failover, then the VIP moves to the backup and the
    backup's own entries say where each client really went."""
    lab = settled
    master, backup = lab.directors
    synced_client, unsynced_client = lab.meta["topology"]["clients"]
    booted = _kernel_order(lab, backup["netns"])
    daemon = f"--mcast-interface lan --syncid {SYNC_ID}"
    switched = False
    failed: str | None = None
    try:
        _readd(lab, backup["netns"], booted)
        lab.ns(backup["netns"], ["ipvsadm", "--stop-daemon", "backup"])
        unsynced = _new_source_port(lab, unsynced_client)
        assert _ping(lab, unsynced_client["netns"])
        lab.wait_until(
            "the master has the unsynced client's entry",
            lambda: unsynced in _conns(lab, master["netns"]),
        )
        # The master queues sync messages and sends a partly filled buffer up to
        # IPVS_SYNC_FLUSH_TIME (2 s, ip_vs_sync.c) later: a backup daemon restarted sooner
        # would still receive the entry. The flush is not observable from outside the kernel,
        # so wait it out with a wide margin.
        time.sleep(3 * SYNC_FLUSH_SECONDS)
        lab.ns(backup["netns"], ["sh", "-c", f"ipvsadm --start-daemon backup {daemon}"])
        synced = _new_source_port(lab, synced_client)
        assert _ping(lab, synced_client["netns"])
        lab.wait_until(
            "the synced client's new entry is on the backup",
            lambda: synced in _conns(lab, backup["netns"]),
        )
        assert unsynced not in _conns(lab, backup["netns"])

        def predicted() -> dict[str, tuple[str | None, bool | None]]:
            fleet = _poll(lab)
            return {
                c.endpoint or "": (c.failover_gateway, c.failover_synced) for c in fleet.clients
            }

        lab.wait_until(
            "the gateways saw both new source ports",
            lambda: {synced, unsynced} <= predicted().keys(),
        )
        prediction = predicted()
        assert prediction[synced][1] is True
        assert prediction[unsynced][1] is False
        master_conns = _conns(lab, master["netns"])
        # The synced one keeps its gateway; the other follows the backup's reversed table.
        assert prediction[synced][0] == _gateway_of(lab, master_conns[synced])
        assert prediction[unsynced][0] != _gateway_of(lab, master_conns[unsynced])

        # The operator's switchover (VRRP itself, the master's priority dropped through its
        # tracked file): one state change on each director. Killing the master's keepalived
        # instead leaves the takeover to timers, and on a loaded machine a late advert from
        # the dying master flipped the backup back at once, which hung its keepalived in the
        # sync daemon switch (netlink) holding the VIP.
        switched = True
        res = _cli(lab, tmp_path, "failover", "--allow-differing-tables")
        said = res.stdout + res.stderr
        # Everything done, and the pair left hashing differently on purpose: not finished.
        assert res.returncode == 1, said
        assert "✔ every active client on its predicted gateway" in said
        assert f"NOT finished: {master['name']}'s sh table differs" in said
        assert lab.vip_holders() == [backup["netns"]]
        for client in (synced_client, unsynced_client):
            _ping(lab, client["netns"])
        lab.wait_until(
            "both clients have an entry on the new VIP holder",
            lambda: {synced, unsynced} <= _conns(lab, backup["netns"]).keys(),
        )
        real = _conns(lab, backup["netns"])
        assert {s: _gateway_of(lab, real[s]) for s in (synced, unsynced)} == {
            s: prediction[s][0] for s in (synced, unsynced)
        }
        # The gateway the unsynced client left forgot it before the VIP moved: its keepalives
        # cannot reach the client un-NATed through the new holder and make it roam there.
        left = _gateway_of(lab, master_conns[unsynced])
        assert _endpoint_on(lab, left, unsynced_client) == "(none)"
        assert lab.clients_off_vip() == []
    except AssertionError as e:
        failed = f"{e}\n{_pair_state(lab)}"
    # The clean-up runs whatever the body did, and a failure in it never hides the body's.
    try:
        # The VIP back the operator's way (the clients the master's own entries send
        # elsewhere are forgotten and kicked), or by the files; then the backup's table as it
        # booted, once it is the standby again. Never rebuilt on the VIP holder (as
        # `lb align` never does): its entries towards the deleted dests would expire at their
        # next packet (expire_nodest_conn) and be made again by the rebuilt table, leaving a
        # client's session on a gateway its entry no longer points to, whose keepalives then
        # make it roam (seen here before).
        if switched:
            back = _cli(
                lab, tmp_path, "failover", "--to", master["name"], "--allow-differing-tables"
            )
            # 1: done, the pair left hashing differently (until the table below).
            if back.returncode not in (0, 1):
                print(f"failover --to {master['name']}:", back.stdout, back.stderr)
                for d in lab.directors:
                    lab.on_director(d["netns"], f"printf '0\\n' > {SWITCHOVER_FILE}")
        lab.wait_until(
            "the master takes the VIP back", lambda: lab.vip_holders() == [master["netns"]]
        )
        _readd(lab, backup["netns"], booted[::-1])
        if not switched and not lab.sync_daemon(backup["netns"]).startswith("backup sync daemon"):
            lab.ns(backup["netns"], ["sh", "-c", f"ipvsadm --start-daemon backup {daemon}"])
        lab.wait_until("the pair is as it booted", lab.settled, SETTLE_SECONDS)
        lab.restore_clients()
        # The backup keeps the copies it made as the VIP holder, and the master's sync never
        # corrects a copy that disagrees (ops.hostcmd.entrysync): new source ports give each
        # client an entry made on the master and synced at its third packet, as at boot.
        for client in (synced_client, unsynced_client):
            fresh = _new_source_port(lab, client)

            def entry_synced(c: dict[str, str] = client, e: str = fresh) -> bool:
                return (
                    _ping(lab, c["netns"])
                    and _conns(lab, backup["netns"]).get(e)
                    == _conns(lab, master["netns"]).get(e)
                    is not None
                )

            lab.wait_until(
                f"{client['netns']}'s new entry synced onto the backup as the master has it",
                entry_synced,
            )
    except AssertionError as e:
        before = f"the test failed first: {failed}\n" if failed else "the test itself passed\n"
        raise AssertionError(
            f"putting the pair back failed: {e}\n{before}{_pair_state(lab)}"
        ) from None
    if failed:
        raise AssertionError(failed)
    assert _kernel_order(lab, backup["netns"]) == _kernel_order(lab, master["netns"])
