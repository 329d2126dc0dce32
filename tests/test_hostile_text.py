"""Hostile and odd text from hosts and operators is shown as text, and never reaches the
terminal as markup or control sequences: in the console, `status`, the CLI and the audit log.

Hosts can send anything in a field the parsers keep as text (a scheduler word, error output,
a lock owner); operators name things and type filters. The console and `status` render with
Rich and Textual, which read `[...]` in a plain string as markup (a `[/]` raised MarkupError
and ended the console); a terminal obeys ESC and C1 sequences (clear the screen, set the title,
write the clipboard). Every such string goes through `wgconsole.core.text.printable` and is
handed over as Text, never as markup.
"""

from __future__ import annotations

import html
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.widgets import Button, Input, Label, Static

from tests.console_support import NORMAL, console, fleets, show_view, wait_for
from tests.fakeworld import GW2, World, make_world
from tests.test_ops_peers import NEWKEY, Rig, make_rig
from wgconsole.cli import main as cli
from wgconsole.cli.status_text import print_status
from wgconsole.core.fleet import Finding, Fleet
from wgconsole.core.records import Endpoint
from wgconsole.core.text import UNPRINTABLE, printable
from wgconsole.ops import catalog
from wgconsole.ops.context import OpContext, ProgressSink
from wgconsole.poll import collector as collect
from wgconsole.poll.transport.base import CommandResult
from wgconsole.tui.app import ConsoleApp
from wgconsole.tui.screens.action import ActionScreen

GW1 = "wg-gateway-01"
CONTROL = re.compile(UNPRINTABLE)
SGR = re.compile("\x1b\\[[0-9;]*m")  # Rich's own colours, when it writes to a terminal
TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J"
CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4=\x07"


def no_control(text: str) -> None:
    """Nothing but line breaks may be a control character in what reaches the terminal."""
    found = CONTROL.findall(text.replace("\n", ""))
    assert not found, f"control characters reached the terminal: {found[:5]}"


# --- the one function ----------------------------------------------------------------------


def test_printable_escapes_every_control_and_keeps_the_rest() -> None:
    assert printable("a\x1b]0;t\x07b") == "a\\x1b]0;t\\x07b"
    assert printable("x\x9by\x00\x7f") == "x\\x9by\\x00\\x7f"
    assert printable("l1\r\nl2\tz") == "l1\\r\\nl2\\tz"
    assert printable("l1\r\nl2\tz", newlines=True) == "l1\nl2\\tz"
    assert printable("abc\u202edef\u2066") == "abc\\u202edef\\u2066"
    assert printable("lone \udc80 surrogate") == "lone \\udc80 surrogate"
    for fine in ("", "wg-gateway-01", "[/] [link=x]y[/link]", "日本語 é ☃ 👍🏽", "a\\x1b"):
        assert printable(fine) is fine


# --- the console ---------------------------------------------------------------------------


def screen_text(app: ConsoleApp) -> str:
    """What the console put on the terminal, as text (its SVG export has nothing else but
    line breaks that could be a control character)."""
    svg = app.export_screenshot()
    no_control(svg)
    parts = re.findall(r"<text [^>]*>([^<]*)</text>", svg)
    return html.unescape("".join(parts)).replace("\xa0", " ")


async def started(pilot: Any, app: ConsoleApp) -> None:
    await wait_for(pilot, lambda: app.applied >= 1)
    await pilot.pause()


def rendered(widget: Static) -> str:
    return str(widget.render())


async def test_markup_typed_into_the_clients_filter_is_text() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot, app)
        await show_view(pilot, app, "2")
        await pilot.press("slash", *"[/")
        await pilot.pause()
        status = rendered(app.query_one("#client-table-status", Label))
        assert "filter “[/”" in status
        box = app.query_one("#client-table-filter", Input)
        box.value = "[fe80::1]"
        await pilot.pause()
        assert "filter “[fe80::1]”" in rendered(app.query_one("#client-table-status", Label))
        assert "[fe80::1]" in screen_text(app)


