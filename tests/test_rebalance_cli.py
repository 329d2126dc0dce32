"""`wgconsole rebalance` and undrain's offer of it on the command line: the arguments, and when
the offer plans, asks, runs or only says (the planning and running are stubbed here; the real
ones are tests/test_rebalance.py and tests/lab/test_rebalance_lab.py)."""

from __future__ import annotations

import argparse
import io
from typing import Any, ClassVar

import pytest

from wgconsole.cli import main as cli
from wgconsole.cli import operations as cli_ops
from wgconsole.ops import catalog
from wgconsole.ops.machinery.operation import FollowUp, Outcome, Planned
from wgconsole.ops.procedures.rebalance import NOTHING_TO_MOVE


def _args(*argv: str) -> argparse.Namespace:
    return cli._parser().parse_args(list(argv))


def test_rebalance_and_undrains_options_parse() -> None:
    a = _args("rebalance", "--dry-run", "--wait-timeout", "5")
    assert (a.command, a.dry_run, a.wait_timeout) == ("rebalance", True, 5.0)
    op = cli_ops.operation(a)
    assert isinstance(op, catalog.Rebalance)
    assert op.wait_timeout == 5.0
    assert (op.title, op.subject, op.fields) == ("rebalance", "rebalance", ())
    assert _args("undrain", "gw", "--rebalance").rebalance is True
    assert _args("undrain", "gw", "--no-rebalance").rebalance is False
    assert _args("undrain", "gw").rebalance is None
    with pytest.raises(SystemExit):
        _args("undrain", "gw", "--reb")  # no abbreviation


class _Stub:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, moves: bool = True) -> None:
        self.planned = 0
        self.ran = 0
        preview = ("Rebalance udp …", "  moves:" if moves else NOTHING_TO_MOVE)

        def execute() -> Outcome:
            self.ran += 1
            return Outcome("rebalance: 1 client(s) moved and verified")

        def plan(*_: Any) -> Planned:
            self.planned += 1
            return Planned(preview, "rebalance", execute, changes_nothing=not moves)

        monkeypatch.setattr(cli_ops, "plan", plan)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Collector:
    read_fleet = None


FOLLOW_UP = FollowUp("rebalance", catalog.Rebalance(), "clients are still on other gateways")


def _offer(*argv: str) -> int:
    args = _args("undrain", "gw", *argv)
    return cli_ops._offer_rebalance(args, None, _Collector(), FOLLOW_UP)  # type: ignore[arg-type]


def test_no_rebalance_plans_nothing(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    stub = _Stub(monkeypatch)
    assert _offer("--no-rebalance", "--yes") == 0
    assert (stub.planned, stub.ran) == (0, 0)
    assert capsys.readouterr().out == ""


def test_yes_without_a_choice_only_says_how(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    stub = _Stub(monkeypatch)
    monkeypatch.setattr("sys.stdin", _Tty())
    assert _offer("--yes") == 0
    out = capsys.readouterr().out
    assert (stub.planned, stub.ran) == (1, 0)
    assert "Rebalance udp" in out
    assert "`wgconsole rebalance` moves them" in out


def test_not_a_terminal_only_says_how(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    stub = _Stub(monkeypatch)
    monkeypatch.setattr("sys.stdin", io.StringIO("rebalance\n"))
    assert _offer() == 0
    assert stub.ran == 0
    assert "not rebalanced" in capsys.readouterr().out


@pytest.mark.parametrize(("typed", "runs"), [("rebalance\n", 1), ("no\n", 0), ("\n", 0)])
def test_a_terminal_is_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: Any, typed: str, runs: int
) -> None:
    stub = _Stub(monkeypatch)
    monkeypatch.setattr("sys.stdin", _Tty(typed))
    assert _offer() == 0
    assert stub.ran == runs
    out = capsys.readouterr().out
    assert ("moved and verified" in out) == bool(runs)


def test_rebalance_runs_without_asking(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    stub = _Stub(monkeypatch)
    monkeypatch.setattr("sys.stdin", _Tty(""))
    assert _offer("--rebalance", "--yes") == 0
    assert stub.ran == 1
    assert "moved and verified" in capsys.readouterr().out


def test_nothing_to_move_is_shown_and_not_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    stub = _Stub(monkeypatch, moves=False)
    monkeypatch.setattr("sys.stdin", _Tty(""))
    assert _offer("--rebalance") == 0
    assert stub.ran == 0
    assert NOTHING_TO_MOVE in capsys.readouterr().out


class _FleetCollector:
    transports: ClassVar[dict[str, Any]] = {}
    parse_memos = None
    read_fleet = None


@pytest.mark.parametrize("follow_up", [FOLLOW_UP, None])
def test_the_offer_follows_the_outcomes_typed_follow_up(
    monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Any, follow_up: FollowUp | None
) -> None:
    """The CLI offers a rebalance because the outcome says so (an undrain's), not because of
    which command ran."""
    offered: list[FollowUp] = []

    def plan(*_: Any) -> Planned:
        return Planned(("undrain gw",), "gw", lambda: Outcome("done", follow_up=follow_up))

    def offer(args: Any, ctx: Any, collector: Any, given: FollowUp) -> int:
        offered.append(given)
        return 0

    monkeypatch.setattr(cli_ops, "plan", plan)
    monkeypatch.setattr(cli_ops, "_offer_rebalance", offer)
    args = _args("undrain", "gw", "--yes", "--audit-log", str(tmp_path / "audit.jsonl"))
    assert cli_ops.cmd_operation(args, None, _FleetCollector()) == 0  # type: ignore[arg-type]
    assert offered == ([follow_up] if follow_up else [])
    assert "done" in capsys.readouterr().out
