"""One gateway's configuration compared with the other gateways, line by line.

The `config-drift` finding says *that* the gateways differ; the gateway detail view needs
*what* differs on this one: its interface key or port, peers it lacks or has alone, and
peers whose allowed IPs or keepalive disagree. Only gateways that answered are compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wgconsole.core.fleet import Fleet, short_key

# What differs, as the gateway detail names it.
DriftKind = Literal[
    "public key", "listen port", "missing peer", "extra peer", "allowed IPs", "keepalive"
]


@dataclass(frozen=True, slots=True)
class Drift:
    what: DriftKind
    subject: str  # "interface" or a client's label
    here: str
    others: str  # "gw-02: value; gw-03: value"


def _fmt_keepalive(seconds: int) -> str:
    return f"{seconds}s" if seconds else "off"


def gateway_drift(fleet: Fleet, gateway: str) -> tuple[Drift, ...]:
    me = fleet.gateway(gateway)
    others = [g for g in fleet.gateways if g.reachable and g.name != gateway]
    if me is None or not me.reachable or not others:
        return ()
    found: list[Drift] = []
    if me.public_key is not None:
        differing = [g for g in others if g.public_key not in (None, me.public_key)]
        if differing:
            found.append(
                Drift(
                    "public key",
                    "interface",
                    short_key(me.public_key),
                    "; ".join(f"{g.name}: {short_key(g.public_key or '')}" for g in differing),
                )
            )
    if me.listen_port is not None:
        differing = [g for g in others if g.listen_port not in (None, me.listen_port)]
        if differing:
            found.append(
                Drift(
                    "listen port",
                    "interface",
                    str(me.listen_port),
                    "; ".join(f"{g.name}: {g.listen_port}" for g in differing),
                )
            )
    other_names = {g.name for g in others}
    read = {g.name for g in fleet.gateways if g.reachable and g.peer_count is not None}
    expected = other_names & read
    here_read = gateway in read
    # Every peer of a fleet is compared on every poll while the detail is open (10,000
    # clients): the common case, a peer alike everywhere, is decided without building sets.
    theirs_are_read = other_names <= read
    for client in fleet.clients:
        mine = None
        theirs = []
        for p in client.per_gateway:
            if p.gateway == gateway:
                mine = p
            elif p.gateway in other_names:
                theirs.append(p)
        if mine is None:
            if theirs and here_read:
                on = "; ".join(p.gateway for p in theirs)
                found.append(Drift("missing peer", client.label, "absent", f"present on {on}"))
            continue
        if theirs_are_read and len(theirs) == len(expected):
            lacking: list[str] = []
        else:
            lacking = sorted(expected - {p.gateway for p in theirs})
        if lacking:
            found.append(
                Drift("extra peer", client.label, "present", f"absent on {', '.join(lacking)}")
            )
        mine_ips = mine.allowed_ips
        ips = [
            p for p in theirs if p.allowed_ips != mine_ips and set(p.allowed_ips) != set(mine_ips)
        ]
        if ips:
            found.append(
                Drift(
                    "allowed IPs",
                    client.label,
                    ", ".join(sorted(mine_ips)) or "(none)",
                    "; ".join(f"{p.gateway}: {', '.join(sorted(p.allowed_ips))}" for p in ips),
                )
            )
        keep = [p for p in theirs if p.keepalive != mine.keepalive]
        if keep:
            found.append(
                Drift(
                    "keepalive",
                    client.label,
                    _fmt_keepalive(mine.keepalive),
                    "; ".join(f"{p.gateway}: {_fmt_keepalive(p.keepalive)}" for p in keep),
                )
            )
    return tuple(found)
