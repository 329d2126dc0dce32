"""rebalance on the director pair (`lab up --lbs 2`), on the real kernel.

Each director runs keepalived's sync daemon: the VIP holder a master one, the standby a backup
one, so the standby cannot run rebalance's private backup daemon (the kernel runs one backup
daemon per LB). There the entries go to keepalived's backup daemon, sent from the standby
itself; the holder runs the private one next to its master daemon. Read straight from the
kernel (/proc, ipvsadm), never through wgconsole's parsers.

After a weight change leaves a client misplaced, `rebalance --yes` moves exactly it: both
directors' entries for it then point to its new gateway, its tunnel works through the VIP, the
client not moved loses no ping (every 100 ms across the operation), the tables are unchanged
and equal, keepalived's daemons are as they were, and a failover right after (the holder's
keepalived stopped, then restarted) keeps the client on its new gateway. The weight is put
back at the end, and a second rebalance puts the client back on its gateway.
"""

from __future__ import annotations

import re
import shlex
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.lab import helpers
from tests.lab.conftest import PairLab
from tests.lab.helpers import run_cli
from wgconsole.core.inventory import Inventory
from wgconsole.core.rebalance import sh_choice
from wgconsole.core.records import Endpoint, IpvsDest, IpvsService, ServiceFlag
from wgconsole.core.whereis import proposed_table
from wgconsole.poll.transport.ssh import SshTransport

pytestmark = pytest.mark.lab

SETTLE_SECONDS = 180.0
PING = "ping -n -i 0.1 -W 2 10.255.0.1"


def _hex_ep(ip: str, port: str) -> str:
    return f"{socket.inet_ntoa(bytes.fromhex(ip))}:{int(port, 16)}"


def _conns(lab: PairLab, netns: str) -> dict[str, str]:
    """client address:port -> dest address:port, the VIP's entries in /proc/net/ip_vs_conn."""
    conns = {}
    for line in lab.ns(netns, ["cat", "/proc/net/ip_vs_conn"]).splitlines()[1:]:
        f = line.split()
        if len(f) >= 9 and f[0] == "UDP" and _hex_ep(f[3], f[4]) == helpers.vip(lab):
            conns[_hex_ep(f[1], f[2])] = _hex_ep(f[5], f[6])
    return conns


def _dests(lab: PairLab, netns: str) -> list[tuple[str, int]]:
    """The VIP's dests in kernel order with their weights."""
    out = lab.ns(netns, ["ipvsadm", "-Ln", "--nosort", "-u", helpers.vip(lab)])
    fields = (line.split() for line in out.splitlines())
    return [(f[1], int(f[3])) for f in fields if f[:1] == ["->"] and f[1] != "RemoteAddress:Port"]


def _directors(lab: PairLab) -> list[str]:
    return [str(d["netns"]) for d in lab.directors]


def _sync_state(lab: PairLab) -> dict[str, tuple[str, bool]]:
    """Per director: its sync daemons, and whether rebalance's private link exists."""
    return {
        ns: (lab.sync_daemon(ns), "wgcsync" in lab.ns(ns, ["ip", "-o", "link", "show"]))
        for ns in _directors(lab)
    }


def _misplaced(data: Any) -> set[str]:
    return {c["name"] for c in data["clients"] if "not-on-sh-choice" in c["findings"]}


def _flags() -> int:
    # The pair lab's service is made with `ipvsadm -A -s sh`: no sh flags.
    return int(ServiceFlag.HASHED)


def _split(text: str) -> tuple[str, int]:
    address, _, port = text.rpartition(":")
    return address, int(port)


def _weight_for_one(
    inventory: Inventory, service: IpvsService, entries: dict[str, tuple[Endpoint, str]]
) -> tuple[str, int] | None:
    """A (gateway, new weight) whose table sends at least one client elsewhere and leaves at
    least one where it is: `entries` is client -> (LB entry source, gateway it is on)."""
    names = {g.real_server: g.name for g in inventory.gateways}
    current = {d.endpoint: d.weight for d in service.dests}
    for gw in inventory.gateways:
        for weight in range(1, 200):
            if weight == current.get(gw.real_server):
                continue  # a change of weight, not the table as it is
            model = proposed_table(inventory, service, weights={gw.name: weight})
            moves = {
                name
                for name, (src, on) in entries.items()
                if names.get(model.pick(src.address, src.port).dest or src) != on
            }
            if moves and len(moves) < len(entries):
                return gw.name, weight
    return None


