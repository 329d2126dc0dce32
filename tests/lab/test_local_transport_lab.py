"""`host: local`: the netlink collector run inside the lab's LB and a gateway (real kernel)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from tests.lab.conftest import Lab
from wgconsole.core.records import GatewayObservation, LbObservation, ServiceFlag
from wgconsole.poll.collector import FleetCollector

pytestmark = pytest.mark.lab

DUMP = (
    "import dataclasses, json; from wgconsole.poll.transport.netlink import {fn}; "
    "print(json.dumps(dataclasses.asdict({fn}({args}))))"
)


def _in_guest(lab: Lab, netns: str, fn: str, args: str) -> dict:  # type: ignore[type-arg]
    code = DUMP.format(fn=fn, args=args)
    # pyroute2 takes ~10 s to import under emulation.
    out = lab.ns(netns, [sys.executable, "-c", code], timeout=300)
    data: dict = json.loads(out)  # type: ignore[type-arg]
    return data


def _ssh_observation(lab: Lab, name: str) -> LbObservation | GatewayObservation:
    collector = FleetCollector(lab.inventory)
    try:
        poll = collector.poll()
    finally:
        collector.close()
    obs = next(h.observation for h in poll.hosts if h.name == name)
    assert obs is not None
    return obs


def test_netlink_lb_reader_matches_ssh(lab: Lab) -> None:
    local = _in_guest(lab, "lb", "read_lb", "'wg-lb'")
    remote = _ssh_observation(lab, "wg-lb")
    assert isinstance(remote, LbObservation)
    vip = (str(lab.meta["vip"]), lab.meta["port"])
    lsvc = next(s for s in local["services"] if (s["vip"]["address"], s["vip"]["port"]) == vip)
    rsvc = next(s for s in remote.services if (s.vip.address, s.vip.port) == vip)
    assert lsvc["protocol"] == rsvc.protocol == "udp"
    assert lsvc["scheduler"] == rsvc.scheduler == "sh"
    # netlink also reports the internal HASHED bit, which ipvsadm never prints.
    assert lsvc["flags"] & ~ServiceFlag.HASHED == rsvc.flags
    assert [(d["endpoint"]["address"], d["endpoint"]["port"]) for d in lsvc["dests"]] == [
        (d.endpoint.address, d.endpoint.port) for d in rsvc.dests
    ]
    assert [(d["weight"], d["forward"]) for d in lsvc["dests"]] == [
        (d.weight, d.forward) for d in rsvc.dests
    ]
    assert all(d["forward"] == "masq" for d in lsvc["dests"])
    # Counters only grow: netlink's reading came first.
    for ld, rd in zip(lsvc["dests"], rsvc.dests, strict=True):
        assert 0 < ld["in_packets"] <= rd.in_packets or ld["in_packets"] == rd.in_packets == 0
    assert local["expire_nodest_conn"] is remote.expire_nodest_conn is False
    clients = {f"10.77.1.{10 + j}" for j in range(len(lab.inventory.clients))}
    lconns = {
        (c["client"]["address"], c["dest"]["address"])
        for c in local["conns"]
        if c["client"]["address"] in clients
    }
    rconns = {
        (c.client.address, c.dest.address) for c in remote.conns if c.client.address in clients
    }
    assert lconns == rconns
    assert len(lconns) == len(clients)


def test_netlink_gateway_reader_matches_ssh(lab: Lab) -> None:
    local = _in_guest(lab, "gw1", "read_gateway", "'wg-gateway-01', 'wg0'")
    remote = _ssh_observation(lab, "wg-gateway-01")
    assert isinstance(remote, GatewayObservation)
    assert remote.interface is not None
    assert local["link_up"] is remote.link_up is True
    li = local["interface"]
    assert li["public_key"] == remote.interface.public_key == lab.meta["gateway_public_key"]
    assert li["listen_port"] == remote.interface.listen_port == lab.meta["port"]
    assert "private" not in json.dumps(local).lower()
    lpeers = {p["public_key"]: p for p in li["peers"]}
    rpeers = {p.public_key: p for p in remote.interface.peers}
    assert set(lpeers) == set(rpeers) == set(lab.meta["client_public_keys"].values())
    for key, rp in rpeers.items():
        lp = lpeers[key]
        assert tuple(lp["allowed_ips"]) == rp.allowed_ips
        assert lp["keepalive"] == rp.keepalive == 15
        assert (lp["endpoint"] is None) == (rp.endpoint is None)
        if rp.endpoint is not None:
            assert (lp["endpoint"]["address"], lp["endpoint"]["port"]) == (
                rp.endpoint.address,
                rp.endpoint.port,
            )
        # A rekey may fall between the two reads (every ~2 minutes): never older, at most newer.
        assert lp["latest_handshake"] <= rp.latest_handshake <= lp["latest_handshake"] + 180


def test_status_run_on_the_lb_itself_with_host_local(lab: Lab, tmp_path: Path) -> None:
    """The whole CLI on the LB: IPVS over netlink, gateways over SSH on the management segment."""
    topo = lab.meta["topology"]
    assert isinstance(topo, dict)
    known = []
    inv_lines = lab.inventory_path.read_text().splitlines()
    out_lines = []
    for line in inv_lines:
        if "name: wg-lb," in line:
            line = "  - {name: wg-lb, host: local}"
        for gw in topo["gateways"]:
            if f"name: {gw['name']}," in line:
                line = (
                    f"  - {{name: {gw['name']}, host: {gw['mgmt']}, port: 22, "
                    f"real_server: {gw['lan']}:{lab.meta['port']}}}"
                )
                pub = (lab.dir / "hostkeys" / f"{gw['netns']}.pub").read_text().split()
                known.append(f"{gw['mgmt']} {pub[0]} {pub[1]}")
        out_lines.append(line)
    kh = lab.dir / "known_hosts.mgmt"  # the guest reads the lab directory over 9p
    kh.write_text("\n".join(known) + "\n")
    inv = lab.dir / "inventory.local.yaml"
    inv.write_text(
        "\n".join(out_lines).replace(f"known_hosts: {lab.dir}/known_hosts", f"known_hosts: {kh}")
        + "\n"
    )
    cmd = f"{shlex.quote(sys.executable)} -m wgconsole -i {shlex.quote(str(inv))} status --json"
    out = lab.ns("lb", ["sh", "-c", cmd], timeout=600)
    data = json.loads(out)
    assert all(h["reachable"] for h in data["hosts"]), data["hosts"]
    assert data["service"]["vip"] == lab.meta["vip"]
    assert {r["gateway"] for r in data["real_servers"]} == {g["name"] for g in topo["gateways"]}
    assert all(c["lb_gateway"] and c["handshake_gateway"] for c in data["clients"])
