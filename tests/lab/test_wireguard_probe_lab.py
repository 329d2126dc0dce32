"""`wgconsole probe` against the gateways' real WireGuard (Debian's kernel module).

The prober runs inside the guest, as it would on a director or a bastion with a route to the
gateways: the guest's root is this machine's, so the same interpreter and checkout run there.
Its key is made by `wgconsole probe setup`, run from this machine as an operator runs it (a
peer with no AllowedIPs on every gateway, live and in wg0.conf, and a `probes:` item in the
inventory), and taken off again by `wgconsole peer remove NAME` at the end.

The VIP's probe leaves one LB entry from the prober's address that no packet refreshes; it
expires after IPVS's UDP timeout. The module sorts after every test that compares the LB's
entries with a reading taken moments apart, so that no such expiry falls between the two.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab import helpers
from tests.lab.conftest import Lab
from tests.lab.helpers import eventually, run_cli, status
from wgconsole.config.inventory_file import load_inventory
from wgconsole.config.probe_key import read_probe_key
from wgconsole.core.inventory import Probe
from wgconsole.core.keys import PrivateKey
from wgconsole.lab import guest_guard
from wgconsole.lab.topology import TUNNEL_GATEWAY
from wgconsole.poll.transport.base import CommandResult

pytestmark = pytest.mark.lab

PROBER_NETNS = "cl0"  # reaches the VIP over the LB's wan and the gateways through the LB


def _gateway_netns(lab: Lab) -> dict[str, str]:
    return {g["name"]: g["netns"] for g in lab.meta["topology"]["gateways"]}


def _server_key(lab: Lab) -> str:
    ns = next(iter(_gateway_netns(lab).values()))
    return lab.ns(ns, ["wg", "show", "wg0", "public-key"]).strip()


PROBER = "probe-lab"


@pytest.fixture(scope="module")
def probe_key(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The prober's key file (in the lab's directory, which the guest reads) and its public
    key, set up by `probe setup` for the module and removed by `peer remove` after it."""
    path = lab.dir / "probe-test.key"
    path.unlink(missing_ok=True)
    audit = ["--audit-log", str(tmp_path_factory.mktemp("probe-audit") / "audit.jsonl")]
    setup = run_cli(
        lab.inventory_path, "probe", "setup", "--name", PROBER, "--key", str(path), "--yes", *audit
    )
    print(setup.stdout, setup.stderr)
    try:
        assert setup.returncode == 0, setup.stdout + setup.stderr
        yield path, read_probe_key(path).public_key()
    finally:
        remove = run_cli(lab.inventory_path, "peer", "remove", PROBER, "--yes", *audit)
        print(remove.stdout, remove.stderr)
        path.unlink(missing_ok=True)
    assert remove.returncode == 0, remove.stdout + remove.stderr
    assert PROBER not in lab.inventory_path.read_text()


