"""--read-only, proved at the transport: no command marked mutating ever reaches a host.

Every CLI path of every operation runs with --read-only against tests.fakeworld (the real
command lines, a fake kernel); its transports record what was sent and refuse mutating
commands exactly as SshTransport(read_only=True) does. The other half of the guarantee is
that every command that changes state is marked mutating: that is checked here on every
command the operations send, read-only or not.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fakeworld import GW2, World, world_for_cli
from tests.test_ops_peers import NEWKEY, make_rig
from wgconsole.cli import main as cli
from wgconsole.ops.machinery.audit import AuditLog
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.errors import OpError
from wgconsole.ops.procedures.drain import execute_drain, plan_drain
from wgconsole.ops.procedures.peers.add import execute_peer_add
from wgconsole.ops.procedures.peers.plan import plan_peer_add, plan_peer_remove
from wgconsole.ops.procedures.peers.remove import execute_peer_remove
from wgconsole.ops.procedures.weight import execute_weight, plan_undrain, plan_weight

# What changes state on a host, in the commands wgconsole sends.
CHANGES = re.compile(
    r"ipvsadm -[EeadAD] |sysctl -q?w |\blink set\b|\bwg set\b|wg-quick |\bmkdir\b|\brm -"
    r"|\bmv -f\b|\bcp -p\b|printf '%s' \S+ > "
)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return world_for_cli(tmp_path, monkeypatch)


COMMANDS = [
    (["status"], 0),
    (["status", "--json"], 0),
    (["whereis", "10.1.2.3:4000", "--json"], 0),
    (["drain", GW2, "--yes"], 2),
    (["drain", GW2, "--dry-run"], 0),
    (["drain", GW2, "--yes", "--break-lock", "--resume"], 2),
    (["undrain", GW2, "--yes", "--weight", "1"], 2),
    (["undrain", GW2, "--dry-run", "--weight", "1"], 0),
    (["weight", GW2, "3", "--yes"], 2),
    (["weight", GW2, "3", "--dry-run"], 0),
    (["rebalance", "--yes"], 2),
    (["rebalance", "--dry-run"], 0),
    (["undrain", GW2, "--yes", "--weight", "1", "--rebalance"], 2),
    (["peer", "add", "gamma", "--public-key", NEWKEY, "--yes"], 2),
    (["peer", "add", "gamma", "--public-key", NEWKEY, "--dry-run"], 0),
    (["peer", "add", "gamma", "--output", "x.conf", "--yes"], 2),
    (["peer", "remove", "wg-client-0", "--yes"], 2),
    (["peer", "remove", "wg-client-0", "--dry-run"], 0),
]


@pytest.mark.parametrize(("argv", "status"), COMMANDS, ids=[" ".join(c) for c, _ in COMMANDS])
def test_no_cli_path_sends_a_mutating_command(
    world: World, tmp_path: Path, argv: list[str], status: int
) -> None:
    before = (world.state(), world.records())
    inventory = str(world.root / "inventory.yaml")
    audit = ["--audit-log", str(tmp_path / "audit.jsonl")] if argv[0] not in cli_reads() else []
    assert cli.main(["-i", inventory, "--read-only", *argv, *audit]) == status
    assert bool(world.sent) == (status == 0)  # refused operations read nothing either
    assert [s for s in world.sent if s.mutating] == []
    assert [s for s in world.sent if CHANGES.search(s.command)] == []
    assert world.refused == []  # the CLI refused before even trying
    assert (world.state(), world.records()) == before


def cli_reads() -> set[str]:
    return {"status", "whereis"}


def test_operations_refused_at_the_transport_too(world: World) -> None:
    """Past the CLI's own check, a read-only transport still stops the first change."""
    collector = world.collector(timeout=60.0)
    fleet = collector.read_fleet()
    ctx = OpContext(
        world.inventory,
        world.transports(read_only=True),
        AuditLog(world.root / "audit.jsonl"),
        timeout=10.0,
    )
    before = (world.state(), world.records())
    attempts = [
        lambda: execute_drain(ctx, plan_drain(world.inventory, fleet, GW2), wait_timeout=5),
        lambda: execute_weight(ctx, plan_weight(world.inventory, fleet, GW2, 2)),
        lambda: execute_weight(ctx, plan_undrain(ctx, fleet, GW2, 1)),
        lambda: execute_peer_add(
            ctx, plan_peer_add(world.inventory, fleet, "gamma", NEWKEY, "10.255.0.9")
        ),
        lambda: execute_peer_remove(ctx, plan_peer_remove(world.inventory, fleet, "wg-client-0")),
    ]
    for attempt in attempts:
        refused = len(world.refused)
        with pytest.raises(OpError, match="read-only"):
            attempt()  # type: ignore[no-untyped-call]
        assert len(world.refused) == refused + 1  # stopped at its first change
    assert [s for s in world.sent if s.mutating or CHANGES.search(s.command)] == []
    assert (world.state(), world.records()) == before


def _check_marks(sent: list[tuple[str, bool]]) -> None:
    assert sent
    for command, mutating in sent:
        changes = bool(CHANGES.search(command))
        assert mutating == changes, (
            f"{'read' if changes else 'change'} sent as "
            f"{'mutating' if mutating else 'read-only'}: {command[:200]}"
        )


def test_every_change_an_operation_sends_is_marked_mutating(world: World) -> None:
    ctx = OpContext(
        world.inventory, world.transports(), AuditLog(world.root / "audit.jsonl"), timeout=10.0
    )
    collector = world.collector(timeout=60.0)
    execute_drain(ctx, plan_drain(world.inventory, collector.read_fleet(), GW2), wait_timeout=5)
    execute_weight(ctx, plan_undrain(ctx, collector.read_fleet(), GW2))
    execute_weight(ctx, plan_weight(world.inventory, collector.read_fleet(), GW2, 3))
    assert {d["w"] for d in world.state()["lb"]["dests"]} == {1, 3}
    _check_marks([(s.command, s.mutating) for s in world.sent])


def test_every_change_a_peer_operation_sends_is_marked_mutating(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    execute_peer_add(rig.ctx, plan_peer_add(rig.inventory, rig.fleet(), "gamma", NEWKEY))
    execute_peer_remove(rig.ctx, plan_peer_remove(rig.inventory, rig.fleet(), NEWKEY))
    # Then a failure, so that the rollback's commands are checked too.
    rig.gateways["wg-gateway-02"].fail_set = True
    with pytest.raises(OpError):
        execute_peer_add(rig.ctx, plan_peer_add(rig.inventory, rig.fleet(), "delta", NEWKEY))
    _check_marks([c for g in rig.gateways.values() for c in g.commands])
