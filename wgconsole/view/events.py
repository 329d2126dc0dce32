"""Events for the console's log: what changed between two successive fleet snapshots.

Hosts lost and back, interfaces going down and up, real servers changing state, the VIP
moving between directors, a director's VRRP state or sync daemons changing, clients the LB
sends to another gateway, handshakes going stale and fresh again, and findings appearing or
clearing. Operator actions enter the same log through `operator_action`.
A mass change (an LB reboot touching 5,000 clients) is summarised per kind rather than
flooding the log.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from wgconsole.core.fleet import DirectorView, Finding, Fleet, Severity

# Per kind and per poll; the rest is folded into one "and N more" event.
MAX_PER_KIND = 10

# Finding codes whose appearance is already told by a dedicated event.
_FINDINGS_WITH_OWN_EVENT = frozenset({"host-unreachable", "interface-down", "stale"})


@dataclass(frozen=True, slots=True)
class Event:
    at: float  # bastion epoch time of the poll that saw it
    kind: str
    severity: Severity  # as findings
    subject: str
    message: str


def operator_action(at: float, subject: str, message: str) -> Event:
    """An operator's action, logged with the fleet events (for the operations to come)."""
    return Event(at, "action", "info", subject, message)


def fleet_events(old: Fleet | None, new: Fleet) -> list[Event]:
    """Everything worth a log line between `old` and `new`, grouped by kind."""
    at = new.taken_at
    if old is None:
        answered = sum(1 for h in new.hosts if h.reachable)
        worst = sum(1 for f in new.findings if f.severity == "critical")
        message = (
            f"first poll: {answered}/{len(new.hosts)} hosts answered, "
            f"{len(new.clients)} clients, {len(new.findings)} findings ({worst} critical)"
        )
        return [Event(at, "poll", "info", "console", message)]
    events = [
        *_hosts(old, new),
        *_interfaces(old, new),
        *_servers(old, new),
        *_directors(old, new),
        *_clients(old, new),
        *_findings(old, new),
    ]
    return _fold(events)


def _hosts(old: Fleet, new: Fleet) -> Iterator[Event]:
    before = {h.name: h.reachable for h in old.hosts}
    for host in new.hosts:
        was = before.get(host.name)
        if was is None or was == host.reachable:
            continue
        if host.reachable:
            yield Event(new.taken_at, "host-back", "info", host.name, f"{host.name} answers again")
        else:
            error = f": {host.error}" if host.error else ""
            message = f"{host.role} {host.name} stopped answering{error}"
            yield Event(new.taken_at, "host-lost", "critical", host.name, message)


def _interfaces(old: Fleet, new: Fleet) -> Iterator[Event]:
    before = {g.name: g.link_up for g in old.gateways if g.reachable}
    for gw in new.gateways:
        if not gw.reachable or gw.name not in before or before[gw.name] == gw.link_up:
            continue
        if gw.link_up:
            yield Event(new.taken_at, "interface-up", "info", gw.name, f"{gw.name}: wg0 is up")
        else:
            state = "missing" if gw.link_up is None else "down"
            message = f"{gw.name}: interface is {state}"
            yield Event(new.taken_at, "interface-down", "critical", gw.name, message)


def _servers(old: Fleet, new: Fleet) -> Iterator[Event]:
    before = {rs.address: rs for rs in old.real_servers}
    for rs in new.real_servers:
        was = before.get(rs.address)
        if was is None or (was.state == rs.state and was.weight == rs.weight):
            continue
        name = rs.gateway or str(rs.address)
        severity: Severity = "info" if rs.state in ("active", "drained") else "warning"
        message = f"real server {name}: {was.state} (weight {was.weight}) -> {rs.state}"
        if rs.weight is not None:
            message += f" (weight {rs.weight})"
        yield Event(new.taken_at, "server-state", severity, name, message)


def _holders(fleet: Fleet) -> list[str] | None:
    """The answering directors holding the VIP; None when one's addresses were not read."""
    answering = [v for v in fleet.load_balancers if v.reachable]
    if any(v.holds_vip is None for v in answering):
        return None
    return [v.name for v in answering if v.holds_vip]


def _sync(view: DirectorView) -> str:
    daemons = view.sync_daemons or ()
    return ", ".join(f"{d.role} {d.interface} syncid {d.syncid}" for d in daemons) or "none"