def test_probe_setup_adds_a_peer_that_routes_nothing_everywhere_and_once(
    lab: Lab, probe_key: tuple[Path, str]
) -> None:
    key, public = probe_key
    assert os.stat(key).st_mode & 0o777 == 0o600
    for gw, ns in _gateway_netns(lab).items():
        # No AllowedIPs (the key routes nothing), no keepalive (the gateway never talks first).
        assert f"{public}\t(none)" in lab.ns(ns, ["wg", "show", "wg0", "allowed-ips"]), gw
        assert f"{public}\toff" in lab.ns(ns, ["wg", "show", "wg0", "persistent-keepalive"])
        # The block appended to wg0.conf (its last lines: the file's own key stays unread).
        tail = lab.sh(f"tail -n 3 /run/wglab/{ns}/wireguard/wg0.conf")
        assert tail.splitlines() == ["[Peer]", f"# {PROBER}", f"PublicKey = {public}"], gw
    listed = load_inventory(lab.inventory_path)
    assert Probe(PROBER, public) in listed.probes
    # A prober is no client: no row, no unknown peer, no drift.
    fleet = status(lab)
    assert public not in {c["public_key"] for c in fleet["clients"]}
    assert not [f for f in fleet["findings"] if public in json.dumps(f)]
    # Set up again: nothing to do, nothing changed (the key file is used as it is).
    again = run_cli(
        lab.inventory_path, "probe", "setup", "--name", PROBER, "--key", str(key), "--yes"
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "no gateway (all had it)" in again.stdout
    assert load_inventory(lab.inventory_path).probes == listed.probes


def _in_guest(lab: Lab, inventory: Path, *args: str, netns: str = PROBER_NETNS) -> CommandResult:
    """`wgconsole -i INVENTORY ARGS...` inside the lab, in `netns`, with this checkout."""
    argv = [sys.executable, "-m", "wgconsole", "-i", str(inventory), *args]
    command = f"cd {shlex.quote(os.getcwd())} && ip netns exec {netns} " + shlex.join(argv)
    return lab.control.run(command, timeout=240)


def _probe(lab: Lab, key: Path, *args: str, server_key: str | None = None) -> tuple[int, str]:
    result = _in_guest(
        lab,
        lab.inventory_path,
        "probe",
        "--key",
        str(key),
        "--server-key",
        server_key or _server_key(lab),
        *args,
    )
    return result.status, result.stdout + result.stderr


def _results(out: str) -> dict[str, Any]:
    return {r["target"]: r for r in json.loads(out)}


def test_every_gateway_and_the_vip_complete_a_real_handshake(
    lab: Lab, probe_key: tuple[Path, str]
) -> None:
    key, public = probe_key
    rc, out = _probe(lab, key, "--json")
    assert rc == 0, out
    results = _results(out)
    names = [g.name for g in lab.inventory.gateways]
    assert set(results) == {*names, "vip"}
    for name in names:
        assert results[name]["ok"], results[name]
        assert results[name]["address"] == str(
            next(g.real_server for g in lab.inventory.gateways if g.name == name)
        )
    assert results["vip"]["ok"], results["vip"]
    assert all(r["rtt_ms"] > 0 for r in results.values())
    # Each gateway took the initiation: the probe peer's endpoint is now the prober's address
    # (the LB forwards without changing the source). Its latest handshake stays 0: a
    # responder's session counts only once the initiator sends data, which a probe never
    # does, so probes never look like a client's handshakes.
    prober = next(c["wan"] for c in lab.meta["topology"]["clients"] if c["netns"] == PROBER_NETNS)
    for ns in _gateway_netns(lab).values():
        ends = lab.ns(ns, ["wg", "show", "wg0", "endpoints"])
        end = next(line.split()[1] for line in ends.splitlines() if line.startswith(public))
        assert end.rpartition(":")[0] == prober, ends
        shakes = lab.ns(ns, ["wg", "show", "wg0", "latest-handshakes"])
        assert f"{public}\t0" in shakes, shakes
    # Probed again at once: newer timestamps, so no probe is taken for a replay.
    rc, out = _probe(lab, key, "--json")
    assert rc == 0, out


def test_a_gateway_that_does_not_know_the_probe_or_its_key_is_down(
    lab: Lab, probe_key: tuple[Path, str]
) -> None:
    """As keepalived's MISC_CHECK sees it: exit 1 for a gateway whose WireGuard stays silent
    (it does not know the prober: it cannot tell the probe from a scanner; or the probe names
    another server key: mac1 fails), exit 0 for one that answers, nothing printed."""
    key, public = probe_key
    netns = _gateway_netns(lab)
    first, second = (g.name for g in lab.inventory.gateways)
    lab.ns(netns[first], ["wg", "set", "wg0", "peer", public, "remove"])
    try:
        assert _probe(lab, key, "--check", first) == (1, "")
        assert _probe(lab, key, "--check", second) == (0, "")
    finally:
        lab.ns(netns[first], ["wg", "set", "wg0", "peer", public])
    wrong = PrivateKey.generate().public_key()
    assert _probe(lab, key, "--check", second, server_key=wrong) == (1, "")


def _guest_inventory(lab: Lab) -> Path:
    """The lab's inventory as a machine inside the lab reads it (each host at its management
    address: the lab's 127.0.0.1 forwards are this machine's)."""
    return guest_guard.guest_inventory(lab.dir, lab.meta["topology"])


def test_the_exporter_probes_after_each_poll(lab: Lab, probe_key: tuple[Path, str]) -> None:
    """`wgconsole metrics --once` where a director or a bastion inside the network runs it:
    it polls every host over SSH, then probes each gateway and the VIP with the gateways'
    public key as the poll told it, and serves both."""
    key, _ = probe_key
    inventory = _guest_inventory(lab)
    result = _in_guest(
        lab,
        inventory,
        "--accept-new-host-keys",
        "--timeout",
        "60",
        # The poll's deadline follows the interval (two of them): the emulated guest's
        # python needs more than the default's to connect over SSH.
        "--interval",
        "30",
        "metrics",
        "--once",
        "--probe-key",
        str(key),
    )
    assert result.status == 0, result.stdout + result.stderr
    samples = {
        line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
        for line in result.stdout.splitlines()
        if line.startswith("wgconsole_")
    }
    names = [g.name for g in lab.inventory.gateways]
    for name in names:
        assert samples[f'wgconsole_host_up{{host="{name}",role="gateway"}}'] == 1
    for target in [*names, "vip"]:
        assert samples[f'wgconsole_probe_success{{target="{target}"}}'] == 1, result.stdout
        assert 0 < samples[f'wgconsole_probe_rtt_seconds{{target="{target}"}}'] < 1


CHECKED_PORT = 51281  # a virtual service of its own: the lab's service stays the lab's


def _keepalived_check_config(lab: Lab, script: Path) -> str:
    """A `virtual_server` whose real servers keepalived manages, each checked by
    `wgconsole probe --check` (as the README shows it): `alpha`, so each starts down and is
    up only once its check passed; `inhibit_on_failure`, so a failed one stays at weight 0
    (quiesced: its clients' entries stay; with sh-fallback new ones go elsewhere)."""
    servers = "".join(
        f"""
    real_server {g.real_server.address} {g.real_server.port} {{
        weight 1
        inhibit_on_failure
        MISC_CHECK {{
            misc_path "{script} {g.name}"
            misc_timeout 20
        }}
    }}"""
        for g in lab.inventory.gateways
    )
    return f"""virtual_server {lab.inventory.service.vip} {CHECKED_PORT} {{
    delay_loop 3
    lb_algo sh
    sh-fallback
    lb_kind NAT
    protocol UDP
    alpha{servers}
}}
"""


def _checked_weights(lab: Lab) -> dict[str, int]:
    table = lab.ns(
        "lb", ["ipvsadm", "-Ln", "-u", f"{lab.inventory.service.vip}:{CHECKED_PORT}"], check=False
    )
    by_address = {str(g.real_server): g.name for g in lab.inventory.gateways}
    weights = {}
    for line in table.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "->" and parts[1] in by_address:
            weights[by_address[parts[1]]] = int(parts[3])
    return weights


def test_keepalived_quiesces_a_gateway_whose_wireguard_stops_answering(
    lab: Lab, probe_key: tuple[Path, str]
) -> None:
    """Debian's keepalived on the LB with `wgconsole probe --check` as each real server's
    MISC_CHECK: both come up once checked, the one that stops completing handshakes (its
    prober peer removed: silence, as a dead WireGuard gives) goes to weight 0 while its host
    is up, and comes back when it answers again."""
    key, public = probe_key
    work = lab.dir / "keepalived-check"
    work.mkdir(exist_ok=True)
    script = work / "probe-check"
    script.write_text(
        "#!/bin/sh\n"
        f"cd {shlex.quote(os.getcwd())} || exit 1\n"
        f"exec {shlex.quote(sys.executable)} -m wgconsole -i {shlex.quote(str(lab.inventory_path))}"
        f' probe --check "$1" --key {shlex.quote(str(key))}'
        f" --server-key {_server_key(lab)}\n"
    )
    script.chmod(0o755)
    config = work / "keepalived.conf"
    config.write_text(_keepalived_check_config(lab, script))
    log = work / "keepalived.log"
    run = [
        "setsid",
        "/usr/sbin/keepalived",
        "--dont-fork",
        "--log-console",
        "--no-syslog",
        "--check",
        "-f",
        str(config),
        "-p",
        str(work / "keepalived.pid"),
        "-c",
        str(work / "checkers.pid"),
    ]
    lab.sh("ip netns exec lb " + shlex.join(run) + f" >{shlex.quote(str(log))} 2>&1 </dev/null &")
    first = lab.inventory.gateways[0].name
    netns = _gateway_netns(lab)
    try:
        names = {g.name for g in lab.inventory.gateways}
        eventually(
            lambda: _checked_weights(lab),
            timeout=120,
            what="keepalived's checks bring every gateway up",
            accept=lambda w: w == dict.fromkeys(names, 1),
        )
        # keepalived's own `sh-fallback` keyword sets the scheduler flag: weight 0 then
        # sends new clients elsewhere instead of dropping them.
        service = f"{lab.inventory.service.vip}:{CHECKED_PORT}"
        assert "sh-fallback" in lab.ns("lb", ["ipvsadm", "-Ln", "-u", service])
        lab.ns(netns[first], ["wg", "set", "wg0", "peer", public, "remove"])
        try:
            eventually(
                lambda: _checked_weights(lab),
                timeout=120,
                what=f"keepalived quiesces {first}",
                accept=lambda w: w == {**dict.fromkeys(names, 1), first: 0},
            )
        finally:
            lab.ns(netns[first], ["wg", "set", "wg0", "peer", public])
        eventually(
            lambda: _checked_weights(lab),
            timeout=120,
            what=f"keepalived returns {first}",
            accept=lambda w: w == dict.fromkeys(names, 1),
        )
    finally:
        lab.sh(
            f"kill $(cat {shlex.quote(str(work / 'keepalived.pid'))}) 2>/dev/null; sleep 1",
            check=False,
        )
        lab.ns(
            "lb",
            ["ipvsadm", "-D", "-u", f"{lab.inventory.service.vip}:{CHECKED_PORT}"],
            check=False,
        )
        print(log.read_text() if log.exists() else "no keepalived log")


def test_the_guard_dry_run_would_evict_only_the_silent_gateway(
    lab: Lab, probe_key: tuple[Path, str]
) -> None:
    """`guard --dry-run` from inside the network against the real gateways: the one that stops
    completing handshakes (its prober peer removed: silence, as a dead WireGuard gives) is the
    one it would evict, once its window is over; the one answering, never. Nothing changes."""
    key, public = probe_key
    netns = _gateway_netns(lab)
    first, second = (g.name for g in lab.inventory.gateways)
    before = lab.ns("lb", ["ipvsadm", "-Ln"])
    lab.ns(netns[first], ["wg", "set", "wg0", "peer", public, "remove"])
    try:
        result = _in_guest(
            lab,
            lab.inventory_path,
            "guard",
            "--dry-run",
            "--rounds",
            "8",
            "--key",
            str(key),
            "--server-key",
            _server_key(lab),
        )
    finally:
        lab.ns(netns[first], ["wg", "set", "wg0", "peer", public])
    assert result.status == 0, result.stdout + result.stderr
    evictions = [line for line in result.stdout.splitlines() if "would evict" in line]
    assert len(evictions) == 1, result.stdout
    assert f"would evict {first}: no handshake in 4 rounds while {second} answered" in evictions[0]
    assert "dry run: 1 eviction(s) would have been made; nothing was changed" in result.stdout
    assert lab.ns("lb", ["ipvsadm", "-Ln"]) == before


# --- the guard acting: evictions on the real kernel ------------------------------------------

BASTION_NETNS = guest_guard.BASTION_NETNS
LB_WAN = "10.77.1.1"
LB_LAN = "10.77.0.1"
_PING_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) received")
_PING_STAMP = re.compile(r"^\[([0-9.]+)\] \d+ bytes from", re.M)


