"""The sites a command line names (`-i`, repeatable, and `--site`), for every command."""

from __future__ import annotations

import argparse

from wgconsole.cli.args import given_inventories
from wgconsole.config.sites import Site, choose_site, load_sites


def all_sites(args: argparse.Namespace) -> tuple[Site, ...]:
    """Every site `-i` names; with `--site`, only that one (as if it were the only one given:
    its output is a single site's)."""
    sites = load_sites(given_inventories(args))
    name = getattr(args, "site", None)
    if name is None:
        return sites
    return (choose_site(sites, name, what="wgconsole"),)


def one_site(args: argparse.Namespace, what: str) -> Site:
    """The one site a command that acts on one acts on (`what`: the command, for the refusal
    that lists the candidates when several are loaded and --site names none)."""
    return choose_site(load_sites(given_inventories(args)), getattr(args, "site", None), what=what)
