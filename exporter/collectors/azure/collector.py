"""The Azure collector: discovery, then one Metrics List call per (resource, metric group), into a snapshot.

A cycle never fails as a whole because one resource or one query does: each (resource, metric) keeps its last
good values until ``max_age`` (its ``azure_metric_sample_age_seconds`` grows meanwhile), and only when every
query of the cycle fails does ``collect()`` raise, so the runner serves the last good snapshot marked stale.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter as Tally
from dataclasses import dataclass, field
from typing import Any

from exporter.catalogue import Families
from exporter.collectors.azure import metrics as m
from exporter.collectors.azure.client import (
    OPERATION,
    AzureClients,
    CredentialSetupError,
    RequestMetrics,
    describe,
    error_reason,
)
from exporter.collectors.azure.config import AzureConfig, ResourceId
from exporter.collectors.azure.discovery import ClusterInfo, Discoverer, Discovery, Target
from exporter.collectors.azure.ledger import Ledger
from exporter.collectors.azure.parse import MetricResult, Point, format_timespan, merge_minutes, parse_response
from exporter.collectors.azure.queries import (
    LOAD_BALANCERS,
    RESOURCE_TYPE_LABEL,
    MetricMap,
    MetricQuery,
    plan,
)
from exporter.collectors.base import CollectError, CollectorContext
from exporter.config import Config
from exporter.store import SampleTime, Snapshot

log = logging.getLogger("snat_exporter.azure")

INTERVAL = "PT1M"
# A failed stretch shorter than this is back-filled (counters count its minutes once) by querying from the start
# of the last good window; longer gaps are not, so one cycle never asks Azure for hours of data.
BACKFILL_LIMIT = 3600.0
# Counter series not seen for this long are forgotten (a node that left); they restart from 0 if they return.
COUNTER_RETENTION = 3600.0
# Share of the runner's deadline (``timeout``) one cycle may use, so partial results are returned before it.
CYCLE_SHARE = 0.85
# Preferred reason when queries fail for different reasons: the one an operator must act on first.
_REASON_ORDER = ("auth", "permission_denied", "throttled", "http_5xx", "timeout", "unreachable", "malformed")

LabelKey = tuple[tuple[str, str], ...]


@dataclass
class MetricCache:
    """The last good values of one Azure metric of one resource."""

    fetched_at: float
    values: dict[LabelKey, float] = field(default_factory=dict)  # gauges: value; counters: running total
    sample_ts: float | None = None  # the oldest of the series' newest valued minutes


@dataclass(frozen=True)
class QueryFailure:
    reason: str
    message: str
    retry_after: float | None


def _floor_minute(t: float) -> float:
    return math.floor(t / 60.0) * 60.0


class AzureCollector:
    name = "azure"

    def __init__(self, config: Config, context: CollectorContext):
        self.cfg: AzureConfig = config.azure
        self.context = context
        self.clock = context.clock
        registry = context.registry
        self.request_metrics = RequestMetrics(registry)
        self.truncated = m.TRUNCATED.counter(registry)
        self.metric_errors = m.METRIC_ERRORS.counter(registry)
        self.downward = m.DOWNWARD_REVISIONS.counter(registry)
        self.discovery_errors = m.DISCOVERY_ERRORS.counter(registry)
        self.watched = m.WATCHED_RESOURCES.gauge(registry)
        self._clients: AzureClients | None = None
        self._discovery: Discovery | None = None
        self._next_discovery = float("-inf")
        self._discovery_failure: QueryFailure | None = None
        self._ledger = Ledger()
        self._cache: dict[tuple[ResourceId, str], MetricCache] = {}
        self._last_ok_start: dict[tuple[ResourceId, str], float] = {}
        self._failing: dict[tuple[ResourceId, str], str] = {}  # (resource, metricnames) -> reason
        self._failing_metrics: dict[tuple[ResourceId, str], str] = {}  # (resource, metric) -> errorCode
        self._logged_truncation: set[tuple[ResourceId, str]] = set()
        self._semaphore = asyncio.Semaphore(self.cfg.concurrency)

    # ------------------------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        try:
            self._ensure_clients()
        except CredentialSetupError:
            pass  # reported by collect() as reason `auth`, every cycle until fixed

    def _ensure_clients(self) -> AzureClients:
        if self._clients is None:
            self._clients = AzureClients(self.cfg, self.request_metrics)
        return self._clients

    async def close(self) -> None:
        if self._clients is not None:
            await self._clients.close()
            self._clients = None

    # -------------------------------------------------------------------------------------------- a cycle
    async def collect(self) -> Snapshot:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.timeout * CYCLE_SHARE
        try:
            clients = self._ensure_clients()
        except CredentialSetupError as e:
            raise CollectError("auth", str(e)) from None
        now = self.clock()
        await self._maybe_discover(clients, now, deadline)
        targets = self._targets()
        self._set_watched(targets)
        if not targets and self._discovery_failure is not None:
            f = self._discovery_failure
            raise CollectError(f.reason, f"discovery failed: {f.message}", retry_after=f.retry_after)

        jobs = [(t, q) for t in targets for q in plan(t.resource.kind)]
        outcomes = await asyncio.gather(*(self._run_query(clients, t, q, now, deadline) for t, q in jobs))
        failures = [o for o in outcomes if o is not None]
        if jobs and len(failures) == len(jobs):
            raise self._cycle_error(failures)
        self._forget_unwatched(targets)
        return self._snapshot(targets, now)

    async def _maybe_discover(self, clients: AzureClients, now: float, deadline: float) -> None:
        if now < self._next_discovery:
            return
        discoverer = Discoverer(
            self._get_json_bounded(clients, deadline),
            subscription_id=self.cfg.subscription_id,
            cluster=(self.cfg.cluster.resource_group, self.cfg.cluster.name)  # type: ignore[arg-type]
            if self.cfg.cluster.name is not None
            else None,
        )
        try:
            found = await discoverer.discover(self.cfg.resources)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            reason, retry_after = error_reason(e)
            self.discovery_errors.labels(reason).inc()
            first = self._discovery_failure is None or self._discovery_failure.reason != reason
            self._discovery_failure = QueryFailure(reason, describe(e), retry_after)
            log.log(
                logging.WARNING if first else logging.DEBUG,
                "discovery failed; keeping the last known resources",
                extra={"reason": reason, "error": describe(e), "known": len(self._discovery.targets)}
                if self._discovery
                else {"reason": reason, "error": describe(e), "known": 0},
            )
            return  # tried again next cycle
        if self._discovery_failure is not None:
            log.info("discovery recovered", extra={"resources": len(found.targets)})
        elif self._discovery is None or {t.resource for t in self._discovery.targets} != {
            t.resource for t in found.targets
        }:
            log.info(
                "watching Azure resources",
                extra={"resources": ",".join(t.resource.name for t in found.targets) or "none"},
            )
        self._discovery = found
        self._discovery_failure = None
        self._next_discovery = now + self.cfg.discovery_interval

    def _get_json_bounded(self, clients: AzureClients, deadline: float) -> Any:
        async def get(operation: str, path: str, api_version: str) -> Any:
            async with self._semaphore:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    raise TimeoutError("cycle deadline reached")
                return await asyncio.wait_for(
                    clients.get_json(operation, path, api_version), min(self.cfg.timeout, remaining)
                )

        return get

    def _targets(self) -> list[Target]:
        if self._discovery is not None:
            return list(self._discovery.targets)
        return [Target(r) for r in self.cfg.resources]  # discovery never succeeded: at least the explicit ones

    def _set_watched(self, targets: list[Target]) -> None:
        counts = Tally(RESOURCE_TYPE_LABEL[t.resource.kind] for t in targets)
        for label in RESOURCE_TYPE_LABEL.values():
            self.watched.labels(label).set(counts.get(label, 0))

    # ------------------------------------------------------------------------------------------ one query
    async def _run_query(
        self, clients: AzureClients, target: Target, query: MetricQuery, now: float, deadline: float
    ) -> QueryFailure | None:
        resource = target.resource
        qkey = (resource, query.metricnames)
        window_start = _floor_minute(now - self.cfg.window)
        start = window_start
        previous = self._last_ok_start.get(qkey)
        if previous is not None and previous < start:
            start = max(previous, _floor_minute(now - BACKFILL_LIMIT))
        try:
            async with self._semaphore:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    raise TimeoutError("cycle deadline reached")
                token = OPERATION.set("metrics_list")
                try:
                    response = await asyncio.wait_for(
                        clients.monitor.metrics.list(
                            resource.uri,
                            timespan=format_timespan(start, now),
                            interval=INTERVAL,
                            metricnames=query.metricnames,
                            aggregation=query.aggregation,
                            top=self.cfg.top if query.filter else None,
                            filter=query.filter,
                            metricnamespace=query.namespace,
                            **clients.call_options,
                        ),
                        min(self.cfg.timeout, remaining),
                    )
                finally:
                    OPERATION.reset(token)
            results = parse_response(response, query.aggregation)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            reason, retry_after = error_reason(e)
            failure = QueryFailure(reason, describe(e), retry_after)
            for mm in query.metrics:
                self.metric_errors.labels(resource.name, mm.azure_name, reason).inc()
            self._note_failure(qkey, failure)
            return failure
        self._last_ok_start[qkey] = window_start
        if qkey in self._failing:
            log.info("query recovered", extra={"resource": resource.name, "metrics": query.metricnames})
            del self._failing[qkey]
        for mm in query.metrics:
            self._apply(target, query, mm, results.get(mm.azure_name.lower()), now, window_start)
        return None

    def _note_failure(self, qkey: tuple[ResourceId, str], failure: QueryFailure) -> None:
        # Logged once per streak and reason: a resource failing every minute must not flood the log.
        first = self._failing.get(qkey) != failure.reason
        self._failing[qkey] = failure.reason
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "Azure Monitor query failed; keeping the last good values",
            extra={
                "resource": qkey[0].uri,
                "metrics": qkey[1],
                "reason": failure.reason,
                "error": failure.message,
            },
        )

    def _apply(
        self,
        target: Target,
        query: MetricQuery,
        mm: MetricMap,
        result: MetricResult | None,
        now: float,
        window_start: float,
    ) -> None:
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
        if query.filter and len(result.series) >= self.cfg.top:
            self.truncated.labels(resource.name, mm.azure_name).inc()
            if key not in self._logged_truncation:
                self._logged_truncation.add(key)
                log.warning(
                    "an Azure Monitor result filled `top`: series were probably cut off, raise azure.top",
                    extra={"resource": resource.uri, "metric": mm.azure_name, "top": self.cfg.top},
                )
        grouped: dict[LabelKey, list[tuple[Point, ...]]] = {}
        for series in result.series:
            labels = tuple(sorted(mm.series_labels(series.dims).items()))
            grouped.setdefault(labels, []).append(series.points)
        merged = {labels: merge_minutes(points) for labels, points in grouped.items()}
        valued = {labels: pts for labels, pts in merged.items() if pts}
        previous = self._cache.get(key)
        if not valued and previous is not None and previous.sample_ts is not None:
            # Azure lags or blanked the whole window: serve what we had (its age grows) rather than nothing.
            self.metric_errors.labels(resource.name, mm.azure_name, "no_data").inc()
            if not mm.counter:
                return
        cache = MetricCache(fetched_at=now)
        newest: list[float] = []
        if mm.counter:
            for labels, pts in merged.items():
                obs = self._ledger.observe((resource, mm.azure_name, labels), pts, window_start)
                if obs.downward_revisions:
                    self.downward.labels(resource.name, mm.azure_name).inc(obs.downward_revisions)
                if pts:
                    newest.append(pts[-1].timestamp)
            for lkey in self._ledger.keys():
                res, metric, labels = lkey
                if res != resource or metric != mm.azure_name:
                    continue
                last = self._ledger.last_seen(lkey)
                total = self._ledger.total(lkey)
                if last is None or total is None or last < now - COUNTER_RETENTION:
                    continue
                cache.values[labels] = total
        else:
            for labels, pts in valued.items():
                cache.values[labels] = pts[-1].value * mm.scale
                newest.append(pts[-1].timestamp)
        cache.sample_ts = min(newest) if newest else None
        if mm.counter and not valued and previous is not None:
            cache.sample_ts = previous.sample_ts  # no new minute: the age keeps growing from the last one
        self._cache[key] = cache

    @staticmethod
    def _cycle_error(failures: list[QueryFailure]) -> CollectError:
        tally = Tally(f.reason for f in failures)
        top = max(tally.values())
        candidates = [r for r, n in tally.items() if n == top]
        reason = min(candidates, key=lambda r: _REASON_ORDER.index(r) if r in _REASON_ORDER else len(_REASON_ORDER))
        hints = [f.retry_after for f in failures if f.retry_after is not None]
        example = next(f.message for f in failures if f.reason == reason)
        return CollectError(
            reason,
            f"every Azure Monitor query failed ({len(failures)}), e.g. {example}",
            retry_after=max(hints) if hints else None,
        )

    def _forget_unwatched(self, targets: list[Target]) -> None:
        watched = {t.resource for t in targets}
        for key in [k for k in self._cache if k[0] not in watched]:
            del self._cache[key]
        for qkey in [k for k in self._last_ok_start if k[0] not in watched]:
            del self._last_ok_start[qkey]
        self._ledger.forget(
            k
            for k in self._ledger.keys()
            if k[0] in watched and (self._ledger.last_seen(k) or float("-inf")) >= self.clock() - COUNTER_RETENTION
        )

    # ------------------------------------------------------------------------------------------- snapshot
    def _snapshot(self, targets: list[Target], now: float) -> Snapshot:
        f = Families()
        for spec in m.SNAPSHOT_SPECS:
            if spec is not m.SAMPLE_AGE:  # rendered at scrape time from sample_times, as its own family
                f.declare(spec)
        discovery = self._discovery
        if discovery is not None and discovery.cluster is not None:
            self._add_cluster(f, discovery.cluster)
        ages: dict[LabelKey, float] = {}
        for target in targets:
            base = self._base_labels(target.resource)
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
                    series = {**base, **dict(labels)}
                    if mm.node:
                        series["node"] = self._node(series.get("backend_ip", ""))
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

    @staticmethod
    def _base_labels(resource: ResourceId) -> dict[str, str]:
        name_label = "load_balancer" if resource.kind == LOAD_BALANCERS else "nat_gateway"
        return {
            name_label: resource.name,
            "resource_group": resource.resource_group,
            "subscription_id": resource.subscription_id,
        }

    @staticmethod
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

    def _node(self, ip: str) -> str:
        if not ip:
            return ""
        try:
            info = self.context.identity.node_by_ip(ip)
        except Exception:  # the lookup is another collector's; its failure must not lose our data
            log.debug("node lookup failed", exc_info=True)
            return ""
        return info.name if info is not None else ""


def create(config: Config, context: CollectorContext) -> AzureCollector:
    return AzureCollector(config, context)
