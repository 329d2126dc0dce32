"""The command line's own grammar: wgconsole's options before or after the command, `--wait`
and `--no-wait` on a drain, and no prefix abbreviations on any parser (tests.fakeworld stands
in for the hosts)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from tests.fakeworld import GW2, World, world_for_cli
from wgconsole.cli import main as cli
from wgconsole.cli import operations as cli_ops
from wgconsole.ops import catalog


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return world_for_cli(tmp_path, monkeypatch)


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """`parser` and every subcommand's parser under it."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += _parsers(sub)
    return found


def test_no_parser_takes_an_abbreviation() -> None:
    parsers = _parsers(cli._parser())
    assert len(parsers) >= 12  # wgconsole, 8 commands, peer's and lab's subcommands
    assert [p.prog for p in parsers if p.allow_abbrev] == []


@pytest.mark.parametrize(
    "argv",
    [
        ["drain", GW2, "--wait-t", "5"],  # was --wait-timeout
        ["status", "--js"],  # was --json
        ["--inv", "x.yaml", "status"],  # was --inventory
        ["peer", "add", "gamma", "--public", "K"],  # was --public-key
    ],
    ids=lambda a: " ".join(a),
)
def test_an_abbreviated_option_is_refused(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_drain_takes_wait_and_no_wait() -> None:
    parse = cli._parser().parse_args
    assert parse(["drain", GW2, "--yes", "--wait"]).wait is True
    assert parse(["drain", GW2, "--yes"]).wait is True  # waiting is the default
    assert parse(["drain", GW2, "--no-wait"]).wait is False
    assert parse(["drain", GW2, "--wait-timeout", "5"]).wait_timeout == 5.0


def test_drain_yes_wait_runs_the_drain_with_waiting(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[catalog.Drain] = []
    real = catalog.Drain

    def drain(*args: object, **kwargs: object) -> catalog.Drain:
        made.append(real(*args, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    monkeypatch.setattr(cli_ops.catalog, "Drain", drain)  # type: ignore[attr-defined]
    inventory = str(world.root / "inventory.yaml")
    audit = ["--audit-log", str(tmp_path / "audit.jsonl")]
    argv = ["drain", GW2, "--yes", "--wait", "--dry-run", "-i", inventory, *audit]
    assert cli.main(argv) == 0
    assert [d.wait for d in made] == [True]


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "-i", "{inv}"],
        ["status", "--json", "--inventory", "{inv}", "--timeout", "5"],
        ["whereis", "10.1.2.3:4000", "-i", "{inv}"],
        ["peer", "-i", "{inv}", "remove", "wg-client-0", "--dry-run"],
        ["weight", GW2, "3", "--dry-run", "-i", "{inv}"],
    ],
    ids=lambda a: " ".join(a),
)
def test_global_options_after_the_command(
    world: World, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    inventory = str(world.root / "inventory.yaml")
    assert cli.main([a.replace("{inv}", inventory) for a in argv]) == 0
    assert world.sent  # the inventory given after the command was the one read
    assert "unrecognized" not in capsys.readouterr().err


def test_read_only_after_the_command_is_honoured(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (world.state(), world.records())
    inventory = str(world.root / "inventory.yaml")
    audit = ["--audit-log", str(tmp_path / "audit.jsonl")]
    assert cli.main(["drain", GW2, "-i", inventory, "--read-only", "--yes", *audit]) == 2
    assert "--read-only: no operation can run" in capsys.readouterr().err
    assert [s for s in world.sent if s.mutating] == []
    assert (world.state(), world.records()) == before


def test_an_option_after_the_command_overrides_the_one_before() -> None:
    args = cli._parser().parse_args(["-i", "a.yaml", "--timeout", "7", "status", "-i", "b.yaml"])
    assert (args.inventory, args.timeout, args.read_only) == ("b.yaml", 7.0, False)
    args = cli._parser().parse_args(["--read-only", "drain", GW2])
    assert args.read_only is True  # not reset by the drain parser's own copy of the option


def test_the_console_gets_typed_options_from_the_command_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from wgconsole.tui import app as tui_app
    from wgconsole.tui.options import ConsoleOptions

    inventory = tmp_path / "inventory.yaml"
    monkeypatch.setattr(cli, "_inventory", lambda args: "the inventory")
    got: list[tuple[object, object]] = []
    monkeypatch.setattr(tui_app, "run_console", lambda o, i: got.append((o, i)) or 0)
    argv = ["-i", str(inventory), "--read-only", "--theme", "light", "console", "--timeout", "7"]
    assert cli.main([*argv, "--interval", "0.5", "--accept-new-host-keys"]) == 0
    assert got == [
        (
            ConsoleOptions(
                interval=0.5,
                read_only=True,
                theme="light",
                accept_new_host_keys=True,
                timeout=7.0,
                audit_log=None,
            ),
            "the inventory",
        )
    ]
    defaults = cli.console_options(cli._parser().parse_args([]))
    assert defaults == ConsoleOptions()
