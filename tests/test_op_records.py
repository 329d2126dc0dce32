"""Records and locks written on the load balancers are input too.

A drain record (/run/wgconsole/drain-<gateway>.json) or a lock's owner file may hold anything:
another version, a person, a full disk or a hostile user wrote it. Each is validated once
(wgconsole.poll.parsers.op_records), for the poll and for the operations alike: a bad one is
a finding that names its file and LB and what is wrong, and the operations refuse with that
reason before changing anything. Against tests.fakeworld (the real command lines, a fake
kernel), through the CLI as an operator runs it.

Names are input too: one rule (wgconsole.core.input_rules) for the inventory's names and for the
record files named after gateways, so that a drain cut short on any gateway the inventory
accepts is found again (tests/test_input_rules.py: the inventory refuses the others).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import fakeworld
from tests.fakeworld import GW2, LB, World, world_for_cli
from wgconsole.cli import main as cli
from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.records import DrainRecord, LockRecord
from wgconsole.ops.machinery.audit import AuditLog
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.errors import OpError, ValidationError
from wgconsole.ops.procedures.drain import execute_drain, plan_drain
from wgconsole.ops.procedures.weight import plan_undrain
from wgconsole.poll.parsers.op_records import parse_op_state
from wgconsole.poll.transport.base import CommandResult

RECORD_FILE = "/run/wgconsole/drain-wg-gateway-02.json"
OWNER_FILE = "/run/wgconsole/lock-udp-10.77.255.1-51280/owner"
GOOD_RECORD = {"gateway": GW2, "previous_weight": 1, "started": 1700000000, "phase": "done"}


def _record(**changes: object) -> str:
    return json.dumps({**GOOD_RECORD, **changes})


# (what the drain record holds, what is wrong with it)
BAD_RECORDS = [
    pytest.param(_record(previous_weight=-7), "previous_weight -7 is out of range 0..256", id="-7"),
    pytest.param(
        _record(previous_weight=True), "previous_weight true is not an integer", id="true"
    ),
    pytest.param(_record(previous_weight=257), "previous_weight 257 is out of range", id="257"),
    pytest.param(_record(previous_weight="1"), 'previous_weight "1" is not an integer', id="str"),
    pytest.param(
        '{"previous_weight": 1' + "0" * 5000 + "}", "larger than 2048 bytes", id="5000-digits"
    ),
    pytest.param(
        '{"previous_weight": 1' + "0" * 40 + "}", "an integer of more than 20 digits", id="digits"
    ),
    pytest.param("[" * 200_000, "larger than 2048 bytes", id="200000-brackets"),
    pytest.param("[" * 1000 + "]" * 1000, "nested deeper than 4 levels", id="1000-brackets"),
    pytest.param("[1]", "not a JSON object (it is a list)", id="list"),
    pytest.param("not json", "not valid JSON", id="not-json"),
    pytest.param("", "it is empty", id="empty"),
    pytest.param(_record(started=None), "started null is not a time", id="started-null"),
    pytest.param(_record(started=-1), "started -1 is not a time", id="started-negative"),
    pytest.param(_record(phase="moved"), 'phase "moved" is not one of started', id="phase"),
    pytest.param(_record(gateway="wg-gateway-01"), "not the one its file is named", id="gw"),
    pytest.param('{"previous_weight": 1, "started": NaN}', "NaN, which is not a number", id="nan"),
    pytest.param(_record(fenced="yes"), 'fenced "yes" is not true or false', id="fenced"),
    pytest.param(_record(action="rm"), 'action "rm" is neither drain nor evict', id="action"),
]

# (what the lock's owner file holds, what is wrong with it)
BAD_OWNERS = [
    pytest.param("[1]", "not a JSON object (it is a list)", id="list"),
    pytest.param(
        '{"operator": "ops", "action": "drain x", "since": null}',
        "since null is not a time",
        id="since-null",
    ),
    pytest.param(
        '{"operator": "ops", "action": "drain x", "since": 1' + "0" * 5000 + "}",
        "larger than 2048 bytes",
        id="5000-digits",
    ),
    pytest.param('{"operator": ["ops"], "action": "x", "since": 1}', "operator", id="op-list"),
    pytest.param("[" * 200_000, "larger than 2048 bytes", id="200000-brackets"),
]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return world_for_cli(tmp_path, monkeypatch)


def _put_record(world: World, text: str, gateway: str = GW2) -> Path:
    world.run_dir().mkdir(parents=True, exist_ok=True)
    path = world.run_dir() / f"drain-{gateway}.json"
    path.write_text(text)
    return path


def _put_owner(world: World, text: str) -> None:
    lock = world.run_dir() / "lock-udp-10.77.255.1-51280"
    lock.mkdir(parents=True)
    (lock / "owner").write_text(text)


def _raw_records(world: World) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(world.run_dir().glob("**/*")) if p.is_file()}


def _status(world: World, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    capsys.readouterr()
    assert cli.main(["-i", world.inventory.path, "status", "--json"]) == 0
    findings = json.loads(capsys.readouterr().out)["findings"]
    return {f["code"]: f["message"] for f in findings}


# --- the poll side: a finding that names the file, the LB and what is wrong -------------------


@pytest.mark.parametrize(("text", "problem"), BAD_RECORDS)
def test_a_bad_drain_record_parses_to_its_problem(text: str, problem: str) -> None:
    drains, _ = parse_op_state(f"drain-{GW2}.json\t{text}")
    (record,) = drains
    assert record.previous_weight is None
    assert record.problem is not None
    assert problem in record.problem


@pytest.mark.parametrize(("text", "problem"), BAD_OWNERS)
def test_a_bad_lock_owner_parses_to_its_problem(text: str, problem: str) -> None:
    _, locks = parse_op_state(f"lock-udp-10.77.255.1-51280/owner\t{text}")
    (lock,) = locks
    assert lock.problem is not None
    assert problem in lock.problem
    assert lock.file == OWNER_FILE


def test_good_records_keep_their_values() -> None:
    drains, locks = parse_op_state(
        f"drain-{GW2}.json\t{_record()}\n"
        "lock-udp-10.77.255.1-51280/owner\t"
        '{"operator": "ops@bastion", "action": "peer add", "since": 1700000001, "token": "t"}\n'
    )
    assert drains == (DrainRecord(GW2, 1, "done", 1700000000.0),)
    assert locks == (LockRecord("ops@bastion", "peer add", 1700000001.0, None, OWNER_FILE),)
    # Weights 0 and 256 are in range; a record from before phases has none.
    drains, _ = parse_op_state(
        'drain-a.json\t{"previous_weight": 0}\ndrain-b.json\t{"previous_weight": 256}'
    )
    assert [(d.previous_weight, d.phase, d.problem) for d in drains] == [
        (0, None, None),
        (256, None, None),
    ]
    # A record from before fences is an unfenced drain; an eviction says so.
    assert not drains[0].fenced
    assert not drains[0].evicted
    drains, _ = parse_op_state(f"drain-{GW2}.json\t{_record(fenced=True, action='evict')}")
    assert (drains[0].fenced, drains[0].evicted, drains[0].problem) == (True, True, None)


@pytest.mark.parametrize(("text", "problem"), BAD_RECORDS)
def test_a_bad_drain_record_is_a_finding_naming_file_lb_and_problem(
    world: World, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    _put_record(world, text)
    message = _status(world, capsys)["half-done-drain"]
    assert f"on {LB}: its record {RECORD_FILE} cannot be used: " in message
    assert problem in message
    # The way out that works: undrain with the weight given (drain and undrain refuse).
    assert f"`wgconsole undrain {GW2} --weight N` returns it to service" in message


@pytest.mark.parametrize(("text", "problem"), BAD_OWNERS)
def test_a_bad_lock_owner_is_a_finding_naming_file_lb_and_problem(
    world: World, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    _put_owner(world, text)
    message = _status(world, capsys)["service-locked"]
    assert f"The service lock on {LB} is held by an unknown operation ({OWNER_FILE}" in message
    assert problem in message
    assert "--break-lock" in message


# --- the operation side: refused with the reason, nothing changed -----------------------------


@pytest.mark.parametrize(("text", "problem"), BAD_RECORDS)
@pytest.mark.parametrize("argv", [["drain", GW2], ["undrain", GW2]], ids=["drain", "undrain"])
def test_drain_and_undrain_refuse_a_bad_record(
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    text: str,
    problem: str,
) -> None:
    _put_record(world, text)
    before = (world.state(), _raw_records(world))
    capsys.readouterr()
    for mode in ("--dry-run", "--yes"):
        code = cli.main(
            ["-i", world.inventory.path, *argv, mode, "--audit-log", str(tmp_path / "a.jsonl")]
        )
        err = capsys.readouterr().err
        assert code == 2, err
        assert f"{LB}: its record {RECORD_FILE} cannot be used: " in err
        assert problem in err
        assert f"undrain {GW2} --weight N" in err
        assert "Traceback" not in err
    assert [s for s in world.sent if s.mutating] == []
    assert (world.state(), _raw_records(world)) == before
    assert not (tmp_path / "a.jsonl").exists()  # nothing was even attempted


def test_undrain_with_the_weight_given_is_the_way_out_of_a_bad_record(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _put_record(world, _record(previous_weight=-7))
    audit = ["--audit-log", str(tmp_path / "audit.jsonl")]
    drain = ["-i", world.inventory.path, "drain", GW2, "--yes", "--wait-timeout", "5", *audit]
    assert cli.main(drain) == 2  # the way out it names:
    assert f"`wgconsole undrain {GW2} --weight N`" in capsys.readouterr().err
    argv = ["-i", world.inventory.path, "undrain", GW2, "--weight", "2", "--yes", *audit]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert not world.records()  # the bad record is gone...
    assert {d["rs"]: d["w"] for d in world.state()["lb"]["dests"]}["10.77.0.12:51280"] == 2
    assert "half-done-drain" not in _status(world, capsys)
    # ...and a drain starts afresh, recording the weight it had.
    assert cli.main(drain) == 0, capsys.readouterr().err
    assert world.records()[f"drain-{GW2}.json"]["previous_weight"] == 2


@pytest.mark.parametrize(("text", "problem"), BAD_OWNERS)
@pytest.mark.parametrize(
    "argv",
    [["drain", GW2], ["undrain", GW2, "--weight", "1"], ["weight", GW2, "3"]],
    ids=["drain", "undrain", "weight"],
)
def test_a_bad_lock_owner_refuses_every_operation_with_the_reason(
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    text: str,
    problem: str,
) -> None:
    _put_owner(world, text)
    before = (world.state(), _raw_records(world))
    capsys.readouterr()
    audit = ["--audit-log", str(tmp_path / "audit.jsonl")]
    code = cli.main(["-i", world.inventory.path, *argv, "--yes", *audit])
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"{LB}: locked by an unknown operation ({OWNER_FILE} cannot be used: " in err
    assert problem in err
    assert "--break-lock" in err
    assert "Traceback" not in err
    # Only the attempt to take the lock (an atomic mkdir, which found it held) was sent.
    (attempt,) = [s for s in world.sent if s.mutating]
    assert "mkdir" in attempt.command
    assert (world.state(), _raw_records(world)) == before


def _ctx(world: World) -> OpContext:
    return OpContext(
        world.inventory, world.transports(), AuditLog(world.root / "audit.jsonl"), timeout=10.0
    )


def test_plan_undrain_never_restores_a_bool_or_negative_weight(world: World) -> None:
    fleet = world.collector(timeout=60.0).read_fleet()
    for weight in ("true", "-7"):
        _put_record(world, _record(previous_weight=json.loads(weight)))
        with pytest.raises(ValidationError, match=f"previous_weight {weight} is"):
            plan_undrain(_ctx(world), fleet, GW2)


def test_the_audit_log_fallback_never_restores_a_bool(world: World) -> None:
    ctx = _ctx(world)
    ctx.audit.record("drain", GW2, before={"weight": True}, after=None, outcome="ok")
    fleet = world.collector(timeout=60.0).read_fleet()
    with pytest.raises(ValidationError, match="give it with --weight N"):
        plan_undrain(ctx, fleet, GW2)


def test_a_record_that_cannot_be_read_is_not_taken_for_no_record(world: World) -> None:
    """The read failing (not: no such file) stops the undrain: the weight it would have
    found is not replaced by the audit log's, nor asked for as if there were no record."""
    _put_record(world, _record())
    fleet = world.collector(timeout=60.0).read_fleet()
    ctx = _ctx(world)
    real = ctx.transports[LB]

    class FailingRead:
        def run(self, command: str, timeout: float, *, mutating: bool = False) -> CommandResult:
            if "head -c" in command:
                return CommandResult("", "head: error reading: Input/output error", 1, 0.0, 0)
            return real.run(command, timeout, mutating=mutating)

        def close(self) -> None:
            pass

    ctx.transports[LB] = FailingRead()  # type: ignore[index]
    with pytest.raises(OpError, match="Input/output error") as info:
        plan_undrain(ctx, fleet, GW2)
    assert not isinstance(info.value, ValidationError)


