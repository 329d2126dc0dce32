"""A table row and its cells (text, tone, sort value), columns, and the sort keys rows share."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any, NamedTuple

from wgconsole.core.records import Endpoint
from wgconsole.view import present
from wgconsole.view.present import BAD, GOOD, MUTED, PLAIN, STALE, WARN
from wgconsole.view.subjects import Subject


class Cell(NamedTuple):
    text: str
    tone: str = PLAIN
    sort: Any = None  # comparable within its column; None sorts by the text


class Row(NamedTuple):
    key: str
    cells: tuple[Cell, ...]
    search: str = ""  # lower-case text the `/` filter matches
    subject: Subject | None = None  # what the row is about; None: nothing to act on


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str


def columns_of(*pairs: tuple[str, str]) -> tuple[Column, ...]:
    return tuple(Column(k, label) for k, label in pairs)


_MISSING_LAST = (1, 0.0)
# Worst first: how a column of tones sorts.
TONE_RANK = {BAD: 0, WARN: 1, present.ACCENT: 2, MUTED: 3, STALE: 4, GOOD: 5, PLAIN: 6}


def ip_sort_key(text: str | None) -> tuple[int, int, str]:
    """Addresses in numeric order, v4 before v6, anything else after, by text."""
    if not text:
        return (9, 0, "")
    host = text.split("/", 1)[0]
    for family, rank in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
        try:
            return (rank, int.from_bytes(socket.inet_pton(family, host), "big"), "")
        except OSError:
            continue
    return (8, 0, text)


def endpoint_sort_key(endpoint: Endpoint) -> tuple[int, int, int]:
    rank, number, _ = ip_sort_key(endpoint.address)
    return (rank, number, endpoint.port)


def number_key(value: float | None) -> tuple[int, float]:
    return _MISSING_LAST if value is None else (0, value)


def search_text(*parts: str | None) -> str:
    return " ".join(p for p in parts if p).lower()
