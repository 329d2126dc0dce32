"""Peers added and removed on the real lab: every gateway over its own SSH, a new client
namespace that really connects through the VIP with the written config, and a failure on the
second gateway rolled back on both.

The lab is shared: these tests only add and remove peers they create, work on a copy of the
lab's inventory, and never touch a gateway's link or the LB's IPVS configuration. A gateway's
/etc/wireguard is private to its mount namespace, so it is read through the gateway's own SSH
(the collector's transport), never with `ip netns exec` from the guest's root namespace.
"""

from __future__ import annotations

import shlex
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import pytest

from tests.lab.conftest import Lab
from tests.lab.helpers import kernel_conns, retry_locked
from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.fleet import Fleet
from wgconsole.core.inventory import Inventory
from wgconsole.ops.hostcmd import wgconf
from wgconsole.ops.machinery.audit import AuditLog
from wgconsole.ops.machinery.context import OpContext, Progress
from wgconsole.ops.machinery.errors import OpError
from wgconsole.ops.procedures.peers.add import execute_peer_add
from wgconsole.ops.procedures.peers.plan import plan_peer_add, plan_peer_remove
from wgconsole.ops.procedures.peers.remove import execute_peer_remove
from wgconsole.poll.collector import FleetCollector, fleet_from_poll
from wgconsole.poll.transport.base import CommandResult, Transport

pytestmark = pytest.mark.lab

NEW_CLIENT = "wg-client-new"
CLIENT_NS = "clpeers"  # a namespace name of our own: other tests may use others
CLIENT_WAN = "10.77.1.57"
GATEWAYS = ("wg-gateway-01", "wg-gateway-02")
T = TypeVar("T")


@dataclass
class Setup:
    lab: Lab
    inventory: Inventory
    collector: FleetCollector
    ctx: OpContext
    progress: list[Progress]
    audit: AuditLog
    work: Path  # a directory the guest can read (inside lab.dir)


@pytest.fixture
def env(lab: Lab, tmp_path: Path) -> Iterator[Setup]:
    inv_path = tmp_path / "inventory.yaml"
    shutil.copy(lab.inventory_path, inv_path)
    inventory = load_inventory(inv_path)
    collector = FleetCollector(inventory)
    progress: list[Progress] = []
    audit = AuditLog(tmp_path / "audit.jsonl")
    ctx = OpContext(inventory, collector.transports, audit, progress.append, timeout=120)
    work = lab.dir / f"peers-test-{uuid.uuid4().hex[:8]}"
    work.mkdir(mode=0o700)
    try:
        yield Setup(lab, inventory, collector, ctx, progress, audit, work)
    finally:
        collector.close()
        shutil.rmtree(work, ignore_errors=True)


def _retry_locked(action: Callable[[], T]) -> T:
    """Other engineers' lab tests take the same service lock for a moment: wait for it."""
    return retry_locked(action, timeout=180, interval=3)


@dataclass(frozen=True)
class GwView:
    allowed: dict[str, str]  # public key -> allowed ips, from `wg show wg0 allowed-ips`
    keepalive: dict[str, str]
    count: int  # `PublicKey = KEY` lines in /etc/wireguard/wg0.conf
    digest: str  # sha256 of the config file (a hash: the file itself never leaves the gateway)


def gw_view(env: Setup, gateway: str, key: str) -> GwView:
    conf = "/etc/wireguard/wg0.conf"
    needle = shlex.quote(f"PublicKey = {key}")
    command = (
        "wg show wg0 allowed-ips; echo @; wg show wg0 persistent-keepalive; echo @; "
        f"grep -cF {needle} {conf}; echo @; sha256sum {conf} | cut -d' ' -f1"
    )
    result = env.collector.transports[gateway].run(command, timeout=60)
    allowed, keepalive, count, digest = result.stdout.split("@\n")
    return GwView(
        allowed=dict(line.split("\t") for line in allowed.splitlines() if line),
        keepalive=dict(line.split("\t") for line in keepalive.splitlines() if line),
        count=int(count.strip()),
        digest=digest.strip(),
    )


def views(env: Setup, key: str) -> dict[str, GwView]:
    return {gw: gw_view(env, gw, key) for gw in GATEWAYS}