def _start_pings(lab: PairLab, names: dict[str, str]) -> None:
    for name, ns in names.items():
        out = f"/tmp/pair-rebal-ping-{name}.txt"
        lab.sh(
            f"rm -f {out}; (ip netns exec {shlex.quote(ns)} {PING} > {out} 2>&1 < /dev/null & "
            f"echo $! > {out}.pid)"
        )


def _stop_pings(lab: PairLab, names: dict[str, str]) -> dict[str, list[int]]:
    """Per client: the icmp_seq numbers that got no reply before its last reply."""
    lost = {}
    for name in names:
        out = f"/tmp/pair-rebal-ping-{name}.txt"
        lab.sh(f"kill -INT $(cat {out}.pid)", check=False)
        time.sleep(0.5)
        replies = {int(m) for m in re.findall(r"icmp_seq=(\d+) ttl", lab.sh(f"cat {out}"))}
        assert replies, f"{name}: no reply at all"
        lost[name] = sorted(set(range(min(replies), max(replies) + 1)) - replies)
        assert min(replies) < 20, f"{name}: its first pings got no reply"
    return lost


def _sources(data: Any) -> dict[str, str]:
    """Each client's source address:port as the LB sees it, from a `status` reading."""
    return {c["name"]: c["endpoint"] for c in data["clients"]}


def _rebalance_with_pings(
    lab: PairLab, audit: Path, movers: set[str], target: dict[str, str], source: dict[str, str]
) -> None:
    """`rebalance --yes` with every client pinging through its tunnel; then the movers on
    their target on both directors, nothing else changed. `source`: each client's source
    address (`_sources`), from the `status` that found the movers."""
    names = helpers.client_netns(lab)
    holder, standby = _directors(lab)
    entries = {ns: _conns(lab, ns) for ns in (holder, standby)}
    tables = {ns: _dests(lab, ns) for ns in (holder, standby)}
    sync = _sync_state(lab)
    _start_pings(lab, names)
    try:
        time.sleep(2)
        res = run_cli(lab.inventory_path, "rebalance", "--yes", "--audit-log", str(audit))
        print(res.stdout)
        assert res.returncode == 0, res.stdout + res.stderr
        time.sleep(3)
    finally:
        lost = _stop_pings(lab, names)
    print({name: len(seqs) for name, seqs in lost.items()})
    for name in set(names) - movers:
        assert lost[name] == [], f"{name} was not moved but lost pings {lost[name][:20]}"
    moved = re.search(r"moved and verified in [0-9.]+ s: (.*?); the sh table", res.stdout)
    assert moved is not None
    assert {m.split(" -> ")[0] for m in moved.group(1).split(", ")} == movers
    # The entries go to keepalived's backup daemon on the standby, the private one on the holder.
    assert "the LB's own backup sync daemon (interface lan, group 224.0.0.81:8848" in res.stdout

    gw_rs = {g.name: str(g.real_server) for g in lab.inventory.gateways}
    for ns in (holder, standby):
        now = _conns(lab, ns)
        for name in movers:
            assert now[source[name]] == gw_rs[target[name]], f"{ns}: {name} on {now}"
        for name in set(names) - movers:
            # The standby may hold no copy of a client not moved (keepalive-only clients are
            # synced rarely, and the pings may have made one): where it has one, it is the
            # holder's entry from before.
            if ns == holder or source[name] in now:
                assert now[source[name]] == entries[holder][source[name]], f"{ns}: {name}"
    assert {ns: _dests(lab, ns) for ns in (holder, standby)} == tables
    assert tables[holder] == tables[standby]
    assert _sync_state(lab) == sync
    for ns in names.values():
        assert lab.ns(ns, ["wg", "show", "wg0", "endpoints"]).split()[1] == helpers.vip(lab)
        lab.ns(ns, ["ping", "-c", "2", "-W", "5", "10.255.0.1"])
    # The holder's master daemon sends the moved entries as the holder has them (on their
    # new gateway: at its 3rd packet, then every 50th, a copy made by the sync protocol
    # starts at 3): after more than 50 packets the standby's copies still agree.
    for name in movers:
        lab.ns(names[name], ["ping", "-c", "60", "-i", "0.05", "-W", "2", "10.255.0.1"])
    time.sleep(3)
    for name in movers:
        assert _conns(lab, standby)[source[name]] == gw_rs[target[name]]


