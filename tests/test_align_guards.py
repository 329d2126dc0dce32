"""`lb align`'s guards against a change made where it must not be (issue 22, items 5 and 6):
whether keepalived owns the service must be known, and the VIP holder is never changed, also
when VRRP moves the VIP between the preview and the run."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from tests.observations import VIP
from tests.test_pair_ops import HOLDER_ORDER, LB1, LB2, PAIR, _director, _pair_fleet
from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.fleet import Fleet
from wgconsole.core.inventory import Host
from wgconsole.core.records import LbObservation
from wgconsole.ops.machinery.audit import AuditLog
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.errors import OpError, ValidationError
from wgconsole.ops.procedures import align as align_module
from wgconsole.ops.procedures.align import plan_align
from wgconsole.poll.collector import FleetCollector
from wgconsole.poll.replay import capture_time, replay_factory

LAB = Path(__file__).parent / "fixtures" / "lab"


def _replayed(frame: Path) -> Fleet:
    inventory = load_inventory(frame / "inventory.yaml")
    collector = FleetCollector(
        inventory,
        read_only=True,
        transport_factory=replay_factory([frame]),
        clock=lambda: capture_time(frame),
    )
    try:
        return collector.read_fleet()
    finally:
        collector.close()


def _keepalived_dump_failed(tmp_path: Path) -> Path:
    """The lab pair with the backup's table reordered, and the backup's keepalived running
    but its dump not read (the script's `problem` line): config and VRRP state unknown."""
    frame = tmp_path / "frame"
    shutil.copytree(LAB / "pair-backup-reordered", frame)
    lb2 = frame / "wg-lb-2.txt"
    text = lb2.read_text()
    text, n = re.subn(
        r"(@@wgc:keepalived\n(?:.*\n)*?)dump\n(?:.*\n)*?(@@wgc-rc:keepalived:0)",
        r"\1problem keepalived did not write its dump within 2 s\n\2",
        text,
    )
    assert n == 1
    lb2.write_text(text)
    return frame


def test_align_refuses_when_keepalived_ran_but_could_not_be_read(tmp_path: Path) -> None:
    """A failed dump drops the whole keepalived report, config included: whether keepalived
    owns the service (and a reload would undo the alignment) is unknown, not "no"."""
    fleet = _replayed(_keepalived_dump_failed(tmp_path))
    inventory = load_inventory(tmp_path / "frame" / "inventory.yaml")
    lb2 = next(v for v in fleet.load_balancers if v.name == "wg-lb-2")
    assert lb2.keepalived_unknown
    assert lb2.buckets_differing
    with pytest.raises(ValidationError) as refused:
        plan_align(fleet, inventory.service, inventory.load_balancers, "wg-lb-2")
    message = str(refused.value)
    assert "keepalived runs on wg-lb-2 but could not be read" in message
    assert "--ignore-unknown-keepalived" in message
    plan = plan_align(
        fleet,
        inventory.service,
        inventory.load_balancers,
        "wg-lb-2",
        ignore_unknown_keepalived=True,
    )
    preview = "\n".join(plan.describe())
    assert "whether keepalived owns the service on wg-lb-2 is unknown" in preview
    assert "--ignore-unknown-keepalived" in preview
    # Read, the same capture's keepalived owns nothing: no such note, no refusal.
    known = _replayed(LAB / "pair-backup-reordered")
    plain = plan_align(known, inventory.service, inventory.load_balancers, "wg-lb-2")
    assert "unknown" not in "\n".join(plain.describe())


def test_align_rechecks_the_vip_holder_under_the_lock_before_any_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planned while wg-lb-2 was the backup; VRRP then moved the VIP to it. The run's first
    step, before any change to it, reads its addresses afresh and stops there."""
    plan = plan_align(_pair_fleet(HOLDER_ORDER[::-1]), PAIR.service, PAIR.load_balancers, LB2)
    ctx = OpContext(PAIR, {}, AuditLog(tmp_path / "audit.jsonl"))
    now = {
        LB1: _director(LB1, holds=False),
        LB2: replace(
            _director(LB2, holds=False, dests=HOLDER_ORDER[::-1]),
            addresses=("127.0.0.1", VIP.address),
        ),
    }
    read: list[str] = []

    def read_lb(ctx: OpContext, lb: Host, *, conns: bool) -> LbObservation:
        read.append(lb.name)
        return now[lb.name]

    monkeypatch.setattr(align_module, "read_lb", read_lb)
    first = next(align_module._steps(ctx, plan))
    assert first.do is None
    assert first.verify is not None
    assert first.host == LB2
    with pytest.raises(OpError, match="wg-lb-2 now holds the VIP"):
        first.verify()
    assert read == [LB2]
    now[LB2] = _director(LB2, holds=False, dests=HOLDER_ORDER[::-1])
    first.verify()  # still a backup: the run goes on
