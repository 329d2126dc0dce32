"""The director pair, as the console shows it.

- The directors table: per LB, reachable, whether it holds the VIP, its VRRP state and
  priority (and which keepalived dump said so), its sync daemons, and its table's agreement
  with the VIP holder's (buckets differing), with the LB that would take over marked.
- The picture of the holder's and the backup's tables (wgconsole.view.buckets).
- Where a client would land on failover (its detail).

Built in the poll worker from the fleet (core.director makes the directors' views).
"""

from __future__ import annotations

from wgconsole.core.fleet import ClientView, DirectorView, Fleet
from wgconsole.core.inventory import Inventory
from wgconsole.view import present
from wgconsole.view.buckets import TAB_SIZE, BucketGrid, GridSide, Line, bucket_grid
from wgconsole.view.present import ACCENT, BAD, GOOD, MUTED, PLAIN, WARN
from wgconsole.view.rows.cells import Cell, Column, Row
from wgconsole.view.subjects import DirectorSubject

DIRECTOR_COLUMNS = (
    Column("lb", "LB"),
    Column("reachable", "Reachable"),
    Column("vip", "VIP"),
    Column("vrrp", "VRRP"),
    Column("sync", "Sync daemon"),
    Column("table", "sh table"),
    Column("failover", "Failover"),
)

_VRRP_TONE = {"MASTER": GOOD, "BACKUP": PLAIN, "FAULT": BAD, "INIT": WARN, "STOP": BAD}


# --- the directors -------------------------------------------------------------------------


def is_pair(fleet: Fleet) -> bool:
    """More than one director: the pair's table and picture are worth their rows."""
    return len(fleet.load_balancers) > 1


def _vip_cell(view: DirectorView, holders: int) -> Cell:
    if not view.reachable:
        return Cell("-", MUTED)
    if view.holds_vip is None:
        return Cell("? unread", MUTED)
    if view.holds_vip:
        if holders > 1:
            return Cell(f"✖ holds it ({holders} LBs do)", BAD)
        return Cell("✔ holds it", GOOD)
    return Cell("no", MUTED)


def _vrrp_cell(view: DirectorView) -> Cell:
    if not view.reachable:
        return Cell("-", MUTED)
    if view.vrrp_state is None:
        return Cell("no keepalived", MUTED)
    text: str = view.vrrp_state
    if view.vrrp_priority is not None:
        text += f" prio {view.vrrp_priority}"
    if view.vrrp_source is not None:
        text += f" ({view.vrrp_source})"
    return Cell(text, _VRRP_TONE.get(view.vrrp_state, PLAIN))


def sync_text(view: DirectorView) -> str | None:
    """Its sync daemons, `master eth0 id 1`; None: not read."""
    if view.sync_daemons is None:
        return None
    if not view.sync_daemons:
        return "none"
    return ", ".join(f"{d.role} {d.interface} id {d.syncid}" for d in view.sync_daemons)


def _sync_cell(view: DirectorView) -> Cell:
    if not view.reachable:
        return Cell("-", MUTED)
    text = sync_text(view)
    if text is None:
        return Cell("? unread", MUTED)
    if text == "none":
        return Cell("✖ none", WARN)
    return Cell(text)


def _table_cell(view: DirectorView) -> Cell:
    if not view.reachable:
        return Cell("-", MUTED)
    if view.is_reference:
        return Cell("reference" if view.table is not None else "✖ no sh table", ACCENT)
    n = view.buckets_differing
    if n is None:
        return Cell("-", MUTED)
    if view.table is None:
        return Cell(f"✖ no sh table ({n}/{TAB_SIZE} differ)", BAD)
    if n == 0:
        return Cell("✔ same", GOOD)
    return Cell(f"⚠ {n}/{TAB_SIZE} differ", WARN, n)


