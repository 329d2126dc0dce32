"""`lb align`'s guards against a change made where it must not be (issue 22, items 5 and 6):
whether keepalived owns the service must be known, and the VIP holder is never changed, also
when VRRP moves the VIP between the preview and the run."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.fleet import Fleet
from wgconsole.ops.machinery.errors import ValidationError
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
    assert lb2.keepalived_unknown and lb2.buckets_differing
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
