"""ops.machinery.operation: how both front ends plan and run an operation (over the replayed
lab captures)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.console_support import NORMAL, SteppedCollector
from wgconsole.core.fleet import Fleet
from wgconsole.ops import catalog
from wgconsole.ops.machinery.audit import AuditLog
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.operation import Planned, Refused, plan, run

GW1 = "wg-gateway-01"


def _rig(tmp_path: Path) -> tuple[OpContext, SteppedCollector, list[str]]:
    collector = SteppedCollector([NORMAL])
    ctx = OpContext(collector.inventory, collector.transports, AuditLog(tmp_path / "audit.jsonl"))
    return ctx, collector, []


def _reader(collector: SteppedCollector, reads: list[str]) -> Callable[[], Fleet]:
    def read() -> Fleet:
        reads.append("read")
        return collector.read_fleet()

    return read


def test_input_is_checked_before_anything_is_read(tmp_path: Path) -> None:
    ctx, collector, reads = _rig(tmp_path)
    read = _reader(collector, reads)
    for op, values, reason in [
        (catalog.Weight(GW1), {}, "needed: new weight N (0..256)"),
        (catalog.Weight(GW1), {"weight": "heavy"}, "heavy"),
        (catalog.Weight(GW1, "300"), {}, "300"),
        (catalog.Drain("wg-gateway-09"), {}, "wg-gateway-09"),
        (catalog.Undrain(GW1, weight=-1), {}, "-1"),
        (catalog.PeerAdd(), {"name": "bad name!"}, "bad name!"),
        (catalog.PeerAdd("ok", public_key="not-a-key"), {}, "public key"),
    ]:
        result = plan(op, ctx, read, values)  # type: ignore[arg-type]
        assert isinstance(result, Refused), op
        assert result.cause == "input"
        assert reason in result.reason, (op, result.reason)
    assert reads == []
    collector.close()


def test_a_plan_reads_once_and_previews_without_changing_anything(tmp_path: Path) -> None:
    ctx, collector, reads = _rig(tmp_path)
    planned = plan(catalog.Weight(GW1), ctx, _reader(collector, reads), {"weight": "3"})
    assert isinstance(planned, Planned)
    assert reads == ["read"]
    assert planned.target == GW1
    assert planned.preview[0].startswith(f"weight {GW1}: weight 1 -> weight 3")
    assert planned.confirmed_by(f"  {GW1} ")
    assert not planned.confirmed_by("wg-gateway-0")
    assert not (tmp_path / "audit.jsonl").exists()
    collector.close()


def test_a_failed_step_is_the_outcome_never_raised(tmp_path: Path) -> None:
    # The replay refuses every mutating command, as a read-only transport does.
    ctx, collector, reads = _rig(tmp_path)
    planned = plan(catalog.Weight(GW1, "3"), ctx, _reader(collector, reads), {})
    assert isinstance(planned, Planned)
    outcome = run(planned)
    assert outcome.failed
    assert outcome.summary
    collector.close()


def test_a_generated_key_needs_a_file_unless_it_is_a_dry_run(tmp_path: Path) -> None:
    ctx, collector, reads = _rig(tmp_path)
    read = _reader(collector, reads)
    refused = plan(catalog.PeerAdd("newbie"), ctx, read, {})
    assert isinstance(refused, Refused)
    assert refused.reason == catalog.GENERATED_KEY_NEEDS_FILE
    assert isinstance(plan(catalog.PeerAdd("newbie", dry_run=True), ctx, read, {}), Planned)
    asked = catalog.PeerAdd()
    assert [f.name for f in asked.fields] == ["name", "public_key", "address", "output"]
    out = str(tmp_path / "newbie.conf")
    assert isinstance(plan(asked, ctx, read, {"name": "newbie", "output": out}), Planned)
    collector.close()
