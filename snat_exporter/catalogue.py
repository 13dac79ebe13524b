"""How an exported metric is declared: name, type, HELP text and label names, once.

Every collector package declares its series in its own ``metrics.py`` with :class:`MetricSpec`;
:mod:`snat_exporter.metrics` gathers them into the catalogue that the exposition, the docs generator and the
alert/dashboard cross-checks read. Families are built per collection from a spec (client_python's
custom-collector pattern), so a series that disappears from the source disappears from /metrics.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry
from prometheus_client.samples import Sample

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


class RowFamily(Metric):
    """A snapshot family kept as rows (label values, value) rather than as client_python samples: the exposition
    writes its lines straight from the rows (see snat_exporter/exposition.py), which is several times faster than
    client_python and holds no Sample object per series. ``samples`` builds them on demand for other readers."""

    def __init__(self, spec: MetricSpec) -> None:
        proto = spec.new_family()
        super().__init__(proto.name, proto.documentation, proto.type, proto.unit)
        self.spec = spec
        self.rows: list[tuple[tuple[str, ...], float]] = []

    @property
    def samples(self) -> list[Sample]:
        family: Any = self.spec.new_family()  # Gauge/Counter/InfoMetricFamily: each has add_metric
        for values, value in self.rows:
            family.add_metric(list(values), {} if self.spec.type == "info" else value)
        return list(family.samples)

    @samples.setter
    def samples(self, _value: list[Sample]) -> None:
        pass  # Metric.__init__ sets an empty list; the rows are the data


class Families:
    """Builds the families of one snapshot: ``add(SPEC, {label: value}, value)`` in any order."""

    def __init__(self) -> None:
        self._families: dict[str, RowFamily] = {}
        self._label_sets: dict[str, frozenset[str]] = {}

    def declare(self, spec: MetricSpec) -> None:
        """Emit the family even if it ends up with no samples (HELP/TYPE stay visible)."""
        if spec.name not in self._families:
            self._families[spec.name] = RowFamily(spec)
            self._label_sets[spec.name] = frozenset(spec.labels)

    def add(self, spec: MetricSpec, labels: Mapping[str, str], value: float) -> None:
        self.declare(spec)
        if not self._label_sets[spec.name].issuperset(labels):
            extra = set(labels) - set(spec.labels)
            raise KeyError(f"{spec.name}: labels {sorted(extra)} are not declared")
        values = tuple([str(labels.get(name, "")) for name in spec.labels])
        self._families[spec.name].rows.append((values, 1.0 if spec.type == "info" else value))

    def build(self) -> tuple[RowFamily, ...]:
        return tuple(self._families.values())


def check_unique(specs: Iterable[MetricSpec]) -> dict[str, MetricSpec]:
    out: dict[str, MetricSpec] = {}
    for spec in specs:
        if spec.name in out:
            raise ValueError(f"metric {spec.name} declared twice")
        out[spec.name] = spec
    return out
