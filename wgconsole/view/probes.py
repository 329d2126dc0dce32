"""The probes' results as the console shows them: a cell per host (a gateway's own probe; the
VIP's on the director holding it) and a log line whenever a target's verdict changes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from wgconsole.core.fleet import Fleet
from wgconsole.probe.fleet_probe import VIP
from wgconsole.probe.prober import ProbeResult
from wgconsole.view.events import Event
from wgconsole.view.present import BAD, GOOD, WARN
from wgconsole.view.rows.cells import Cell, number_key


def _verdict(result: ProbeResult) -> str:
    if result.ok:
        return f"✔ {result.rtt_ms or 0.0:.1f} ms"
    if result.under_load:
        return "◐ cookie reply (under load)"
    return f"✘ {result.error or 'no answer'}"


def probe_cell(result: ProbeResult) -> Cell:
    tone = GOOD if result.ok else WARN if result.under_load else BAD
    text = _verdict(result)
    if result.target == VIP:
        text = f"{VIP} {text}"
    return Cell(text, tone, number_key(result.rtt_ms if result.ok else None))


def host_probe_cells(results: Sequence[ProbeResult], fleet: Fleet) -> dict[str, Cell]:
    """Host name -> its cell: a gateway's own result; the VIP's on the director that holds
    the VIP (the only LB, or the pair's holder: the VIP's packets go through it alone)."""
    cells = {r.target: probe_cell(r) for r in results if r.target != VIP}
    vip = next((r for r in results if r.target == VIP), None)
    if vip is not None:
        holder = fleet.vip_holder
        if holder is None and len(fleet.load_balancers) <= 1:
            lbs = [h.name for h in fleet.hosts if h.role == "lb"]
            holder = lbs[0] if len(lbs) == 1 else None
        if holder is not None:
            cells[holder] = probe_cell(vip)
    return cells


def probe_events(
    old: Sequence[ProbeResult] | None, new: Sequence[ProbeResult], at: float
) -> Iterator[Event]:
    """A line for each target whose verdict changed (and for each failing one at the first
    round: a console opened on a broken gateway says so at once)."""
    before: Mapping[str, ProbeResult] = {r.target: r for r in old or ()}
    for result in new:
        was = before.get(result.target)
        if was is not None and (was.ok, was.under_load) == (result.ok, result.under_load):
            continue
        if old is not None and was is None:
            continue  # a target that appeared (an inventory reload): its rounds tell
        name = "the VIP" if result.target == VIP else result.target
        if result.ok:
            if was is None:
                continue
            message = f"{name}: WireGuard handshake completes again ({result.rtt_ms or 0:.1f} ms)"
            yield Event(at, "probe-ok", "info", result.target, message)
        elif result.under_load:
            message = f"{name}: WireGuard answers with a cookie reply (under load)"
            yield Event(at, "probe-load", "warning", result.target, message)
        else:
            message = f"{name}: WireGuard handshake fails: {result.error or 'no answer'}"
            yield Event(at, "probe-failed", "critical", result.target, message)
