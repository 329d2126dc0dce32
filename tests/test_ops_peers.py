"""Adding and removing peers: plans, keys, client configs, the gateway-side edit scripts (run
for real with sh on temp files), the inventory edit, and whole executions against fake
gateways (sh + a fake `wg` that keeps its state in a JSON file) including a forced rollback.

Private keys here are test keys; `FAKE_GW_PRIVATE` stands for a gateway's private key in its
config file and must never come back out of any command.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from wgconsole.config.inventory_edit import (
    InventoryEditError,
    add_client,
    delete_client_text,
    insert_client_text,
    remove_client,
)
from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.fleet import Fleet
from wgconsole.core.fleet_builder import build_fleet
from wgconsole.core.inventory import Client, Inventory
from wgconsole.core.keys import KeyPair, PrivateKey
from wgconsole.core.records import GatewayObservation, HostStatus, WgInterface, WgPeer
from wgconsole.ops.hostcmd import wgconf
from wgconsole.ops.hostcmd.clientconf import ClientConfig, build_client_config, print_qr
from wgconsole.ops.machinery.audit import AuditLog
from wgconsole.ops.machinery.context import OpContext, Progress
from wgconsole.ops.machinery.errors import OpError, ValidationError
from wgconsole.ops.procedures.peers.add import execute_peer_add
from wgconsole.ops.procedures.peers.plan import PeerAddPlan, plan_peer_add, plan_peer_remove
from wgconsole.ops.procedures.peers.remove import execute_peer_remove
from wgconsole.poll.transport.base import CommandResult

# --- keys used throughout (all made up for the tests) ----------------------------------


def _pub(seed: int) -> str:
    raw = bytes([seed]) * 32
    return base64.b64encode(
        X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes_raw()
    ).decode()


GW_PUB = _pub(1)
ALPHA = _pub(2)
BETA = _pub(3)
NEWKEY = _pub(4)
FAKE_GW_PRIVATE = "FAKEgatewayPRIVATEkeyNEVERleavesTHEgateway0="
FAKE_PSK = "FAKEpresharedKEYforTHEtestsONLYxxxxxxxxxxx0="

INVENTORY = f"""\
# the lab, by hand
service: {{protocol: udp, vip: 10.77.255.1, port: 51280, scheduler: sh}}
ssh: {{user: root}}
load_balancers:
  - {{name: wg-lb, host: 10.0.0.1}}
gateways:
  - {{name: wg-gateway-01, host: 10.0.0.11, real_server: 10.77.0.11:51280, config: @GW1@}}
  - {{name: wg-gateway-02, host: 10.0.0.12, real_server: 10.77.0.12:51280, config: @GW2@}}
tunnel: {{network: 10.255.0.0/24, gateway_address: 10.255.0.1, keepalive: 15}}
clients:   # named peers
  - {{name: alpha, public_key: {ALPHA}, address: 10.255.0.2}}
  # beta is the laptop
  - {{name: beta, public_key: {BETA}, address: 10.255.0.3}}
# end of file
"""

GW_CONF = f"""\
[Interface]
PrivateKey = {FAKE_GW_PRIVATE}
Address = 10.255.0.1/24
ListenPort = 51280

[Peer]
# alpha
PublicKey = {ALPHA}
AllowedIPs = 10.255.0.2/32
PersistentKeepalive = 15

