"""Sites: one inventory file each, from every `-i FILE` and every `*.yaml` of an `-i DIR`.

A site is named by its inventory's `site:` key, else by its file's stem; two sites of one
name are refused, naming both files (a name is how an operation, a lock, an audit record and
a metric say which site they concern: it must say one). With several sites each inventory's
`site` is set to its site's name, so that the exporter labels every series with it; one site
keeps its inventory as loaded, and so everything as it was before there could be several.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from wgconsole.config.inventory_file import InventoryError, find_inventory, load_inventory
from wgconsole.core.input_rules import name_problem
from wgconsole.core.inventory import Inventory

# Where a site's name comes from.
NamedBy = Literal["site-key", "file-name"]
SUFFIX = ".yaml"


@dataclass(frozen=True, slots=True)
class Site:
    name: str
    inventory: Inventory
    named_by: NamedBy
    loaded: int = 1  # how many sites the command line loaded with it

    @property
    def path(self) -> str:
        return self.inventory.path

    @property
    def label(self) -> str | None:
        """The name that operations' previews, locks and audit records carry: only among
        several sites (one alone is as it was before there could be several)."""
        return self.name if self.loaded > 1 else None


def inventory_paths(given: Sequence[str]) -> list[str]:
    """The inventory files `given` names, in order: a file as is, a directory's `*.yaml`
    (sorted by name; hidden files left out, as a shell's `*` leaves them); none given: the
    one `find_inventory` finds. A path that does not exist, or a directory without one
    inventory, is an InventoryError."""
    if not given:
        return [find_inventory(None)]
    paths: list[str] = []
    for item in given:
        if os.path.isdir(item):
            found = sorted(
                p
                for p in os.listdir(item)
                if p.endswith(SUFFIX) and not p.startswith(".") and os.path.isfile(Path(item, p))
            )
            if not found:
                raise InventoryError(item, None, None, f"no *{SUFFIX} inventory in this directory")
            paths += [str(Path(item, p)) for p in found]
        else:
            paths.append(find_inventory(item))
    return paths


def site_name(inventory: Inventory) -> tuple[str, NamedBy]:
    """The site's name: its `site:` key, else its file's stem."""
    if inventory.site is not None:
        return inventory.site, "site-key"
    return Path(inventory.path).name.removesuffix(SUFFIX), "file-name"


def load_sites(given: Sequence[str]) -> tuple[Site, ...]:
    """The sites of the inventories `given` names (see inventory_paths), in that order."""
    paths = inventory_paths(given)
    seen: dict[str, str] = {}
    for path in paths:
        real = os.path.realpath(path)
        if real in seen:
            raise InventoryError(path, None, None, f"given twice (also as {seen[real]})")
        seen[real] = path
    sites: list[Site] = []
    by_name: dict[str, Site] = {}
    for path in paths:
        inventory = load_inventory(path)
        name, named_by = site_name(inventory)
        if len(paths) > 1 and named_by == "file-name":
            problem = name_problem(name)
            if problem is not None:
                raise InventoryError(
                    path,
                    None,
                    None,
                    f"its file name does not make a site name ({problem}): give it a `site:` key",
                )
        other = by_name.get(name)
        if other is not None:
            raise InventoryError(
                path,
                None,
                None,
                f"site {name!r} ({_why(named_by)}) is also the site of {other.path} "
                f"({_why(other.named_by)}): one name, one site; set a distinct `site:` key",
            )
        site = Site(name, inventory, named_by)
        by_name[name] = site
        sites.append(site)
    if len(sites) > 1:
        # Many sites: each series, lock and record says which one it is.
        sites = [
            replace(s, inventory=replace(s.inventory, site=s.name), loaded=len(sites))
            for s in sites
        ]
    return tuple(sites)


def _why(named_by: NamedBy) -> str:
    return "its `site:` key" if named_by == "site-key" else "its file name"


def candidates(sites: Sequence[Site]) -> str:
    """The sites as a refusal lists them: `eu (inv/eu.yaml), us (inv/us.yaml)`."""
    return ", ".join(f"{s.name} ({s.path})" for s in sites)


def choose_site(sites: Sequence[Site], name: str | None, *, what: str) -> Site:
    """The one site a command acts on: the only one, or the one `name` (--site) names.
    `what`: the command, for the refusal (InventoryError: exit 2, never a traceback)."""
    if name is None:
        if len(sites) == 1:
            return sites[0]
        raise InventoryError(
            None,
            None,
            None,
            f"{what} acts on one site and {len(sites)} are loaded: give --site NAME, one of: "
            + candidates(sites),
        )
    for site in sites:
        if site.name == name:
            return site
    raise InventoryError(
        None, None, None, f"--site {name!r}: no such site; the sites are: {candidates(sites)}"
    )
