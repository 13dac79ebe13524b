"""How an exported metric is declared: name, type, HELP text and label names, once.

Every collector package declares its series in its own ``metrics.py`` with :class:`MetricSpec`;
:mod:`snat_exporter.metrics` gathers them into the catalogue that the exposition, the docs generator and the
alert/dashboard cross-checks read. A snapshot's families are built per collection from a spec
(:mod:`snat_exporter.snapshot`), so a series that disappears from the source disappears from /metrics.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

MetricType = Literal["gauge", "counter", "info", "histogram"]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()
    source: str = "exporter"
    buckets: tuple[float, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.type == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name} must end in _total")
        if self.type == "info" and not self.name.endswith("_info"):
            raise ValueError(f"info metric {self.name} must end in _info")

    @property
    def base_name(self) -> str:
        """The name client_python wants: without the suffix it appends itself."""
        if self.type == "counter":
            return self.name[: -len("_total")]
        if self.type == "info":
            return self.name[: -len("_info")]
        return self.name

    def new_family(self) -> Metric:
        if self.type == "gauge":
            return GaugeMetricFamily(self.name, self.help, labels=self.labels)
        if self.type == "counter":
            return CounterMetricFamily(self.base_name, self.help, labels=self.labels)
        if self.type == "info":
            return InfoMetricFamily(self.base_name, self.help, labels=self.labels)
        raise TypeError(f"{self.name}: histograms are live metrics, not snapshot families")

    # Live metrics (self-metrics that count across collections) are created from the same spec.
    def counter(self, registry: CollectorRegistry) -> Counter:
        return Counter(self.base_name, self.help, self.labels, registry=registry)

    def gauge(self, registry: CollectorRegistry) -> Gauge:
        return Gauge(self.name, self.help, self.labels, registry=registry)

    def histogram(self, registry: CollectorRegistry) -> Histogram:
        buckets = self.buckets or Histogram.DEFAULT_BUCKETS
        return Histogram(self.name, self.help, self.labels, registry=registry, buckets=buckets)


def check_unique(specs: Iterable[MetricSpec]) -> dict[str, MetricSpec]:
    out: dict[str, MetricSpec] = {}
    for spec in specs:
        if spec.name in out:
            raise ValueError(f"metric {spec.name} declared twice")
        out[spec.name] = spec
    return out
