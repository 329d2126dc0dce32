"""A gateway that does not answer is drained by the LBs alone, and fenced; the guard's
`evict` is that drain, recorded as its own; `undrain` re-creates the interface, lifts the fence
and restores the weight. Against tests.fakeworld (the real command lines, a fake kernel and a
fake nft); the kernel's side is the lab's (test_wireguard_probe_lab.py)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.fakeworld import GW2, FakeHost, World, world_for_cli
from wgconsole.cli import main as cli
from wgconsole.ops.catalog import Evict, QuietEvicted
from wgconsole.ops.machinery.audit import AuditLog
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.errors import ValidationError
from wgconsole.ops.machinery.operation import Planned, Refused, plan, run
from wgconsole.ops.procedures.drain import execute_drain, plan_drain
from wgconsole.ops.procedures.weight import execute_weight, plan_undrain
from wgconsole.poll.collector import FleetCollector

GW2_RS = "10.77.0.12 . 51280"


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return world_for_cli(tmp_path, monkeypatch)


def _ctx(world: World) -> OpContext:
    return OpContext(
        world.inventory, world.transports(), AuditLog(world.root / "audit.jsonl"), timeout=10.0
    )


def _weights(world: World) -> dict[str, int]:
    return {d["rs"]: d["w"] for d in world.state()["lb"]["dests"]}


def test_a_drain_of_a_gateway_that_does_not_answer_fences_it_and_never_calls_it(
    world: World,
) -> None:
    world.down.add(GW2)
    fleet = world.collector(timeout=5.0).read_fleet()
    drain = plan_drain(world.inventory, fleet, GW2, None)
    assert (drain.unreachable, drain.fence, drain.action) == (True, True, "drain")
    preview = "\n".join(drain.describe())
    assert f"{GW2} DOES NOT ANSWER" in preview
    assert "fence wg-gateway-02 on every LB" in preview
    assert "wg0 down on" not in preview
    sent = len(world.sent)
    result = execute_drain(_ctx(world), drain, wait=False)
    assert result.readded
    # Nothing was tried on it (the other gateway is read for its peers: the kicks); fenced
    # before the weight went to 0, recorded as fenced.
    assert {s.host for s in world.sent[sent:]} == {"wg-lb", "wg-gateway-01"}
    commands = [s.command for s in world.sent[sent:]]
    fenced_at = next(i for i, c in enumerate(commands) if "add element" in c)
    weight_at = next(i for i, c in enumerate(commands) if "ipvsadm -e" in c)
    assert fenced_at < weight_at
    assert world.state()["lb"]["fence"] == [GW2_RS]
    assert _weights(world)["10.77.0.12:51280"] == 0
    record = world.records()[f"drain-{GW2}.json"]
    assert (record["fenced"], record["action"]) == (True, "drain")

    # undrain refuses while it does not answer: clients would be sent to it blind.
    with pytest.raises(ValidationError, match="does not answer"):
        plan_undrain(_ctx(world), world.collector(timeout=5.0).read_fleet(), GW2)
    # Back: its interface re-created (it still knew its clients), then the fence lifted, then
    # its weight back.
    world.down.clear()
    undrain = plan_undrain(_ctx(world), world.collector(timeout=5.0).read_fleet(), GW2)
    assert (undrain.fenced, undrain.interface_down) == (True, True)
    sent = len(world.sent)
    execute_weight(_ctx(world), undrain)
    commands = [s.command for s in world.sent[sent:]]
    recreated = next(i for i, c in enumerate(commands) if "wg-quick" in c)
    lifted = next(i for i, c in enumerate(commands) if "delete element" in c)
    weighted = next(i for i, c in enumerate(commands) if "ipvsadm -e" in c)
    assert recreated < lifted < weighted
    assert world.state()["lb"]["fence"] == []
    assert _weights(world)["10.77.0.12:51280"] == 1
    assert world.records() == {}


def test_the_guards_eviction_is_shown_as_evicted_and_is_done_once(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = _ctx(world)
    collector = world.collector(timeout=5.0)
    planned = plan(Evict(GW2), ctx, collector.read_fleet, {})
    assert not isinstance(planned, Refused)
    # A reachable gateway is fenced too, and its interface taken down.
    assert "wg0 down on wg-gateway-02" in "\n".join(planned.preview)
    outcome = run(planned)
    assert not outcome.failed, outcome.summary
    assert outcome.summary.startswith(f"evict of {GW2} complete")
    assert world.state()["lb"]["fence"] == [GW2_RS]
    assert world.state()["gateways"]["gw2"]["up"] is False
    [entry] = AuditLog(world.root / "audit.jsonl").entries()
    assert (entry["action"], entry["target"], entry["outcome"]) == ("evict", GW2, "ok")
    # A second guard (or this one again) finds it out of service and does nothing.
    again = plan(Evict(GW2), ctx, collector.read_fleet, {})
    assert isinstance(again, Refused)
    assert "already out of service" in again.reason
    # The guard acts on the refusal's kind, never on its wording.
    assert again.kind == "already-out-of-service"
    # `status`: the real server is evicted, and a finding says what happened and the way back.
    capsys.readouterr()
    assert cli.main(["-i", world.inventory.path, "status", "--json"]) in (0, 1, 2)
    shown = json.loads(capsys.readouterr().out)
    state = {r["gateway"]: r["state"] for r in shown["real_servers"]}
    assert state[GW2] == "evicted"
    [finding] = [f for f in shown["findings"] if f["code"] == "gateway-evicted"]
    assert finding["subject"] == GW2
    assert f"`wgconsole undrain {GW2}` returns it" in finding["message"]


def test_an_evicted_gateway_that_comes_back_has_its_interface_taken_down(world: World) -> None:
    ctx = _ctx(world)
    collector = world.collector(timeout=5.0)
    assert not run(_planned(Evict(GW2), ctx, collector)).failed
    # Only an evicted gateway whose interface is up: not the other, not one already down.
    refused = plan(QuietEvicted("wg-gateway-01"), ctx, collector.read_fleet, {})
    assert isinstance(refused, Refused)
    assert "is not evicted" in refused.reason
    refused = plan(QuietEvicted(GW2), ctx, collector.read_fleet, {})
    assert isinstance(refused, Refused)
    assert "already down" in refused.reason
    # Its WireGuard answers before its sshd does: the guard looks again shortly (the kind).
    world.down.add(GW2)
    refused = plan(QuietEvicted(GW2), ctx, collector.read_fleet, {})
    assert isinstance(refused, Refused)
    assert refused.kind == "does-not-answer"
    world.down.discard(GW2)
    # It came back (wg-quick started it again at boot).
    world.set_state(lambda st: st["gateways"]["gw2"].update(up=True))
    outcome = run(_planned(QuietEvicted(GW2), ctx, collector))
    assert not outcome.failed, outcome.summary
    assert world.state()["gateways"]["gw2"]["up"] is False
    assert world.state()["lb"]["fence"] == [GW2_RS]  # still evicted and fenced
    actions = [e["action"] for e in AuditLog(world.root / "audit.jsonl").entries()]
    assert actions == ["evict", "evict-interface-down"]


def _planned(op: Evict | QuietEvicted, ctx: OpContext, collector: FleetCollector) -> Planned:
    planned = plan(op, ctx, collector.read_fleet, {})
    assert not isinstance(planned, Refused), planned.reason
    return planned


def test_a_gateway_presumed_silent_does_not_hold_the_planning_poll(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard's probes condemned it: its eviction's reading gets the grace of a host that
    did not answer its last request, not the whole deadline (a hung host would hold it)."""
    released = threading.Event()
    original = FakeHost.run

    def hung(self: FakeHost, command: str, timeout: float, *, mutating: bool = False) -> Any:
        if self.name == GW2:
            released.wait()
        return original(self, command, timeout, mutating=mutating)

    monkeypatch.setattr(FakeHost, "run", hung)
    collector = world.collector(timeout=600.0)
    try:
        collector.presume_silent(GW2)
        fleet = collector.read_fleet()
        assert not released.is_set()  # the poll returned while GW2 still hung
        view = fleet.gateway(GW2)
        assert view is not None
        assert not view.reachable
        assert all(g.reachable for g in fleet.gateways if g.name != GW2)
    finally:
        released.set()


def test_an_undrain_under_way_is_never_undone_by_the_guards_interface_down(
    world: World,
) -> None:
    """Planned while the gateway was evicted, run after the record went (an operator's
    undrain between the two): it checks again under the lock and leaves the interface."""
    ctx = _ctx(world)
    collector = world.collector(timeout=5.0)
    assert not run(_planned(Evict(GW2), ctx, collector)).failed
    world.set_state(lambda st: st["gateways"]["gw2"].update(up=True))
    planned = _planned(QuietEvicted(GW2), ctx, collector)
    (world.run_dir() / f"drain-{GW2}.json").unlink()
    outcome = run(planned)
    assert outcome.failed
    assert "no longer evicted" in outcome.summary
    assert world.state()["gateways"]["gw2"]["up"] is True