# beta
[Peer]
PublicKey = {BETA}
AllowedIPs = 10.255.0.3/32
PersistentKeepalive = 15
"""


def make_inventory(tmp_path: Path, gw2_config: str | None = None) -> Inventory:
    text = INVENTORY.replace("@GW1@", str(tmp_path / "gw1" / "wg0.conf"))
    text = text.replace("@GW2@", gw2_config or str(tmp_path / "gw2" / "wg0.conf"))
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return load_inventory(path)


def gateway_obs(
    name: str, peers: dict[str, tuple[tuple[str, ...], int]], key: str = GW_PUB
) -> GatewayObservation:
    wg_peers = tuple(
        WgPeer(
            k,
            has_preshared_key=False,
            endpoint=None,
            allowed_ips=ips,
            latest_handshake=0,
            rx_bytes=0,
            tx_bytes=0,
            keepalive=ka,
        )
        for k, (ips, ka) in sorted(peers.items())
    )
    return GatewayObservation(
        name, 1000.0, link_up=True, interface=WgInterface("wg0", key, 51280, 0, wg_peers)
    )


PeerSpec = dict[str, tuple[tuple[str, ...], int]]
BASE_PEERS: PeerSpec = {ALPHA: (("10.255.0.2/32",), 15), BETA: (("10.255.0.3/32",), 15)}


def make_fleet(
    inventory: Inventory,
    peers: dict[str, dict[str, tuple[tuple[str, ...], int]]] | None = None,
    *,
    down: Sequence[str] = (),
    keys: dict[str, str] | None = None,
) -> Fleet:
    gws: dict[str, GatewayObservation | None] = {}
    hosts = []
    for gw in inventory.gateways:
        if gw.name in down:
            gws[gw.name] = None
            hosts.append(HostStatus(gw.name, "gateway", reachable=False, error="timed out"))
            continue
        gw_peers = (peers or {}).get(gw.name, BASE_PEERS)
        gws[gw.name] = gateway_obs(gw.name, gw_peers, (keys or {}).get(gw.name, GW_PUB))
        hosts.append(HostStatus(gw.name, "gateway", reachable=True))
    return build_fleet(inventory, {}, gws, hosts, 1000.0)


# --- planning -------------------------------------------------------------------------


def test_plan_add_picks_next_free_address_and_describes(tmp_path: Path) -> None:
    inv = make_inventory(tmp_path)
    plan = plan_peer_add(inv, make_fleet(inv), "gamma")
    assert plan.address == "10.255.0.4"
    assert plan.peer_allowed_ip == "10.255.0.4/32"
    assert plan.generate_key
    assert plan.public_key is None
    assert plan.server_public_key == GW_PUB
    assert plan.endpoint == "10.77.255.1:51280"
    assert plan.keepalive == 15
    text = "\n".join(plan.describe())
    assert "generated locally" in text
    for gw in inv.gateways:
        assert f"{gw.name}: wg set wg0 peer <generated> allowed-ips 10.255.0.4/32" in text
        assert gw.config in text
    assert "clients += {name: gamma" in text


def test_plan_add_with_key_and_address(tmp_path: Path) -> None:
    inv = make_inventory(tmp_path)
    plan = plan_peer_add(inv, make_fleet(inv), "gamma", NEWKEY, "10.255.0.77", keepalive=25)
    assert (plan.public_key, plan.address, plan.keepalive) == (NEWKEY, "10.255.0.77", 25)
    assert not plan.generate_key
    assert NEWKEY in "\n".join(plan.describe())


@pytest.mark.parametrize(
    ("name", "key", "address", "message"),
    [
        ("bad name!", None, None, "use letters"),
        ("-x", None, None, "use letters"),
        ("alpha", None, None, "already an inventory client"),
        ("gamma", "not-base64!", None, "not base64"),
        ("gamma", base64.b64encode(b"x" * 31).decode(), None, "32 bytes"),
        ("gamma", ALPHA, None, "already the inventory's client 'alpha'"),
        ("gamma", GW_PUB, None, "gateways' own public key"),
        ("gamma", None, "10.9.9.9", "outside the tunnel network"),
        ("gamma", None, "10.255.0.1", "gateways' tunnel address"),
        ("gamma", None, "10.255.0.0", "network's own address"),
        ("gamma", None, "10.255.0.3", "already in use"),
        ("gamma", None, "banana", "not an IP address"),
    ],
)
def test_plan_add_rejects(
    tmp_path: Path, name: str, key: str | None, address: str | None, message: str
) -> None:
    inv = make_inventory(tmp_path)
    with pytest.raises(ValidationError, match=message):
        plan_peer_add(inv, make_fleet(inv), name, key, address)


def test_plan_add_sees_peers_unknown_to_the_inventory(tmp_path: Path) -> None:
    inv = make_inventory(tmp_path)
    stranger: PeerSpec = {**BASE_PEERS, NEWKEY: (("10.255.0.4/32",), 15)}
    fleet = make_fleet(inv, {"wg-gateway-01": stranger, "wg-gateway-02": stranger})
    with pytest.raises(ValidationError, match="already a peer on wg-gateway-01, wg-gateway-02"):
        plan_peer_add(inv, fleet, "gamma", NEWKEY)
    with pytest.raises(ValidationError, match="already in use"):
        plan_peer_add(inv, fleet, "gamma", address="10.255.0.4")
    assert plan_peer_add(inv, fleet, "gamma").address == "10.255.0.5"


def test_plan_add_skips_addresses_routed_to_a_wider_allowed_range(tmp_path: Path) -> None:
    inv = make_inventory(tmp_path)
    site: PeerSpec = {**BASE_PEERS, NEWKEY: (("10.255.0.4/30",), 0)}  # .4-.7 routed to one peer
    fleet = make_fleet(inv, {"wg-gateway-01": site, "wg-gateway-02": site})
    assert plan_peer_add(inv, fleet, "gamma").address == "10.255.0.8"
    with pytest.raises(ValidationError, match=r"inside 10\.255\.0\.4/30"):
        plan_peer_add(inv, fleet, "gamma", address="10.255.0.6")


def test_plan_requires_every_gateway_and_one_public_key(tmp_path: Path) -> None:
    inv = make_inventory(tmp_path)
    with pytest.raises(ValidationError, match="wg-gateway-02 did not answer"):
        plan_peer_add(inv, make_fleet(inv, down=["wg-gateway-02"]), "gamma")
    with pytest.raises(ValidationError, match="public keys differ"):
        plan_peer_add(inv, make_fleet(inv, keys={"wg-gateway-02": NEWKEY}), "gamma")
    with pytest.raises(ValidationError, match="did not answer"):
        plan_peer_remove(inv, make_fleet(inv, down=["wg-gateway-01"]), "alpha")


def test_plan_add_warns_about_existing_drift(tmp_path: Path) -> None:
    inv = make_inventory(tmp_path)
    fleet = make_fleet(inv, {"wg-gateway-02": {ALPHA: BASE_PEERS[ALPHA]}})
    plan = plan_peer_add(inv, fleet, "gamma")
    assert any("already differ" in w for w in plan.warnings)


def test_plan_remove_by_name_by_key_and_unknown(tmp_path: Path) -> None:
    inv = make_inventory(tmp_path)
    fleet = make_fleet(inv)
    by_name = plan_peer_remove(inv, fleet, "beta")
    assert (by_name.public_key, by_name.name, by_name.address) == (BETA, "beta", "10.255.0.3")
    assert by_name.present_on == ("wg-gateway-01", "wg-gateway-02")
    assert by_name.in_inventory
    assert plan_peer_remove(inv, fleet, BETA) == by_name
    text = "\n".join(by_name.describe())
    assert "wg-gateway-02: wg set wg0 peer" in text
    assert "remove" in text
    with pytest.raises(ValidationError, match="no client of that name"):
        plan_peer_remove(inv, fleet, "nobody")
    with pytest.raises(ValidationError, match="not a peer on any gateway nor in the inventory"):
        plan_peer_remove(inv, fleet, NEWKEY)


def test_plan_remove_of_a_peer_on_one_gateway_only(tmp_path: Path) -> None:
    inv = make_inventory(tmp_path)
    stray: PeerSpec = {**BASE_PEERS, NEWKEY: (("10.255.0.9/32",), 0)}
    plan = plan_peer_remove(inv, make_fleet(inv, {"wg-gateway-02": stray}), NEWKEY)
    assert plan.present_on == ("wg-gateway-02",)
    assert plan.name is None
    assert not plan.in_inventory
    assert any("only on wg-gateway-02" in w for w in plan.warnings)


# --- keys -----------------------------------------------------------------------------


def test_generated_keys_match_x25519_and_wg_pubkey() -> None:
    pair = KeyPair.generate()
    raw = base64.b64decode(pair.private_key.reveal())
    assert len(raw) == 32
    assert raw[0] & 7 == 0
    assert raw[31] & 0xC0 == 0x40  # clamped like wg
    expected = X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes_raw()
    assert base64.b64decode(pair.public_key) == expected
    if shutil.which("wg"):
        out = subprocess.run(
            ["wg", "pubkey"], input=pair.private_key.reveal(), capture_output=True, text=True
        )
        assert out.stdout.strip() == pair.public_key


def test_private_key_never_shows_itself() -> None:
    pair = KeyPair.generate()
    secret = pair.private_key.reveal()
    shown = [repr(pair), str(pair), repr(pair.private_key), str(pair.private_key)]
    shown += [f"{pair.private_key}", f"{pair.private_key!r}", format(pair.private_key, "")]
    assert all(secret not in s for s in shown)
    assert "hidden" in repr(pair)
    assert pair.public_key in repr(pair)
    with pytest.raises(TypeError):
        pickle.dumps(pair.private_key)
    config = build_client_config(
        make_inventory_plain(),
        name="n",
        address="10.255.0.9",
        server_public_key=GW_PUB,
        keepalive=15,
        private_key=pair.private_key,
    )
    assert secret not in repr(config)
    with pytest.raises(ValueError, match="a WireGuard private key is 32 bytes"):
        PrivateKey(b"short")


def make_inventory_plain() -> Inventory:
    from tests.test_fleet_builder import make_inventory as model_inventory  # type: ignore[attr-defined]

    return model_inventory()


# --- the client config ----------------------------------------------------------------


def _config(private: PrivateKey | None) -> ClientConfig:
    inv = make_inventory_plain()
    return build_client_config(
        inv,
        name="gamma",
        address="10.255.0.4",
        server_public_key=GW_PUB,
        keepalive=15,
        private_key=private,
    )


def test_client_config_with_generated_key(tmp_path: Path) -> None:
    key = PrivateKey.generate()
    config = _config(key)
    full = config.secret_text()
    assert f"PrivateKey = {key.reveal()}" in full
    for line in (
        "[Interface]",
        "Address = 10.255.0.4/32",
        "[Peer]",
        f"PublicKey = {GW_PUB}",
        "Endpoint = 172.16.0.1:51280",
        "AllowedIPs = 10.255.0.0/24",
        "PersistentKeepalive = 15",
    ):
        assert line in full.splitlines()
    out = tmp_path / "gamma.conf"
    shown = config.display_text(out)
    assert key.reveal() not in shown
    assert f"PrivateKey = <written to {out}>" in shown
    assert shown.replace(f"<written to {out}>", key.reveal()) == full
    config.write_new(out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_text() == full
    with pytest.raises(ValidationError, match="never overwritten"):
        config.write_new(out)
    assert out.read_text() == full


def test_client_config_when_the_client_keeps_its_key() -> None:
    config = _config(None)
    assert config.secret_text() == config.display_text(None)
    assert "PrivateKey =" not in [line[:12] for line in config.secret_text().splitlines()]
    assert "the client's own key" in config.secret_text()


def test_client_config_ipv6_endpoint_and_no_keepalive() -> None:
    inv = make_inventory_plain()
    inv = replace(inv, service=replace(inv.service, vip="2001:db8::1"))
    config = build_client_config(
        inv, name="g", address="10.255.0.4", server_public_key=GW_PUB, keepalive=0, private_key=None
    )
    assert "Endpoint = [2001:db8::1]:51280" in config.secret_text()
    assert "PersistentKeepalive" not in config.secret_text()


def test_qr_only_on_a_terminal(tmp_path: Path) -> None:
    with open(tmp_path / "qr.txt", "w") as fh, pytest.raises(ValidationError, match="terminal"):
        print_qr(_config(PrivateKey.generate()), fh)
    assert (tmp_path / "qr.txt").read_text() == ""


# --- the gateway-side scripts, run for real with sh -------------------------------------


@pytest.fixture(params=["awk", "busybox"])
def awk_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The scripts with the system awk, and with busybox's (small gateways have only that)."""
    env = dict(os.environ)
    if request.param == "busybox":
        busybox = shutil.which("busybox")
        if busybox is None:
            pytest.skip("busybox not installed")
        bin_dir = tmp_path / "bb"
        bin_dir.mkdir()
        (bin_dir / "awk").symlink_to(busybox)
        env["PATH"] = f"{bin_dir}:{env['PATH']}"
    return env