def test_rebalance_on_the_pair_moves_exactly_the_misplaced_on_both_directors(
    pair_lab: PairLab, tmp_path: Path
) -> None:
    lab = pair_lab
    lab.wait_until("the pair is as it booted", lab.settled, SETTLE_SECONDS)
    lab.restore_clients()
    audit = tmp_path / "audit.jsonl"
    holder, standby = _directors(lab)
    # Every client settled, as the status that found them so says.
    settled = helpers.settle_clients(lab, timeout=180)
    weights_before = _dests(lab, holder)
    assert weights_before == _dests(lab, standby)

    entries = {c["name"]: (Endpoint(*_split(c["endpoint"])), c["lb_gateway"]) for c in settled}
    change = _weight_for_one(lab.inventory, _service_from(lab, holder), entries)
    assert change is not None, "no weight gives a client to move and one to stay"
    gw, weight = change
    rs = {g.name: str(g.real_server) for g in lab.inventory.gateways}
    old_weight = dict(weights_before)[rs[gw]]
    res = run_cli(lab.inventory_path, "weight", gw, str(weight), "--yes", "--audit-log", str(audit))
    assert res.returncode == 0, res.stdout + res.stderr
    try:
        data = helpers.status(lab)
        movers = _misplaced(data)
        assert movers
        assert movers < set(entries)
        choice = sh_choice(lab.inventory, _service_from(lab, holder))
        assert choice is not None
        target = {name: str(choice.gateway(entries[name][0])) for name in movers}
        print(f"weight {gw} {weight}: movers {sorted(movers)} -> {target}")
        _rebalance_with_pings(lab, audit, movers, target, _sources(data))
        data = helpers.status(lab)
        assert not _misplaced(data)
        _failover_keeps_them(lab, movers, target, _sources(data))
    finally:
        res = run_cli(
            lab.inventory_path, "weight", gw, str(old_weight), "--yes", "--audit-log", str(audit)
        )
        assert res.returncode == 0, res.stdout + res.stderr
    # The pair's weights as they were; a second rebalance puts the movers back where the
    # table sends them now (their gateway before the test).
    assert _dests(lab, holder) == weights_before == _dests(lab, standby)
    data = helpers.status(lab)
    back = _misplaced(data)
    assert back == movers
    _rebalance_with_pings(
        lab, audit, back, {name: entries[name][1] for name in back}, _sources(data)
    )
    assert not _misplaced(helpers.status(lab))


def _failover_keeps_them(
    lab: PairLab, movers: set[str], target: dict[str, str], source: dict[str, str]
) -> None:
    """Right after the rebalance, the holder's keepalived stops: the standby takes the VIP and
    sends each moved client to its new gateway (its copy of the entry), where its session is.
    The pair is put back as it booted (keepalived again on the holder, which preempts).
    `source`: each client's source address (`_sources`), read after the rebalance."""
    holder, standby = lab.directors
    names = helpers.client_netns(lab)
    gw_rs = {g.name: str(g.real_server) for g in lab.inventory.gateways}
    try:
        lab.sh(f"kill $(cat {shlex.quote(holder['pid'])})")
        lab.wait_until("the standby takes the VIP", lambda: lab.vip_holders() == [standby["netns"]])
        for name in movers:
            lab.ns(names[name], ["ping", "-c", "3", "-W", "5", "10.255.0.1"], timeout=120)
            assert _conns(lab, standby["netns"])[source[name]] == gw_rs[target[name]]
        clients = {c["name"]: c for c in helpers.status(lab)["clients"]}
        for name in movers:
            assert clients[name]["lb_gateway"] == target[name], clients[name]
            assert clients[name]["handshake_gateway"] == target[name], clients[name]
    finally:
        ssh = SshTransport(
            next(lb for lb in lab.inventory.load_balancers if lb.name == holder["name"])
        )
        restart = ssh.run(holder["keepalived_start"], timeout=120)
        ssh.close()
        assert restart.status == 0, restart.stderr
        lab.wait_until("the holder takes the VIP back", lab.settled, SETTLE_SECONDS)


def _service_from(lab: PairLab, netns: str) -> IpvsService:
    """The lab service as the director's kernel has it (kernel order, weights)."""
    dests = tuple(
        IpvsDest(Endpoint(*_split(rs)), weight, "masq", 0, 0) for rs, weight in _dests(lab, netns)
    )
    return IpvsService("udp", Endpoint(*_split(helpers.vip(lab))), "sh", _flags(), dests=dests)
