"""Half-done drains and held locks, as the LB poll reports them and as findings show them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.fleet import Fleet
from wgconsole.core.records import (
    DrainRecord,
    GatewayObservation,
    HostStatus,
    IpvsService,
    LockRecord,
    ServiceFlag,
)
from wgconsole.poll.collector import (
    HostPoll,
    PollResult,
    fleet_from_poll,
    parse_gateway_output,
    parse_lb_output,
)
from wgconsole.poll.parsers.op_records import local_state_text, parse_op_state
from wgconsole.poll.remote_scripts import lb_script

LAB = Path(__file__).parent / "fixtures" / "lab"
NORMAL = LAB / "normal"
LB, GW1, GW2 = "wg-lb", "wg-gateway-01", "wg-gateway-02"
INVENTORY = load_inventory(NORMAL / "inventory.yaml")


def test_parse_op_state() -> None:
    text = (
        'drain-wg-gateway-02.json\t{"gateway": "wg-gateway-02", "previous_weight": 3, '
        '"started": 1700000000.5, "phase": "deleted"}\n'
        "drain-wg-gateway-01.json\tnot json\n"
        "drain-../../etc.json\t{}\n"
        'lock\t{"operator": "ops@bastion", "action": "drain wg-gateway-02", "since": 1700000001}\n'
        "noise without a tab\n"
    )
    drains, locks = parse_op_state(text)
    assert drains == (
        DrainRecord("wg-gateway-02", 3, "deleted", 1700000000.5),
        DrainRecord("wg-gateway-01", None, None, None, "it is not valid JSON"),
    )
    assert locks == (LockRecord("ops@bastion", "drain wg-gateway-02", 1700000001.0),)
    assert parse_op_state("") == ((), ())


def test_local_state_text_matches_the_shell(tmp_path: Path) -> None:
    (tmp_path / "drain-gw.json").write_text('{"previous_weight": 1,\n"phase": "done"}')
    (tmp_path / "lock-udp-1.2.3.4-5").mkdir()
    (tmp_path / "lock-udp-1.2.3.4-5" / "owner").write_text(
        '{"operator": "me", "action": "drain gw",\n"since": 1700000001}'
    )
    drains, locks = parse_op_state(local_state_text(tmp_path))
    assert drains == (DrainRecord("gw", 1, "done", None),)
    assert locks == (
        LockRecord("me", "drain gw", 1700000001.0, None, "/run/wgconsole/lock-udp-1.2.3.4-5/owner"),
    )
    assert local_state_text(tmp_path / "missing") == ""


def test_lb_script_lists_state_and_old_captures_still_parse() -> None:
    assert "/run/wgconsole" in lb_script(sudo=False)
    obs = parse_lb_output(LB, (NORMAL / "wg-lb.txt").read_text())  # captured before "ops"
    assert (obs.drain_records, obs.locks) == ((), ())


def _observations(
    *, weight: int | None, fallback: bool, expire: bool, gw2_up: bool, record: str = "deleted"
) -> Fleet:
    lb = parse_lb_output(LB, (NORMAL / "wg-lb.txt").read_text())
    (svc,) = lb.services
    dests = tuple(
        replace(d, weight=weight) if d.endpoint.address == "10.77.0.12" else d  # type: ignore[arg-type]
        for d in svc.dests
        if weight is not None or d.endpoint.address != "10.77.0.12"
    )
    flags = svc.flags | (ServiceFlag.SH_FALLBACK if fallback else 0)
    lb = replace(
        lb,
        services=(IpvsService(svc.protocol, svc.vip, svc.scheduler, int(flags), 0, dests),),
        expire_nodest_conn=expire,
        drain_records=(DrainRecord(GW2, 1, record, 1795664000.0),),  # type: ignore[arg-type]
    )
    gws: dict[str, GatewayObservation | None] = {
        name: parse_gateway_output(name, "wg0", (NORMAL / f"{name}.txt").read_text())
        for name in (GW1, GW2)
    }
    if not gw2_up:
        gw2 = gws[GW2]
        assert gw2 is not None
        gws[GW2] = replace(gw2, link_up=False, interface=None)
    polls = (
        HostPoll(LB, "lb", lb, None, 0.0, 0),
        *(HostPoll(n, "gateway", o, None, 0.0, 0) for n, o in gws.items()),
    )
    poll = PollResult(1795664600.0, 0.0, polls)
    statuses = tuple(
        HostStatus(h.name, h.role, reachable=True, error=None, last_success=poll.taken_at)
        for h in polls
    )
    return fleet_from_poll(INVENTORY, poll, statuses)


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        ({"weight": None, "fallback": True, "expire": True, "gw2_up": False}, "deleted"),
        ({"weight": 0, "fallback": True, "expire": True, "gw2_up": True}, "wg0 is still up"),
        ({"weight": 1, "fallback": True, "expire": True, "gw2_up": False}, "weight 1, not 0"),
        ({"weight": 1, "fallback": False, "expire": False, "gw2_up": True}, "sh-fallback is off"),
    ],
)
def test_half_done_drain_is_a_finding_with_the_way_out(
    state: dict[str, object], problem: str
) -> None:
    fleet = _observations(**state)  # type: ignore[arg-type]
    (finding,) = [f for f in fleet.findings if f.code == "half-done-drain"]
    assert (finding.severity, finding.subject) == ("warning", GW2)
    assert problem in finding.message
    assert "on wg-lb" in finding.message
    assert f"wgconsole drain {GW2}` finishes" in finding.message
    assert f"wgconsole undrain {GW2}` rolls it back" in finding.message
    assert "last recorded step: deleted" in finding.message


def test_a_finished_drain_is_no_finding() -> None:
    fleet = _observations(weight=0, fallback=True, expire=True, gw2_up=False, record="done")
    assert not [f for f in fleet.findings if f.code == "half-done-drain"]
    # Its interface is down on purpose: said, but not as an alarm.
    (down,) = [f for f in fleet.findings if f.code == "interface-down"]
    assert down.severity == "info"
    assert "drained" in down.message
    assert "undrain" in down.message
    half = _observations(weight=0, fallback=True, expire=True, gw2_up=False, record="started")
    (down,) = [f for f in half.findings if f.code == "interface-down"]
    assert down.severity == "critical"


def test_a_held_lock_is_reported() -> None:
    lb = parse_lb_output(LB, (NORMAL / "wg-lb.txt").read_text())
    lb = replace(lb, locks=(LockRecord("ops@bastion", "peer add", 1795664500.0),))
    poll = PollResult(1795664600.0, 0.0, (HostPoll(LB, "lb", lb, None, 0.0, 0),))
    fleet = fleet_from_poll(
        INVENTORY,
        poll,
        (HostStatus(LB, "lb", reachable=True, error=None, last_success=1795664600.0),),
    )
    (finding,) = [f for f in fleet.findings if f.code == "service-locked"]
    assert "'peer add' by ops@bastion since 100 s" in finding.message
    assert "--break-lock" in finding.message
