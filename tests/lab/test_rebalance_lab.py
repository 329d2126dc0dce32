"""rebalance on the real kernel: after a drain and an undrain it moves exactly the clients the
sh table sends elsewhere, they keep a working tunnel through the VIP, and a client it does not
move loses no packet (pings every 100 ms across the operation).

Runs with any number of lab clients (WGCONSOLE_TEST_LAB_CLIENTS, default 2): when the drain and
undrain leave no client to move or none to stay (with two clients both can happen), a weight
is chosen, by the sh model, that gives at least one of each.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from pathlib import Path
from typing import Any

import pytest

from tests.lab import helpers
from tests.lab.conftest import Lab
from tests.lab.helpers import kernel_conns, kernel_dests, run_cli
from wgconsole.core.inventory import Inventory
from wgconsole.core.rebalance import sh_choice
from wgconsole.core.records import Endpoint, IpvsDest, IpvsService, ServiceFlag
from wgconsole.core.whereis import proposed_table

pytestmark = pytest.mark.lab


def _misplaced(data: Any) -> set[str]:
    return {c["name"] for c in data["clients"] if "not-on-sh-choice" in c["findings"]}


def _service_now(lab: Lab) -> IpvsService:
    """The lab service as the kernel has it (kernel order, weights), sh-fallback on."""
    dests = tuple(
        IpvsDest(Endpoint(*_split(rs)), weight, "masq", 0, 0)
        for rs, weight in kernel_dests(lab, helpers.vip(lab))
    )
    vip = Endpoint(str(lab.meta["vip"]), int(str(lab.meta["port"])))
    flags = int(ServiceFlag.HASHED | ServiceFlag.SH_FALLBACK)
    return IpvsService("udp", vip, "sh", flags, dests=dests)


def _split(text: str) -> tuple[str, int]:
    address, _, port = text.rpartition(":")
    return address, int(port)


def _weight_for_both(
    inventory: Inventory, service: IpvsService, entries: dict[str, tuple[Endpoint, str]]
) -> tuple[str, int] | None:
    """A (gateway, weight) whose table leaves at least one client where it is and sends at
    least one elsewhere: `entries` is client -> (LB entry source, gateway it is on)."""
    names = {g.real_server: g.name for g in inventory.gateways}
    for gw in inventory.gateways:
        for weight in range(1, 200):
            model = proposed_table(inventory, service, weights={gw.name: weight})
            moves = {
                name
                for name, (src, on) in entries.items()
                if names.get(model.pick(src.address, src.port).dest or src) != on
            }
            if moves and len(moves) < len(entries):
                return gw.name, weight
    return None


PING = "ping -n -i 0.1 -W 2 10.255.0.1"


def _start_pings(lab: Lab, names: dict[str, str]) -> None:
    for name, ns in names.items():
        out = f"/tmp/rebal-ping-{name}.txt"
        lab.sh(
            f"rm -f {out}; (ip netns exec {shlex.quote(ns)} {PING} > {out} 2>&1 < /dev/null & "
            f"echo $! > {out}.pid)"
        )


def _stop_pings(lab: Lab, names: dict[str, str]) -> dict[str, list[int]]:
    """Per client: the icmp_seq numbers that got no reply before its last reply (a packet in
    flight when ping is stopped is not a loss)."""
    lost = {}
    for name in names:
        out = f"/tmp/rebal-ping-{name}.txt"
        lab.sh(f"kill -INT $(cat {out}.pid)", check=False)
        time.sleep(0.5)
        replies = {int(m) for m in re.findall(r"icmp_seq=(\d+) ttl", lab.sh(f"cat {out}"))}
        assert replies, f"{name}: no reply at all"
        lost[name] = sorted(set(range(min(replies), max(replies) + 1)) - replies)
        assert min(replies) < 20, f"{name}: its first pings got no reply"
    return lost


def _kernel_state(lab: Lab) -> tuple[Any, ...]:
    entries = sorted((c.client, c.dest) for c in kernel_conns(lab) if c.virtual == helpers.vip(lab))
    daemon = lab.ns("lb", ["ipvsadm", "-Ln", "--daemon"])
    links = lab.ns("lb", ["ip", "-o", "link", "show"])
    ends = {ns: lab.ns(ns, ["wg", "show", "wg0", "endpoints"]) for ns in ("gw1", "gw2")}
    return entries, kernel_dests(lab, helpers.vip(lab)), daemon, "wgcsync" in links, ends


def _refused_without_dummy(lab: Lab, audit: Path, before: tuple[Any, ...]) -> None:
    """The guest's kernel with the dummy module unloaded and module autoload pointed at a
    program that fails (kernel.modprobe is one for the whole guest): the kernel itself then
    cannot make a dummy link, and rebalance refuses while planning, changing nothing."""
    modprobe = lab.sh("cat /proc/sys/kernel/modprobe").strip()
    lab.sh("rmmod dummy 2>/dev/null; ! [ -d /sys/module/dummy ]")
    lab.sh("echo /bin/false > /proc/sys/kernel/modprobe")
    try:
        # The kernel's refusal is on stderr: merged, so the assertion reads it.
        made = lab.sh("ip netns exec lb ip link add wgcprobe type dummy 2>&1", check=False)
        assert "Unknown device type" in made, made
        res = run_cli(lab.inventory_path, "rebalance", "--yes", "--audit-log", str(audit))
        said = res.stdout + res.stderr
        assert res.returncode != 0, said
        assert "needs a dummy network interface" in said, said
        assert "/bin/false cannot load it" in said, said
        assert "modprobe dummy" in said, said
        assert _kernel_state(lab) == before
    finally:
        lab.sh(f"echo {shlex.quote(modprobe)} > /proc/sys/kernel/modprobe")
        lab.sh("ip netns exec lb ip link del wgcprobe 2>/dev/null; true")


def test_rebalance_after_drain_and_undrain_moves_exactly_the_misplaced(
    lab: Lab, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    names = helpers.client_netns(lab)
    # Every client settled, as the status that found them so says.
    holders = [c["lb_gateway"] for c in helpers.settle_clients(lab, timeout=180)]
    drained = max(sorted(set(holders)), key=holders.count)
    res = run_cli(lab.inventory_path, "drain", drained, "--yes", "--audit-log", str(audit))
    assert res.returncode == 0, res.stdout + res.stderr
    res = run_cli(
        lab.inventory_path, "undrain", drained, "--no-rebalance", "--yes", "--audit-log", str(audit)
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Rebalance" not in res.stdout  # --no-rebalance: not even planned
    helpers.settle_clients(lab, timeout=180)

    data = helpers.status(lab)
    entries = {
        c["name"]: (Endpoint(*_split(c["endpoint"])), c["lb_gateway"]) for c in data["clients"]
    }
    weight_changed = None
    if not (0 < len(_misplaced(data)) < len(entries)):
        weight_changed = _weight_for_both(lab.inventory, _service_now(lab), entries)
        assert weight_changed is not None, "no weight gives a client to move and one to stay"
        gw, w = weight_changed
        res = run_cli(lab.inventory_path, "weight", gw, str(w), "--yes", "--audit-log", str(audit))
        assert res.returncode == 0, res.stdout + res.stderr
        data = helpers.status(lab)
    movers = _misplaced(data)
    stays = set(entries) - movers
    assert movers
    assert stays
    # The finding says what to run; the model (checked against the kernel elsewhere) agrees.
    found = [f for f in data["findings"] if f["code"] == "not-on-sh-choice"]
    assert {f["subject"] for f in found} == movers
    assert all("`wgconsole rebalance`" in f["message"] for f in found)
    choice = sh_choice(lab.inventory, _service_now(lab))
    assert choice is not None
    target = {name: choice.gateway(entries[name][0]) for name in movers}
    print(f"movers {sorted(movers)} -> {target}; stays {sorted(stays)}")

    # --dry-run: the plan, and nothing changes on any host.
    before = _kernel_state(lab)
    res = run_cli(lab.inventory_path, "rebalance", "--dry-run")
    assert res.returncode == 0, res.stdout + res.stderr
    for name in movers:
        assert re.search(
            rf"{re.escape(name)}\s+\S+\s+\S+ -> {re.escape(str(target[name]))}", res.stdout
        )
    assert "wgcsync" in res.stdout
    assert "no other service" in res.stdout
    assert _kernel_state(lab) == before

    # An LB whose kernel cannot make the dummy interface (module not loaded, autoload off):
    # refused while planning, with the cause and the fix, before any change.
    _refused_without_dummy(lab, audit, before)

    # The real thing, with every client pinging through its tunnel every 100 ms.
    dests_before = kernel_dests(lab, helpers.vip(lab))
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
    for name in stays:
        assert lost[name] == [], f"{name} was not moved but lost pings {lost[name][:20]}"
    moved = re.search(r"moved and verified in [0-9.]+ s: (.*?); the sh table", res.stdout)
    assert moved is not None
    assert {m.split(" -> ")[0] for m in moved.group(1).split(", ")} == movers

    # Moved clients: their entry on the table's choice, a working tunnel through the VIP.
    gw_rs = {g.name: str(g.real_server) for g in lab.inventory.gateways}
    conns = {c.client: c.dest for c in kernel_conns(lab) if c.virtual == helpers.vip(lab)}
    for name in movers:
        assert conns[str(entries[name][0])] == gw_rs[str(target[name])]
    for ns in names.values():
        assert lab.ns(ns, ["wg", "show", "wg0", "endpoints"]).split()[1] == helpers.vip(lab)
        lab.ns(ns, ["ping", "-c", "2", "-W", "5", "10.255.0.1"])
    # The table is the one it started from; the private sync daemon and its link are gone.
    assert kernel_dests(lab, helpers.vip(lab)) == dests_before
    assert "sync daemon" not in lab.ns("lb", ["ipvsadm", "-Ln", "--daemon"])
    assert "wgcsync" not in lab.ns("lb", ["ip", "-o", "link", "show"])
    after = helpers.status(lab)
    assert not _misplaced(after)
    assert not any("bypassing-lb" in c["findings"] for c in after["clients"])
    record = [json.loads(line) for line in audit.read_text().splitlines()][-1]
    assert (record["action"], record["outcome"]) == ("rebalance", "ok")

    # A second run has nothing to move and changes nothing.
    res = run_cli(lab.inventory_path, "rebalance", "--yes", "--audit-log", str(audit))
    assert res.returncode == 0
    assert "nothing to move" in res.stdout
    if weight_changed is not None:
        res = run_cli(
            lab.inventory_path, "weight", weight_changed[0], "1", "--yes", "--audit-log", str(audit)
        )
        assert res.returncode == 0, res.stdout + res.stderr
