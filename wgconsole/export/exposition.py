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


class FamiliesCollector(Collector):
    """Yields the families it was made with, each series with the site label if any."""

    def __init__(self, families: Sequence[Family], site: str | None) -> None:
        self._families = families
        self._site = site

    def collect(self) -> Iterator[Metric]:
        for family in self._families:
            yield _metric(family, self._site)


def _metric(family: Family, site: str | None) -> Metric:
    spec = family.spec
    labels = [*spec.labels, *([SITE_LABEL] if site is not None else [])]
    extra = (site,) if site is not None else ()
    metric: GaugeMetricFamily | CounterMetricFamily
    if spec.kind == "counter":
        metric = CounterMetricFamily(spec.name, spec.help, labels=labels)
    else:
        metric = GaugeMetricFamily(spec.name, spec.help, labels=labels)
    add = metric.add_metric
    for values, value in family.samples:
        add([*values, *extra], value)
    return metric


def render(families: Iterable[Family], site: str | None = None) -> bytes:
    """The text exposition of `families`; `site`: a label on every series (None: none)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FamiliesCollector(list(families), site))
    return generate_latest(registry)


class Renderer:
    """`render` for a sequence of polls: a family whose samples equal the previous
    rendering's is not rendered again. Between two polls most families do not change (the
    clients' info, the hosts, the LBs): at 10,000 clients this leaves the handshake ages and
    the byte counters, 3/5 of the series. The exposition is the families' texts in order,
    as generate_latest writes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[tuple[Sample, ...], str | None, bytes]] = {}

    def render(self, families: Sequence[Family], site: str | None) -> bytes:
        with self._lock:
            latest = self._latest
            parts: list[bytes] = []
            made: dict[str, tuple[tuple[Sample, ...], str | None, bytes]] = {}
            for family in families:
                name = family.spec.name
                kept = latest.get(name)
                if kept is not None and kept[1] == site and kept[0] == family.samples:
                    text = kept[2]
                else:
                    text = render([family], site)
                made[name] = (family.samples, site, text)
                parts.append(text)
            self._latest = made
            return b"".join(parts)