@pytest.fixture
def bastion(lab: Lab) -> Iterator[str]:
    """A namespace on the clients' segment for the guard, as a bastion there would be (the
    LB routes it to the gateways' management and LAN addresses): cutting its link cuts the
    guard's network and nothing else."""
    guest_guard.add_bastion(lab.sh)
    try:
        yield BASTION_NETNS
    finally:
        lab.sh(f"ip netns del {BASTION_NETNS}", check=False)


class Guard:
    """`wgconsole guard` in the background inside the lab (stopped as systemd stops it:
    SIGTERM), its output in a file this machine reads."""

    def __init__(self, lab: Lab, key: Path, netns: str) -> None:
        self.runner = guest_guard.GuestGuard(
            lab.sh, lab.dir, _guest_inventory(lab), key, Path.cwd(), netns=netns, startup=180
        )

    def text(self) -> str:
        return self.runner.text()

    def stop(self) -> str:
        try:
            self.runner.stop()
        finally:
            print(self.text())
        assert _stopped(self.text()), "the guard did not stop on SIGTERM"
        return self.text()

    def audited(self) -> list[dict[str, Any]]:
        if not self.runner.audit.exists():
            return []
        return [json.loads(line) for line in self.runner.audit.read_text().splitlines()]


def _stopped(text: str) -> bool:
    return "guard stopped" in text


