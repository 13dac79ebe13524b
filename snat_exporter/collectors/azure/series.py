"""The Azure series kept between cycles, and the snapshot built from them.

Per (resource, Azure metric): the last good values (gauges: the newest valued minute; counters: the ledger's running
total), the age of their data, and the error streak of the metric. Label values are interned across cycles, series
of resources no longer watched and counters not seen for long are pruned, and each cycle's snapshot is built here.
Only the parsing thread writes this state (see ``AzureCollector``), so it needs no lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.registry import CollectorRegistry

from snat_exporter.azure_facts import LOAD_BALANCERS
from snat_exporter.collectors.azure import metrics as m
from snat_exporter.collectors.azure.config import AzureConfig, ResourceId
from snat_exporter.collectors.azure.discovery import ClusterInfo, Target
from snat_exporter.collectors.azure.ledger import Ledger
from snat_exporter.collectors.azure.parse import MetricResult, Point, merge_minutes
from snat_exporter.collectors.azure.queries import RESOURCE_TYPE_LABEL, MetricMap, MetricQuery, plan
from snat_exporter.snapshot import Families, SampleTime, Snapshot

log = logging.getLogger("snat_exporter.azure")

# Counter series not seen for this long are forgotten (a node that left); they restart from 0 if they return.
COUNTER_RETENTION = 3600.0

LabelKey = tuple[tuple[str, str], ...]
Labels = tuple[str, ...]  # a series' label values, in its MetricMap's label_names order


@dataclass
class MetricCache:
    """The last good values of one Azure metric of one resource."""

    fetched_at: float
    values: dict[Labels, float] = field(default_factory=dict)  # gauges: value; counters: running total
    sample_ts: float | None = None  # the oldest of the series' newest valued minutes


class SeriesState:
    def __init__(
        self,
        cfg: AzureConfig,
        registry: CollectorRegistry,
        clock: Callable[[], float],
        checkpoint: Callable[[], None],
    ):
        self.cfg = cfg
        self.clock = clock
        self.checkpoint = checkpoint  # lets a waiting scrape go first, between resources
        # registered in this order, as the self-metrics always were
        self.truncated = m.TRUNCATED.counter(registry)
        self.metric_errors = m.METRIC_ERRORS.counter(registry)
        self.rejected = m.REJECTED_VALUES.counter(registry)
        self.downward = m.DOWNWARD_REVISIONS.counter(registry)
        self._ledger = Ledger()
        self._cache: dict[tuple[ResourceId, str], MetricCache] = {}
        # One tuple of label values per distinct series, shared by the caches and the ledger across cycles: every
        # answer would otherwise bring a fresh tuple and fresh strings per series. With values-only keys (not
        # (name, value) pairs) this took the RSS at 92,700 series from 144 to 128 MB.
        self._label_sets: dict[Labels, Labels] = {}
        self._failing_metrics: dict[tuple[ResourceId, str], str] = {}  # (resource, metric) -> errorCode
        self._logged_truncation: set[tuple[ResourceId, str]] = set()
        self._logged_rejections: set[tuple[ResourceId, str, str]] = set()

    # ------------------------------------------------------------------------------------------ an answer
    def fold(
        self,
        target: Target,
        query: MetricQuery,
        mm: MetricMap,
        result: MetricResult | None,
        now: float,
        window_start: float,
    ) -> None:
        """One metric of one resource's good answer, whose minutes before ``window_start`` are final."""
        resource = target.resource
        key = (resource, mm.azure_name)
        if result is None or not result.ok:
            code = "missing" if result is None else (result.error_code or "unknown")
            self.metric_errors.labels(resource.name, mm.azure_name, code).inc()
            if self._failing_metrics.get(key) != code:
                log.warning(
                    "Azure Monitor returned an error for one metric; keeping its last good values",
                    extra={
                        "resource": resource.uri,
                        "metric": mm.azure_name,
                        "code": code,
                        "error": (result.error_message if result is not None else "")[:300],
                    },
                )
            self._failing_metrics[key] = code
            return
        self._failing_metrics.pop(key, None)
        self._count_rejected(resource, mm.azure_name, result)
        if query.filter and len(result.series) >= self.cfg.top:
            self.truncated.labels(resource.name, mm.azure_name).inc()
            if key not in self._logged_truncation:
                self._logged_truncation.add(key)
                log.warning(
                    "an Azure Monitor result filled `top`: series were probably cut off, raise azure.top",
                    extra={"resource": resource.uri, "metric": mm.azure_name, "top": self.cfg.top},
                )
        grouped: dict[Labels, list[tuple[Point, ...]]] = {}
        for series in result.series:
            labels = mm.label_values(series.dims)
            labels = self._label_sets.setdefault(labels, labels)
            grouped.setdefault(labels, []).append(series.points)
        merged = {labels: merge_minutes(points) for labels, points in grouped.items()}
        valued = {labels: pts for labels, pts in merged.items() if pts}
        previous = self._cache.get(key)
        if not valued and previous is not None and previous.sample_ts is not None:
            # Azure lags or blanked the whole window: serve what we had (its age grows) rather than nothing.
            self.metric_errors.labels(resource.name, mm.azure_name, "no_data").inc()
            if not mm.counter:
                return
        if mm.counter:
            cache = self._count(resource, mm, merged, now, window_start)
        else:
            cache = MetricCache(fetched_at=now)
            for labels, pts in valued.items():
                cache.values[labels] = pts[-1].value * mm.scale
            newest = [pts[-1].timestamp for pts in valued.values()]
            cache.sample_ts = min(newest) if newest else None
        if mm.counter and not valued and previous is not None:
            cache.sample_ts = previous.sample_ts  # no new minute: the age keeps growing from the last one
        self._cache[key] = cache

    def _count(
        self,
        resource: ResourceId,
        mm: MetricMap,
        merged: dict[Labels, tuple[Point, ...]],
        now: float,
        window_start: float,
    ) -> MetricCache:
        """A counter's minutes into the ledger; its cache holds every running total seen within the retention."""
        cache = MetricCache(fetched_at=now)
        newest: list[float] = []
        for labels, pts in merged.items():
            obs = self._ledger.observe((resource, mm.azure_name, labels), pts, window_start)
            if obs.downward_revisions:
                self.downward.labels(resource.name, mm.azure_name).inc(obs.downward_revisions)
            if pts:
                newest.append(pts[-1].timestamp)
        for lkey in self._ledger.keys_of(resource, mm.azure_name):
            labels = lkey[2]
            last = self._ledger.last_seen(lkey)
            total = self._ledger.total(lkey)
            if last is None or total is None or last < now - COUNTER_RETENTION:
                continue
            cache.values[labels] = total
        cache.sample_ts = min(newest) if newest else None
        return cache

    def _count_rejected(self, resource: ResourceId, metric: str, result: MetricResult) -> None:
        """Points and series the parser dropped (impossible values, future minutes, unusable dimension values):
        counted, and logged once per resource, metric and reason."""
        for reason, n in result.rejected:
            self.rejected.labels(resource.name, metric, reason).inc(n)
            if (resource, metric, reason) not in self._logged_rejections:
                self._logged_rejections.add((resource, metric, reason))
                log.warning(
                    "Azure Monitor answered values that are not measurements; dropped them and kept the rest",
                    extra={"resource": resource.uri, "metric": metric, "reason": reason, "dropped": n},
                )

    # -------------------------------------------------------------------------------------------- pruning
    def prune(self, watched: set[ResourceId]) -> None:
        """Forget resources no longer watched and counters not seen for COUNTER_RETENTION."""
        for key in [k for k in self._cache if k[0] not in watched]:
            del self._cache[key]
        self._ledger.forget(
            k
            for k in self._ledger.keys()
            if k[0] in watched and (self._ledger.last_seen(k) or float("-inf")) >= self.clock() - COUNTER_RETENTION
        )
        # Only the label sets still in use stay interned.
        live = {labels: labels for cache in self._cache.values() for labels in cache.values}
        live.update((k[2], k[2]) for k in self._ledger.keys())
        self._label_sets = live

    # ------------------------------------------------------------------------------------------- snapshot
    def snapshot(
        self, targets: list[Target], now: float, cluster: ClusterInfo | None, node_of: Callable[[str], str]
    ) -> Snapshot:
        """Every watched resource's series still within ``max_age``; ``cluster`` when this replica exports it."""
        f = Families()
        for spec in m.SNAPSHOT_SPECS:
            if spec is not m.SAMPLE_AGE:  # rendered at scrape time from sample_times, as its own family
                f.declare(spec)
        if cluster is not None:
            _add_cluster(f, cluster)
        ages: dict[LabelKey, float] = {}
        for target in targets:
            self.checkpoint()  # on the parsing thread: /metrics first
            base = _base_labels(target.resource)
            if target.frontend_ips is not None:
                f.add(m.LB_FRONTEND_IPS, base, target.frontend_ips)
            if target.outbound_ports is not None:
                f.add(m.LB_OUTBOUND_PORTS, base, target.outbound_ports)
            if target.public_ips is not None:
                f.add(m.NAT_PUBLIC_IPS, base, target.public_ips)
            for mm in (q for query in plan(target.resource.kind) for q in query.metrics):
                cache = self._cache.get((target.resource, mm.azure_name))
                if cache is None or now - cache.fetched_at > self.cfg.max_age:
                    continue  # too old to pass off as current
                for labels, value in cache.values.items():
                    series = {**base, **dict(zip(mm.label_names, labels, strict=True))}
                    if mm.node:
                        series["node"] = node_of(series.get("backend_ip", ""))
                    f.add(mm.spec, series, value)
                if cache.sample_ts is not None:
                    age_key = (
                        ("resource_type", RESOURCE_TYPE_LABEL[target.resource.kind]),
                        ("resource", target.resource.name),
                        ("metric", mm.azure_name),
                    )
                    ages[age_key] = min(ages.get(age_key, cache.sample_ts), cache.sample_ts)
        sample_times = tuple(SampleTime(m.SAMPLE_AGE, labels, ts) for labels, ts in ages.items())
        return Snapshot(f.build(), sample_times)


def _base_labels(resource: ResourceId) -> dict[str, str]:
    name_label = "load_balancer" if resource.kind == LOAD_BALANCERS else "nat_gateway"
    return {
        name_label: resource.name,
        "resource_group": resource.resource_group,
        "subscription_id": resource.subscription_id,
    }


def _add_cluster(f: Families, cluster: ClusterInfo) -> None:
    f.add(
        m.CLUSTER_OUTBOUND,
        {
            "managed_cluster": cluster.name,
            "resource_group": cluster.resource_group,
            "subscription_id": cluster.subscription_id,
            "node_resource_group": cluster.node_resource_group,
            "outbound_type": cluster.outbound_type,
        },
        1,
    )
