"""The console's command palette (ctrl+p): views, gateways, clients, operations, themes, a poll.

A Textual command provider over what the app exposes (`CommandTarget`): this module knows the
commands and how the palette shows them, the app what each one does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Protocol, runtime_checkable

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.style import Style

from wgconsole.config.themes import ThemeSpec
from wgconsole.core.inventory import Inventory
from wgconsole.core.text import printable
from wgconsole.ops import catalog
from wgconsole.ops.machinery.operation import Operation
from wgconsole.view.snapshot import ConsoleSnapshot

# The console's views (TabPane ids) and their labels, in the order of their keys 1, 2, ...
VIEWS: tuple[tuple[str, str], ...] = (
    ("overview", "Overview"),
    ("clients", "Clients"),
    ("connections", "Connections"),
    ("log", "Log"),
)

Command = tuple[str, Callable[[], object], str]  # (name, what it does, help text)


@runtime_checkable
class CommandTarget(Protocol):
    """What the commands need of the console (wgconsole.tui.app.ConsoleApp)."""

    inventory: Inventory
    snapshot: ConsoleSnapshot | None

    @property
    def console_themes(self) -> Mapping[str, ThemeSpec]: ...

    def action_view(self, view: str) -> None: ...

    def action_poll_now(self) -> None: ...

    def action_help(self) -> None: ...

    def action_peer_add(self) -> None: ...

    def action_rebalance(self) -> None: ...

    def set_theme(self, name: str) -> None: ...

    def open_gateway(self, name: str) -> None: ...

    def open_client(self, public_key: str) -> None: ...

    def open_action(self, op: Operation) -> None: ...

    def peer_remove(self, public_key: str) -> catalog.PeerRemove: ...

    def open_trace(self, public_key: str) -> None: ...


def console_commands(app: CommandTarget) -> list[Command]:
    """Every command of the palette, in the order it lists them."""
    commands: list[Command] = [
        (f"View: {label}", partial(app.action_view, view), f"key {i}")
        for i, (view, label) in enumerate(VIEWS, start=1)
    ]
    commands.append(("Poll now", app.action_poll_now, "key r"))
    commands.append(("Help: every key", app.action_help, "key ?"))
    commands.append(("Add a peer", app.action_peer_add, "key A"))
    commands.append(("Rebalance", app.action_rebalance, "key R"))
    if len(app.inventory.load_balancers) > 1:
        # No key of their own: both act on the whole pair, rarely, and the preview they
        # open says what would change before anything is sent.
        commands.append(
            (
                "Directors: lb align (the backups hash like the VIP holder)",
                partial(app.open_action, catalog.LbAlign()),
                "preview first",
            )
        )
        commands.append(
            (
                "Directors: failover (move the VIP to the backup)",
                partial(app.open_action, catalog.Failover()),
                "preview first",
            )
        )
    for name in app.console_themes:
        commands.append((f"Theme: {name}", partial(app.set_theme, name), "switch theme"))
    for gw in app.inventory.gateways:
        commands.append((f"Gateway: {gw.name}", partial(app.open_gateway, gw.name), "details"))
        for label, op, key in (
            ("Drain", catalog.Drain(gw.name), "D"),
            ("Undrain", catalog.Undrain(gw.name), "U"),
            ("Weight", catalog.Weight(gw.name), "W"),
        ):
            commands.append((f"{label}: {gw.name}", partial(app.open_action, op), f"key {key}"))
    if app.snapshot is not None:
        for client in app.snapshot.fleet.clients:
            commands.append(
                (
                    f"Client: {client.label}",
                    partial(app.open_client, client.public_key),
                    "details",
                )
            )
            commands.append(
                (
                    f"Trace: {client.label}",
                    partial(app.open_trace, client.public_key),
                    "key t",
                )
            )
            commands.append(
                (
                    f"Remove peer: {client.label}",
                    partial(app.open_action, app.peer_remove(client.public_key)),
                    "key X",
                )
            )
    return commands


class ConsoleCommands(Provider):
    """Views, gateways, clients, themes and a poll, from the command palette."""

    def _commands(self) -> list[Command]:
        app = self.app
        assert isinstance(app, CommandTarget)
        return console_commands(app)

    # Names of gateways, clients and themes are the inventory's and the theme files': a str
    # prompt is read as markup by the palette (and Matcher.highlight parses its candidate),
    # so each is handed over as Content of its printable text. Help texts are constants.

    async def discover(self) -> Hits:
        for name, callback, help_text in self._commands()[: len(VIEWS) + 6]:
            yield DiscoveryHit(Content(printable(name)), callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            shown = printable(name)
            score, offsets = matcher.fuzzy_search.match(matcher.query, shown)
            if score > 0:
                yield Hit(
                    score, _highlight(shown, offsets, matcher.match_style), callback, help=help_text
                )


def _highlight(text: str, offsets: Iterable[int], style: Style) -> Content:
    """`text` with the characters the query matched in `style`: Matcher.highlight without
    reading `text` as markup."""
    content = Content(text)
    for offset in offsets:
        if not text[offset].isspace():
            content = content.stylize(style, offset, offset + 1)
    return content