class HostileCollector:
    """Wraps a replaying collector: each fleet it reads gets `change` applied."""

    def __init__(self, inner: Any, change: Callable[[Fleet], Fleet]) -> None:
        self.inner = inner
        self.change = change

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def fleet(self, poll: Any) -> Fleet:
        return self.change(self.inner.fleet(poll))

    def read_fleet(self) -> Fleet:
        return self.fleet(self.inner.poll())


def hostile_console(change: Callable[[Fleet], Fleet]) -> ConsoleApp:
    app, collector = console([NORMAL])
    wrapped = HostileCollector(collector, change)
    app.collector = wrapped  # type: ignore[assignment]
    return app


def with_scheduler(scheduler: str) -> Callable[[Fleet], Fleet]:
    def change(fleet: Fleet) -> Fleet:
        assert fleet.service is not None
        return replace(fleet, service=replace(fleet.service, scheduler=scheduler))

    return change


async def test_a_scheduler_word_with_markup_is_shown_in_the_header() -> None:
    app = hostile_console(with_scheduler("sh[/]"))
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot, app)
        assert "sh[/]" in rendered(app.query_one("#title", Static))
        assert "sh[/]" in screen_text(app)


async def test_a_notification_with_markup_and_escapes_is_text() -> None:
    app, _ = console([NORMAL])
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await started(pilot, app)
        app.notify(f"locked by mallory [/] @lb {CLEAR}", title=f"[bold]lock{TITLE}")
        await pilot.pause()
        shown = screen_text(app)
        assert "locked by mallory [/] @lb \\x1b[2J" in shown
        assert "[bold]lock\\x1b]0;pwned\\x07" in shown


def with_escapes(fleet: Fleet) -> Fleet:
    """An endpoint, allowed IPs, an error and a finding carrying terminal sequences."""
    first, *rest = fleet.clients
    peers = tuple(
        replace(p, allowed_ips=(f"10.255.0.2/32{CLIPBOARD}",), endpoint=Endpoint(CLEAR, 1))
        for p in first.per_gateway
    )
    first = replace(first, endpoint=f"198.51.100.7:4{TITLE}", per_gateway=peers)
    hosts = tuple(replace(h, error=f"ssh: {TITLE}boom") for h in fleet.hosts)
    finding = Finding("odd", "warning", GW1, f"message {CLIPBOARD}")
    return replace(fleet, clients=(first, *rest), hosts=hosts, findings=(*fleet.findings, finding))


async def test_terminal_sequences_from_hosts_never_reach_the_console_terminal() -> None:
    app = hostile_console(with_escapes)
    async with app.run_test(size=(160, 40)) as pilot:
        await started(pilot, app)
        assert "ssh: \\x1b]0;pwned\\x07boom" in screen_text(app)
        await show_view(pilot, app, "2")
        assert "198.51.100.7:4\\x1b]0;pwned" in screen_text(app)
        key = app.snapshot.fleet.clients[0].public_key  # type: ignore[union-attr]
        app.open_client(key)
        await pilot.pause()
        assert "10.255.0.2/32\\x1b]52;c;" in screen_text(app)
        await pilot.press("escape")
        app.open_gateway(GW1)
        await pilot.pause()
        assert "\\x1b[2J" in screen_text(app)


# --- status --------------------------------------------------------------------------------


def status_output(fleet: Fleet) -> str:
    out = io.StringIO()
    print_status(fleet, Console(file=out, force_terminal=True, color_system="truecolor", width=250))
    return out.getvalue()