def fresh_fleet(env: Setup, inventory: Inventory | None = None) -> Fleet:
    inv = inventory or env.inventory
    poll = env.collector.poll(("gateway",))
    return fleet_from_poll(inv, poll, env.collector.host_status(poll))


def remove_leftover(env: Setup, key: str) -> None:
    """If a test failed half-way: take our peer out of every gateway (live and file)."""
    for gw in env.inventory.gateways:
        transport = env.collector.transports[gw.name]
        transport.run(wgconf.live_remove_command(gw, key), timeout=60, mutating=True)
        backup = wgconf.backup_path(gw, "cleanup-" + uuid.uuid4().hex[:6])
        transport.run(wgconf.remove_block_command(gw, backup, key), timeout=60, mutating=True)


def drop_backups(env: Setup, backups: list[tuple[str, str]]) -> None:
    """The backups a successful change keeps on the gateways: ours, so the shared lab is tidy."""
    for gateway, path in backups:
        assert wgconf.BACKUP_SUFFIX in path
        command = "rm -f -- " + shlex.quote(path)
        env.collector.transports[gateway].run(command, timeout=60, mutating=True)


def start_client(lab: Lab, config: Path) -> None:
    """A new client namespace on the clients' segment, configured from the written file."""
    setconf = config.with_suffix(".setconf")
    # wg setconf knows no Address (a wg-quick key): the address is set with ip, as wg-quick would.
    setconf.write_text(
        "".join(
            line + "\n"
            for line in config.read_text().splitlines()
            if not line.startswith("Address")
        )
    )
    setconf.chmod(0o600)
    address = next(
        line.split("=", 1)[1].strip()
        for line in config.read_text().splitlines()
        if line.startswith("Address")
    )
    allowed = next(
        line.split("=", 1)[1].strip()
        for line in config.read_text().splitlines()
        if line.startswith("AllowedIPs")
    )
    ns, q = CLIENT_NS, shlex.quote
    lab.sh(
        f"ip netns add {ns} && ip -n {ns} link set lo up "
        f"&& ip link add {ns}-wan type veth peer name wan netns {ns} "
        f"&& ip link set {ns}-wan master br-wan up "
        f"&& ip -n {ns} addr add {CLIENT_WAN}/24 dev wan && ip -n {ns} link set wan up "
        f"&& ip -n {ns} route add default via 10.77.1.1 "
        f"&& ip -n {ns} link add wg0 type wireguard "
        f"&& ip netns exec {ns} wg setconf wg0 {q(str(setconf))} "
        f"&& ip -n {ns} addr add {q(address)} dev wg0 && ip -n {ns} link set wg0 up "
        f"&& ip -n {ns} route add {q(allowed)} dev wg0"
    )


def stop_client(lab: Lab) -> None:
    lab.sh(f"ip netns del {CLIENT_NS} 2>/dev/null; ip link del {CLIENT_NS}-wan 2>/dev/null; true")


def test_add_connect_and_remove_a_generated_peer(env: Setup) -> None:
    lab = env.lab
    stop_client(lab)  # a leftover of an interrupted run
    fleet = fresh_fleet(env)
    plan = plan_peer_add(env.inventory, fleet, NEW_CLIENT)
    output = env.work / f"{NEW_CLIENT}.conf"
    original = {gw: gw_view(env, gw, "x") for gw in GATEWAYS}
    result = _retry_locked(
        lambda: execute_peer_add(env.ctx, plan, keepalive=plan.keepalive, output=output)
    )
    key = result.public_key
    try:
        # Both gateways, live and in their config files, over their own SSH.
        for gw, view in views(env, key).items():
            assert view.allowed[key] == f"{plan.address}/32", gw
            assert view.keepalive[key] == str(plan.keepalive), gw
            assert view.count == 1, gw
        assert result.inventory is not None
        assert any(c.name == NEW_CLIENT and c.public_key == key for c in result.inventory.clients)
        secret = result.config.private_key.reveal()  # type: ignore[union-attr]
        assert secret in output.read_text()
        assert secret not in result.display_config()
        assert secret not in (env.audit.path.read_text() + "\n".join(result.summary()))

        # A brand-new client with the written config reaches the gateways through the VIP.
        try:
            start_client(lab, output)
            lab.ns(CLIENT_NS, ["ping", "-c", "3", "-W", "5", "10.255.0.1"], timeout=120)
            entries = [c for c in kernel_conns(lab) if c.client.startswith(CLIENT_WAN + ":")]
            vip = f"{lab.meta['vip']}:{lab.meta['port']}"
            assert entries
            assert all(c.virtual == vip for c in entries)
        finally:
            stop_client(lab)

        # Remove it again: gone everywhere, and the files are byte for byte as before.
        inventory = result.inventory
        env.ctx = replace(env.ctx, inventory=inventory)
        rplan = plan_peer_remove(inventory, fresh_fleet(env, inventory), NEW_CLIENT)
        removed = _retry_locked(lambda: execute_peer_remove(env.ctx, rplan))
        assert removed.gateways == GATEWAYS
        after = views(env, key)
        for gw in GATEWAYS:
            assert key not in after[gw].allowed
            assert after[gw].count == 0
            assert after[gw].digest == original[gw].digest, f"{gw}: config not as before"
        assert removed.inventory is not None
        assert all(c.name != NEW_CLIENT for c in removed.inventory.clients)
        outcomes = [(e["action"], e["outcome"]) for e in env.audit.entries()]
        assert outcomes == [("peer add", "ok"), ("peer remove", "ok")]
        drop_backups(env, [*result.backups.items(), *removed.backups.items()])
    finally:
        if any(key in v.allowed or v.count for v in views(env, key).values()):
            remove_leftover(env, key)


