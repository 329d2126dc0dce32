"""`wgconsole status --json` on the real kernel, compared with ipvsadm, /proc and wg in the lab."""

from __future__ import annotations

import json
import re

import pytest

from tests.lab.conftest import Lab
from tests.lab.helpers import (
    cli_json,
    endpoints,
    eventually,
    handshakes,
    kernel_conns,
    kernel_dests,
    run_cli,
)

pytestmark = pytest.mark.lab


def _wait_for_handshakes(lab: Lab) -> None:
    """The lab's clients ping once at boot; make sure every client has shaken hands."""

    def latest() -> dict[str, int]:
        _, latest1 = handshakes(lab, "gw1")
        _, latest2 = handshakes(lab, "gw2")
        return {k: max(latest1.get(k, 0), latest2.get(k, 0)) for k in set(latest1) | set(latest2)}

    eventually(
        latest,
        accept=lambda ts: bool(ts) and all(t > 0 for t in ts.values()),
        timeout=60,
        interval=2,
        what="every lab client shook hands",
    )


HandshakeState = dict[str, tuple[float, dict[str, int]]]


def _handshake_state(lab: Lab) -> HandshakeState:
    """Each gateway's clock and latest handshakes, read directly."""
    return {
        gw.name: handshakes(lab, ns)
        for gw, ns in zip(lab.inventory.gateways, ("gw1", "gw2"), strict=True)
    }


def _ages(state: HandshakeState, key: str) -> dict[str, float]:
    return {
        name: clock - latest[key]
        for name, (clock, latest) in state.items()
        if latest.get(key, 0) > 0
    }


def _age_agrees(
    ours: float | None,
    before: tuple[float, dict[str, int]],
    after: tuple[float, dict[str, int]],
    key: str,
) -> bool:
    """Our age, taken on the gateway's clock between two direct reads, fits between them.

    A rekey may fall between the reads: then our poll saw either the old handshake (its age
    grown by at most the time between the reads) or the new one.
    """
    (clock_b, latest_b), (clock_a, latest_a) = before, after
    if ours is None:  # polled before its first handshake
        return latest_b.get(key, 0) == 0
    age_b, age_a = clock_b - latest_b[key], clock_a - latest_a[key]
    slack = 1.0
    if latest_b[key] == latest_a[key]:
        return age_b - slack <= ours <= age_a + slack
    old = age_b - slack <= ours <= age_b + (clock_a - clock_b) + slack
    return old or -slack <= ours <= age_a + slack


def test_status_json_agrees_with_kernel(lab: Lab) -> None:
    _wait_for_handshakes(lab)
    before = _handshake_state(lab)
    data = cli_json(lab.inventory_path, "status")
    vip = f"{lab.meta['vip']}:{lab.meta['port']}"

    # The service, as the kernel has it.
    svc = data["service"]
    assert (svc["vip"], svc["port"], svc["protocol"], svc["scheduler"]) == (
        lab.meta["vip"],
        lab.meta["port"],
        "udp",
        "sh",
    )
    # ipvsadm prints the sh flags after the scheduler, e.g. "UDP  VIP:PORT sh (sh-fallback)".
    listing = lab.ns("lb", ["ipvsadm", "-Ln", "-u", vip]).splitlines()
    head = next(line for line in listing if line.startswith("UDP"))
    kernel_flags = re.findall(r"sh-fallback|sh-port", head)
    assert svc["flags"] == kernel_flags
    expire = lab.ns("lb", ["cat", "/proc/sys/net/ipv4/vs/expire_nodest_conn"]).strip() == "1"
    assert svc["expire_nodest_conn"] is expire

    # Real servers: same addresses and weights, in the kernel's order (newest first).
    dests = kernel_dests(lab, vip)
    ours = sorted(
        (r for r in data["real_servers"] if r["kernel_index"] is not None),
        key=lambda r: r["kernel_index"],
    )
    assert [(r["address"], r["weight"]) for r in ours] == dests
    conns = kernel_conns(lab)
    by_dest: dict[str, int] = {}
    for c in conns:
        if c.virtual == vip:
            by_dest[c.dest] = by_dest.get(c.dest, 0) + 1
    names = {
        gw.real_server.address + ":" + str(gw.real_server.port): gw.name
        for gw in lab.inventory.gateways
    }
    for r in ours:
        assert r["gateway"] == names[r["address"]]
        assert r["connections"] == by_dest.get(r["address"], 0)

    # Clients: handshake ages on each gateway's own clock, and the LB entry's gateway.
    after = _handshake_state(lab)
    gw_endpoints = {
        gw.name: endpoints(lab, ns)
        for gw, ns in zip(lab.inventory.gateways, ("gw1", "gw2"), strict=True)
    }
    clients = {c["public_key"]: c for c in data["clients"]}
    assert set(clients) == set(lab.meta["client_public_keys"].values())
    for key, c in clients.items():
        ages_b, ages_a = _ages(before, key), _ages(after, key)
        assert ages_a, f"{c['name']} has no handshake on any gateway"
        freshest = {min(ages, key=lambda n: ages[n]) for ages in (ages_b, ages_a) if ages}
        assert c["handshake_gateway"] in freshest
        for name in ages_a:
            ours = c["gateways"][name]["handshake_age"]
            assert _age_agrees(ours, before[name], after[name], key), (name, ours, ages_b, ages_a)
        freshest_name = c["handshake_gateway"]
        endpoint = gw_endpoints[freshest_name][key]
        assert c["endpoint"] == endpoint
        entry = [k for k in conns if k.client == endpoint and k.virtual == vip]
        assert len(entry) == 1, f"LB entries for {endpoint}: {entry}"
        assert c["lb_gateway"] == names[entry[0].dest]
        # The clients talk through the VIP: no bypass, no split, not stale.
        assert c["status"] == "fresh"
        assert not {"bypassing-lb", "split", "stale", "never"} & set(c["findings"])

    hosts = {h["name"]: h for h in data["hosts"]}
    assert set(hosts) == {h.name for h in lab.inventory.hosts}
    assert all(h["reachable"] and h["error"] is None for h in hosts.values())
    codes = {f["code"] for f in data["findings"]}
    # The seed's LB has no sh-fallback and expire_nodest_conn=0 (a drain fixes both).
    assert ("sh-no-fallback" in codes) is ("sh-fallback" not in kernel_flags)
    assert ("expire-nodest-off" in codes) is (not expire)
    assert "config-drift" not in codes
    assert "host-unreachable" not in codes