def _ping(lab: Lab, netns: str, count: int) -> Path:
    """A ping through `netns`'s tunnel every 0.2 s, in the background, into a file."""
    out = lab.dir / f"ping-{netns}.txt"
    out.unlink(missing_ok=True)
    lab.sh(
        f"ip netns exec {netns} ping -D -i 0.2 -c {count} -W 2 {TUNNEL_GATEWAY} "
        f">{out} 2>&1 </dev/null &"
    )
    return out


def _ping_summary(out: Path) -> tuple[int, int, float]:
    """(sent, received, longest time between two replies) of a finished ping."""
    text = eventually(
        out.read_text, timeout=120, what="ping ends", accept=lambda t: "transmitted" in t
    )
    sent, received = (int(x) for x in _PING_SUMMARY.findall(text)[0])
    stamps = [float(t) for t in _PING_STAMP.findall(text)]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    return sent, received, max(gaps, default=0.0)


def _fenced(lab: Lab) -> str:
    """The LB's fence table as nft lists it (empty: there is none)."""
    return lab.ns("lb", ["nft", "list", "table", "inet", "wgconsole"], check=False)


def _dropped(lab: Lab) -> int:
    """Packets the fence's IPv4 rule dropped, from its counter."""
    found = re.search(r"@fenced4 .* counter packets (\d+)", _fenced(lab))
    assert found is not None, _fenced(lab)
    return int(found.group(1))


