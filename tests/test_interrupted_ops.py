"""Operations cut short (the connection lost after any number of commands): the next run
detects the half-done state, and can finish it or roll it back.

Drains run against tests.fakeworld (real command lines and shell scripts, a fake kernel);
peer changes against the fake gateways of test_ops_peers. The lab test
tests/lab/test_faults_lab.py interrupts a drain on the real kernel.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fakeworld import GW1, GW2, LB, World, make_world, world_for_cli
from tests.test_ops_peers import NEWKEY, make_rig
from wgconsole.cli import main as cli
from wgconsole.core.fleet import Fleet
from wgconsole.ops.hostcmd.drainrecord import find_record
from wgconsole.ops.machinery.audit import AuditLog
from wgconsole.ops.machinery.context import OpContext, Progress
from wgconsole.ops.machinery.errors import OpError, ValidationError
from wgconsole.ops.machinery.validate import gateway as find_gateway
from wgconsole.ops.procedures.drain import execute_drain, plan_drain
from wgconsole.ops.procedures.peers.add import execute_peer_add
from wgconsole.ops.procedures.peers.plan import plan_peer_add, plan_peer_remove
from wgconsole.ops.procedures.peers.remove import execute_peer_remove
from wgconsole.ops.procedures.weight import execute_weight, plan_undrain
from wgconsole.poll.transport.base import TransportError

DRAIN_COMMANDS = 20  # commands a full drain of gateway-02 sends in the fake world (checked)


def _ctx(world: World, progress: list[Progress] | None = None) -> OpContext:
    sink = progress.append if progress is not None else (lambda p: None)
    return OpContext(
        world.inventory, world.transports(), AuditLog(world.root / "audit.jsonl"), sink, 10.0
    )


def _fleet(world: World) -> Fleet:
    return world.collector(timeout=60.0).read_fleet()


def _drain(world: World, *, break_lock: bool = False, resume: bool = False) -> None:
    ctx = _ctx(world)
    gw = find_gateway(world.inventory, GW2)
    plan = plan_drain(world.inventory, _fleet(world), GW2, find_record(ctx, gw), resume=resume)
    execute_drain(ctx, plan, wait=True, wait_timeout=5, break_lock=break_lock)


def _drained(world: World, phases: tuple[str, ...] = ("done",)) -> bool:
    """The state a finished drain leaves; `phases`: the recorded last steps accepted."""
    st = world.state()
    dests = {d["rs"]: d["w"] for d in st["lb"]["dests"]}
    return (
        dests.get("10.77.0.12:51280") == 0
        and dests.get("10.77.0.11:51280") == 1
        and st["lb"]["flags"] == ["sh-fallback"]
        and st["lb"]["expire"] == 1
        and not st["gateways"]["gw2"]["up"]
        and world.records()["drain-wg-gateway-02.json"]["phase"] in phases
    )


def _codes(fleet: Fleet) -> dict[str, str]:
    return {f.code: f.message for f in fleet.findings}


def test_a_full_drain_sends_the_expected_number_of_commands(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    _drain(world)
    assert _drained(world)
    reads = len([s for s in world.sent if not s.mutating])
    assert len(world.sent) - reads >= 8
    assert len(world.sent) == DRAIN_COMMANDS + 4  # + the plan's snapshot and record read
    assert "half-done-drain" not in _codes(_fleet(world))


@pytest.mark.parametrize("cut", [1, 3, 6, 9, 10, 11, 12, 13, 15, 17, 18, 19])
def test_a_drain_cut_short_is_detected_and_finished(tmp_path: Path, cut: int) -> None:
    world = make_world(tmp_path)
    before = world.state()
    ctx = _ctx(world)
    plan = plan_drain(
        world.inventory, _fleet(world), GW2, find_record(ctx, world.inventory.gateways[1])
    )
    world.cut_after = len(world.sent) + cut
    try:
        execute_drain(ctx, plan, wait=True, wait_timeout=5)
    except OpError as exc:
        assert "connection lost" in str(exc)  # noqa: PT017 - either outcome is valid
    else:
        assert _drained(world)  # only the lock's release was cut: a warning, not a failure
    world.cut_after = None

    fleet = _fleet(world)
    codes = _codes(fleet)
    changed = world.state() != before or world.records()
    if _drained(world, ("readded", "done")):
        # Cut while waiting for handshakes, or releasing the lock: the kernel side is done.
        assert "half-done-drain" not in codes
    elif world.records():
        # The record is written before anything changes: the next run sees the half-done drain.
        message = codes["half-done-drain"]
        assert "wgconsole drain wg-gateway-02` finishes" in message
        assert "wgconsole undrain wg-gateway-02` rolls it back" in message
        assert "--break-lock" in message  # the lock could not be released either
    else:
        assert not changed  # cut before the record: nothing changed at all
    assert "service-locked" in codes or "half-done-drain" in codes

    # Without --break-lock the next run is told about the lock left behind...
    with pytest.raises(OpError, match="--break-lock"):
        _drain(world)
    # ...and with it, running drain again finishes the drain, keeping the weight to restore.
    _drain(world, break_lock=True)
    assert _drained(world)
    assert world.records()["drain-wg-gateway-02.json"]["previous_weight"] == 1
    assert not {"half-done-drain", "service-locked"} & set(_codes(_fleet(world)))


@pytest.mark.parametrize("cut", [5, 12, 16])
def test_a_drain_cut_short_is_rolled_back_by_undrain(tmp_path: Path, cut: int) -> None:
    world = make_world(tmp_path)
    ctx = _ctx(world)
    plan = plan_drain(world.inventory, _fleet(world), GW2, None)
    world.cut_after = len(world.sent) + cut
    with pytest.raises(OpError):
        execute_drain(ctx, plan, wait=True, wait_timeout=5)
    world.cut_after = None
    fleet = _fleet(world)
    assert "half-done-drain" in _codes(fleet)
    ctx = _ctx(world)
    undrain = plan_undrain(ctx, fleet, GW2)
    assert undrain.target == 1
    assert undrain.interrupted
    assert "ROLLING BACK an interrupted drain" in "\n".join(undrain.describe())
    execute_weight(ctx, undrain, break_lock=True)
    st = world.state()
    assert {d["rs"]: d["w"] for d in st["lb"]["dests"]} == {
        "10.77.0.12:51280": 1,
        "10.77.0.11:51280": 1,
    }
    assert st["gateways"]["gw2"]["up"]
    assert not world.records()
    assert not {"half-done-drain", "service-locked"} & set(_codes(_fleet(world)))


def test_resume_needs_an_interrupted_drain(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    with pytest.raises(ValidationError, match="nothing to resume"):
        _drain(world, resume=True)
    _drain(world)
    with pytest.raises(ValidationError, match="nothing to resume"):
        _drain(world, resume=True)  # a finished drain is nothing to resume either


def test_cli_says_so_and_offers_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world = world_for_cli(tmp_path, monkeypatch)
    inv = str(world.root / "inventory.yaml")
    audit = str(tmp_path / "audit.jsonl")
    ctx = _ctx(world)
    plan = plan_drain(world.inventory, _fleet(world), GW2, None)
    world.cut_after = len(world.sent) + 12  # after the weight went to 0
    with pytest.raises(OpError):
        execute_drain(ctx, plan, wait=True, wait_timeout=5)
    world.cut_after = None
    capsys.readouterr()

    assert cli.main(["-i", inv, "status", "--json"]) == 0
    findings = json.loads(capsys.readouterr().out)["findings"]
    half = next(f for f in findings if f["code"] == "half-done-drain")
    assert half["subject"] == GW2
    assert "did not finish" in half["message"]

    assert cli.main(["-i", inv, "drain", GW2, "--dry-run", "--audit-log", audit]) == 0
    out = capsys.readouterr().out
    assert "RESUMING an interrupted drain" in out
    assert f"undrain {GW2}" in out
    assert cli.main(["-i", inv, "undrain", GW2, "--dry-run", "--audit-log", audit]) == 0
    assert "ROLLING BACK an interrupted drain" in capsys.readouterr().out

    args = ["-i", inv, "drain", GW2, "--resume", "--yes", "--break-lock", "--audit-log", audit]
    assert cli.main([*args, "--wait-timeout", "5"]) == 0
    assert "complete" in capsys.readouterr().out
    assert _drained(world)


# --- peers ----------------------------------------------------------------------------


class _Cut:
    """Every transport of a rig loses its connection after `after` commands in all."""

    def __init__(self, transports: dict[str, object], after: int) -> None:
        self.count = 0
        self.after = after
        for name, t in transports.items():
            transports[name] = self._wrap(t)

    def _wrap(self, inner: object) -> object:
        cut = self

        class Wrapped:
            name = getattr(inner, "name", "?")

            def run(self, command: str, timeout: float, *, mutating: bool = False) -> object:
                if cut.count >= cut.after:
                    raise TransportError("ssh: connection lost (injected)")
                cut.count += 1
                return inner.run(command, timeout, mutating=mutating)  # type: ignore[attr-defined]

            def close(self) -> None:
                pass

        return Wrapped()


def test_a_peer_add_cut_on_the_second_gateway_is_drift_then_finished(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    plan = plan_peer_add(rig.inventory, rig.fleet(), "gamma", NEWKEY, "10.255.0.50")
    # lock, read gw1, read gw2, gw1 live, gw1 file: the connection dies before gateway-02.
    _Cut(rig.ctx.transports, after=5)  # type: ignore[arg-type]
    with pytest.raises(OpError) as info:
        execute_peer_add(rig.ctx, plan, keepalive=15)
    assert "COULD NOT roll back" in str(info.value)
    assert NEWKEY in rig.gateways[GW1].peers()
    assert NEWKEY not in rig.gateways[GW2].peers()

    rig = make_rig_again(rig, tmp_path)
    fleet = rig.fleet()
    drift = [f for f in fleet.findings if f.code == "config-drift"]
    assert drift
    assert f"missing on {GW2} (on {GW1})" in drift[0].message
    assert "peer remove KEY" in drift[0].message
    # A new, unrelated add is warned with the way out...
    other = plan_peer_add(rig.inventory, fleet, "delta")
    assert any(f"peer add NAME --public-key {NEWKEY}" in w for w in other.warnings)
    # ...and adding the same key again finishes the add where it is missing.
    finish = plan_peer_add(rig.inventory, fleet, "gamma", NEWKEY)
    assert finish.finishing == (GW1,)
    assert finish.address == "10.255.0.50"
    assert "FINISHING an interrupted change" in "\n".join(finish.describe())
    result = execute_peer_add(rig.ctx, finish)
    assert rig.gateways[GW2].peers()[NEWKEY] == {"ips": ["10.255.0.50/32"], "ka": 15}
    assert Path(rig.inventory.gateways[1].config).read_text().count(NEWKEY) == 1
    assert Path(rig.inventory.gateways[0].config).read_text().count(NEWKEY) == 1
    assert result.inventory is not None
    assert not [f for f in rig.fleet().findings if f.code == "config-drift"]


def test_a_peer_add_cut_short_is_rolled_back_by_remove(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    plan = plan_peer_add(rig.inventory, rig.fleet(), "gamma", NEWKEY, "10.255.0.50")
    _Cut(rig.ctx.transports, after=5)  # type: ignore[arg-type]
    with pytest.raises(OpError):
        execute_peer_add(rig.ctx, plan, keepalive=15)
    rig = make_rig_again(rig, tmp_path)
    remove = plan_peer_remove(rig.inventory, rig.fleet(), NEWKEY)
    assert remove.present_on == (GW1,)
    execute_peer_remove(rig.ctx, remove)
    assert all(NEWKEY not in g.peers() for g in rig.gateways.values())
    assert all(NEWKEY not in Path(g.config).read_text() for g in rig.inventory.gateways)
    assert not [f for f in rig.fleet().findings if f.code == "config-drift"]


def test_finishing_refuses_a_peer_that_differs_between_gateways(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    from tests.test_ops_peers import BASE_PEERS, make_fleet

    fleet = make_fleet(
        rig.inventory,
        {
            GW1: {**BASE_PEERS, NEWKEY: (("10.255.0.50/32",), 15)},
            GW2: {**BASE_PEERS},
        },
    )
    with pytest.raises(ValidationError, match=r"already has address 10\.255\.0\.50"):
        plan_peer_add(rig.inventory, fleet, "gamma", NEWKEY, "10.255.0.51")
    with pytest.raises(ValidationError, match="already the inventory's client 'alpha'"):
        plan_peer_add(rig.inventory, fleet, "alpha-2", rig_keys(rig)[0])


def rig_keys(rig: object) -> list[str]:
    from tests.test_ops_peers import ALPHA

    return [ALPHA]


def make_rig_again(rig: object, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The same fake gateways (their state kept), with fresh connections: the next run."""
    from tests.test_ops_peers import FakeLb, Rig

    old: Rig = rig  # type: ignore[assignment]
    progress: list[Progress] = []
    transports = {LB: FakeLb(), **old.gateways}
    ctx = OpContext(old.inventory, transports, old.audit, progress.append)  # type: ignore[arg-type]
    return Rig(old.inventory, old.gateways, ctx, progress, old.audit)


def test_undrain_recreates_a_missing_interface_before_giving_weight(tmp_path: Path) -> None:
    """A re-creation cut short (or a drain interrupted at the wrong moment) can leave the
    gateway with no wg0 at all: undrain must bring it back before new clients hash to it."""
    world = make_world(tmp_path)
    _drain(world)
    assert _drained(world)
    world.set_state(lambda st: st["gateways"]["gw2"].update(missing=True, up=False))
    fleet = _fleet(world)
    assert next(g for g in fleet.gateways if g.name == GW2).link_up is None
    ctx = _ctx(world)
    undrain = plan_undrain(ctx, fleet, GW2)
    assert undrain.interface_down
    assert "is down or missing" in "\n".join(undrain.describe())
    execute_weight(ctx, undrain)
    gw2 = world.state()["gateways"]["gw2"]
    assert gw2["up"]
    assert not gw2.get("missing")
    assert {d["rs"]: d["w"] for d in world.state()["lb"]["dests"]}["10.77.0.12:51280"] == 1