def _directors(old: Fleet, new: Fleet) -> Iterator[Event]:
    """The VIP moving, and each answering director's VRRP state and sync daemons changing
    (an LB lost or back is the host's own event)."""
    at = new.taken_at
    vip = new.service.vip if new.service is not None else "the VIP"
    if len(new.load_balancers) > 1:
        before, after = _holders(old), _holders(new)
        if before is not None and after is not None and set(before) != set(after):
            was = ", ".join(before) or "no LB"
            now = ", ".join(after) or "no answering LB"
            severity: Severity = "warning" if len(after) == 1 else "critical"
            message = f"VIP {vip} moved: {was} -> {now}"
            yield Event(at, "vip-moved", severity, str(vip), message)
    previous = {v.name: v for v in old.load_balancers if v.reachable}
    for view in new.load_balancers:
        was_view = previous.get(view.name)
        if was_view is None or not view.reachable:
            continue
        if was_view.vrrp_state != view.vrrp_state:
            was_state = was_view.vrrp_state or "no keepalived"
            state = view.vrrp_state or "no keepalived"
            level: Severity = "critical" if view.vrrp_state == "FAULT" else "warning"
            message = f"{view.name}: VRRP {was_state} -> {state}"
            if view.vrrp_priority is not None:
                message += f" (priority {view.vrrp_priority})"
            yield Event(at, "vrrp-state", level, view.name, message)
        if (
            was_view.sync_daemons is not None
            and view.sync_daemons is not None
            and set(was_view.sync_daemons) != set(view.sync_daemons)
        ):
            fewer = not set(was_view.sync_daemons) <= set(view.sync_daemons)
            message = f"{view.name}: sync daemon {_sync(was_view)} -> {_sync(view)}"
            yield Event(at, "sync-daemon", "warning" if fewer else "info", view.name, message)


def _clients(old: Fleet, new: Fleet) -> Iterator[Event]:
    before = {c.public_key: c for c in old.clients}
    at = new.taken_at
    for client in new.clients:
        was = before.get(client.public_key)
        if was is None:
            continue
        label = client.label
        if was.lb_gateway != client.lb_gateway and client.lb_gateway is not None:
            origin = was.lb_gateway or "no LB entry"
            message = f"{label}: LB gateway {origin} -> {client.lb_gateway}"
            yield Event(at, "client-moved", "warning", label, message)
        elif was.lb_gateway is not None and client.lb_gateway is None:
            message = f"{label}: LB entry on {was.lb_gateway} gone"
            yield Event(at, "client-moved", "warning", label, message)
        if was.status == client.status:
            continue
        if client.status == "stale":
            message = f"{label}: handshake went stale (on {client.handshake_gateway})"
            yield Event(at, "handshake-stale", "warning", label, message)
        elif client.status == "fresh" and was.status in ("stale", "never"):
            message = f"{label}: fresh handshake on {client.handshake_gateway}"
            yield Event(at, "handshake-fresh", "info", label, message)


def _finding_keys(findings: tuple[Finding, ...]) -> dict[tuple[str, str, int], Finding]:
    # Keyed without the message: messages carry ages that change every poll.
    keyed: dict[tuple[str, str, int], Finding] = {}
    for finding in findings:
        n = 0
        while (finding.code, finding.subject, n) in keyed:
            n += 1
        keyed[(finding.code, finding.subject, n)] = finding
    return keyed


def _findings(old: Fleet, new: Fleet) -> Iterator[Event]:
    before = _finding_keys(old.findings)
    after = _finding_keys(new.findings)
    at = new.taken_at
    for key, finding in after.items():
        if key not in before and finding.code not in _FINDINGS_WITH_OWN_EVENT:
            message = f"new finding {finding.code}: {finding.message}"
            yield Event(at, "finding-new", finding.severity, finding.subject, message)
    for key, finding in before.items():
        if key not in after and finding.code not in _FINDINGS_WITH_OWN_EVENT:
            message = f"cleared {finding.code} ({finding.subject})"
            yield Event(at, "finding-cleared", "info", finding.subject, message)


def _fold(events: list[Event]) -> list[Event]:
    counts: dict[str, int] = {}
    kept: list[Event] = []
    for event in events:
        counts[event.kind] = counts.get(event.kind, 0) + 1
        if counts[event.kind] <= MAX_PER_KIND:
            kept.append(event)
    for kind, n in counts.items():
        if n > MAX_PER_KIND:
            at = events[0].at
            message = f"and {n - MAX_PER_KIND} more {kind} events this poll"
            kept.append(Event(at, kind, "info", "console", message))
    return kept
