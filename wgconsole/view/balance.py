"""The balance, as the Overview shows it: per gateway, the clients whose LB entry is on it
against its share of the 256 buckets, and how many clients are not where the sh table sends
them (a rebalance is due: key R).

Keepalives refresh a client's LB entry forever, so after an undrain or a weight change the
clients stay where the old table put them (core.rebalance). Built in the poll worker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from wgconsole.core.fleet import Fleet
from wgconsole.core.inventory import Inventory
from wgconsole.core.rebalance import GatewayBalance, balance, fleet_choice, misplaced
from wgconsole.core.sched import TAB_SIZE
from wgconsole.view.present import MUTED, PLAIN, WARN
from wgconsole.view.rows.cells import Cell

Line = tuple[tuple[str, str], ...]


def _pct(part: int, whole: int) -> str:
    return f"{round(100 * part / whole)}%" if whole else "-"


def balance_cells(rows: Sequence[GatewayBalance]) -> dict[str, tuple[Cell, Cell]]:
    """Per gateway: its clients (count and share; `→ N` after a rebalance when that moves
    some) and its buckets (count and share of the 256)."""
    total = sum(r.clients for r in rows)
    cells = {}
    for r in rows:
        text = f"{r.clients:,} · {_pct(r.clients, total)}"
        tone = PLAIN
        if r.clients_after != r.clients:
            text += f" → {r.clients_after:,}"
            tone = WARN
        buckets = f"{r.buckets} · {_pct(r.buckets, TAB_SIZE)}"
        cells[r.gateway] = (
            Cell(text, tone, r.clients),
            Cell(buckets, MUTED if r.buckets == 0 else PLAIN, r.buckets),
        )
    return cells


def balance_note(count: int) -> Line:
    """The Real servers title's tail: how many clients a rebalance would move."""
    if not count:
        return ()
    noun = "client is" if count == 1 else "clients are"
    return ((f" · ⚠ {count:,} {noun} not where sh sends them: R rebalances", WARN),)


def fleet_balance(
    inventory: Inventory, fleet: Fleet
) -> tuple[Mapping[str, tuple[Cell, Cell]], int]:
    """The balance cells per gateway and the number of clients not on their sh choice."""
    choice = fleet_choice(inventory, fleet)
    if choice is None:
        return {}, 0
    return balance_cells(balance(inventory, fleet)), len(misplaced(fleet.clients, choice))
