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

import argparse
import asyncio
import html
import io
import json
import re
import tempfile
from collections.abc import Callable, Mapping
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from rich.console import Console
from textual import events
from textual.command import CommandPalette
from textual.widgets import Button, Input, Label, OptionList, Static

from tests.console_support import (
    NORMAL,
    SteppedCollector,
    console,
    fleets,
    show_view,
    wait_for,
)
from tests.fakeworld import GW2, World, world_for_cli
from tests.test_ops_peers import NEWKEY, Rig, make_rig
from wgconsole.cli import main as cli
from wgconsole.cli import operations as cli_ops
from wgconsole.cli.status_text import print_status
from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.fleet import Finding, Fleet
from wgconsole.core.records import Endpoint
from wgconsole.core.text import UNPRINTABLE, is_printable, printable
from wgconsole.ops import catalog
from wgconsole.ops.machinery.context import OpContext, ProgressSink
from wgconsole.ops.machinery.errors import OpError
from wgconsole.ops.machinery.operation import Field as OpField
from wgconsole.ops.machinery.operation import Outcome as OpOutcome
from wgconsole.ops.machinery.operation import Planned
from wgconsole.poll.collector import PollResult
from wgconsole.poll.replay import ReplayTransport
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
    app.collector = wrapped
    return app  # type: ignore[no-any-return]


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

    def run(command: str, timeout: float, *, mutating: bool = False) -> CommandResult:
        if not failed and when(command):
            failed.append(command)
            fake.commands.append((command, mutating))
            return CommandResult("", HOSTILE_OUTPUT, 1, 0.0, 0)
        return real(command, timeout, mutating=mutating)

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
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    w = world_for_cli(tmp_path, monkeypatch)
    monkeypatch.setenv("WGCONSOLE_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    return w


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


# --- the property: any text, every field, every view ---------------------------------------

# Markup Rich or Textual would act on, terminal sequences (OSC title and clipboard, CSI clear,
# a C1 CSI, NUL, BEL, BS, DEL, CR), bidi and line-separator controls, a lone surrogate, wide,
# combining and joined characters, and text Rich would otherwise turn into an emoji.
PIECES = (
    "[/]",
    "[/",
    "[bold]",
    "[bold",
    "[/bold]",
    "[link=mailto:x]mail[/link]",
    "[fe80::1]",
    "[localhost]",
    "[@click=app.quit]quit",
    "$var",
    ":smile:",
    "\\",
    TITLE,
    CLEAR,
    CLIPBOARD,
    "\x1b[31m",
    "\x9b2J",
    "\x90",
    "\x00",
    "\x07",
    "\x08",
    "\x7f",
    "\r",
    "\n",
    "\t",
    "\u202e",
    "\u2066",
    "\u200f",
    "\u2028",
    "\udc80",
    "\ufeff",
    "日本語",
    "👍🏽",
    "e\u0301",
)
HOSTILE = st.lists(
    st.one_of(st.sampled_from(PIECES), st.text(max_size=6)), min_size=1, max_size=5
).map("".join)
EVERY_PIECE = "".join(PIECES)
HUGE = "W" * 100_000 + "[/]" + CLEAR

# Fields whose text comes from hosts or operators, each given its own hostile text.
HOST_FIELDS = (
    "scheduler",
    "flag",
    "protocol",
    "host-error",
    "gw-error",
    "rs-address",
    "client-address",
    "client-endpoint",
    "allowed-ip",
    "peer-endpoint",
    "conn-client",
    "conn-state",
    "finding-code",
    "finding-subject",
    "finding-message",
    "client-finding",
)
OPERATOR_FIELDS = ("client-name", "gateway-name", "lb-name", "filter")
OPERATION_FIELDS = ("preview", "step", "notice", "outcome")
FIELDS = HOST_FIELDS + OPERATOR_FIELDS + OPERATION_FIELDS
Texts = dict[str, str]
TEXTS = st.fixed_dictionaries({field: HOSTILE for field in FIELDS})


def hostile_fleet(fleet: Fleet, texts: Texts) -> Fleet:
    """`fleet` with every free-text field replaced by hostile text (numbered where the field
    is part of a row's identity, which two real rows never share)."""

    def say(field: str, n: int = 0) -> str:
        return f"{n}{texts[field]}"

    svc = fleet.service
    if svc is not None:
        svc = replace(
            svc, scheduler=say("scheduler"), flags=(say("flag"),), protocol=say("protocol")
        )
    servers = tuple(
        replace(r, address=Endpoint(say("rs-address", i), r.address.port))
        for i, r in enumerate(fleet.real_servers)
    )
    gateways = tuple(replace(g, error=say("gw-error")) for g in fleet.gateways)
    hosts = tuple(replace(h, error=say("host-error")) for h in fleet.hosts)
    clients = []
    for i, c in enumerate(fleet.clients):
        peers = tuple(
            replace(
                p,
                allowed_ips=(say("allowed-ip", i),),
                endpoint=Endpoint(say("peer-endpoint", i), 1),
            )
            for p in c.per_gateway
        )
        entry = c.lb_entry
        if entry is not None:
            entry = replace(
                entry, client=Endpoint(say("conn-client", i), 1), state=say("conn-state")
            )
        clients.append(
            replace(
                c,
                name=say("client-name", i),
                address=say("client-address", i),
                endpoint=say("client-endpoint", i),
                per_gateway=peers,
                lb_entry=entry,
                findings=(say("client-finding"),),
            )
        )
    findings = tuple(
        replace(
            f,
            code=say("finding-code"),
            subject=say("finding-subject", i),
            message=say("finding-message"),
        )
        for i, f in enumerate(fleet.findings)
    )
    conns = tuple(
        replace(c, client=Endpoint(say("conn-client", i), c.client.port), state=say("conn-state"))
        for i, c in enumerate(fleet.conns)
    )
    return replace(
        fleet,
        service=svc,
        real_servers=servers,
        gateways=gateways,
        hosts=hosts,
        clients=tuple(clients),
        findings=findings,
        conns=conns,
    )


class RenamedCollector(SteppedCollector):
    """The lab capture under hostile host names (the inventory's), replayed by their real
    ones, each fleet read with hostile text in every host-derived field."""

    def __init__(self, texts: Texts) -> None:
        base = load_inventory(NORMAL / "inventory.yaml")
        real: dict[str, str] = {}

        def rename(host: Any, field: str, n: int) -> Any:
            name = f"{field[0]}{n}{texts[field]}"  # never two hosts of one name
            real[name] = host.name
            return replace(host, name=name)

        inventory = replace(
            base,
            load_balancers=tuple(rename(h, "lb-name", 0) for h in base.load_balancers),
            gateways=tuple(rename(h, "gateway-name", i) for i, h in enumerate(base.gateways)),
        )
        super().__init__([NORMAL], inventory)
        self.transports = {name: ReplayTransport(host, [NORMAL]) for name, host in real.items()}
        self.texts = texts

    def fleet(self, poll: PollResult) -> Fleet:
        return hostile_fleet(super().fleet(poll), self.texts)


@dataclass(frozen=True)
class HostileOp:
    """An operation whose preview, steps, outcome and audit record carry hostile text."""

    texts: Texts
    target: str | None = None  # the name to type to go ahead
    fields: tuple[OpField, ...] = ()
    changes_clients: bool = False

    @property
    def title(self) -> str:
        return f"test {self.texts['gateway-name']}"

    @property
    def subject(self) -> str:
        return self.texts["gateway-name"]

    def precheck(self, ctx: OpContext, values: Mapping[str, str]) -> None:
        return None

    def plan(self, ctx: OpContext, fleet: Fleet, values: Mapping[str, str]) -> Planned:
        texts = self.texts

        def execute() -> OpOutcome:
            with ctx.step(texts["step"]):
                ctx.info(texts["notice"])
            ctx.warn(texts["notice"])
            ctx.audit.record(
                "test", texts["gateway-name"], outcome="failed", detail=texts["outcome"]
            )
            with ctx.step("the last step"):
                raise OpError(texts["outcome"])
            return OpOutcome("never")

        return Planned((texts["preview"],), self.target or "go", execute)


def shown(widget: Static) -> str:
    return str(widget.render())


async def visit_everything(app: ConsoleApp, pilot: Any, texts: Texts) -> None:
    """Every view, detail screen, notification and action screen, each checked on screen."""
    await started(pilot, app)
    screen_text(app)
    assert printable(texts["scheduler"]) in shown(app.query_one("#title", Static))
    for key in ("2", "3", "4", "1"):
        await show_view(pilot, app, key)
        screen_text(app)
    await show_view(pilot, app, "2")
    box = app.query_one("#client-table-filter", Input)
    box.focus()
    box.post_message(events.Paste(texts["filter"]))  # an operator's paste
    await pilot.pause()
    no_control(box.value)
    screen_text(app)
    await pilot.press("escape")
    fleet = app.snapshot.fleet  # type: ignore[union-attr]
    app.open_client(fleet.clients[0].public_key)
    await pilot.pause()
    screen_text(app)
    await pilot.press("escape")
    app.open_gateway(app.inventory.gateways[0].name)
    await pilot.pause()
    screen_text(app)
    await pilot.press("escape")
    # A finding about neither a gateway nor a client: its whole text in a notification.
    app.open_subject(app.snapshot.findings[0].subject)  # type: ignore[union-attr]
    await pilot.pause()
    screen_text(app)
    app.action_view("overview")
    app.notify(texts["notice"], title=texts["finding-code"])
    await pilot.pause()
    screen_text(app)
    assert printable(texts["notice"], newlines=True) in [n.message for n in app._notifications]
    app.clear_notifications()
    # The command palette lists gateways and clients by name.
    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
    await pilot.press(*"Gate")
    await wait_for(pilot, lambda: app.screen.query_one(OptionList).option_count > 0)
    screen_text(app)
    await pilot.press("escape")
    await wait_for(pilot, lambda: not isinstance(app.screen, CommandPalette))
    # A real operation, planned over the replay (and refused or failed by it).
    app.open_action(catalog.Drain(app.inventory.gateways[0].name))
    await acted(app, pilot)
    # An operation whose name to type is hostile (shown in the box), then one that runs.
    app.open_action(HostileOp(texts, target=texts["client-name"]))
    await acted(app, pilot)
    app.open_action(HostileOp(texts))
    screen = await acted(app, pilot)
    outcome = shown(screen.query_one("#action-outcome", Static))
    assert printable(texts["outcome"], newlines=True) in outcome
    assert printable(texts["step"], newlines=True) in shown(
        screen.query_one("#action-steps", Static)
    )


async def acted(app: ConsoleApp, pilot: Any) -> ActionScreen:
    """The action screen on top planned, run if it could be, checked on screen, closed."""
    await wait_for(pilot, lambda: isinstance(app.screen, ActionScreen))
    screen = app.screen
    assert isinstance(screen, ActionScreen)
    await wait_for(pilot, lambda: screen.state in ("confirming", "refused"))
    await pilot.pause()
    screen_text(app)
    # Typed by an operator, so free of control characters (the box refuses them); a name that
    # has some cannot be confirmed at all.
    if screen.state == "confirming" and is_printable(screen.planned.target):  # type: ignore[union-attr]
        assert screen.planned is not None
        screen.query_one("#action-confirm", Input).value = screen.planned.target
        await pilot.pause()
        screen.start_run()
        await wait_for(pilot, lambda: screen.state == "done")
        await pilot.pause()
        screen_text(app)
    screen.action_close()
    await wait_for(pilot, lambda: not isinstance(app.screen, ActionScreen))
    return screen


# Bounded and deterministic: the same examples every run, no shrinking of a console session
# (each example is a whole one), no example database written.
PRINT_SETTINGS = settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
CONSOLE_SETTINGS = settings(PRINT_SETTINGS, max_examples=3, phases=(Phase.explicit, Phase.generate))


def every_field(text: str) -> Texts:
    return dict.fromkeys(FIELDS, text)


@settings(CONSOLE_SETTINGS)
@example(every_field(EVERY_PIECE))
@example({**every_field("x"), "scheduler": HUGE, "host-error": HUGE, "client-name": HUGE})
@given(TEXTS)
def test_hostile_text_in_every_field_of_the_console(texts: Texts) -> None:
    audit = Path(tempfile.mkdtemp()) / "audit.jsonl"

    async def scenario() -> None:
        collector = RenamedCollector(texts)
        app = ConsoleApp(
            collector.inventory,
            collector,
            interval=3600,
            clock=collector.stepped_clock,
            audit_path=audit,
        )
        async with app.run_test(size=(140, 45), notifications=True) as pilot:
            await visit_everything(app, pilot, texts)

    asyncio.run(scenario())
    no_control(audit.read_text())  # JSON: every control character escaped


@settings(PRINT_SETTINGS)
@example(every_field(EVERY_PIECE))
@example(every_field(HUGE))
@given(TEXTS)
def test_hostile_text_in_every_field_of_status_and_the_cli(texts: Texts) -> None:
    collector = RenamedCollector(texts)
    fleet = collector.read_fleet()
    printed = SGR.sub("", status_output(fleet))
    no_control(printed)
    assert printable(fleet.service.scheduler) in printed  # type: ignore[union-attr]
    audit = Path(tempfile.mkdtemp()) / "audit.jsonl"
    args = argparse.Namespace(
        read_only=False, dry_run=False, yes=True, qr=False, audit_log=str(audit), timeout=5.0
    )
    out, err = io.StringIO(), io.StringIO()
    with (
        patch.object(cli_ops, "operation", lambda _args: HostileOp(texts)),
        redirect_stdout(out),
        redirect_stderr(err),
    ):
        code = cli_ops.cmd_operation(args, collector.inventory, collector)
    assert code == cli_ops.EXIT_FAILED
    no_control(out.getvalue() + err.getvalue())
    assert printable(texts["outcome"], newlines=True) in err.getvalue()
    no_control(audit.read_text())
