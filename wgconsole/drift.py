"""One gateway's configuration compared with the other gateways, line by line.

The `config-drift` finding says *that* the gateways differ; the gateway detail view needs
*what* differs on this one: its interface key or port, peers it lacks or has alone, and
peers whose allowed IPs or keepalive disagree. Only gateways that answered are compared.
"""

from __future__ import annotations

from dataclasses import dataclass

from wgconsole.model import Fleet, short_key


@dataclass(frozen=True, slots=True)
class Drift:
    what: str  # public key / listen port / missing peer / extra peer / allowed IPs / keepalive
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
    for client in fleet.clients:
        mine = client.on(gateway)
        theirs = [p for p in client.per_gateway if p.gateway in other_names]
        if mine is None and theirs and gateway in read:
            on = "; ".join(p.gateway for p in theirs)
            found.append(Drift("missing peer", client.label, "absent", f"present on {on}"))
            continue
        if mine is None:
            continue
        lacking = sorted(other_names & read - {p.gateway for p in theirs})
        if lacking:
            found.append(
                Drift("extra peer", client.label, "present", f"absent on {', '.join(lacking)}")
            )
        ips = [p for p in theirs if set(p.allowed_ips) != set(mine.allowed_ips)]
        if ips:
            found.append(
                Drift(
                    "allowed IPs",
                    client.label,
                    ", ".join(sorted(mine.allowed_ips)) or "(none)",
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