def test_a_drain_never_writes_a_recorded_weight_it_did_not_validate(world: World) -> None:
    """The record a cut-short drain left is only resumed from when it validates."""
    fleet = world.collector(timeout=60.0).read_fleet()
    bad = DrainRecord(GW2, None, None, None, "previous_weight -7 is out of range 0..256")
    with pytest.raises(ValidationError, match="out of range"):
        plan_drain(world.inventory, fleet, GW2, bad)
    plan = plan_drain(world.inventory, fleet, GW2, DrainRecord(GW2, 3, "deleted", 1.0))
    assert plan.previous_weight == 3
    execute_drain(_ctx(world), plan, wait=False)
    assert world.records()[f"drain-{GW2}.json"]["previous_weight"] == 3


# --- names: one rule for the inventory and the records named after gateways --------------------

ODD = "0Z.._--" + "a" * 52 + "-_.."  # every symbol the rule allows, doubled, 63 characters


@pytest.fixture
def odd_world(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """The fake world with gateway-02 named by the oddest name the rule allows."""
    path = world.root / "inventory.yaml"
    path.write_text(path.read_text().replace(GW2, ODD))
    world.inventory = load_inventory(path)
    monkeypatch.setitem(fakeworld.HOSTS, ODD, fakeworld.HOSTS[GW2])
    return world


def test_a_half_done_drain_of_the_oddest_allowed_name_is_reported(
    odd_world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = odd_world
    assert world.inventory.gateways[1].name == ODD
    assert len(ODD) == 63
    ctx = _ctx(world)
    plan = plan_drain(world.inventory, world.collector(timeout=60.0).read_fleet(), ODD, None)
    world.cut_after = len(world.sent) + 12  # after the weight went to 0
    with pytest.raises(OpError, match="connection lost"):
        execute_drain(ctx, plan, wait=True, wait_timeout=5)
    world.cut_after = None
    assert list(world.records()) == [f"drain-{ODD}.json"]
    message = _status(world, capsys)["half-done-drain"]
    assert f"A drain of {ODD} did not finish" in message
    assert f"`wgconsole undrain {ODD}` rolls it back" in message
    audit = ["--audit-log", str(tmp_path / "audit.jsonl")]
    assert cli.main(["-i", world.inventory.path, "drain", ODD, "--dry-run", *audit]) == 0
    assert "RESUMING an interrupted drain" in capsys.readouterr().out
    # A bad record of that gateway is named too.
    _put_record(world, "[1]", ODD)
    message = _status(world, capsys)["half-done-drain"]
    assert f"its record /run/wgconsole/drain-{ODD}.json cannot be used" in message
