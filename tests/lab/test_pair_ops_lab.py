"""Operations on the director pair (`lab up --lbs 2`), on the real kernel and real keepalived.

A drain (of a gateway that left the network: fenced on both) leaves both directors' tables
equal (and takes the service lock on each: their /run/wgconsole are their own); a mismatch
planted on the backup refuses a failover, `lb align` removes it, and the failover then moves
no client: each keeps its gateway, its tunnel works, and the switchover survives a keepalived
reload. Every failover is measured: pings every 100 ms through each client's tunnel, lost and
longest run lost (printed, for the README). The pair is put back as it booted at the end
(wg-lb-1 the VIP holder, both tables equal).

Kernel state is read directly (ipvsadm, /proc, ip), never through wgconsole's parsers.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

from tests.lab import helpers
from tests.lab.conftest import PairLab
from wgconsole.lab.guest_script import SWITCHOVER_FILE
from wgconsole.lab.topology import TUNNEL_GATEWAY

pytestmark = pytest.mark.lab

GW1, GW2 = "wg-gateway-01", "wg-gateway-02"
LB1, LB2 = "wg-lb-1", "wg-lb-2"
SETTLE_SECONDS = 240.0
PING_INTERVAL = 0.1


@pytest.fixture
def pair(pair_lab: PairLab) -> Iterator[PairLab]:
    """The pair as it booted, before and after each test."""
    _restore(pair_lab)
    yield pair_lab
    _restore(pair_lab)


def _restore(lab: PairLab) -> None:
    for d in lab.directors:
        lab.on_director(d["netns"], f"printf '0\\n' > {SWITCHOVER_FILE}")
    master, backup = (d["netns"] for d in lab.directors)
    if _order(lab, backup) != _order(lab, master):
        _plant_order(lab, backup, _order(lab, master))
    lab.wait_until("the pair is as it booted", lab.settled, SETTLE_SECONDS)
    lab.restore_clients()


def run_cli(inventory: Path, *args: str, timeout: float = 600.0) -> CompletedProcess[str]:
    """The CLI with a generous per-host timeout: the emulated directors answer slowly when
    the machine is busy, and a director that does not answer in time refuses a failover."""
    return helpers.run_cli(inventory, *args, "--timeout", "120", timeout=timeout)


def _order(lab: PairLab, netns: str) -> list[tuple[str, str]]:
    """The service's dests in kernel order, (address:port, weight), from /proc/net/ip_vs."""
    dests = []
    for line in lab.ns(netns, ["cat", "/proc/net/ip_vs"]).splitlines():
        f = line.split()
        if f and f[0] == "->" and f[1] != "RemoteAddress:Port":
            addr, port = f[1].split(":")
            dests.append((f"{_ip(addr)}:{int(port, 16)}", f[3]))
    return dests


def _ip(hex_addr: str) -> str:
    return ".".join(str(int(hex_addr[i : i + 2], 16)) for i in range(0, 8, 2))


def _plant_order(lab: PairLab, netns: str, order: list[tuple[str, str]]) -> None:
    """Give `netns`'s service exactly `order`: every dest deleted, then added oldest first."""
    vip = helpers.vip(lab)
    commands = [f"ipvsadm -d -u {vip} -r {d}" for d, _ in _order(lab, netns)]
    commands += [f"ipvsadm -a -u {vip} -r {d} -m -w {w}" for d, w in reversed(order)]
    lab.ns(netns, ["sh", "-c", " && ".join(commands)])
    assert _order(lab, netns) == order


def _without_counters(listing: str) -> list[list[str]]:
    """`ipvsadm -Ln` without its connection counts (the backup's are the synced ones)."""
    return [line.split()[:4] for line in listing.splitlines()]


def _status(lab: PairLab) -> dict[str, Any]:
    res = run_cli(lab.inventory_path, "status", "--json", timeout=600)
    assert res.returncode in (0, 2), res.stderr
    data: dict[str, Any] = json.loads(res.stdout)
    return data


def _clients(lab: PairLab) -> dict[str, tuple[str | None, str | None]]:
    """Each client's (LB gateway, handshake gateway), from `status`."""
    return {c["name"]: (c["lb_gateway"], c["handshake_gateway"]) for c in _status(lab)["clients"]}


def _settle_clients(lab: PairLab) -> dict[str, tuple[str | None, str | None]]:
    """Until every client talks through the VIP to the gateway its LB entry names."""
    clients = helpers.settle_clients(lab, timeout=300, repair=False, read=lambda: _status(lab))
    return {c["name"]: (c["lb_gateway"], c["handshake_gateway"]) for c in clients}


def _client_netns(lab: PairLab) -> list[str]:
    return list(helpers.client_netns(lab).values())