class FailingPersist:
    """A gateway whose config-file edit fails once the live change was made (as if its disk
    were full): what the plan's pre-checks cannot see, so it must be rolled back."""

    def __init__(self, inner: Transport, config: str) -> None:
        self.inner = inner
        self.name = inner.name
        self.config = config

    def run(self, command: str, timeout: float, *, mutating: bool = False) -> CommandResult:
        if mutating and "make_backup" in command:  # the config edit (not its restore)
            return CommandResult("", f"cp: error writing '{self.config}': No space left", 1, 0, 0)
        return self.inner.run(command, timeout, mutating=mutating)

    def close(self) -> None:
        self.inner.close()


def test_failure_on_the_second_gateway_rolls_back_both(env: Setup) -> None:
    fleet = fresh_fleet(env)
    plan = plan_peer_add(env.inventory, fleet, "wg-client-fail")
    output = env.work / "fail.conf"
    gw2 = env.inventory.gateways[1]
    transports = dict(env.collector.transports)
    transports[gw2.name] = FailingPersist(transports[gw2.name], gw2.config)
    ctx = replace(env.ctx, transports=transports)
    before = views(env, "none")
    with pytest.raises(OpError) as info:
        _retry_locked(lambda: execute_peer_add(ctx, plan, keepalive=15, output=output))
    message = str(info.value)
    after = views(env, "none")
    for gw in GATEWAYS:
        assert after[gw].allowed == before[gw].allowed, gw
        assert after[gw].keepalive == before[gw].keepalive, gw
        assert after[gw].digest == before[gw].digest, gw
    assert "wg-gateway-01: live peer changed, config written" in message
    assert "wg-gateway-02: live peer changed, config edit attempted" in message
    assert "No space left" in message
    assert message.count("verified as before") == 2
    assert "Every gateway is back as it was." in message
    assert not output.exists()
    assert env.audit.entries()[-1]["outcome"] == "rolled back"


def test_nonexistent_config_on_the_second_gateway_is_refused_before_any_change(
    env: Setup,
) -> None:
    text = env.inventory.path
    body = Path(text).read_text()
    line = "{name: wg-gateway-02,"
    assert body.count(line) == 1
    Path(text).write_text(body.replace(line, line + " config: /nonexistent/wg0.conf,"))
    inventory = load_inventory(text)
    ctx = replace(env.ctx, inventory=inventory)
    fleet = fresh_fleet(env, inventory)
    plan = plan_peer_add(inventory, fleet, "wg-client-fail", address="10.255.0.250")
    before = views(env, "none")
    with pytest.raises(OpError) as info:
        _retry_locked(lambda: execute_peer_add(ctx, plan, keepalive=15, output=env.work / "x.conf"))
    assert "nothing was changed" in str(info.value)
    assert "wg-gateway-02: /nonexistent/wg0.conf is not a readable file" in str(info.value)
    after = views(env, "none")
    assert {g: (v.allowed, v.digest) for g, v in after.items()} == {
        g: (v.allowed, v.digest) for g, v in before.items()
    }
