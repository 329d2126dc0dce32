"""`whereis`: the gateway the kernel's `sh` scheduler picks for a source, now or after a change."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wgconsole.core.fleet import is_unavailable
from wgconsole.core.inventory import Inventory
from wgconsole.core.records import Endpoint, IpvsService
from wgconsole.core.sched import (
    ShDest,
    ShTable,
    with_added,
    with_readded,
    with_removed,
    with_weights,
)


class WhereIsError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Placement:
    address: str  # as the operator wrote it
    source: Endpoint
    gateway: str | None  # inventory name; the dest address if it is not in the inventory
    dest: Endpoint | None  # None: the kernel would drop the packet
    bucket: int

    def to_json(self) -> dict[str, object]:
        return {"address": self.address, "gateway": self.gateway, "bucket": self.bucket}


def parse_source(text: str) -> Endpoint:
    """ADDR, ADDR:PORT, [V6ADDR]:PORT or V6ADDR; port 0 when absent."""
    host, port = text, 0
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = _port(rest.removeprefix(":"), text) if rest else 0
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = _port(p, text)
    try:
        return Endpoint(str(ipaddress.ip_address(host)), port)
    except ValueError:
        raise WhereIsError(f"{text!r} is not ADDR[:PORT]") from None


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise WhereIsError(f"{whole!r}: bad port")
    return int(text)


def _real_server(inventory: Inventory, name: str) -> Endpoint:
    for gw in inventory.gateways:
        if gw.name == name:
            return gw.real_server
    raise WhereIsError(f"no gateway named {name!r} in the inventory")


def proposed_table(
    inventory: Inventory,
    service: IpvsService,
    *,
    weights: Mapping[str, int] | None = None,
    removed: Sequence[str] = (),
    readded: Mapping[str, int] | None = None,
) -> ShTable:
    """The live dest list in kernel order, with the proposed edits applied the kernel's way."""
    if service.scheduler != "sh":
        raise WhereIsError(f"the service uses the {service.scheduler!r} scheduler, not sh")
    overloaded = frozenset(d.endpoint for d in service.dests if is_unavailable(d) and d.weight > 0)
    model = ShTable.from_service(service, overloaded)
    dests = list(model.dests)
    try:
        if weights:
            dests = with_weights(dests, {_real_server(inventory, n): w for n, w in weights.items()})
        for name in removed:
            dests = with_removed(dests, _real_server(inventory, name))
        for name, weight in (readded or {}).items():
            key = _real_server(inventory, name)
            if any(d.key == key for d in dests):
                dests = with_readded(dests, key, weight)
            else:  # not in the service now (a drain left it out): added, at the head too
                dests = with_added(dests, ShDest(key, weight))
    except ValueError as exc:
        raise WhereIsError(str(exc)) from None
    return model.with_dests(dests)


def place(inventory: Inventory, model: ShTable, addresses: Sequence[str]) -> list[Placement]:
    names = {gw.real_server: gw.name for gw in inventory.gateways}
    placements = []
    for text in addresses:
        source = parse_source(text)
        pick = model.pick(source.address, source.port)
        gateway = None if pick.dest is None else names.get(pick.dest, str(pick.dest))
        placements.append(Placement(text, source, gateway, pick.dest, pick.bucket))
    return placements