def _record(lab: Lab, gateway: str) -> dict[str, Any]:
    text = lab.ns("lb", ["cat", f"/run/wgconsole/drain-{gateway}.json"])
    record: dict[str, Any] = json.loads(text)
    return record


def test_the_guard_evicts_only_a_death_and_its_fence_holds_the_return(
    lab: Lab, probe_key: tuple[Path, str], bastion: str
) -> None:
    """One guard, on a bastion of its own, through what is not a death and what is.

    1. Nothing is evicted when only a gateway's sshd stops, on a flap shorter than the window,
       or when the guard's own link drops (it is blind).
    2. A gateway host drops off every network while its clients ping through it: evicted,
       unattended; fenced and out of the service on the LB; its clients kicked back through
       the VIP via the other gateway; the other gateway's clients untouched.
    3. Back on the network with PersistentKeepalive to its old clients, it pulls none of them
       off the VIP (the fence drops what it sends); the guard sees it answer and takes its
       interface down; `undrain` is the way back.
    4. Guarded again, the other gateway's wg0 goes down with its host up: evicted too (its
       interface taken down, fenced), its clients moved; `undrain` brings it back.
    """
    key, public = probe_key
    clients = helpers.settle_clients(lab, timeout=150)
    holders = [c["lb_gateway"] for c in clients]
    dead = max(set(holders), key=holders.count)
    other = next(g.name for g in lab.inventory.gateways if g.name != dead)
    netns = _gateway_netns(lab)
    guard = Guard(lab, key, bastion)
    try:
        _holds_on_what_is_not_a_death(lab, guard, netns[dead], public)
        _evicted_and_fenced(lab, guard, dead, clients)
        _returns_fenced_then_undrained(lab, guard, dead, clients)
        _wg0_down_with_its_host_up_is_evicted(lab, guard, other)
    finally:
        guard.stop()
        # Back on the network and in the service, whatever happened above.
        lab.ns(netns[dead], ["sh", "-c", f"ip link set lan up && ip link set mgmt up && {ROUTE}"])
        helpers.start_sshd(lab, netns[dead])
        for name in (dead, other):
            if _weight(lab, name) != 1:
                run_cli(lab.inventory_path, "undrain", name, "--yes", "--no-rebalance")
    audited = guard.audited()
    assert [(e["action"], e["target"]) for e in audited if e["outcome"] == "ok"] == [
        ("evict", dead),
        ("evict-interface-down", dead),
        ("evict", other),
    ]
    # The guard saw each gateway answer again while the operator's undrain held the lock
    # (its interface re-created first): it was deferred, never undoing the undrain.
    for e in audited:
        if e["outcome"] != "ok":
            assert e["action"] == "evict-interface-down", e