def run_script(
    script: str, args: Sequence[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", script, "sh", *args], capture_output=True, text=True, env=env
    )


def test_add_script_appends_a_block_and_keeps_a_backup(
    tmp_path: Path, awk_env: dict[str, str]
) -> None:
    conf = tmp_path / "wg0.conf"
    conf.write_text(GW_CONF + "\n\n")
    conf.chmod(0o600)
    bak = str(conf) + ".wgconsole-bak-1"
    res = run_script(
        wgconf.ADD_SCRIPT, [str(conf), bak, "gamma", NEWKEY, "10.255.0.4/32", "25"], awk_env
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "written"
    assert FAKE_GW_PRIVATE not in res.stdout + res.stderr
    block = f"\n[Peer]\n# gamma\nPublicKey = {NEWKEY}\nAllowedIPs = 10.255.0.4/32\n"
    assert conf.read_text() == GW_CONF + block + "PersistentKeepalive = 25\n"
    assert Path(bak).read_text() == GW_CONF + "\n\n"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(bak).stat().st_mode) == 0o600
    assert not Path(str(conf) + ".wgconsole-tmp").exists()
    again = run_script(
        wgconf.ADD_SCRIPT, [str(conf), bak + "x", "g", NEWKEY, "10.255.0.4/32", "0"], awk_env
    )
    assert again.returncode == 4
    assert "already has" in again.stderr
    assert not Path(bak + "x").exists()


def test_add_script_on_a_file_without_final_newline_and_keepalive_off(
    tmp_path: Path, awk_env: dict[str, str]
) -> None:
    conf = tmp_path / "wg0.conf"
    conf.write_text(GW_CONF.rstrip("\n"))
    res = run_script(
        wgconf.ADD_SCRIPT, [str(conf), str(conf) + ".b", "g", NEWKEY, "10.255.0.4/32", "0"], awk_env
    )
    assert res.returncode == 0, res.stderr
    assert (
        conf.read_text()
        == GW_CONF + f"\n[Peer]\n# g\nPublicKey = {NEWKEY}\nAllowedIPs = 10.255.0.4/32\n"
    )


def test_add_script_fails_cleanly_without_the_file(tmp_path: Path, awk_env: dict[str, str]) -> None:
    conf = tmp_path / "missing" / "wg0.conf"
    res = run_script(
        wgconf.ADD_SCRIPT, [str(conf), str(conf) + ".b", "g", NEWKEY, "10.255.0.4/32", "0"], awk_env
    )
    assert res.returncode == 3
    assert "no such file" in res.stderr


@pytest.mark.parametrize("victim", [ALPHA, BETA])
def test_remove_script_drops_exactly_that_block(
    tmp_path: Path, awk_env: dict[str, str], victim: str
) -> None:
    conf = tmp_path / "wg0.conf"
    conf.write_text(GW_CONF)
    conf.chmod(0o640)
    bak = str(conf) + ".wgconsole-bak-1"
    res = run_script(wgconf.REMOVE_SCRIPT, [str(conf), bak, victim], awk_env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "removed"
    assert FAKE_GW_PRIVATE not in res.stdout + res.stderr
    text = conf.read_text()
    assert Path(bak).read_text() == GW_CONF
    assert victim not in text
    other = BETA if victim == ALPHA else ALPHA
    assert other in text
    assert f"PrivateKey = {FAKE_GW_PRIVATE}" in text
    if victim == ALPHA:  # "# alpha" sits inside its block; "# beta" above its header
        assert "# alpha" not in text
        assert "# beta" in text
        assert text.startswith("[Interface]\nPrivateKey")
        assert "10.255.0.2/32" not in text
    else:
        assert "# beta" not in text
        assert "# alpha" in text
        assert "10.255.0.3/32" not in text
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640  # the file's own mode, kept
    assert stat.S_IMODE(Path(bak).stat().st_mode) == 0o600


def test_remove_script_is_case_and_space_tolerant_and_says_absent(
    tmp_path: Path, awk_env: dict[str, str]
) -> None:
    conf = tmp_path / "wg0.conf"
    odd = GW_CONF.replace(f"PublicKey = {BETA}", f"  publickey={BETA}   # laptop").replace(
        "[Peer]\nPublicKey", "[peer]\nPublicKey"
    )
    conf.write_text(odd)
    res = run_script(wgconf.REMOVE_SCRIPT, [str(conf), str(conf) + ".b", BETA], awk_env)
    assert res.returncode == 0
    assert BETA not in conf.read_text()
    res = run_script(wgconf.REMOVE_SCRIPT, [str(conf), str(conf) + ".c", NEWKEY], awk_env)
    assert res.stdout.strip() == "absent"
    assert not Path(str(conf) + ".c").exists()


def test_add_then_remove_gives_the_original_file_back(
    tmp_path: Path, awk_env: dict[str, str]
) -> None:
    conf = tmp_path / "wg0.conf"
    conf.write_text(GW_CONF)
    run_script(
        wgconf.ADD_SCRIPT,
        [str(conf), str(conf) + ".a", "g", NEWKEY, "10.255.0.4/32", "15"],
        awk_env,
    )
    run_script(wgconf.REMOVE_SCRIPT, [str(conf), str(conf) + ".b", NEWKEY], awk_env)
    assert conf.read_text() == GW_CONF


def test_restore_script(tmp_path: Path) -> None:
    conf = tmp_path / "wg0.conf"
    conf.write_text("new\n")
    bak = tmp_path / "wg0.conf.bak"
    bak.write_text("old\n")
    (tmp_path / "wg0.conf.wgconsole-tmp").write_text("partial")
    res = run_script(wgconf.RESTORE_SCRIPT, [str(conf), str(bak)], dict(os.environ))
    assert res.stdout.strip() == "restored"
    assert conf.read_text() == "old\n"
    assert not bak.exists()
    assert not (tmp_path / "wg0.conf.wgconsole-tmp").exists()
    res = run_script(wgconf.RESTORE_SCRIPT, [str(conf), str(bak)], dict(os.environ))
    assert res.stdout.strip() == "untouched"
    assert conf.read_text() == "old\n"


def test_commands_quote_every_value() -> None:
    inv = make_inventory_plain()
    gw = replace(inv.gateways[0], config="/etc/wire guard/$(reboot)'.conf")
    cmd = wgconf.add_block_command(gw, gw.config + ".bak", "n", NEWKEY, "10.255.0.4/32", 15)
    argv = ["sh", "-c", wgconf.ADD_SCRIPT, "sh", gw.config, gw.config + ".bak", "n", NEWKEY]
    import shlex

    assert shlex.split(cmd)[: len(argv)] == argv
    sudo = replace(gw, ssh=replace(gw.ssh, sudo=True))
    assert shlex.split(wgconf.read_command(sudo, NEWKEY))[:4] == ["sudo", "-n", "sh", "-c"]
    live = shlex.split(wgconf.live_set_command(sudo, NEWKEY, ["10.255.0.4/32"], 15))
    assert live == [
        "sudo",
        "-n",
        "wg",
        "set",
        "wg0",
        "peer",
        NEWKEY,
        "allowed-ips",
        "10.255.0.4/32",
        "persistent-keepalive",
        "15",
    ]


# --- a fake wg and fake gateways --------------------------------------------------------

FAKE_WG = r"""
import json, os, sys
state_path = os.environ["FAKE_WG_STATE"]
st = json.load(open(state_path))
a = sys.argv[1:]
def save():
    json.dump(st, open(state_path, "w"))
if a[1] != st["iface"]:
    print(f"Unable to access interface: No such device", file=sys.stderr); sys.exit(1)
peers = st["peers"]
if a[0] == "show":
    what = a[2]
    if what == "public-key":
        print(st["public_key"])
    for k, p in peers.items():
        if what == "allowed-ips":
            print(k + "\t" + (" ".join(p["ips"]) or "(none)"))
        elif what == "persistent-keepalive":
            print(k + "\t" + (str(p["ka"]) if p["ka"] else "off"))
        elif what == "preshared-keys":
            print(k + "\t" + (p.get("psk") or "(none)"))
        elif what == "peers":
            print(k)
    sys.exit(0)
if a[0] == "set":
    if os.environ.get("FAKE_WG_FAIL_SET"):
        print("fake: set refused", file=sys.stderr); sys.exit(1)
    key = a[3]
    rest = a[4:]
    if rest == ["remove"]:
        if key not in peers:
            print("Unable to modify interface: No such device", file=sys.stderr); sys.exit(1)
        del peers[key]; save(); sys.exit(0)
    p = peers.setdefault(key, {"ips": [], "ka": 0})
    while rest:
        opt, val = rest[0], rest[1]; rest = rest[2:]
        if opt == "allowed-ips":
            p["ips"] = [x for x in val.split(",") if x]
        elif opt == "persistent-keepalive":
            p["ka"] = 0 if val == "off" else int(val)
        elif opt == "preshared-key":
            p["psk"] = open(val).read().strip()
    save(); sys.exit(0)
sys.exit(2)
"""


@dataclass
class FakeGateway:
    """A gateway: its config file in a temp dir, `wg` state in JSON, commands run with sh."""

    name: str
    root: Path
    bin_dir: Path
    fail_when: Callable[[str], bool] | None = None
    fail_set: bool = False
    outputs: list[str] = field(default_factory=list)
    commands: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def state_path(self) -> Path:
        return self.root / "wg.json"

    def peers(self) -> dict[str, dict[str, Any]]:
        data: dict[str, dict[str, Any]] = json.loads(self.state_path.read_text())["peers"]
        return data

    def run(self, command: str, timeout: float, *, mutating: bool = False) -> CommandResult:
        self.commands.append((command, mutating))
        if self.fail_when is not None and self.fail_when(command):
            return CommandResult("", "injected failure", 1, 0.0, 0)
        env = dict(
            os.environ,
            PATH=f"{self.bin_dir}:{os.environ['PATH']}",
            FAKE_WG_STATE=str(self.state_path),
        )
        if self.fail_set:
            env["FAKE_WG_FAIL_SET"] = "1"
        proc = subprocess.run(
            ["sh", "-c", command], capture_output=True, text=True, env=env, timeout=timeout
        )
        self.outputs.append(proc.stdout + proc.stderr)
        return CommandResult(proc.stdout, proc.stderr, proc.returncode, 0.0, len(proc.stdout))

    def close(self) -> None:
        pass


class FakeLb:
    name = "wg-lb"

    def __init__(self) -> None:
        self.commands: list[str] = []

    def run(self, command: str, timeout: float, *, mutating: bool = False) -> CommandResult:
        self.commands.append(command)
        return CommandResult("", "", 0, 0.0, 0)

    def close(self) -> None:
        pass


@dataclass
class Rig:
    inventory: Inventory
    gateways: dict[str, FakeGateway]
    ctx: OpContext
    progress: list[Progress]
    audit: AuditLog

    def fleet(self) -> Fleet:
        obs = {}
        for name, gw in self.gateways.items():
            peers: PeerSpec = {k: (tuple(p["ips"]), int(p["ka"])) for k, p in gw.peers().items()}
            obs[name] = gateway_obs(name, peers)
        hosts = [HostStatus(n, "gateway", reachable=True) for n in obs]
        return build_fleet(self.inventory, {}, dict(obs), hosts, 1000.0)

    def snapshot(self) -> dict[str, tuple[str, dict[str, dict[str, Any]]]]:
        out = {}
        for gw in self.inventory.gateways:
            conf = Path(gw.config)
            out[gw.name] = (
                conf.read_text() if conf.exists() else "",
                self.gateways[gw.name].peers(),
            )
        return out

    def all_output(self) -> str:
        return "\n".join(o for gw in self.gateways.values() for o in gw.outputs)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path)


def make_rig(tmp_path: Path, gw2_config: str | None = None) -> Rig:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    wg = bin_dir / "wg"
    wg.write_text(f"#!{sys.executable}\n{FAKE_WG}")
    wg.chmod(0o755)
    inventory = make_inventory(tmp_path, gw2_config)
    gateways = {}
    for i, gw in enumerate(inventory.gateways, start=1):
        root = tmp_path / f"gw{i}"
        root.mkdir(exist_ok=True)
        if gw.config.startswith(str(tmp_path)):
            Path(gw.config).write_text(GW_CONF)
            Path(gw.config).chmod(0o600)
        peers = {k: {"ips": list(ips), "ka": ka} for k, (ips, ka) in BASE_PEERS.items()}
        (root / "wg.json").write_text(
            json.dumps({"iface": "wg0", "public_key": GW_PUB, "peers": peers})
        )
        gateways[gw.name] = FakeGateway(gw.name, root, bin_dir)
    progress: list[Progress] = []
    audit = AuditLog(tmp_path / "audit.jsonl")
    transports = {"wg-lb": FakeLb(), **gateways}
    ctx = OpContext(inventory, transports, audit, progress.append)  # type: ignore[arg-type]
    return Rig(inventory, gateways, ctx, progress, audit)


def test_execute_add_generated_key_everywhere(rig: Rig, tmp_path: Path) -> None:
    plan = plan_peer_add(rig.inventory, rig.fleet(), "gamma")
    out = tmp_path / "gamma.conf"
    result = execute_peer_add(rig.ctx, plan, keepalive=15, output=out)
    key = result.public_key
    for gw in rig.inventory.gateways:
        peers = rig.gateways[gw.name].peers()
        assert peers[key] == {"ips": ["10.255.0.4/32"], "ka": 15}
        text = Path(gw.config).read_text()
        assert text.count(f"PublicKey = {key}") == 1
        assert "# gamma" in text
        assert Path(result.backups[gw.name]).read_text() == GW_CONF
    secret = result.config.private_key.reveal()  # type: ignore[union-attr]
    assert f"PrivateKey = {secret}" in out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    # The secret is in that one file and nowhere else.
    everywhere = [
        rig.all_output(),
        (tmp_path / "audit.jsonl").read_text(),
        (tmp_path / "inventory.yaml").read_text(),
        repr(result),
        result.display_config(),
        "\n".join(result.summary()),
        "\n".join(p.text for p in rig.progress),
        "\n".join(c for g in rig.gateways.values() for c, _ in g.commands),
    ]
    assert all(secret not in text and FAKE_GW_PRIVATE not in text for text in everywhere)
    assert f"<written to {out}>" in result.display_config()
    # Reads are not mutating; changes are.
    for fake in rig.gateways.values():
        for command, mutating in fake.commands:
            assert mutating == ("wg show" not in command or "wg set" in command)
    assert result.inventory is not None
    assert Client("gamma", key, "10.255.0.4") in result.inventory.clients
    inv_text = (tmp_path / "inventory.yaml").read_text()
    assert "# beta is the laptop" in inv_text
    assert "# end of file" in inv_text
    [entry] = rig.audit.entries()
    assert (entry["action"], entry["target"], entry["outcome"]) == ("peer add", "gamma", "ok")
    steps = [p.text for p in rig.progress if p.kind == "ok"]
    assert steps.index(
        next(s for s in steps if s.startswith("wg-gateway-01: wg set"))
    ) < steps.index(next(s for s in steps if s.startswith("wg-gateway-02: wg set")))


def test_execute_add_with_own_key_needs_no_output(rig: Rig) -> None:
    plan = plan_peer_add(rig.inventory, rig.fleet(), "gamma", NEWKEY, "10.255.0.50")
    result = execute_peer_add(rig.ctx, plan, keepalive=0)
    assert result.output is None
    assert result.config.private_key is None
    assert rig.gateways["wg-gateway-02"].peers()[NEWKEY] == {"ips": ["10.255.0.50/32"], "ka": 0}
    assert "the client's own key" in result.display_config()


def test_execute_add_generated_key_requires_output(rig: Rig, tmp_path: Path) -> None:
    plan = plan_peer_add(rig.inventory, rig.fleet(), "gamma")
    with pytest.raises(ValidationError, match="--output"):
        execute_peer_add(rig.ctx, plan, keepalive=15)
    existing = tmp_path / "exists.conf"
    existing.write_text("keep me")
    before = rig.snapshot()
    with pytest.raises(ValidationError, match="never overwritten"):
        execute_peer_add(rig.ctx, plan, keepalive=15, output=existing)
    assert existing.read_text() == "keep me"
    assert rig.snapshot() == before


def _is_persist_on(conf: str) -> Callable[[str], bool]:
    return lambda command: "make_backup" in command and conf in command


def test_execute_add_failure_on_second_gateway_rolls_back_both(rig: Rig, tmp_path: Path) -> None:
    before = rig.snapshot()
    gw2 = rig.inventory.gateways[1]
    rig.gateways[gw2.name].fail_when = _is_persist_on(gw2.config)
    plan = plan_peer_add(rig.inventory, rig.fleet(), "gamma")
    out = tmp_path / "gamma.conf"
    with pytest.raises(OpError) as info:
        execute_peer_add(rig.ctx, plan, keepalive=15, output=out)
    message = str(info.value)
    assert rig.snapshot() == before
    assert not out.exists()
    assert "wg-gateway-01: live peer changed, config written" in message
    assert "rolled back: config restored (restored), live peer removed (removed)" in message
    assert "wg-gateway-02: live peer changed, config edit attempted" in message
    assert "FAILED at add [Peer]" in message
    assert "injected failure" in message
    assert "Every gateway is back as it was." in message
    assert message.count("verified as before") == 2
    [entry] = rig.audit.entries()
    assert entry["outcome"] == "rolled back"
    assert entry["detail"] == message
    assert load_inventory(tmp_path / "inventory.yaml").clients == rig.inventory.clients
    assert not list(tmp_path.glob("gw*/wg0.conf.wgconsole-*"))


def test_execute_add_failure_live_on_second_gateway(rig: Rig) -> None:
    before = rig.snapshot()
    rig.gateways["wg-gateway-02"].fail_set = True
    plan = plan_peer_add(rig.inventory, rig.fleet(), "gamma", NEWKEY)
    with pytest.raises(OpError, match="fake: set refused") as info:
        execute_peer_add(rig.ctx, plan, keepalive=15)
    assert rig.snapshot() == before
    assert "wg-gateway-02: live change attempted; FAILED at wg set" in str(info.value)


def test_execute_add_refused_before_any_change(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, gw2_config="/nonexistent/wg0.conf")
    before = rig.snapshot()
    plan = plan_peer_add(rig.inventory, rig.fleet(), "gamma", NEWKEY)
    with pytest.raises(
        OpError,
        match=r"nothing was changed: wg-gateway-02: /nonexistent/wg0\.conf is not a readable file",
    ):
        execute_peer_add(rig.ctx, plan, keepalive=15)
    assert rig.snapshot() == before
    assert all(not m for g in rig.gateways.values() for c, m in g.commands)


def test_execute_add_refused_when_changed_since_the_plan(rig: Rig) -> None:
    plan = plan_peer_add(rig.inventory, rig.fleet(), "gamma", NEWKEY)
    rig.gateways["wg-gateway-02"].run(
        wgconf.live_set_command(rig.inventory.gateways[1], NEWKEY, ["10.255.0.99/32"], 0), 5
    )
    with pytest.raises(OpError, match=r"wg-gateway-02: .* is already a peer"):
        execute_peer_add(rig.ctx, plan, keepalive=15)


def test_execute_remove_everywhere_and_from_the_inventory(rig: Rig, tmp_path: Path) -> None:
    plan = plan_peer_remove(rig.inventory, rig.fleet(), "alpha")
    result = execute_peer_remove(rig.ctx, plan)
    assert result.gateways == ("wg-gateway-01", "wg-gateway-02")
    for gw in rig.inventory.gateways:
        assert ALPHA not in rig.gateways[gw.name].peers()
        assert ALPHA not in Path(gw.config).read_text()
        assert BETA in Path(gw.config).read_text()
        assert Path(result.backups[gw.name]).read_text() == GW_CONF
    assert result.inventory is not None
    assert [c.name for c in result.inventory.clients] == ["beta"]
    assert "# beta is the laptop" in (tmp_path / "inventory.yaml").read_text()
    assert rig.audit.entries()[0]["outcome"] == "ok"


def test_execute_remove_rollback_restores_the_preshared_key(rig: Rig) -> None:
    for gw in rig.inventory.gateways:
        conf = Path(gw.config)
        conf.write_text(
            conf.read_text().replace(
                f"PublicKey = {ALPHA}\n", f"PublicKey = {ALPHA}\nPresharedKey = {FAKE_PSK}\n"
            )
        )
        state = json.loads(rig.gateways[gw.name].state_path.read_text())
        state["peers"][ALPHA]["psk"] = FAKE_PSK
        rig.gateways[gw.name].state_path.write_text(json.dumps(state))
    before = rig.snapshot()
    gw2 = rig.inventory.gateways[1]
    rig.gateways[gw2.name].fail_when = _is_persist_on(gw2.config)
    plan = plan_peer_remove(rig.inventory, rig.fleet(), "alpha")
    with pytest.raises(OpError) as info:
        execute_peer_remove(rig.ctx, plan)
    assert rig.snapshot() == before  # psk included
    assert "live peer re-added (restored)" in str(info.value)
    assert FAKE_PSK not in rig.all_output() + str(info.value)
    assert [c.name for c in load_inventory(rig.inventory.path).clients] == ["alpha", "beta"]


def test_add_then_remove_restores_everything(rig: Rig) -> None:
    before = rig.snapshot()
    plan = plan_peer_add(rig.inventory, rig.fleet(), "gamma", NEWKEY)
    added = execute_peer_add(rig.ctx, plan, keepalive=15)
    assert added.inventory is not None
    rig.ctx = replace(rig.ctx, inventory=added.inventory)
    removed = execute_peer_remove(rig.ctx, plan_peer_remove(added.inventory, rig.fleet(), "gamma"))
    assert removed.inventory is not None
    assert removed.inventory.clients == rig.inventory.clients
    after = rig.snapshot()
    for name in before:
        assert after[name][1] == before[name][1]
        assert after[name][0] == before[name][0]


# --- the inventory edit ---------------------------------------------------------------

NEW = Client("gamma", NEWKEY, "10.255.0.4")


def _inventory_text(clients_part: str) -> str:
    head = INVENTORY.split("clients:")[0].replace("@GW1@", "/etc/wireguard/wg0.conf")
    return head.replace("@GW2@", "/etc/wireguard/wg0.conf") + clients_part


@pytest.mark.parametrize(
    "clients_part",
    [
        "",
        "clients:\n",
        "clients: ~   # none yet\n",
        "clients: []\n",
        f"clients: [{{name: alpha, public_key: {ALPHA}, address: 10.255.0.2}}]\n",
        f"clients:\n- {{name: alpha, public_key: {ALPHA}, address: 10.255.0.2}}\n# trailing\n",
        f"clients:\n  - name: alpha\n    public_key: {ALPHA}\n    address: 10.255.0.2\n# end\n",
        f"clients:\n    - {{name: alpha, public_key: {ALPHA}, address: 10.255.0.2}} # a\n# after\n",
    ],
)
def test_inventory_insert_and_delete_round_trip(tmp_path: Path, clients_part: str) -> None:
    text = _inventory_text(clients_part)
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    before = load_inventory(path).clients
    inserted = insert_client_text(text, NEW)
    path.write_text(inserted)
    assert load_inventory(path).clients == (*before, NEW)
    for line in text.splitlines():
        if line.strip().startswith("#"):
            assert line in inserted.splitlines()
    deleted = delete_client_text(inserted, NEWKEY)
    path.write_text(deleted)
    assert load_inventory(path).clients == before


def test_inventory_add_and_remove_files(tmp_path: Path) -> None:
    inv = make_inventory(tmp_path)
    path = inv.path
    os.chmod(path, 0o640)
    tricky = Client("yes", NEWKEY, "10.255.0.4")  # YAML would read a plain `yes` as true
    after = add_client(path, tricky)
    assert after.clients[-1] == tricky
    assert '{name: "yes", public_key: ' in Path(path).read_text()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    after = remove_client(path, ALPHA)
    assert [c.name for c in after.clients] == ["beta", "yes"]
    assert "# beta is the laptop" in Path(path).read_text()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".inventory-")]


