"""Several sites of the fake world (tests/fakeworld.py) in one test: each site is a world of
its own (its own fake kernel state), with an inventory whose hosts have ports of their own,
by which the transports `wgconsole` makes find their world. A host can be made to hang (it
never answers until it is closed, as a dead host's SSH command does) or be listed by two
sites (its port then belongs to the first site's world)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fakeworld import LB, NORMAL, World, make_world
from wgconsole.core.inventory import Host
from wgconsole.poll import collector as collect
from wgconsole.poll.transport.base import CommandResult, CommandTimeout, Transport

# The lab inventory's ports, and how far apart each site's are.
LB_PORT, GW1_PORT, GW2_PORT = 2321, 2322, 2323
SITE_STRIDE = 100


def site_inventory(
    name: str | None, index: int, *, gw1_port: int | None = None, extra: str = ""
) -> str:
    """The lab inventory as site `index`'s (`name`: its `site:` key, None: none), with its
    hosts' ports moved by `index` strides; `gw1_port`: wg-gateway-01's port instead (a host
    another site lists too)."""
    text = (NORMAL / "inventory.yaml").read_text()
    shift = index * SITE_STRIDE
    for port in (LB_PORT, GW1_PORT, GW2_PORT):
        text = text.replace(f"port: {port}", f"port: {port + shift}")
    if gw1_port is not None:
        text = text.replace(f"port: {GW1_PORT + shift}", f"port: {gw1_port}")
    head = "" if name is None else f"site: {name}\n"
    return head + extra + text


class Hung:
    """A host that never answers: its command waits until its timeout, or until its
    connection is closed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = threading.Event()
        self.calls = 0

    def run(self, command: str, timeout: float, *, mutating: bool = False) -> CommandResult:
        self.calls += 1
        self.closed.wait(timeout)
        raise CommandTimeout(f"{self.name}: no answer within {timeout:.0f} s (injected hang)")

    def close(self) -> None:
        self.closed.set()


@dataclass
class Sites:
    """The sites' worlds, and every transport made, by port (a list: one per collector)."""

    root: Path
    worlds: list[World] = field(default_factory=list)
    hung_ports: set[int] = field(default_factory=set)
    made: dict[int, list[Transport]] = field(default_factory=dict)

    def world_of(self, port: int) -> World:
        return self.worlds[(port - LB_PORT) // SITE_STRIDE]

    def transport(self, host: Host, *, read_only: bool) -> Transport:
        port = host.ssh.port
        made: Transport = (
            Hung(host.name)
            if port in self.hung_ports
            else self.world_of(port).transport(host.name, read_only=read_only)
        )
        self.made.setdefault(port, []).append(made)
        return made

    def path(self, file: str) -> Path:
        return self.root / "inventories" / file

    def lb_port(self, index: int) -> int:
        return LB_PORT + index * SITE_STRIDE

    def sent_to(self, index: int, host: str = LB) -> int:
        return sum(1 for s in self.worlds[index].sent if s.host == host)


def make_sites(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    names: list[str | None],
    *,
    files: list[str] | None = None,
    **inventory: Any,
) -> Sites:
    """One world and one inventory per name (`files`: their file names, else NAME.yaml),
    written under tmp_path/inventories; `wgconsole`'s SSH transports reach the worlds."""
    sites = Sites(tmp_path)
    sites.path("").mkdir(parents=True)
    for index, name in enumerate(names):
        world = make_world(tmp_path / f"world-{index}")
        sites.worlds.append(world)
        file = files[index] if files is not None else f"{name}.yaml"
        sites.path(file).write_text(site_inventory(name, index, **inventory))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(
        collect,
        "SshTransport",
        lambda host, **kw: sites.transport(host, read_only=bool(kw.get("read_only"))),
    )
    return sites