ROUTE = f"ip route replace default via {LB_LAN}"


def _weight(lab: Lab, gateway: str) -> int | None:
    # A short deadline: a gateway that left the network costs the reading all of it.
    shown = json.loads(run_cli(lab.inventory_path, "status", "--json", "--timeout", "8").stdout)
    weight: int | None = {r["gateway"]: r["weight"] for r in shown["real_servers"]}.get(gateway)
    return weight


def _holds_on_what_is_not_a_death(lab: Lab, guard: Guard, ns: str, prober: str) -> None:
    # Its sshd gone for longer than the window: its WireGuard still answers.
    helpers.stop_sshd(lab, ns)
    time.sleep(4)
    helpers.start_sshd(lab, ns)
    # A flap shorter than the window (two rounds at most), in one guest command.
    lab.sh(
        f"ip netns exec {ns} wg set wg0 peer {prober} remove; sleep 0.6; "
        f"ip netns exec {ns} wg set wg0 peer {prober}"
    )
    # The guard's own link drops for longer than the window: every gateway silent at once.
    b = BASTION_NETNS
    lab.sh(
        f"ip -n {b} link set wan down; sleep 4; ip -n {b} link set wan up; "
        f"ip -n {b} route replace default via {LB_WAN}"
    )
    time.sleep(2)
    text = guard.text()
    assert "evicting" not in text, text
    assert "blind (no gateway answered this round" in text, text


def _evicted_and_fenced(lab: Lab, guard: Guard, dead: str, clients: list[dict[str, Any]]) -> None:
    netns = _gateway_netns(lab)
    moving = [c for c in clients if c["lb_gateway"] == dead]
    staying = [c for c in clients if c["lb_gateway"] != dead]
    client_ns = helpers.client_netns(lab)
    pings = {c["name"]: _ping(lab, client_ns[c["name"]], 150) for c in clients}
    time.sleep(2)
    cut = time.time()
    lab.ns(netns[dead], ["sh", "-c", "ip link set lan down; ip link set mgmt down"])
    _wait_for_eviction(guard, dead)
    print(f"{dead}: evicted {time.time() - cut:.1f} s after its host left the network")
    summaries = {name: _ping_summary(out) for name, out in pings.items()}
    print(summaries)
    for c in staying:
        sent, received, _ = summaries[c["name"]]
        assert received == sent, f"{c['name']} (on the other gateway) lost packets"
    for c in moving:
        sent, received, gap = summaries[c["name"]]
        print(f"{c['name']}: {sent - received} lost, longest gap {gap:.1f} s")
        assert received > 0
    # Out of service on the LB, fenced, recorded as the guard's. (`status` exits 2: the
    # gateway's host is still unreachable, a finding.)
    assert _weight(lab, dead) == 0
    assert _fence_of(lab, dead) in _fenced(lab)
    record = _record(lab, dead)
    assert (record["action"], record["fenced"]) == ("evict", True)
    assert "DOES NOT ANSWER" in guard.text()
    # Every moved client works through the VIP, on the other gateway.
    for c in moving:
        ns = client_ns[c["name"]]
        lab.ns(ns, ["ping", "-c", "2", "-W", "5", TUNNEL_GATEWAY])
        assert lab.ns(ns, ["wg", "show", "wg0", "endpoints"]).split()[1] == helpers.vip(lab)


def _wait_for_eviction(guard: Guard, gateway: str) -> None:
    eventually(
        guard.text,
        timeout=180,
        what=f"the guard evicts {gateway}",
        accept=lambda t: f"evict of {gateway} " in t or f"evict {gateway} FAILED" in t,
    )
    assert f"evict of {gateway} " in guard.text(), guard.text()


def _fence_of(lab: Lab, gateway: str) -> str:
    gw = next(g for g in lab.inventory.gateways if g.name == gateway)
    return f"{gw.real_server.address} . {gw.real_server.port}"


