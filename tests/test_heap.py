from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from wgconsole.view.heap import HeapKeeper


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_live_objects_leave_the_collectors_sight_after_a_snapshot() -> None:
    now = [0.0]
    keeper = HeapKeeper(full_every=300, clock=lambda: now[0])
    kept = [object() for _ in range(1000)]
    keeper.after_snapshot()
    assert gc.get_freeze_count() >= len(kept)


def test_now_and_then_everything_is_collected_in_full() -> None:
    now = [0.0]
    keeper = HeapKeeper(full_every=300, clock=lambda: now[0])

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle, garbage once the names go
    gone = weakref.ref(a)
    keeper.after_snapshot()  # frozen while alive
    del a, b
    gc.collect()
    assert gone() is not None  # frozen: invisible to collections
    now[0] = 301.0
    keeper.after_snapshot()  # the full pass unfreezes and collects the cycle
    assert gone() is None
