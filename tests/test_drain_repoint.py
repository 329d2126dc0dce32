"""The drain and the eviction re-point their clients' LB entries through the IPVS sync
protocol and kick them from their new gateways at once (issue #19 part 3), against
tests.fakeworld with its LBs' sync (`with_sync`): the real command lines and scripts, a fake
kernel whose backup daemons apply the sync messages. The kernel's side is the lab's
(tests/lab/test_ops_drain_lab.py, test_pair_ops_lab.py, test_wireguard_probe_lab.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakeworld import GW1, GW2, LB, LB2, World, make_world, with_sync
from wgconsole.core.fleet import Fleet
from wgconsole.ops.hostcmd.drainrecord import find_record
from wgconsole.ops.machinery.audit import AuditLog
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.errors import OpError
from wgconsole.ops.procedures.drain import DrainResult, execute_drain, plan_drain

GW1_RS, GW2_RS = "10.77.0.11:51280", "10.77.0.12:51280"
LABELS = ["wg-client-0", "wg-client-1"]


def _ctx(world: World) -> OpContext:
    return OpContext(
        world.inventory, world.transports(), AuditLog(world.root / "audit.jsonl"), timeout=10.0
    )


def _fleet(world: World) -> Fleet:
    return world.collector(timeout=30.0).read_fleet()


def _index(world: World, start: int, host: str, text: str) -> int:
    return next(
        i for i, s in enumerate(world.sent) if i >= start and s.host == host and text in s.command
    )


def _drain(world: World, **kw: object) -> tuple[DrainResult, int]:
    plan = plan_drain(world.inventory, _fleet(world), GW2, None, **kw)  # type: ignore[arg-type]
    assert sorted(plan.repoint) == LABELS, plan.describe()
    start = len(world.sent)
    return execute_drain(_ctx(world), plan, wait=True, wait_timeout=10), start


def test_the_drain_repoints_and_kicks_before_the_delete(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    with_sync(world)
    plan = plan_drain(world.inventory, _fleet(world), GW2, None)
    text = "\n".join(plan.describe())
    assert "re-point the LB entries of 2 client(s)" in text
    assert "through the IPVS sync protocol" in text
    assert "wgcsync" in text  # the side effects: the private daemon
    start = len(world.sent)
    result = execute_drain(_ctx(world), plan, wait=True, wait_timeout=10)
    assert result.complete
    assert sorted(result.repointed) == LABELS
    assert result.moved == dict.fromkeys(LABELS, GW1)
    # In the gap: wg0 down, then the entries re-pointed, then the kick, then the delete.
    up = _index(world, start, LB, "--start-daemon backup")
    down = _index(world, start, GW2, "link set dev wg0 down")
    send = _index(world, start, LB, "IP_MULTICAST_IF")
    kick = _index(world, start, GW1, "wg set wg0 peer")
    delete = _index(world, start, LB, "ipvsadm -d ")
    stop = _index(world, start, LB, "--stop-daemon backup")
    assert up < down < send < kick < delete < stop
    # Nothing read in the gap.
    assert send == down + 1
    assert kick == send + 1
    # One `wg set` for both clients, each to its LB entry's address.
    kicks = [s.command for s in world.sent[start:] if s.host == GW1 and "wg set" in s.command]
    assert len(kicks) == 1
    assert "10.77.1.10:51601" in kicks[0]
    assert "10.77.1.11:51602" in kicks[0]
    state = world.state()
    assert set(state["lb"]["conns"].values()) == {GW1_RS}
    assert state["lb"]["daemons"] == []  # the private daemon removed
    assert "wgcsync" not in state["lb"]["links"]
    assert all(p["kicked"] == 1 for p in state["gateways"]["gw1"]["peers"].values())
    # The LB's sync lock taken and given back.
    assert any("lock-ipvs-sync" in s.command for s in world.sent[start:])
    assert not list(world.run_dir().glob("lock-*"))
    [entry] = AuditLog(world.root / "audit.jsonl").entries()
    assert sorted(entry["after"]["repointed"]) == LABELS
    assert entry["after"]["moved"] == dict.fromkeys(LABELS, GW1)
    assert world.records()[f"drain-{GW2}.json"]["phase"] == "done"


def test_an_eviction_of_an_unreachable_gateway_repoints_its_known_clients(
    tmp_path: Path,
) -> None:
    world = make_world(tmp_path)
    with_sync(world)
    known = _fleet(world)
    world.down.add(GW2)
    plan = plan_drain(world.inventory, _fleet(world), GW2, None, action="evict", known=known)
    assert (plan.unreachable, plan.fence) == (True, True)
    assert sorted(plan.repoint) == LABELS
    start = len(world.sent)
    result = execute_drain(_ctx(world), plan, wait=False)
    assert sorted(result.repointed) == LABELS
    assert {s.host for s in world.sent[start:]} == {LB, GW1}
    fenced = _index(world, start, LB, "add element")
    weight = _index(world, start, LB, "ipvsadm -e")
    send = _index(world, start, LB, "IP_MULTICAST_IF")
    kick = _index(world, start, GW1, "wg set wg0 peer")
    delete = _index(world, start, LB, "ipvsadm -d ")
    assert _index(world, start, LB, "--start-daemon") < fenced < weight < send < kick < delete
    assert set(world.state()["lb"]["conns"].values()) == {GW1_RS}


@pytest.mark.parametrize(
    ("setting", "warning"),
    [
        ({"dummy": False}, "no dummy interface for the private daemon"),
        ({"backup_only": 1}, "net.ipv4.vs.backup_only is 1"),
    ],
)
def test_without_the_sync_mechanism_the_clients_move_the_old_way(
    tmp_path: Path, setting: dict[str, object], warning: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(tmp_path)
    with_sync(world, **setting)  # type: ignore[arg-type]
    plan = plan_drain(world.inventory, _fleet(world), GW2, None)
    warned: list[str] = []
    ctx = _ctx(world)
    monkeypatch.setattr(ctx, "warn", warned.append)
    if setting.get("backup_only"):
        # Known at plan time: the preview says how the clients move.
        assert plan.repoint == ()
        assert warning in "\n".join(plan.describe())
    start = len(world.sent)
    result = execute_drain(ctx, plan, wait=True, wait_timeout=10)
    assert result.repointed == []
    assert result.moved == dict.fromkeys(LABELS, GW1)  # moved by the watch and its kick
    assert any(warning in w for w in warned), warned
    assert not any("--start-daemon" in s.command for s in world.sent[start:])
    # The delete first, then the kick of what the watch found.
    delete = _index(world, start, LB, "ipvsadm -d ")
    kick = _index(world, start, GW1, "wg set wg0 peer")
    assert delete < kick
    assert world.state()["lb"]["daemons"] == []


def test_a_pair_repoints_on_both_directors(tmp_path: Path) -> None:
    world = make_world(tmp_path, pair=True)
    with_sync(world, pair=True)
    result, start = _drain(world)
    assert sorted(result.repointed) == LABELS
    state = world.state()
    # The holder through the private daemon next to its master one; the standby through
    # keepalived's own backup daemon, left running.
    assert set(state["lb"]["conns"].values()) == {GW1_RS}
    assert set(state["lb2"]["conns"].values()) == {GW1_RS}
    assert any("--start-daemon" in s.command for s in world.sent[start:] if s.host == LB)
    assert not any("--start-daemon" in s.command for s in world.sent[start:] if s.host == LB2)
    assert len(state["lb2"]["received"]) == 2  # active, then inactive
    assert state["lb2"]["daemons"] == [
        "backup sync daemon (mcast=lan, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)"
    ]
    assert state["lb"]["daemons"][0].startswith("master sync daemon")
    assert len(state["lb"]["daemons"]) == 1
    kick = _index(world, start, GW1, "wg set wg0 peer")
    for lb in (LB, LB2):
        send = _index(world, start, lb, "IP_MULTICAST_IF")
        assert send < kick < _index(world, start, lb, "ipvsadm -d ")


def test_a_private_daemon_left_by_a_cut_run_is_removed_by_the_next(tmp_path: Path) -> None:
    """Cut right after the private daemon started (the connection lost: its undo cannot
    reach the LB either): the next run, resuming, removes it."""
    full = make_world(tmp_path / "full")
    with_sync(full)
    _, start = _drain(full)
    n = _index(full, start, LB, "--start-daemon backup") - start
    world = make_world(tmp_path / "cut")
    with_sync(world)
    plan = plan_drain(world.inventory, _fleet(world), GW2, None)
    world.cut_after = len(world.sent) + n + 1
    with pytest.raises(OpError):
        execute_drain(_ctx(world), plan, wait=False)
    assert world.state()["lb"]["daemons"][0].startswith("backup sync daemon (mcast=wgcsync")
    world.cut_after = None
    ctx = _ctx(world)
    record = find_record(ctx, next(g for g in world.inventory.gateways if g.name == GW2))
    again = plan_drain(world.inventory, _fleet(world), GW2, record, resume=True)
    assert again.leftover_on == (LB,)
    assert "the private sync daemon left by a run cut short is removed" in "\n".join(
        again.describe()
    )
    result = execute_drain(ctx, again, wait=False, break_lock=True)
    assert sorted(result.repointed) == LABELS
    assert world.state()["lb"]["daemons"] == []
    assert world.records()[f"drain-{GW2}.json"]["phase"] == "done"
