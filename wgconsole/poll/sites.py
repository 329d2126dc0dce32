"""Many sites in one process: one FleetCollector per site, read at once, each within its own
bound.

A site is its own collector: its own transports (a host listed by two sites is connected to,
and polled, once per site), its own parse memos and fleet builder, its own deadline. Nothing
is shared between sites, so nothing one site's hosts do (hang, answer slowly, send garbage,
make a parser raise) reaches another's data: each site is read on a thread of its own, its
reading is handed on (`on_reading`) the moment it is ready, and one that is not ready within
its bound is reported as such for that site alone while the others' readings stand.

A collector's poll ends by its deadline (`poll.collector`), so the bound is a backstop for
what no deadline covers (building the fleet, a bug): a site's reading that is still running
at its bound goes on in the background and is not started again until it ended, as a host's
request is not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

from wgconsole.core.fleet import Fleet
from wgconsole.poll.collector import FleetCollector
from wgconsole.poll.parsers.errors import redact

# What a site's reading may take past its collector's longest wait for a host: building the
# fleet from the poll (most of a second at 10,000 clients) and thread wake-ups.
SITE_SLACK = 5.0

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class SiteResult(Generic[_T]):
    """One site's answer to one reading: its value, or why there is none (`error`)."""

    site: str
    value: _T | None
    error: str | None
    seconds: float


def site_bound(collector: FleetCollector) -> float:
    """The longest a reading of `collector`'s site is waited for: its poll's longest wait for
    a host (the deadline, or up to the command timeout for a host known to be slow) and
    SITE_SLACK."""
    return max(collector.poll_deadline, collector.timeout) + SITE_SLACK


class SiteRunner(Generic[_T]):
    """Runs one call per site at once, each on its own thread and within its own bound; a
    site whose previous call is still running is not called again (its result says so)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, tuple[Future[_T], float]] = {}

    def run(
        self,
        calls: Mapping[str, Callable[[], _T]],
        bounds: Mapping[str, float],
        *,
        on_result: Callable[[SiteResult[_T]], None] | None = None,
    ) -> dict[str, SiteResult[_T]]:
        """Every site's result, in the order of `calls`; `on_result` is called with each as
        soon as it is ready (from that site's thread), or at its bound for one that is not."""
        started = time.monotonic()
        futures: dict[str, Future[_T]] = {}
        busy: dict[str, float] = {}
        told: set[str] = set()
        told_lock = threading.Lock()

        def tell(result: SiteResult[_T]) -> None:
            # Once per site and run: its reading, or its bound passing, whichever comes first.
            with told_lock:
                if result.site in told:
                    return
                told.add(result.site)
            if on_result is not None:
                on_result(result)

        with self._lock:
            for site, call in calls.items():
                running = self._running.get(site)
                if running is not None and not running[0].done():
                    busy[site] = running[1]
                    continue
                future: Future[_T] = Future()
                self._running[site] = (future, started)
                futures[site] = future
                self._start(site, call, future, started, tell)
        results: dict[str, SiteResult[_T]] = {}
        for site in calls:
            if site in busy:
                waited = started - busy[site]
                result: SiteResult[_T] = SiteResult(
                    site, None, f"its previous reading is still running after {waited:.0f} s", 0.0
                )
                results[site] = result
                tell(result)
                continue
            future = futures[site]
            wait([future], timeout=max(0.0, started + bounds[site] - time.monotonic()))
            results[site] = _result(site, future, started)
            tell(results[site])
        return results

    @staticmethod
    def _start(
        site: str,
        call: Callable[[], _T],
        future: Future[_T],
        started: float,
        tell: Callable[[SiteResult[_T]], None],
    ) -> None:
        def work() -> None:
            try:
                future.set_result(call())
            except BaseException as exc:  # a site's bug is its error, never the others'
                future.set_exception(exc)
            tell(_result(site, future, started))

        # A daemon: a site hung past its bound never keeps the process from exiting.
        threading.Thread(target=work, name=f"wgc-site-{site}", daemon=True).start()


def _result(site: str, future: Future[_T], started: float) -> SiteResult[_T]:
    seconds = time.monotonic() - started
    if not future.done():
        return SiteResult(site, None, f"no reading within {seconds:.0f} s", seconds)
    exc = future.exception()
    if exc is not None:
        return SiteResult(
            site, None, redact(f"its reading failed ({type(exc).__name__}: {exc})"), seconds
        )
    return SiteResult(site, future.result(), None, seconds)


class SiteCollectors:
    """One collector per site, by site name (in the order given), read at once."""

    def __init__(self, collectors: Iterable[tuple[str, FleetCollector]]) -> None:
        self.collectors: dict[str, FleetCollector] = dict(collectors)
        self._runner: SiteRunner[Fleet] = SiteRunner()

    def read_fleets(
        self, *, on_reading: Callable[[SiteResult[Fleet]], None] | None = None
    ) -> dict[str, SiteResult[Fleet]]:
        """Every site's fleet (or why not), each site read by its own collector within its
        own bound; `on_reading` gets each one as soon as it is ready."""
        calls = {name: c.read_fleet for name, c in self.collectors.items()}
        bounds = {name: site_bound(c) for name, c in self.collectors.items()}
        return self._runner.run(calls, bounds, on_result=on_reading)

    def close(self) -> None:
        """Close every site's connections."""
        for collector in self.collectors.values():
            collector.close()