def test_status_human_output_names_everything(lab: Lab) -> None:
    res = run_cli(lab.inventory_path, "status")
    assert res.returncode == 0, res.stderr
    for host in lab.inventory.hosts:
        assert host.name in res.stdout
    for client in lab.inventory.clients:
        assert client.name in res.stdout
    assert "real servers" in res.stdout
    assert "findings" in res.stdout


def test_status_with_an_unreachable_host_exits_2_and_reports_the_rest(lab: Lab, tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = lab.inventory_path.read_text()
    # A third gateway whose SSH port nobody listens on (127.0.0.1 only).
    extra = "  - {name: wg-gateway-99, host: 127.0.0.1, port: 9, real_server: 10.77.0.99:51280}\n"
    text = text.replace("tunnel:", extra + "tunnel:", 1)
    inv = tmp_path / "inventory.yaml"
    inv.write_text(text)
    res = run_cli(inv, "status", "--json")
    assert res.returncode == 2, res.stderr
    data = json.loads(res.stdout)
    hosts = {h["name"]: h for h in data["hosts"]}
    assert hosts["wg-gateway-99"]["reachable"] is False
    assert hosts["wg-gateway-99"]["error"]
    assert all(h["reachable"] for n, h in hosts.items() if n != "wg-gateway-99")
    codes = {(f["code"], f["subject"]) for f in data["findings"]}
    assert ("host-unreachable", "wg-gateway-99") in codes
    assert any(code == "real-server-missing" for code, _ in codes)
    assert len(data["clients"]) == len(lab.inventory.clients)
    assert all(c["handshake_gateway"] for c in data["clients"])


def test_status_refuses_unknown_host_keys(lab: Lab, tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = lab.inventory_path.read_text()
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    text = text.replace(str(lab.dir / "known_hosts"), str(empty))
    inv = tmp_path / "inventory.yaml"
    inv.write_text(text)
    res = run_cli(inv, "status", "--json")
    assert res.returncode == 2
    data = json.loads(res.stdout)
    assert all(not h["reachable"] for h in data["hosts"])
    assert all("host key" in (h["error"] or "") for h in data["hosts"])
    # With the explicit flag the keys are recorded and the next run is trusted.
    res = run_cli(inv, "--accept-new-host-keys", "status", "--json")
    assert res.returncode == 0, res.stderr
    assert len(empty.read_text().splitlines()) == len(lab.inventory.hosts)
    res = run_cli(inv, "status", "--json")
    assert res.returncode == 0, res.stderr
