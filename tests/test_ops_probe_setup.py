"""`wgconsole probe setup` against the fake gateways of the peer tests (sh running the real
edit scripts on temp files, a fake `wg` keeping its state in JSON): the prober's peer without
AllowedIPs everywhere or nowhere, its private key in its key file alone, idempotent, finishing
what an interrupted setup left.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.test_ops_peers import FAKE_GW_PRIVATE, GW_CONF, NEWKEY, Rig, gateway_obs, make_rig
from wgconsole.config.inventory_file import load_inventory
from wgconsole.config.probe_key import read_probe_key, write_probe_key
from wgconsole.core.fleet import Fleet
from wgconsole.core.fleet_builder import build_fleet
from wgconsole.core.inventory import Probe
from wgconsole.core.keys import PrivateKey
from wgconsole.core.records import HostStatus
from wgconsole.ops.hostcmd import wgconf
from wgconsole.ops.machinery.errors import OpError, ValidationError
from wgconsole.ops.procedures.peers.plan import plan_peer_remove
from wgconsole.ops.procedures.peers.probe import execute_probe_setup, plan_probe_setup
from wgconsole.ops.procedures.peers.remove import execute_peer_remove


def _fleet(rig: Rig) -> Fleet:
    """The fleet as the inventory on disk now sees it (a probe recorded is no client)."""
    inventory = load_inventory(rig.inventory.path)
    obs = {
        name: gateway_obs(name, {k: (tuple(p["ips"]), int(p["ka"])) for k, p in g.peers().items()})
        for name, g in rig.gateways.items()
    }
    hosts = [HostStatus(n, "gateway", reachable=True) for n in obs]
    return build_fleet(inventory, {}, dict(obs), hosts, 1000.0)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path)


def _mutations(rig: Rig) -> list[str]:
    return [c for g in rig.gateways.values() for c, mutating in g.commands if mutating]


def test_a_new_prober_everywhere_with_its_key_in_its_file_alone(rig: Rig, tmp_path: Path) -> None:
    key_file = tmp_path / "state" / "probe.key"
    plan = plan_probe_setup(rig.inventory, rig.fleet(), "probe-bastion", key_file)
    assert plan.public_key is None
    assert any("written to" in line and "nowhere else" in line for line in plan.describe())
    result = execute_probe_setup(rig.ctx, plan)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    private = read_probe_key(key_file)
    public = private.public_key()
    assert result.public_key == public
    assert result.changed == ("wg-gateway-01", "wg-gateway-02")
    for gw in rig.inventory.gateways:
        # No AllowedIPs (it routes nothing), no keepalive (the gateway never talks first).
        assert rig.gateways[gw.name].peers()[public] == {"ips": [], "ka": 0}
        text = Path(gw.config).read_text()
        block = text[text.index("# probe-bastion") :]
        assert block == f"# probe-bastion\nPublicKey = {public}\n"
        assert text.startswith(GW_CONF.rstrip("\n"))
    inventory = load_inventory(rig.inventory.path)
    assert inventory.probes == (Probe("probe-bastion", public),)
    assert inventory.clients == rig.inventory.clients
    [entry] = rig.audit.entries()
    assert (entry["action"], entry["target"], entry["outcome"]) == (
        "probe setup",
        "probe-bastion",
        "ok",
    )
    secret = private.reveal()
    everywhere = [
        rig.all_output(),
        (tmp_path / "audit.jsonl").read_text(),
        (tmp_path / "inventory.yaml").read_text(),
        repr(result),
        "\n".join(result.summary()),
        "\n".join(p.text for p in rig.progress),
        "\n".join(_mutations(rig)),
    ]
    assert all(secret not in t and FAKE_GW_PRIVATE not in t for t in everywhere)
    # The recorded prober is not a client: no row, no unknown peer, no drift.
    fleet = _fleet(rig)
    assert public not in {c.public_key for c in fleet.clients}


def test_set_up_again_changes_nothing_and_an_interrupted_setup_is_finished(
    rig: Rig, tmp_path: Path
) -> None:
    key_file = tmp_path / "probe.key"
    first = execute_probe_setup(
        rig.ctx, plan_probe_setup(rig.inventory, rig.fleet(), "probe-bastion", key_file)
    )
    configs = {gw.name: Path(gw.config).read_text() for gw in rig.inventory.gateways}
    inventory_text = Path(rig.inventory.path).read_text()
    for g in rig.gateways.values():
        g.commands.clear()
    inventory = load_inventory(rig.inventory.path)
    again = plan_probe_setup(inventory, _fleet(rig), "probe-bastion", key_file)
    assert again.public_key == first.public_key
    assert again.in_inventory
    result = execute_probe_setup(rig.ctx, again)
    assert result.changed == ()
    assert not result.key_made
    assert _mutations(rig) == []
    assert {gw.name: Path(gw.config).read_text() for gw in rig.inventory.gateways} == configs
    assert Path(rig.inventory.path).read_text() == inventory_text
    # A setup cut short: the live peer gone from one gateway. Only that is redone.
    gw2 = rig.inventory.gateways[1]
    rig.gateways[gw2.name].run(wgconf.live_remove_command(gw2, first.public_key), 5)
    result = execute_probe_setup(
        rig.ctx, plan_probe_setup(inventory, _fleet(rig), "probe-bastion", key_file)
    )
    assert result.changed == (gw2.name,)
    assert rig.gateways[gw2.name].peers()[first.public_key] == {"ips": [], "ka": 0}
    assert Path(gw2.config).read_text() == configs[gw2.name]
    assert [e["outcome"] for e in rig.audit.entries()] == ["ok", "ok", "ok"]


def test_a_key_that_is_a_client_s_peer_is_refused_before_any_change(
    rig: Rig, tmp_path: Path
) -> None:
    key_file = tmp_path / "probe.key"
    private = PrivateKey.generate()
    write_probe_key(key_file, private)
    gw1 = rig.inventory.gateways[0]
    routed = wgconf.live_set_command(gw1, private.public_key(), ["10.255.0.77/32"], 0)
    rig.gateways[gw1.name].run(routed, 5)
    before = rig.snapshot()
    plan = plan_probe_setup(rig.inventory, rig.fleet(), "probe-bastion", key_file)
    with pytest.raises(OpError, match=r"nothing was changed: wg-gateway-01: .* not a prober's"):
        execute_probe_setup(rig.ctx, plan)
    assert rig.snapshot() == before
    [entry] = rig.audit.entries()
    assert (entry["action"], entry["outcome"]) == ("probe setup", "failed")


def test_a_failure_on_the_second_gateway_rolls_back_and_drops_the_new_key(
    rig: Rig, tmp_path: Path
) -> None:
    before = rig.snapshot()
    gw2 = rig.inventory.gateways[1]
    rig.gateways[gw2.name].fail_when = lambda c: "make_backup" in c and gw2.config in c
    key_file = tmp_path / "probe.key"
    plan = plan_probe_setup(rig.inventory, rig.fleet(), "probe-bastion", key_file)
    with pytest.raises(OpError, match="Every gateway is back as it was"):
        execute_probe_setup(rig.ctx, plan)
    assert rig.snapshot() == before
    assert not key_file.exists()  # its key is on no gateway
    assert load_inventory(rig.inventory.path).probes == ()


def test_refusals_in_the_plan(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    other = tmp_path / "other.key"
    write_probe_key(other, PrivateKey.generate())
    execute_probe_setup(
        rig.ctx, plan_probe_setup(rig.inventory, rig.fleet(), "probe-bastion", other)
    )
    inventory = load_inventory(rig.inventory.path)
    # Another machine's prober of that name (or its key file lost): never taken over.
    mine = tmp_path / "mine.key"
    with pytest.raises(ValidationError, match="has another key"):
        plan_probe_setup(inventory, _fleet(rig), "probe-bastion", mine)
    with pytest.raises(ValidationError, match="already an inventory client"):
        plan_probe_setup(inventory, _fleet(rig), "alpha", mine)
    with pytest.raises(ValidationError, match="already the inventory's prober"):
        plan_probe_setup(inventory, _fleet(rig), "probe-other", other)
    unsafe = tmp_path / "unsafe.key"
    write_probe_key(unsafe, PrivateKey.generate())
    unsafe.chmod(0o644)
    with pytest.raises(ValidationError, match="chmod 600"):
        plan_probe_setup(inventory, _fleet(rig), "probe-x", unsafe)
    assert NEWKEY not in Path(rig.inventory.path).read_text()


def test_peer_remove_takes_a_prober_off_every_gateway_and_out_of_probes(
    rig: Rig, tmp_path: Path
) -> None:
    key_file = tmp_path / "probe.key"
    made = execute_probe_setup(
        rig.ctx, plan_probe_setup(rig.inventory, rig.fleet(), "probe-bastion", key_file)
    )
    inventory = load_inventory(rig.inventory.path)
    plan = plan_peer_remove(inventory, _fleet(rig), "probe-bastion")
    assert plan.present_on == ("wg-gateway-01", "wg-gateway-02")
    assert plan.section == "probes"
    assert any("`probes:`" in line for line in plan.describe())
    execute_peer_remove(rig.ctx, plan)
    for gw in rig.inventory.gateways:
        assert made.public_key not in rig.gateways[gw.name].peers()
        assert Path(gw.config).read_text() == GW_CONF
    after = load_inventory(rig.inventory.path)
    assert after.probes == ()
    assert after.clients == rig.inventory.clients