def _tunnel_ok(lab: PairLab, netns: str) -> bool:
    out = lab.sh(
        f"ip netns exec {shlex.quote(netns)} ping -c 3 -i 0.5 -W 5 {TUNNEL_GATEWAY} "
        ">/dev/null && echo ok || echo failed",
        timeout=120,
    )
    return out.strip() == "ok"


@dataclass(frozen=True)
class Interruption:
    client: str
    sent: int
    received: int
    longest_lost: int  # consecutive pings

    def __str__(self) -> str:
        return (
            f"{self.client}: {self.sent - self.received} of {self.sent} pings lost, longest "
            f"gap {self.longest_lost * PING_INTERVAL:.1f} s ({self.longest_lost} in a row)"
        )


class Pings:
    """A ping every 100 ms through each client's tunnel, for the length of an operation."""

    def __init__(self, lab: PairLab, tag: str) -> None:
        self.lab = lab
        self.files = {c: f"/tmp/pairops-ping-{c}-{tag}.txt" for c in _client_netns(lab)}
        self.pids: dict[str, int] = {}

    def __enter__(self) -> Pings:
        for c, path in self.files.items():
            out = self.lab.sh(
                f"nohup ip netns exec {c} ping -D -n -i {PING_INTERVAL} -W 1 -w 900 "
                f"{TUNNEL_GATEWAY} > {path} 2>&1 < /dev/null & echo $!"
            )
            self.pids[c] = int(out.strip())
        return self

    def __exit__(self, *exc: object) -> None:
        for pid in self.pids.values():
            self.lab.sh(f"kill -INT {pid}", check=False)

    def results(self) -> list[Interruption]:
        time.sleep(2)
        found = []
        for c, path in self.files.items():
            text = self.lab.sh(f"cat {path}")
            sent = re.search(r"(\d+) packets transmitted, (\d+) received", text)
            assert sent, text[-500:]
            seqs = sorted({int(s) for s in re.findall(r"icmp_seq=(\d+) ttl", text)})
            total = int(sent.group(1))
            runs = [b - a - 1 for a, b in zip([0, *seqs], [*seqs, total + 1], strict=True)]
            found.append(Interruption(c, total, int(sent.group(2)), max(runs, default=0)))
            self.lab.sh(f"rm -f {path}")
        return found


def _failover(lab: PairLab, tmp_path: Path, *args: str) -> tuple[str, list[Interruption]]:
    audit = tmp_path / "audit.jsonl"
    label = " ".join(("failover", *args))
    with Pings(lab, args[-1] if args else "default") as pings:
        res = run_cli(
            lab.inventory_path, "failover", *args, "--yes", "--audit-log", str(audit), timeout=900
        )
    print(res.stdout)
    assert res.returncode == 0, res.stdout + res.stderr
    measured = pings.results()
    for m in measured:
        print(f"{label}: {m}")
    return res.stdout, measured


def _holders(lab: PairLab) -> list[str]:
    names = {d["netns"]: d["name"] for d in lab.directors}
    return [names[n] for n in lab.vip_holders()]


def test_a_drain_of_a_gateway_that_left_the_network_fences_it_on_both_directors(
    pair: PairLab, tmp_path: Path
) -> None:
    """A drain on the pair, of a gateway whose host left the network (the guard's eviction as
    an operator runs it): the service lock taken on each director (their /run/wgconsole are
    their own), both fence it and end with equal tables; back on the network, `undrain`
    re-creates its interface and lifts both fences, the tables equal again. (The drain of a
    gateway that answers differs only on that gateway: test_ops_drain_lab.py.)"""
    lab = pair
    master, backup = (d["netns"] for d in lab.directors)
    clients = _settle_clients(lab)
    on = [lb for lb, _ in clients.values()]
    drained = max(set(on), key=on.count)
    assert drained in (GW1, GW2)
    ns = next(g["netns"] for g in lab.meta["topology"]["gateways"] if g["name"] == drained)
    route = lab.ns(ns, ["ip", "route", "show", "default"]).strip()
    audit = ["--audit-log", str(tmp_path / "audit.jsonl")]
    rs = _real_server(lab, drained).replace(":", " . ")
    lab.ns(ns, ["sh", "-c", "ip link set lan down; ip link set mgmt down"])
    try:
        # A short poll deadline: the gateway that left costs the drain's reading all of it.
        res = helpers.run_cli(
            lab.inventory_path, "drain", drained, "--yes", "--timeout", "20", *audit, timeout=900
        )
        print(res.stdout)
        assert "locked by" not in res.stdout + res.stderr
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"{drained} DOES NOT ANSWER" in res.stdout
        assert "✔ every director's 256-bucket table equals the VIP holder's" in res.stdout
        assert _order(lab, master) == _order(lab, backup)
        assert dict(_order(lab, master))[_real_server(lab, drained)] == "0"
        assert [lb["buckets_differing"] for lb in _status(lab)["load_balancers"]] == [0, 0]
        for netns in (master, backup):
            assert rs in lab.ns(netns, ["nft", "list", "set", "inet", "wgconsole", "fenced4"])
            assert "lock-" not in lab.on_director(netns, "ls /run/wgconsole")
    finally:
        lab.ns(
            ns,
            ["sh", "-c", f"ip link set lan up && ip link set mgmt up && ip route replace {route}"],
        )
    res = run_cli(lab.inventory_path, "undrain", drained, "--yes", "--no-rebalance", *audit)
    print(res.stdout)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "re-created" in res.stdout
    assert _order(lab, master) == _order(lab, backup)
    assert dict(_order(lab, master))[_real_server(lab, drained)] == "1"
    for netns in (master, backup):
        fenced = lab.ns(netns, ["nft", "list", "set", "inet", "wgconsole", "fenced4"])
        assert rs not in fenced


