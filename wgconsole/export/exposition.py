"""The Prometheus text exposition of one poll's families, made by prometheus-client.

A custom collector hands the families to a registry of its own (no process or platform
metrics of the exporter itself: those belong to node_exporter) and `generate_latest` writes
them, escaping label values (`\\`, `"`, newlines) as the format requires.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from wgconsole.export.families import Family, Sample

# What generate_latest writes for names and label names of the classic form (all of ours):
# the text format 0.0.4, which every Prometheus reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SITE_LABEL = "site"


# One site's families, with the label value every series of theirs carries (None: none).
SiteFamilies = tuple[str | None, Sequence[Family]]


class FamiliesCollector(Collector):
    """Yields each family once, with every site's series of it, each series with its site's
    label if any: a family's series must be together in one exposition (Prometheus refuses a
    second HELP or TYPE of one name), whichever site they come from."""

    def __init__(self, sites: Sequence[SiteFamilies]) -> None:
        self._sites = sites

    def collect(self) -> Iterator[Metric]:
        by_name: dict[str, list[tuple[str | None, Family]]] = {}
        for site, families in self._sites:
            for family in families:
                by_name.setdefault(family.spec.name, []).append((site, family))
        for per_site in by_name.values():
            yield _metric(per_site)


def _metric(per_site: Sequence[tuple[str | None, Family]]) -> Metric:
    spec = per_site[0][1].spec
    labelled = any(site is not None for site, _ in per_site)
    labels = [*spec.labels, *([SITE_LABEL] if labelled else [])]
    metric: GaugeMetricFamily | CounterMetricFamily
    if spec.kind == "counter":
        metric = CounterMetricFamily(spec.name, spec.help, labels=labels)
    else:
        metric = GaugeMetricFamily(spec.name, spec.help, labels=labels)
    add = metric.add_metric
    for site, family in per_site:
        extra = (site or "",) if labelled else ()
        for values, value in family.samples:
            add([*values, *extra], value)
    return metric


def render(families: Iterable[Family], site: str | None = None) -> bytes:
    """The text exposition of `families`; `site`: a label on every series (None: none)."""
    return render_sites([(site, list(families))])


def render_sites(sites: Sequence[SiteFamilies]) -> bytes:
    """The text exposition of several sites' families, each family once (see
    FamiliesCollector)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FamiliesCollector(sites))
    return generate_latest(registry)


# What a family's text was rendered from: each site's label and samples.
_Rendered = tuple[tuple[str | None, tuple[Sample, ...]], ...]


class Renderer:
    """`render` for a sequence of polls: a family whose samples equal the previous
    rendering's is not rendered again. Between two polls most families do not change (the
    clients' info, the hosts, the LBs): at 10,000 clients this leaves the handshake ages and
    the byte counters, 3/5 of the series. The exposition is the families' texts in order,
    as generate_latest writes them. Several sites: a family is rendered again when any
    site's samples of it changed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[_Rendered, bytes]] = {}

    def render(self, families: Sequence[Family], site: str | None) -> bytes:
        return self.render_sites([(site, families)])

    def render_sites(self, sites: Sequence[SiteFamilies]) -> bytes:
        with self._lock:
            latest = self._latest
            per_name: dict[str, list[tuple[str | None, Family]]] = {}
            for site, families in sites:
                for family in families:
                    per_name.setdefault(family.spec.name, []).append((site, family))
            parts: list[bytes] = []
            made: dict[str, tuple[_Rendered, bytes]] = {}
            for name, per_site in per_name.items():
                source = tuple((site, family.samples) for site, family in per_site)
                kept = latest.get(name)
                if kept is not None and kept[0] == source:
                    text = kept[1]
                else:
                    registry = CollectorRegistry(auto_describe=False)
                    registry.register(_One(per_site))
                    text = generate_latest(registry)
                made[name] = (source, text)
                parts.append(text)
            self._latest = made
            return b"".join(parts)


class _One(Collector):
    """One family, every site's series of it."""

    def __init__(self, per_site: Sequence[tuple[str | None, Family]]) -> None:
        self._per_site = per_site

    def collect(self) -> Iterator[Metric]:
        yield _metric(self._per_site)
