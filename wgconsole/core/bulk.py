"""Tens of thousands of records per poll (parsers and model), kept cheap.

A poll of a large fleet is ~50,000 LB entries and 10,000 peers per gateway, every few
seconds. Most of that text is the same as in the previous poll, so the records made from it
last time are used again (`LineMemo`); the rest are built column by column (`Columns`)
rather than one frozen dataclass `__init__` at a time; and the cyclic garbage collector is
kept out of the way while a poll is turned into records (`gc_paused`).
"""

from __future__ import annotations

import dataclasses
import gc
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import repeat
from operator import is_
from typing import Any, Generic, TypeVar

_T = TypeVar("_T")

_gc_lock = threading.Lock()
_gc_depth = 0
_gc_restore = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Keep the cyclic collector out of the parsing and modelling of one poll.

    None of the records can form a cycle, yet the column-wise passes hold tens of
    thousands of short-lived lists and tuples at once: every 700 of them start a
    collection, and the older generations' passes walk the whole heap (measured: two full
    collections per poll, ~80 ms each, with a 10,000-client fleet's snapshot alive).
    Reference-counted across threads (the collector parses hosts in parallel): the first
    to enter pauses, the last to leave restores the state found by the first, so a caller
    that disabled the collector itself is unaffected.

    The last to leave also moves every object to the oldest generation (gc.freeze, then
    gc.unfreeze: both O(1)) before the collector runs again. Otherwise its next young
    collection walks every record the pause let pile up, a first poll's ~240,000 of them
    (20-40 ms measured); now only a full collection walks them, as it would once they were
    old. A cycle made meanwhile (by any thread) is still collected, by that full collection:
    the console's HeapKeeper runs one every few minutes.
    """
    global _gc_depth, _gc_restore
    with _gc_lock:
        if _gc_depth == 0:
            _gc_restore = gc.isenabled()
            gc.disable()
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and _gc_restore:
                gc.freeze()
                gc.unfreeze()
                gc.enable()


class LineMemo(Generic[_T]):
    """The records made from one source's latest output, by the line each came from.

    A line always gives the same record, so a record remembered here is right for as long
    as its line comes back. Only the latest output's lines are kept (the memo never grows
    past one output), and they are replaced whole: a reader in another thread sees one
    output's records or the next's, never a mix.

    The index by line is made when the next output is looked up, not when one is
    remembered: a first poll (every command makes one, and most make no other) remembers
    tens of thousands of lines that nothing may read again.
    """

    def __init__(self, family: Mapping[str, LineMemo[_T]] | None = None) -> None:
        """`family`: the memos of sources whose lines are often this one's too (a fleet's
        gateways carry the same peers, and an idle peer's line is the same on each): a
        line this source's latest output lacked is looked up there."""
        self._latest: _Index[_T] | None = None
        self._family = family

    @property
    def empty(self) -> bool:
        """No output remembered here, nor in the family: every line is new."""
        memos = [self] if self._family is None else [self, *self._family.values()]
        return all(memo._latest is None for memo in memos)

    def recall(self, lines: Sequence[str]) -> list[_T | None]:
        """The record remembered for each line, None for a line no memo knows."""
        known = list(map(self._by_line().get, lines))
        for other in list(self._family.values()) if self._family is not None else ():
            if not any(map(is_, known, repeat(None))):
                break
            if other is not self:
                records = other._by_line()
                known = [
                    records.get(line) if record is None else record
                    for line, record in zip(lines, known, strict=True)
                ]
        return known

    def remember(self, lines: Sequence[str], records: Sequence[_T]) -> None:
        """`records[i]` came from `lines[i]`: they replace everything remembered."""
        if len(lines) != len(records):
            raise ValueError("as many records as lines")
        self.remember_later(lambda: dict(zip(lines, records, strict=True)))

    def remember_later(self, index: Callable[[], dict[str, _T]]) -> None:
        """`index()` (called once, when a later output is looked up) is the latest output's
        records by line; it replaces everything remembered."""
        self._latest = _Index(index)

    def _by_line(self) -> dict[str, _T]:
        latest = self._latest
        return {} if latest is None else latest.by_line()

    def parse(
        self, lines: Sequence[str], parse: Callable[[list[str]], list[_T] | None]
    ) -> list[_T] | None:
        """`parse(lines)`, calling `parse` only on the lines not remembered.

        None (the lines need another parser) is passed on, and nothing is remembered then.
        """
        known = self.recall(lines)
        new = parse([line for line, record in zip(lines, known, strict=True) if record is None])
        if new is None:
            return None
        fresh = iter(new)
        records = [next(fresh) if record is None else record for record in known]
        self.remember(lines, records)
        return records


class _Index(Generic[_T]):
    """One output's records by line, made on first use. Two threads may both make it:
    either result is the same."""

    def __init__(self, make: Callable[[], dict[str, _T]]) -> None:
        self._make: Callable[[], dict[str, _T]] | None = make
        self._index: dict[str, _T] = {}

    def by_line(self) -> dict[str, _T]:
        make = self._make
        if make is not None:
            self._index = make()
            self._make = None
        return self._index


def slot_setters(cls: type, names: tuple[str, ...]) -> list[Callable[[Any, Any], None]]:
    """The slot descriptors' setters of dataclass `cls`, whose fields must be `names`.

    Fails (at import, where it is called) if the record's fields change, so code that
    builds records through the slots cannot silently drift from the class.
    """
    fields = tuple(field.name for field in dataclasses.fields(cls))
    if fields != names:
        raise TypeError(f"{cls.__name__} fields changed to {fields}: update {names}")
    return [cls.__dict__[name].__set__ for name in names]


class Columns(Generic[_T]):
    """Builds many records of a frozen, slotted dataclass from one column per field.

    Equal to calling the class for each row (same fields, equality, hash, repr, still
    frozen), but a frozen dataclass's __init__ stores each field through
    object.__setattr__, which costs more than parsing the line did; here every column is
    stored by the slot descriptors in a C-level loop.
    """

    def __init__(self, cls: type[_T], names: tuple[str, ...]) -> None:
        self._cls = cls
        self._setters = slot_setters(cls, names)
        self._by_name = dict(zip(names, self._setters, strict=True))

    def build(self, *columns: Iterable[Any]) -> list[_T]:
        """Records whose n-th field is taken from the n-th column (all of equal length)."""
        if len(columns) != len(self._setters):
            raise TypeError(f"expected {len(self._setters)} columns, got {len(columns)}")
        lists = [c if isinstance(c, list | tuple) else list(c) for c in columns]
        count = len(lists[0]) if lists else 0
        if any(len(c) != count for c in lists):
            raise ValueError("columns of different lengths")
        new: Callable[[type[_T]], _T] = object.__new__
        records = list(map(new, repeat(self._cls, count)))
        for setter, column in zip(self._setters, lists, strict=True):
            deque(map(setter, records, column), maxlen=0)
        return records

    def fill(self, records: Sequence[_T], name: str, column: Iterable[Any]) -> None:
        """Sets field `name` of records that `build` has just made, before they are shown to
        anyone: for a field derived from the record's other fields."""
        values = column if isinstance(column, list | tuple) else list(column)
        if len(values) != len(records):
            raise ValueError("a value for each record")
        deque(map(self._by_name[name], records, values), maxlen=0)