def _real_server(lab: PairLab, name: str) -> str:
    gw = next(g for g in lab.inventory.gateways if g.name == name)
    return f"{gw.real_server.address}:{gw.real_server.port}"


def test_a_planted_mismatch_refuses_failover_then_align_and_failover_move_no_client(
    pair: PairLab, tmp_path: Path
) -> None:
    lab = pair
    master, backup = (d["netns"] for d in lab.directors)
    before = _settle_clients(lab)
    # The backup's dests re-added in the other order: `ipvsadm -Ln` (sorted) is identical,
    # every one of the 256 buckets differs.
    holder_order = _order(lab, master)
    _plant_order(lab, backup, holder_order[::-1])
    listing = ["ipvsadm", "-Ln", "-u", f"{lab.meta['vip']}:{lab.meta['port']}"]
    assert _without_counters(lab.ns(master, listing)) == _without_counters(lab.ns(backup, listing))
    lbs = {lb["name"]: lb for lb in _status(lab)["load_balancers"]}
    assert lbs[LB2]["buckets_differing"] == 256
    # An operation on the LBs that ends with the backup hashing differently says it is not
    # finished (the same change on both cannot make them equal).
    res = run_cli(lab.inventory_path, "weight", GW2, "1", "--yes", timeout=600)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "`weight wg-gateway-02` is NOT finished: wg-lb-2's sh table differs" in res.stderr

    res = run_cli(lab.inventory_path, "failover", "--dry-run", timeout=600)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "differs from wg-lb-1's (the VIP holder's) in 256/256 buckets" in res.stderr
    assert f"wgconsole lb align {LB2}" in res.stderr
    res = run_cli(
        lab.inventory_path, "failover", "--allow-differing-tables", "--dry-run", timeout=600
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "!!! wg-lb-2's sh table differs from wg-lb-1's in 256/256 buckets" in res.stdout
    assert _holders(lab) == [LB1]  # a dry run changes nothing

    res = run_cli(lab.inventory_path, "lb", "align", LB1, "--yes", timeout=600)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "holds the VIP" in res.stderr, res.stdout + res.stderr
    res = run_cli(lab.inventory_path, "lb", "align", "--yes", timeout=900)
    print(res.stdout)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "256/256 buckets differ" in res.stdout
    assert _order(lab, backup) == holder_order

    out, measured = _failover(lab, tmp_path)
    assert "wg-lb-2's sh table equals wg-lb-1's" in out
    assert "of which 0 would change gateway" in out
    assert _holders(lab) == [LB2]
    assert _clients(lab) == before  # every client on its gateway, by entry and handshake
    assert all(_tunnel_ok(lab, c) for c in _client_netns(lab))
    assert all(m.received > 0 for m in measured)

    # A keepalived reload on both directors keeps the switchover.
    for d in lab.directors:
        lab.sh(f"kill -HUP $(cat {shlex.quote(d['pid'])})")
    for _ in range(15):
        time.sleep(1)
        assert _holders(lab) == [LB2]
    assert lab.on_director(master, f"cat {SWITCHOVER_FILE}").strip() == "-51"

    _failover(lab, tmp_path, "--to", LB1)
    assert _holders(lab) == [LB1]
    assert _clients(lab) == before
    assert lab.on_director(master, f"cat {SWITCHOVER_FILE}").strip() == "0"


def test_failover_interruption_over_more_runs(pair: PairLab, tmp_path: Path) -> None:
    lab = pair
    before = _settle_clients(lab)
    for run in range(1):
        _failover(lab, tmp_path, "--to", LB2)
        _failover(lab, tmp_path, "--to", LB1)
        print(f"round trip {run + 1} done")
    assert _clients(lab) == before
    assert all(_tunnel_ok(lab, c) for c in _client_netns(lab))