def test_inventory_edit_refuses_a_duplicate(tmp_path: Path) -> None:
    inv = make_inventory(tmp_path)
    original = Path(inv.path).read_text()
    with pytest.raises(InventoryEditError, match="would break the inventory"):
        add_client(inv.path, Client("alpha2", ALPHA, "10.255.0.9"))
    assert Path(inv.path).read_text() == original


def test_plan_is_a_frozen_value(tmp_path: Path) -> None:
    inv = make_inventory(tmp_path)
    plan = plan_peer_add(inv, make_fleet(inv), "gamma")
    assert isinstance(plan, PeerAddPlan)
    with pytest.raises(AttributeError):
        plan.name = "x"  # type: ignore[misc]
    assert time.time() > 0


@pytest.mark.parametrize("shell", ["sh", "busybox"])
def test_every_gateway_script_parses(shell: str) -> None:
    argv = ["busybox", "sh"] if shell == "busybox" else ["sh"]
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} not installed")
    for script in (
        wgconf.READ_SCRIPT,
        wgconf.ADD_SCRIPT,
        wgconf.REMOVE_SCRIPT,
        wgconf.RESTORE_SCRIPT,
        wgconf.LIVE_REMOVE_SCRIPT,
        wgconf.LIVE_RESTORE_SCRIPT,
    ):
        res = subprocess.run([*argv, "-n", "-c", script], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr


class _Tty:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_qr_is_drawn_on_a_terminal() -> None:
    pytest.importorskip("qrcode")
    tty = _Tty()
    print_qr(_config(PrivateKey.generate()), tty)  # type: ignore[arg-type]
    drawing = "".join(tty.parts)
    assert drawing.count("\n") > 20
    assert "PrivateKey" not in drawing


def test_inventory_edit_of_a_broken_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text("service: [\n")
    with pytest.raises(InventoryEditError, match="cannot be edited"):
        add_client(str(path), NEW)


def test_execute_add_refused_when_the_inventory_took_the_address(rig: Rig) -> None:
    plan = plan_peer_add(rig.inventory, rig.fleet(), "gamma", NEWKEY)
    add_client(rig.inventory.path, Client("other", _pub(9), plan.address))
    before = rig.snapshot()
    with pytest.raises(OpError, match="address already used by client 'other'"):
        execute_peer_add(rig.ctx, plan, keepalive=15)
    assert rig.snapshot() == before
