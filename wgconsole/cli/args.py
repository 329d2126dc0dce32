"""What every parser of the command line shares: no abbreviations, and wgconsole's own options
accepted before or after the command."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any


class ArgParser(argparse.ArgumentParser):
    """Every parser of the command line, subcommands included (add_subparsers makes them of
    the parent's class): no prefix abbreviations, so that `--wait` is never taken for
    `--wait-timeout`, nor an option added later changes what an old command line meant."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


class _Inventories(argparse.Action):
    """`-i` given again adds a site: `inventories` holds every one given (`inventory` the
    last, as before there could be several). Given after the command, they replace the ones
    given before it, as every other global option given again does."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        assert isinstance(values, str)
        setattr(namespace, self.dest, values)
        namespace.inventories = [*(getattr(namespace, "inventories", None) or ()), values]


def given_inventories(args: argparse.Namespace) -> list[str]:
    """Every `-i` of the command line, in order (none: the default inventory is looked for)."""
    given = getattr(args, "inventories", None)
    if given:
        return list(given)
    one = getattr(args, "inventory", None)
    return [] if one is None else [one]


def add_global_options(p: argparse.ArgumentParser, *, after_command: bool) -> None:
    """The options of `wgconsole` itself. After the command (`status -i FILE`) they have no
    defaults (SUPPRESS), so that one given before the command stays unless given again."""
    group = p.add_argument_group("global options (before or after the command)")

    def default(value: object) -> object:
        return argparse.SUPPRESS if after_command else value

    group.add_argument(
        "-i",
        "--inventory",
        action=_Inventories,
        default=default(None),
        metavar="FILE|DIR",
        help="an inventory file, or a directory of them (*.yaml); again for more sites: each "
        "inventory is one site (default: ./inventory.yaml, "
        "$XDG_CONFIG_HOME/wgconsole/inventory.yaml, then the running lab's)",
    )
    group.add_argument(
        "--site",
        default=default(None),
        metavar="NAME",
        help="the site to act on when several are loaded (its `site:` key, else its file name)",
    )
    group.add_argument(
        "--accept-new-host-keys",
        action="store_true",
        default=default(False),  # noqa: FBT003 - a value, not a flag
        help="record unknown SSH host keys in known_hosts (a changed key is still refused)",
    )
    group.add_argument(
        "--read-only",
        action="store_true",
        default=default(False),  # noqa: FBT003 - a value, not a flag
        help="never send a mutating command",
    )
    group.add_argument(
        "--timeout", type=float, default=default(30.0), help="per-host command timeout, seconds"
    )
    group.add_argument(
        "--interval", type=float, default=default(2.0), help="console refresh interval, seconds"
    )
    group.add_argument(
        "--theme", default=default(None), help="console theme (a file name in themes/)"
    )


def global_options() -> ArgParser:
    """A parent parser for every command: wgconsole's own options, accepted after it too."""
    parent = ArgParser(add_help=False)
    add_global_options(parent, after_command=True)
    return parent


def parse_alone(add_parser: Callable[[Any, ArgParser], None], argv: Sequence[str]) -> Any:
    """`argv` parsed as the full command line parses it (wgconsole's options before or after
    the command), by a parser that knows this one command: for the commands that start on
    their own imports (cli.entry)."""
    parser = ArgParser(prog="wgconsole")
    add_global_options(parser, after_command=False)
    add_parser(parser.add_subparsers(dest="command"), global_options())
    return parser.parse_args(list(argv))
