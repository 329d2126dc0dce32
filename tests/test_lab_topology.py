"""The lab's topology and generated files, without booting it: the single LB exactly as it
was, and the director pair (`lab up --lbs 2`) consistent in every address, port and file."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from pathlib import Path

import pytest

from wgconsole.cli.main import _parser
from wgconsole.config.inventory_file import load_inventory
from wgconsole.lab import guest_script, manager
from wgconsole.lab.topology import (
    LB_LAN,
    LB_WAN,
    MGMT_ROOT,
    SYNC_ID,
    VIP,
    VRRP_ROUTER_ID,
    Topology,
    build_topology,
    topology_dict,
)

LAB = Path("/var/lib/x")

# sha256 of the single-LB lab's files as the code made them before the director pair existed
# (guest script, inventory, topology record, QEMU argv, wg0 bodies): every lab test depends on
# that lab, so the pair must not change one byte of it.
SINGLE_LB_DIGESTS = {
    (2, 2, 2220): "da250231befd416179b747ebcbeecbd77632f3f0c221c4284f8fa82c0f34baa9",
    (3, 5, 2320): "9937f75dfee3f2e69132de7f441e3c109a736fbd8d7d4802960a857fc9d5a1a5",
    (1, 0, 2420): "c5ba822200be69fadd63b4607392b6fecec1bb549095d5c19c1b19f3d1f74a1a",
}


def _files(topo: Topology) -> str:
    keys = {cl.name: f"K{cl.name}" for cl in topo.clients}
    return (
        guest_script.render_guest_script(topo, LAB)
        + "\n=====\n"
        + manager._inventory_yaml(topo, LAB, keys)
        + "\n=====\n"
        + json.dumps(topology_dict(topo), indent=2)
        + "\n=====\n"
        + " ".join(manager._qemu_argv(LAB, topo, "6.1"))
        + guest_script.gateway_body(topo, keys)
        + guest_script.client_peer("G")
    )


@pytest.mark.parametrize("shape", sorted(SINGLE_LB_DIGESTS))
def test_the_single_lb_lab_is_byte_for_byte_as_before(
    shape: tuple[int, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where the checkout lives adds bind mounts to the script; the digests were taken without.
    monkeypatch.setattr(guest_script, "_expose_hidden_paths", lambda: "")
    gateways, clients, port = shape
    text = _files(build_topology(gateways, clients, port))
    assert hashlib.sha256(text.encode()).hexdigest() == SINGLE_LB_DIGESTS[shape]
    assert build_topology(gateways, clients, port) == build_topology(gateways, clients, port, 1)


def test_lbs_other_than_one_or_two_are_refused() -> None:
    for lbs in (0, 3):
        with pytest.raises(ValueError, match="lbs must be 1"):
            build_topology(lbs=lbs)


def test_the_pairs_hosts_have_distinct_ports_and_addresses() -> None:
    topo = build_topology(2, 3, 2620, lbs=2)
    master, backup = topo.directors
    assert (master.name, backup.name) == ("wg-lb-1", "wg-lb-2")
    assert (master.initial_state, backup.initial_state) == ("MASTER", "BACKUP")
    assert master.priority > backup.priority
    assert topo.load_balancers == (master, backup)
    ports = [topo.control_port, *(h.ssh_port for h in topo.ssh_hosts)]
    assert ports == list(range(2620, 2620 + len(ports)))
    # Each segment: the shared VRRP address, each director's own, and the other hosts'.
    lan = [LB_LAN, master.lan, backup.lan, *(g.lan for g in topo.gateways)]
    wan = [LB_WAN, master.wan, backup.wan, *(c.wan for c in topo.clients)]
    mgmt = [MGMT_ROOT, *(h.mgmt for h in topo.ssh_hosts)]
    for segment, prefix in ((lan, "10.77.0.0/24"), (wan, "10.77.1.0/24"), (mgmt, "10.78.0.0/24")):
        assert len(set(segment)) == len(segment)
        assert all(ipaddress.ip_address(a) in ipaddress.ip_network(prefix) for a in segment)


def test_each_director_gets_the_same_service_in_the_same_order() -> None:
    topo = build_topology(3, 2, 2620, lbs=2)
    script = guest_script.render_guest_script(topo, LAB)
    adds = {
        ns: re.findall(rf"^ip netns exec {ns} ipvsadm -([Aa] .*)$", script, re.M)
        for ns in ("lb1", "lb2")
    }
    assert adds["lb1"] == adds["lb2"]
    assert adds["lb1"][0] == f"A -u {VIP}:51280 -s sh"
    assert [a.split()[4] for a in adds["lb1"][1:]] == [g.real_server for g in topo.gateways]
    # The shared addresses are keepalived's alone: no director is given them by the script.
    single = guest_script.render_guest_script(build_topology(3, 2, 2620), LAB)
    for shared in (VIP, LB_LAN, LB_WAN):
        given = rf"(addr add|attach \S+ \S+) {re.escape(shared)}/"
        assert re.search(given, single)
        assert not re.search(given, script)
    assert "ip link set br-lan type bridge mcast_snooping 0" in script


def test_keepalived_and_sshd_share_a_private_tmp_per_director() -> None:
    topo = build_topology(2, 2, 2620, lbs=2)
    script = guest_script.render_guest_script(topo, LAB)
    pid_files: set[str] = set()
    for d in topo.directors:
        start = guest_script.director_start_command(LAB, d)
        assert start in script
        assert start.startswith(f"ip netns exec {d.netns} sh -c ")
        inner = start.split(" sh -c ", 1)[1]
        assert inner.index("mount -t tmpfs") < inner.index("keepalived") < inner.index("sshd")
        assert f"/keepalived/{d.netns}.conf" in inner
        pid_files |= set(guest_script.keepalived_pid_files(d).values())
    assert len(pid_files) == 8


def test_keepalived_configs_hold_every_shared_address_in_one_instance() -> None:
    topo = build_topology(2, 2, 2620, lbs=2)
    configs = [guest_script.keepalived_config(topo, d) for d in topo.directors]
    for d, conf in zip(topo.directors, configs, strict=True):
        assert re.findall(r"^    state (\w+)$", conf, re.M) == [d.initial_state]
        assert re.findall(r"^    priority (\d+)$", conf, re.M) == [str(d.priority)]
        assert f"    virtual_router_id {VRRP_ROUTER_ID}\n" in conf
        assert "    advert_int 1\n" in conf
        assert f"lvs_sync_daemon lan VI_WG id {SYNC_ID}\n" in conf
        assert conf.count("vrrp_instance ") == 1
        assert "virtual_server" not in conf
        for line in (f"{VIP}/32 dev lo", f"{LB_LAN}/24 dev lan", f"{LB_WAN}/24 dev wan"):
            assert f"        {line}\n" in conf
    # Only the identity and the priority differ between the two.
    differing = [(a, b) for a, b in zip(*(c.splitlines() for c in configs), strict=True) if a != b]
    assert [a.split()[0] for a, _ in differing] == ["#", "router_id", "state", "priority"]


def test_the_pairs_lab_directory_records_who_is_who(tmp_path: Path) -> None:
    topo = build_topology(2, 2, 2620, lbs=2)
    manager._prepare(tmp_path, topo)
    inventory = load_inventory(tmp_path / "inventory.yaml")
    assert [(h.name, h.ssh.port) for h in inventory.load_balancers] == [
        ("wg-lb-1", 2621),
        ("wg-lb-2", 2622),
    ]
    assert [g.ssh.port for g in inventory.gateways] == [2623, 2624]
    meta = json.loads((tmp_path / "topology.json").read_text())
    pair = meta["director_pair"]
    assert pair["master"] == "wg-lb-1"
    assert pair["virtual_addresses"] == {"vip": VIP, "lan": LB_LAN, "wan": LB_WAN}
    assert (pair["sync_interface"], pair["syncid"]) == ("lan", SYNC_ID)
    assert [d["name"] for d in pair["directors"]] == ["wg-lb-1", "wg-lb-2"]
    for d, director in zip(pair["directors"], topo.directors, strict=True):
        conf = Path(d["keepalived_conf"])
        assert conf.parent == tmp_path / "keepalived"
        assert conf.read_text() == guest_script.keepalived_config(topo, director)
        assert d["keepalived_start"] == guest_script.keepalived_command(tmp_path, director)
    assert meta["topology"]["backup_lbs"][0]["name"] == "wg-lb-2"
    # The lab's script is the one written.
    assert (tmp_path / "guest.sh").read_text() == guest_script.render_guest_script(topo, tmp_path)


def test_the_single_lbs_lab_directory_has_no_pair_record(tmp_path: Path) -> None:
    manager._prepare(tmp_path, build_topology(2, 2, 2620))
    meta = json.loads((tmp_path / "topology.json").read_text())
    assert "director_pair" not in meta
    assert "backup_lbs" not in meta["topology"]
    assert not (tmp_path / "keepalived").exists()
    assert [h.name for h in load_inventory(tmp_path / "inventory.yaml").load_balancers] == ["wg-lb"]


def test_lab_up_takes_lbs_one_or_two() -> None:
    parser = _parser()
    assert parser.parse_args(["lab", "up"]).lbs == 1
    assert parser.parse_args(["lab", "up", "--lbs", "2"]).lbs == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["lab", "up", "--lbs", "3"])


def test_keepalived_is_one_of_the_labs_packages() -> None:
    assert manager.PACKAGES["keepalived"] == "keepalived"