def test_status_shows_markup_as_text_and_no_link() -> None:
    fleet = fleets([NORMAL])[0]
    assert fleet.service is not None
    first, *rest = fleet.clients
    hosts = (replace(fleet.hosts[0], error="unknown host key for [localhost]:46269 [/]"),)
    fleet = replace(
        fleet,
        service=replace(fleet.service, scheduler="sh[/]"),
        clients=(replace(first, address="[link=mailto:x]text"), *rest),
        hosts=hosts + fleet.hosts[1:],
    )
    shown = status_output(fleet)
    assert "\x1b]8;" not in shown  # no hyperlink
    plain = SGR.sub("", shown)
    no_control(plain)
    assert "scheduler sh[/]" in plain
    assert "[link=mailto:x]text" in plain
    assert "unknown host key for [localhost]:46269 [/]" in plain


def test_status_never_passes_terminal_sequences() -> None:
    shown = SGR.sub("", status_output(with_escapes(fleets([NORMAL])[0])))
    no_control(shown)
    assert "198.51.100.7:4\\x1b]0;pwned\\x07" in shown
    assert "ssh: \\x1b]0;pwned\\x07boom" in shown


# --- operations in the console -------------------------------------------------------------

HOSTILE_OUTPUT = f"[/bold] wg: refused [/] {TITLE}{CLEAR}"


def hostile_failure(rig: Rig, gateway: str, when: Callable[[str], bool]) -> None:
    """The first command `when` picks on `gateway` fails, saying HOSTILE_OUTPUT."""
    fake = rig.gateways[gateway]
    real = fake.run
    failed: list[str] = []

    def run(command: str, timeout: float, mutating: bool = False) -> CommandResult:
        if not failed and when(command):
            failed.append(command)
            fake.commands.append((command, mutating))
            return CommandResult("", HOSTILE_OUTPUT, 1, 0.0, 0)
        return real(command, timeout, mutating)

    fake.run = run  # type: ignore[method-assign]


def rig_context(rig: Rig) -> Callable[[ProgressSink], OpContext]:
    return lambda sink: replace(rig.ctx, progress=sink)


async def run_in_console(app: ConsoleApp, pilot: Any, screen: ActionScreen) -> None:
    app.push_screen(screen)
    await wait_for(pilot, lambda: screen.state in ("confirming", "refused"))
    await pilot.pause()
    assert screen.state == "confirming", rendered(screen.query_one("#action-plan", Static))
    assert screen.planned is not None
    screen.query_one("#action-confirm", Input).value = screen.planned.target
    await pilot.pause()
    screen.start_run()
    await wait_for(pilot, lambda: screen.state == "done")
    await pilot.pause()


@pytest.mark.parametrize("action", ["add", "remove"])
async def test_a_failed_step_with_markup_rolls_back_and_the_screen_closes(
    tmp_path: Path, action: str
) -> None:
    rig = make_rig(tmp_path)
    before = rig.snapshot()
    # The second gateway's live change fails, after the first gateway's went through.
    hostile_failure(rig, "wg-gateway-02", lambda command: "wg set" in command)
    op: Any = (
        catalog.PeerAdd("gamma", NEWKEY, None, None, None)
        if action == "add"
        else catalog.PeerRemove("beta")
    )
    app, _ = console([NORMAL])
    async with app.run_test(size=(140, 50)) as pilot:
        await started(pilot, app)
        screen = ActionScreen(op, rig.fleet, rig_context(rig), app.record_action)
        app.push_screen(screen)
        await wait_for(pilot, lambda: screen.state == "confirming")
        await pilot.pause()
        plan = rendered(screen.query_one("#action-plan", Static))
        assert f"{'append a' if action == 'add' else 'remove its'} [Peer] block" in plan
        screen.query_one("#action-confirm", Input).value = screen.planned.target  # type: ignore[union-attr]
        await pilot.pause()
        screen.start_run()
        await wait_for(pilot, lambda: screen.state == "done", timeout=60)
        await pilot.pause()
        assert screen.failed
        assert not screen.query_one("#action-close", Button).disabled
        steps = rendered(screen.query_one("#action-steps", Static))
        assert "[/bold] wg: refused [/] \\x1b]0;pwned\\x07\\x1b[2J" in steps
        assert "Every gateway is back as it was." in rendered(
            screen.query_one("#action-outcome", Static)
        )
        screen_text(app)
    assert rig.snapshot() == before
    [entry] = rig.audit.entries()
    assert entry["outcome"] == "rolled back"


