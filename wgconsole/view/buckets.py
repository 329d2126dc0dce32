"""The picture of two directors' sh tables: 256 buckets each, side by side, by gateway.

Two directors send a new client to the same gateway only if their tables agree bucket by
bucket, and two tables can disagree while `ipvsadm -Ln` prints the same on both (the kernel
order differs). The picture shows where: each bucket is a cell holding its gateway's symbol
(`1`, `2`, ... in inventory order, `·` where the kernel drops the client), coloured by
gateway in the UI, and a bucket that differs between the two tables carries `≠` in both
grids, so a monochrome terminal or the high-contrast theme tells them apart by symbol.

Pure data for the UI (which only lays the cells out at its width): built in the poll worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from wgconsole.view.present import MUTED, PLAIN

TAB_SIZE = 256  # core.sched.TAB_SIZE (CONFIG_IP_VS_SH_TAB_BITS=8)
# A gateway's symbol in the picture: its position in the legend.
SYMBOLS = "123456789abcdefghijklmnopqrstuvwxyz"
DROPPED = "·"  # no available gateway: the kernel drops a new client of this bucket
UNKNOWN = " "  # no table (the director has no sh service, or did not answer)
DIFFERS = "≠"

Line = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class GridSide:
    """One director's table: its title (parts with tones) and its 256 buckets' gateways,
    or None when it has no table to show."""

    title: Line
    table: tuple[str | None, ...] | None


@dataclass(frozen=True, slots=True)
class BucketGrid:
    left: GridSide  # the VIP holder's (the reference)
    right: GridSide  # the director that would take over
    differing: tuple[bool, ...]  # per bucket: the two tables send its clients apart
    gateways: tuple[str, ...]  # the legend: gateways[i] is shown as SYMBOLS[i]

    @property
    def count(self) -> int:
        return sum(self.differing)

    def index(self, name: str | None) -> int | None:
        """The legend position of a bucket's gateway (None: dropped)."""
        if name is None:
            return None
        return self.gateways.index(name)

    def cell(self, table: tuple[str | None, ...] | None, bucket: int) -> str:
        """The two characters of one bucket: the gateway's symbol, then `≠` if it differs."""
        mark = DIFFERS if self.differing[bucket] else " "
        if table is None:
            return UNKNOWN + mark
        return symbol(self.index(table[bucket])) + mark

    def legend(self) -> Line:
        parts: list[tuple[str, str]] = []
        for i, name in enumerate(self.gateways):
            parts.append((f"{symbol(i)} {name}  ", PLAIN))
        parts.append((f"{DROPPED} dropped  ", MUTED))
        parts.append((f"{DIFFERS} differs", PLAIN))
        return tuple(parts)


def symbol(index: int | None) -> str:
    if index is None:
        return DROPPED
    return SYMBOLS[index] if index < len(SYMBOLS) else "?"


def differing(
    left: Sequence[str | None] | None, right: Sequence[str | None] | None
) -> tuple[bool, ...]:
    """Per bucket, whether the tables send its new clients to different gateways. A missing
    table differs everywhere from a present one (no bucket sends a client where the other
    does); two missing tables say nothing."""
    if left is None and right is None:
        return (False,) * TAB_SIZE
    if left is None or right is None:
        return (True,) * TAB_SIZE
    return tuple(a != b for a, b in zip(left, right, strict=True))


def bucket_grid(left: GridSide, right: GridSide, gateway_order: Iterable[str] = ()) -> BucketGrid:
    """The picture of `left` and `right`; the legend lists `gateway_order` (the inventory's
    gateways) first, then any other name found in the tables (a dest no gateway has)."""
    for side in (left, right):
        if side.table is not None and len(side.table) != TAB_SIZE:
            raise ValueError(f"an sh table has {TAB_SIZE} buckets, not {len(side.table)}")
    names = dict.fromkeys(gateway_order)
    for side in (left, right):
        for name in side.table or ():
            if name is not None and name not in names:
                names[name] = None
    return BucketGrid(left, right, differing(left.table, right.table), tuple(names))
