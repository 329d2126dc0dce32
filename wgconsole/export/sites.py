"""`wgconsole metrics` for several sites: one exporter per site, served as one exposition.

Each site keeps its own Exporter (its collector, byte counters, prober and poll loop, on a
thread of its own), so a site whose hosts hang or answer slowly delays only its own polls:
the others keep publishing at their interval. A scrape is served from every site's latest
families, each family once with every site's series (each with its `site` label: the site's
name), as soon as one site has finished a poll; a site not polled yet is left out until it
has. /healthz is 200 while every site is current, else 503 naming the sites that are not.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from wgconsole.export.exposition import Renderer
from wgconsole.export.server import Exporter, Latest
from wgconsole.poll.sites import SiteResult, SiteRunner, site_bound
from wgconsole.probe.prober import DEFAULT_TIMEOUT


@dataclass(slots=True)
class SitesLatest:
    """Every site's latest poll, rendered once on the first scrape that asks."""

    latests: tuple[Latest, ...]
    renderer: Renderer
    _body: bytes | None = None
    _gzipped: bytes | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def body(self, *, gzipped: bool = False) -> bytes:
        with self._lock:
            if self._body is None:
                self._body = self.renderer.render_sites(
                    [(latest.site, latest.families) for latest in self.latests]
                )
            if not gzipped:
                return self._body
            if self._gzipped is None:
                self._gzipped = gzip.compress(self._body, compresslevel=6)
            return self._gzipped


class SitesExporter:
    """The exporters of several sites (each made with its site's inventory, whose `site` is
    the site's name), served as one."""

    def __init__(self, exporters: Sequence[Exporter]) -> None:
        if len({e.site for e in exporters}) != len(exporters) or any(
            e.site is None for e in exporters
        ):
            raise ValueError("each site's exporter needs a site label of its own")
        self.exporters = tuple(exporters)
        self.interval = min(e.interval for e in exporters)
        self._renderer = Renderer()
        self._lock = threading.Lock()
        self._latest: SitesLatest | None = None

    @property
    def latest(self) -> SitesLatest | None:
        """The sites' latest polls (those that have one), made into one exposition once per
        change of any of them."""
        latests = tuple(e.latest for e in self.exporters if e.latest is not None)
        if not latests:
            return None
        with self._lock:
            kept = self._latest
            if (
                kept is None
                or len(kept.latests) != len(latests)
                or any(a is not b for a, b in zip(kept.latests, latests, strict=True))
            ):
                kept = SitesLatest(latests, self._renderer)
                self._latest = kept
            return kept

    def poll_once(self) -> tuple[SitesLatest | None, dict[str, str]]:
        """Every site polled once, at once, each within its own bound: the exposition of
        those that were, and why each other one was not (by site)."""
        runner: SiteRunner[Latest] = SiteRunner()
        calls = {_name(e): e.poll_once for e in self.exporters}
        bounds = {_name(e): site_bound(e.collector) + DEFAULT_TIMEOUT for e in self.exporters}
        results: dict[str, SiteResult[Latest]] = runner.run(calls, bounds)
        failed = {site: r.error or "" for site, r in results.items() if r.value is None}
        return self.latest, failed

    def run(self, stop: threading.Event) -> None:
        """Each site's poll loop on a thread of its own, until `stop`."""
        threads = [
            threading.Thread(target=e.run, args=(stop,), name=f"wgc-metrics-{e.site}", daemon=True)
            for e in self.exporters
        ]
        for thread in threads:
            thread.start()
        stop.wait()

    def health(self) -> tuple[int, str]:
        """200 while every site's polls are current; else 503, naming those that are not."""
        answers = [(e.site, *e.health()) for e in self.exporters]
        status = 200 if all(code == 200 for _, code, _ in answers) else 503
        return status, "; ".join(f"{site}: {text}" for site, _, text in answers)


def _name(exporter: Exporter) -> str:
    assert exporter.site is not None  # checked when made
    return exporter.site
