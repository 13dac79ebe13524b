"""The metric query plan: which Azure Monitor calls are made per resource, and how each metric maps to a series.

Metrics that share a ``$filter`` go into one call (Azure accepts up to 20 names per call), asking for the union
of their aggregations (each data point then carries every field asked; each metric reads only its own). A load
balancer costs four calls (two every cycle, two secondary), a NAT gateway four (three every cycle, one secondary):
the ARM read bucket (250, refilled at 25/s per subscription and principal) is shared with everything else the
principal does, and getBatch calls are billed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from snat_exporter.azure_facts import (
    LOAD_BALANCERS,
    NAMESPACES,
    NAT_GATEWAYS,
    is_secondary,
    query_groups,
)
from snat_exporter.catalogue import MetricSpec
from snat_exporter.collectors.azure import metrics as m

RESOURCE_TYPE_LABEL = {LOAD_BALANCERS: "load_balancer", NAT_GATEWAYS: "nat_gateway"}

# NAT gateway reports IP protocol numbers, the load balancer names; both become the same lower-case label.
_PROTOCOLS = {"6": "tcp", "17": "udp", "tcp": "tcp", "udp": "udp"}

Dimensions = Mapping[str, str]  # lower-cased dimension name -> value, as parse.py returns them


def protocol(value: str) -> str:
    return _PROTOCOLS.get(value.strip().lower(), value.strip().lower())


def _lower(value: str) -> str:
    return value.strip().lower()


def _same(value: str) -> str:
    return value.strip()


@dataclass(frozen=True)
class MetricMap:
    """One Azure metric and the series it becomes. ``labels`` maps a label to (dimension, value transform);
    ``node`` asks for the ``node`` label from the backend IP."""

    azure_name: str
    spec: MetricSpec
    aggregation: str  # "Average" or "Total": the field of each data point that is read
    labels: tuple[tuple[str, str, Callable[[str], str]], ...] = ()
    node: bool = False
    scale: float = 1.0

    @property
    def counter(self) -> bool:
        return self.spec.type == "counter"

    @functools.cached_property
    def label_names(self) -> tuple[str, ...]:
        return tuple(label for label, _, _ in self.labels)

    def label_values(self, dims: Dimensions) -> tuple[str, ...]:
        """The series' label values in ``label_names`` order: the compact key the collector keeps per series."""
        return tuple([fn(dims.get(dim, "")) for _, dim, fn in self.labels])


_FRONTEND = ("frontend_ip", "frontendipaddress", _same)
_BACKEND = ("backend_ip", "backendipaddress", _same)
_LB_PROTOCOL = ("protocol", "protocoltype", protocol)
_NAT_PROTOCOL = ("protocol", "protocol", protocol)

LB_METRICS = (
    MetricMap("AllocatedSnatPorts", m.LB_PORTS_ALLOCATED, "Average", (_FRONTEND, _BACKEND, _LB_PROTOCOL), node=True),
    MetricMap("UsedSnatPorts", m.LB_PORTS_USED, "Average", (_FRONTEND, _BACKEND, _LB_PROTOCOL), node=True),
    MetricMap(
        "SnatConnectionCount",
        m.LB_CONNECTIONS,
        "Total",
        (_FRONTEND, _BACKEND, ("state", "connectionstate", _lower)),
        node=True,
    ),
    MetricMap("VipAvailability", m.LB_DATA_PATH, "Average", (_FRONTEND,), scale=0.01),
    MetricMap("DipAvailability", m.LB_HEALTH_PROBE, "Average", (_BACKEND,), node=True, scale=0.01),
)
NAT_METRICS = (
    MetricMap("SNATConnectionCount", m.NAT_CONNECTIONS, "Total", (_NAT_PROTOCOL, ("state", "connectionstate", _lower))),
    MetricMap("TotalConnectionCount", m.NAT_ACTIVE, "Total", (_NAT_PROTOCOL,)),
    MetricMap("PacketDropCount", m.NAT_DROPPED, "Total"),
    MetricMap("DatapathAvailability", m.NAT_AVAILABILITY, "Average", scale=0.01),
    MetricMap("ByteCount", m.NAT_BYTES, "Total", (("direction", "direction", _lower), _NAT_PROTOCOL)),
    MetricMap("PacketCount", m.NAT_PACKETS, "Total", (("direction", "direction", _lower), _NAT_PROTOCOL)),
)

METRICS = {LOAD_BALANCERS: LB_METRICS, NAT_GATEWAYS: NAT_METRICS}


@dataclass(frozen=True)
class MetricQuery:
    """One Metrics List call for one resource kind."""

    kind: str
    metrics: tuple[MetricMap, ...]
    filter: str | None

    @functools.cached_property
    def metricnames(self) -> str:  # part of every per-resource state key: computed once
        return ",".join(mm.azure_name for mm in self.metrics)

    @functools.cached_property
    def aggregations(self) -> tuple[str, ...]:
        """The union of the metrics' aggregations, in declaration order."""
        return tuple(dict.fromkeys(mm.aggregation for mm in self.metrics))

    @property
    def aggregation(self) -> str:
        """The ``aggregation`` parameter: comma-separated."""
        return ",".join(self.aggregations)

    @functools.cached_property
    def fields(self) -> dict[str, str]:
        """Lower-cased metric name -> the data point field it reads: with several aggregations asked, every point
        carries all of them, and a metric must never read another one's field."""
        return {mm.azure_name.lower(): mm.aggregation for mm in self.metrics}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(mm.azure_name for mm in self.metrics)

    @property
    def namespace(self) -> str:
        return NAMESPACES[self.kind]

    @property
    def secondary(self) -> bool:
        return is_secondary(self.names)


@functools.cache
def plan(kind: str) -> tuple[MetricQuery, ...]:
    """The calls for one resource of ``kind``: metrics grouped by filter alone (``azure_facts.query_groups``). A
    secondary metric that shares its filter with a primary one rides along every cycle: one call either way. Not
    verified against live Azure: that it serves a metric an aggregation other than its default (PacketDropCount's
    Average, DatapathAvailability's Total) rather than failing the metric with `InvalidSamplingType`; such a failure
    would show in snat_exporter_azure_metric_errors_total{code="InvalidSamplingType"}."""
    maps = {mm.azure_name: mm for mm in METRICS[kind]}
    return tuple(MetricQuery(kind, tuple(maps[name] for name in names), flt) for flt, names in query_groups(kind))