def _returns_fenced_then_undrained(
    lab: Lab, guard: Guard, dead: str, clients: list[dict[str, Any]]
) -> None:
    netns = _gateway_netns(lab)
    moving = [c for c in clients if c["lb_gateway"] == dead]
    client_ns = helpers.client_netns(lab)
    # Back on the network, talking first to its old clients (the lab's gateways keep them
    # alive every 15 s): a keepalive to each at once (`wg set` sends one when it turns
    # PersistentKeepalive on from off, not when it changes the interval), then every second,
    # from the same command that brings its links up (no guard can act in between)...
    keepalives = " && ".join(
        f"wg set wg0 peer {c['public_key']} persistent-keepalive off && "
        f"wg set wg0 peer {c['public_key']} persistent-keepalive 1"
        for c in moving
    )
    lab.ns(
        netns[dead],
        ["sh", "-c", f"ip link set lan up && ip link set mgmt up && {ROUTE} && {keepalives}"],
    )
    # ...it pulls none of them off the VIP: what it sent was dropped on the LB (within a
    # keepalive interval of its return; the guard, which takes its interface down next, needs
    # a probe round, a reading of every host and an SSH command for that).
    eventually(
        lambda: _dropped(lab),
        timeout=10,
        interval=0.2,
        what="the fence drops what the returned gateway sends",
        accept=lambda n: n > 0,
    )
    time.sleep(3)
    for c in moving:
        ns = client_ns[c["name"]]
        assert lab.ns(ns, ["wg", "show", "wg0", "endpoints"]).split()[1] == helpers.vip(lab)
        lab.ns(ns, ["ping", "-c", "1", "-W", "5", TUNNEL_GATEWAY])
    # The guard sees it answer its probes again (a handshake response gets through the
    # fence) and takes its interface down, as a drain would have.
    eventually(
        guard.text,
        timeout=120,
        what=f"the guard takes {dead}'s interface down",
        accept=lambda t: f"{dead} is back: wg0 taken down" in t,
    )
    link = lab.ns(netns[dead], ["ip", "-o", "link", "show", "dev", "wg0"])
    assert "UP" not in link.split(">")[0], link
    # undrain: its interface re-created (no old endpoints), the fence lifted, its weight back.
    res = run_cli(lab.inventory_path, "undrain", dead, "--yes", "--no-rebalance")
    print(res.stdout, res.stderr)
    assert res.returncode == 0, res.stdout + res.stderr
    assert _fence_of(lab, dead) not in _fenced(lab)
    assert _weight(lab, dead) == 1
    # (The prober's peer has one: the guard probes it.)
    listed = lab.ns(netns[dead], ["wg", "show", "wg0", "endpoints"])
    ends = dict(line.split() for line in listed.splitlines())
    assert all(ends[c["public_key"]] == "(none)" for c in clients), ends
    # The guard sees it back in the service (its next reading) and guards it again.
    eventually(
        guard.text,
        timeout=60,
        what=f"the guard guards {dead} again",
        accept=lambda t: f"{dead}: healthy" in t.rpartition(f"evict of {dead} ")[2],
    )


def _wg0_down_with_its_host_up_is_evicted(lab: Lab, guard: Guard, gateway: str) -> None:
    netns = _gateway_netns(lab)
    helpers.settle_clients(lab, timeout=150)
    lab.ns(netns[gateway], ["ip", "link", "set", "wg0", "down"])
    _wait_for_eviction(guard, gateway)
    assert _weight(lab, gateway) == 0
    assert _fence_of(lab, gateway) in _fenced(lab)
    # Every client works through the VIP, on the gateway evicted first and now back.
    for ns in helpers.client_netns(lab).values():
        lab.ns(ns, ["ping", "-c", "2", "-W", "5", TUNNEL_GATEWAY])
        assert lab.ns(ns, ["wg", "show", "wg0", "endpoints"]).split()[1] == helpers.vip(lab)
    res = run_cli(lab.inventory_path, "undrain", gateway, "--yes", "--no-rebalance")
    print(res.stdout, res.stderr)
    assert res.returncode == 0, res.stdout + res.stderr
    assert _fence_of(lab, gateway) not in _fenced(lab)
    link = lab.ns(netns[gateway], ["ip", "-o", "link", "show", "dev", "wg0"])
    assert "UP" in link.split(">")[0]
