"""One site in one line: what `status` prints per site when several are loaded, and what the
console's Sites view (not built yet) is to show per site.

The summary is made from the site's fleet alone (or from why there is none), so that the
text `status` prints and the console's table say the same, with the words of `present`.
"""

from __future__ import annotations

from dataclasses import dataclass

from wgconsole.core.fleet import Finding, Fleet, RealServerState
from wgconsole.view import present

# A client is connected while its freshest handshake is within REJECT_AFTER_TIME.
CONNECTED = ("fresh", "ageing")
IN_SERVICE: tuple[RealServerState, ...] = ("active",)
DRAINED: tuple[RealServerState, ...] = ("drained", "quiescent")
EVICTED: tuple[RealServerState, ...] = ("evicted",)


@dataclass(frozen=True, slots=True)
class SiteSummary:
    site: str
    error: str | None = None  # no reading of the site at all (then nothing below is known)
    hosts: int = 0
    answering: int = 0
    vip_holder: str | None = None
    in_service: int = 0
    drained: int = 0
    evicted: int = 0
    out: int = 0  # missing from the service, or their LB not answering
    clients_known: int = 0  # the inventory's clients
    clients_connected: int = 0  # of those, with a live WireGuard session
    worst: Finding | None = None
    # How old the oldest data shown is, at the reading (seconds); None: a host never answered
    # (`never` names them).
    data_age: float | None = 0.0
    never: tuple[str, ...] = ()

    @property
    def findings(self) -> bool:
        return self.error is not None or self.worst is not None


def summarize(site: str, fleet: Fleet) -> SiteSummary:
    """The site's summary from its fleet."""
    states = [r.state for r in fleet.real_servers if r.gateway is not None]
    known = [c for c in fleet.clients if c.name is not None]
    ages: list[float] = []
    never: list[str] = []
    for h in fleet.hosts:
        if h.reachable:
            ages.append(0.0)
        elif h.last_success is None:
            never.append(h.name)
        else:
            ages.append(max(0.0, fleet.taken_at - h.last_success))
    return SiteSummary(
        site=site,
        hosts=len(fleet.hosts),
        answering=sum(h.reachable for h in fleet.hosts),
        vip_holder=fleet.vip_holder,
        in_service=sum(s in IN_SERVICE for s in states),
        drained=sum(s in DRAINED for s in states),
        evicted=sum(s in EVICTED for s in states),
        out=sum(s not in (*IN_SERVICE, *DRAINED, *EVICTED) for s in states),
        clients_known=len(known),
        clients_connected=sum(c.status in CONNECTED for c in known),
        worst=min(fleet.findings, key=lambda f: f.sort_key(), default=None),
        data_age=None if never else max(ages, default=0.0),
        never=tuple(never),
    )


def unread(site: str, error: str) -> SiteSummary:
    """The summary of a site that gave no reading at all."""
    return SiteSummary(site=site, error=error, data_age=None)


def summary_line(s: SiteSummary, width: int) -> str:
    """The summary as one line (`width`: the site column's)."""
    name = s.site.ljust(width)
    if s.error is not None:
        return f"{name}  ✖ no reading: {s.error}"
    gateways = f"gateways {s.in_service} in service, {s.drained} drained, {s.evicted} evicted"
    if s.out:
        gateways += f", {s.out} out"
    if s.worst is None:
        worst = "no findings"
    else:
        mark, _ = present.SEVERITY.get(s.worst.severity, ("?", present.MUTED))
        worst = f"{mark} {s.worst.code} {s.worst.subject}".rstrip()
    if s.never:
        data = f"data: {', '.join(s.never)} never answered"
    else:
        data = f"data {present.age(s.data_age)} old"
    return (
        f"{name}  hosts {s.answering}/{s.hosts}  VIP {s.vip_holder or '-'}  {gateways}  "
        f"clients {s.clients_connected}/{s.clients_known} connected  {worst}  {data}"
    )
