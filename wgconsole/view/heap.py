"""Keeping Python's cyclic garbage collector from pausing the console for big fleets.

A snapshot of 5,000 clients and 50,000 LB entries is a few hundred thousand objects, made
anew every poll. Each poll then triggers full collections that walk every live object
(~0.1-0.3 s with the GIL held), stalling the UI thread at random moments. Snapshots are
acyclic (frozen dataclasses, tuples) and freed by reference counting alone, so after each
poll the live objects are moved out of the collector's sight (`gc.freeze`): collections
then only walk what is new. Young cyclic garbage is collected first, and now and then
everything is unfrozen and collected in full so that no cycle is kept for good.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

FULL_EVERY = 300.0  # seconds between full collections


class HeapKeeper:
    def __init__(
        self, full_every: float = FULL_EVERY, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.full_every = full_every
        self.clock = clock
        self._last_full = clock()

    def after_snapshot(self) -> None:
        """Call once per poll, after the snapshot is built."""
        if self.clock() - self._last_full >= self.full_every:
            gc.unfreeze()
            gc.collect()
            self._last_full = self.clock()
        else:
            gc.collect(1)  # the young generations: cheap, and catches fresh cycles
        gc.freeze()