# --- the CLI, against the fake world -------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    w = make_world(tmp_path / "world")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("WGCONSOLE_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    monkeypatch.setattr(collect, "SshTransport", lambda host, **kw: w.transport(host.name))
    yield w


def hold_lock(world: World, operator: str) -> None:
    """Another operator's lock on the LB, as the lock's owner file says."""
    lock = world.run_dir() / "lock-udp-10.77.255.1-51280"
    lock.mkdir(parents=True)
    owner = {"operator": operator, "action": "drain x", "since": 1, "token": "t"}
    (lock / "owner").write_text(json.dumps(owner))


def test_a_lock_owner_with_markup_and_escapes_on_the_cli(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    hold_lock(world, f"mallory [/] @lb{TITLE}")
    code = cli.main(["-i", world.inventory.path, "weight", GW2, "3", "--yes"])
    out, err = capsys.readouterr()
    assert code == 1, err
    no_control(out + err)
    assert "locked by mallory [/] @lb\\x1b]0;pwned\\x07" in err


async def test_a_lock_owner_with_markup_in_the_console(world: World) -> None:
    hold_lock(world, f"mallory [/] @lb{CLIPBOARD}")
    collector = world.collector(read_only=False)
    app = ConsoleApp(world.inventory, collector, interval=3600)
    async with app.run_test(size=(140, 40), notifications=True) as pilot:
        await started(pilot, app)
        screen = ActionScreen(
            catalog.Weight(GW2, "3"), collector.read_fleet, app.op_context, app.record_action
        )
        await run_in_console(app, pilot, screen)
        assert screen.failed
        outcome = rendered(screen.query_one("#action-outcome", Static))
        assert "locked by mallory [/] @lb\\x1b]52;c;" in outcome
        screen_text(app)
        app.notify(outcome)
        await pilot.pause()
        screen_text(app)


def failing_tool(world: World, tool: str, argument: str, output: str) -> None:
    """`tool` on every fake host fails, saying `output`, when called with `argument`."""
    real = world.root / "real"
    real.mkdir(exist_ok=True)
    (world.root / "bin" / tool).rename(real / tool)
    said = world.root / "output"
    said.write_text(output)
    script = world.root / "bin" / tool
    script.write_text(
        "#!/bin/sh\n"
        f'for a in "$@"; do [ "$a" = {argument} ] && {{ cat "{said}" >&2; exit 1; }}; done\n'
        f'exec "{real / tool}" "$@"\n'
    )
    script.chmod(0o755)


def test_a_failed_command_s_output_on_the_cli_is_printable(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    failing_tool(world, "ipvsadm", "-e", HOSTILE_OUTPUT)
    code = cli.main(["-i", world.inventory.path, "weight", GW2, "3", "--yes"])
    out, err = capsys.readouterr()
    assert code == 1, err
    no_control(out + err)
    assert "[/bold] wg: refused [/] \\x1b]0;pwned\\x07\\x1b[2J" in err  # the FAILED line
    assert "\\x1b]0;pwned" in out  # the step's own line


def test_status_of_gateways_whose_error_output_has_markup_and_escapes(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    failing_tool(world, "wg", "dump", HOSTILE_OUTPUT)  # every gateway's error output
    code = cli.main(["-i", world.inventory.path, "status"])
    out, err = capsys.readouterr()
    assert code == 2, err
    no_control(out + err)
    assert "[/bold] wg: refused [/] \\x1b]0;pwned\\x07\\x1b[2J" in out
