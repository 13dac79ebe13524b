"""What a collector run returns: its series as plain data, nothing rendered yet.

A snapshot holds row families (per declared metric: label values and a value per series) and sample times (series
whose value is the age of a data point, worked out at scrape time). Collectors build one with :class:`Families`;
the runner stores it and :mod:`snat_exporter.render` turns it into exposition bytes. Nothing here knows about
HTTP, the store or the runner.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import Metric
from prometheus_client.samples import Sample

from snat_exporter.catalogue import MetricSpec


@dataclass(frozen=True, eq=False)
class RowFamily:
    """The series of one metric as rows (label values in the order of ``spec.labels``, value), rather than as
    client_python samples: the renderer writes its lines straight from the rows, which is several times faster
    than client_python and holds no Sample object per series.

    ``name``, ``documentation``, ``type``, ``unit`` and ``samples`` are the read-only view client_python's
    encoders and parsers expect of a family, built on demand (tests and the one-shot conntrack command read it)."""

    spec: MetricSpec
    rows: list[tuple[tuple[str, ...], float]] = field(default_factory=list)

    def metric(self) -> Metric:
        """The same series as a client_python family."""
        family: Any = self.spec.new_family()  # Gauge/Counter/InfoMetricFamily: each has add_metric
        for values, value in self.rows:
            family.add_metric(list(values), {} if self.spec.type == "info" else value)
        return family

    @property
    def name(self) -> str:
        return self.spec.base_name

    @property
    def documentation(self) -> str:
        return self.spec.help

    @property
    def type(self) -> str:
        return self.spec.type

    @property
    def unit(self) -> str:
        return ""

    @property
    def samples(self) -> list[Sample]:
        return list(self.metric().samples)


@dataclass(frozen=True)
class SampleTime:
    """A series whose value is the age of a data point: rendered at scrape time as now - ``timestamp``."""

    spec: MetricSpec
    labels: tuple[tuple[str, str], ...]
    timestamp: float


@dataclass(frozen=True)
class Snapshot:
    families: tuple[RowFamily, ...] = ()
    sample_times: tuple[SampleTime, ...] = ()


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