def _failover_cell(view: DirectorView, fleet: Fleet) -> Cell:
    if view.name != fleet.failover_lb:
        return Cell("-", MUTED)
    text = "takes over"
    if view.synced_clients is not None:
        text += f" · {view.synced_clients:,}/{len(fleet.clients):,} synced"
    return Cell(text, ACCENT)


def director_rows(fleet: Fleet) -> tuple[Row, ...]:
    """One row per LB, in inventory order, keyed by its name."""
    holders = sum(1 for v in fleet.load_balancers if v.reachable and v.holds_vip)
    rows = []
    for view in fleet.load_balancers:
        cells = (
            Cell(view.name),
            Cell(*present.reachable(ok=view.reachable)),
            _vip_cell(view, holders),
            _vrrp_cell(view),
            _sync_cell(view),
            _table_cell(view),
            _failover_cell(view, fleet),
        )
        search = " ".join(c.text for c in cells).lower()
        rows.append(Row(view.name, cells, search, DirectorSubject(view.name)))
    return tuple(rows)


def _backup(fleet: Fleet) -> DirectorView | None:
    """The director compared with the holder: the one that would take over, else the first
    other one."""
    others = [v for v in fleet.load_balancers if v.name != fleet.vip_holder]
    return next((v for v in others if v.name == fleet.failover_lb), others[0] if others else None)


def director_grid(fleet: Fleet, inventory: Inventory) -> BucketGrid | None:
    """The holder's table and the backup's side by side; None with fewer than two LBs."""
    if not is_pair(fleet):
        return None
    reference = next((v for v in fleet.load_balancers if v.name == fleet.vip_holder), None)
    backup = _backup(fleet)
    if reference is None or backup is None:
        return None
    left: list[tuple[str, str]] = [(reference.name, ACCENT)]
    left.append((" · VIP holder" if reference.holds_vip else " · reference", PLAIN))
    if reference.table is None:
        left.append((" · no sh table", WARN))
    right: list[tuple[str, str]] = [(backup.name, ACCENT)]
    if backup.name == fleet.failover_lb:
        right.append((" · takes over", PLAIN))
    n = backup.buckets_differing
    if not backup.reachable:
        right.append((" · ✖ not answering", BAD))
    elif backup.table is None:
        right.append((" · ✖ no sh table", BAD))
    elif n == 0:
        right.append((" · ✔ same table", GOOD))
    elif n is not None:
        right.append((f" · ⚠ {n}/{TAB_SIZE} differ", WARN))
    return bucket_grid(
        GridSide(tuple(left), reference.table),
        GridSide(tuple(right), backup.table if backup.reachable else None),
        (g.name for g in inventory.gateways),
    )


def failover_line(fleet: Fleet, client: ClientView) -> Line | None:
    """Where the client would land if the backup took over now (None with one LB)."""
    if not is_pair(fleet):
        return None
    lb = fleet.failover_lb
    if lb is None:
        return (("If the VIP moved: ", PLAIN), ("no other director answers", WARN))
    head = (f"If {lb} took over now: ", PLAIN)
    target, now = client.failover_gateway, client.lb_gateway
    if target is None:
        if client.lb_entry is None and client.endpoint is None:
            return (head, ("unknown", MUTED), (" (no source address seen for it)", MUTED))
        return (
            head,
            ("✖ dropped", BAD),
            (f" (no synced entry, and {lb}'s sh table has no available gateway for it)", MUTED),
        )
    how = (
        f" (its synced entry on {lb})"
        if client.failover_synced
        else f" ({lb}'s sh choice: no synced entry there)"
    )
    parts: list[tuple[str, str]] = [head, (f"→ {target}", GOOD if target == now else WARN)]
    parts.append((how, MUTED))
    if now is not None and target != now:
        parts.append(
            (
                f" · ⚠ leaves {now}: no session there until it handshakes again "
                "(~15 s sending data, up to ~2 min keepalive-only)",
                WARN,
            )
        )
    elif now is not None:
        parts.append((" · ✔ stays on its gateway", GOOD))
    return tuple(parts)
