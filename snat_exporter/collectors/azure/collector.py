"""The Azure collector: discovery, then the metric queries of this replica's shard, into a snapshot.

Two ways to read the same metrics, with identical series: one ``metrics:getBatch`` call per (subscription, region,
type, metric group) for up to ``batch_size`` resources (the data plane; Monitoring Reader on the subscription), or
one Metrics List call per (resource, metric group) (ARM; the fallback when batch is refused, and ``batch: never``).

A cycle never fails as a whole because one resource or one query does: each (resource, metric) keeps its last
good values until ``max_age`` (its ``azure_metric_sample_age_seconds`` grows meanwhile), and only when every
query of the cycle fails does ``collect()`` raise, so the runner serves the last good snapshot marked stale.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import math
import os
from collections import Counter as Tally
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import DecodeError, HttpResponseError

from snat_exporter.catalogue import Families
from snat_exporter.collectors.azure import metrics as m
from snat_exporter.collectors.azure.client import (
    OPERATION,
    AzureClients,
    CredentialSetupError,
    RequestMetrics,
    describe,
    error_reason,
)
from snat_exporter.collectors.azure.config import AzureConfig, ResourceId
from snat_exporter.collectors.azure.discovery import ClusterInfo, Discoverer, Discovery, Target
from snat_exporter.collectors.azure.ledger import Ledger
from snat_exporter.collectors.azure.parse import (
    MetricResult,
    Point,
    Series,
    format_timespan,
    load_batch_json,
    merge_minutes,
    parse_batch,
    parse_response,
)
from snat_exporter.collectors.azure.queries import (
    LOAD_BALANCERS,
    RESOURCE_TYPE_LABEL,
    MetricMap,
    MetricQuery,
    plan,
)
from snat_exporter.collectors.azure.shard import Shard, ShardError, resolve_shard
from snat_exporter.collectors.base import CollectError, CollectorContext
from snat_exporter.config import Config
from snat_exporter.runtime import SCRAPES
from snat_exporter.settings import ConfigError
from snat_exporter.store import SampleTime, Snapshot

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
# After getBatch was refused (401/403), it is tried again this much later: a role assignment may have been added.
# After getBatch is refused, try it again after 5 minutes, doubling per refusal in a row up to an hour: a missing
# role stays cheap to notice being fixed, and one transient 401 does not hold 1,000 resources on the per-resource
# path (which cannot cover them in one cycle) for an hour.
BATCH_REPROBE = 300.0
BATCH_REPROBE_MAX = 3600.0
# Statuses we retry a getBatch POST on ourselves: azure-core retries a POST only on 500/503/504 (or with a
# Retry-After, which it honours itself). 529 is the data plane's "server busy".
_BATCH_RETRY_STATUSES = frozenset({408, 429, 502, 529})
BATCH_BACKOFF = 0.5  # seconds, doubled per try
# Series estimates from the last cycle are scaled by this before packing a batch: estates grow between cycles.
SERIES_HEADROOM = 1.1

LabelKey = tuple[tuple[str, str], ...]
Labels = tuple[str, ...]  # a series' label values, in its MetricMap's label_names order


@dataclass
class MetricCache:
    """The last good values of one Azure metric of one resource."""

    fetched_at: float
    values: dict[Labels, float] = field(default_factory=dict)  # gauges: value; counters: running total
    sample_ts: float | None = None  # the oldest of the series' newest valued minutes


@dataclass(frozen=True)
class QueryFailure:
    reason: str
    message: str
    retry_after: float | None


@dataclass(frozen=True)
class BatchJob:
    """One getBatch call: up to ``batch_size`` resources of one subscription, region and type, one metric group."""

    endpoint: str
    targets: tuple[Target, ...]
    query: MetricQuery


class _BatchRefused(Exception):
    """getBatch answered 401/403: the credential lacks Monitoring Reader on the subscription."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class _SeriesLimit(Exception):
    """getBatch refused the call for returning too many time series: split it."""


Outcome = QueryFailure | None


def _floor_minute(t: float) -> float:
    return math.floor(t / 60.0) * 60.0


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(int(t), tz=UTC)


def _since(results: dict[str, MetricResult], start: float) -> dict[str, MetricResult]:
    """Results without the minutes before ``start``: a batch shares one window, but each resource must see
    exactly the minutes its own per-resource query would have returned."""
    out = {}
    for name, result in results.items():
        if not result.ok or all(not s.points or s.points[0].timestamp >= start for s in result.series):
            out[name] = result
            continue
        series = tuple(Series(s.dimensions, tuple(p for p in s.points if p.timestamp >= start)) for s in result.series)
        out[name] = dataclasses.replace(result, series=series)
    return out


def _decode_batch(raw: bytes, fields: Mapping[str, str], now: float) -> dict[str, dict[str, MetricResult]]:
    try:
        body = load_batch_json(raw, SCRAPES.checkpoint)
    except ValueError as e:
        raise DecodeError("metrics:getBatch: the body is not JSON") from e
    return parse_batch(body, fields, SCRAPES.checkpoint, now)


def _batch_status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _has_retry_after(exc: HttpResponseError) -> bool:
    headers: Any = getattr(exc.response, "headers", None) or {}
    return any(str(k).lower() in ("retry-after", "retry-after-ms", "x-ms-retry-after-ms") for k in headers)


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
        self.rejected = m.REJECTED_VALUES.counter(registry)
        self._logged_rejections: set[tuple[ResourceId, str, str]] = set()
        self.downward = m.DOWNWARD_REVISIONS.counter(registry)
        self.discovery_errors = m.DISCOVERY_ERRORS.counter(registry)
        self.watched = m.WATCHED_RESOURCES.gauge(registry)
        self.batch_enabled = m.BATCH_ENABLED.gauge(registry)
        self.batch_fallbacks = m.BATCH_FALLBACKS.counter(registry)
        self.batch_splits = m.BATCH_SPLITS.counter(registry)
        try:
            self.shard: Shard = resolve_shard(self.cfg, os.environ.get("HOSTNAME"))
        except ShardError as e:
            raise ConfigError([("azure.shards", str(e))]) from None
        m.SHARD_INDEX.gauge(registry).set(self.shard.index)
        m.SHARDS.gauge(registry).set(self.shard.count)
        self._clients: AzureClients | None = None
        self._discovery: Discovery | None = None
        self._next_discovery = float("-inf")
        self._discovery_failure: QueryFailure | None = None
        self._ledger = Ledger()
        self._cache: dict[tuple[ResourceId, str], MetricCache] = {}
        # One tuple of label values per distinct series, shared by the caches and the ledger across cycles: every
        # answer would otherwise bring a fresh tuple and fresh strings per series. With values-only keys (not
        # (name, value) pairs) this took the RSS at 92,700 series from 144 to 128 MB.
        self._label_sets: dict[Labels, Labels] = {}
        # (resource, metricnames) -> the first minute the next query must ask for (see _query_start)
        self._resume: dict[tuple[ResourceId, str], float] = {}
        self._cycle = 0
        self._secondary_every = max(1, round(self.cfg.secondary_interval / self.cfg.interval))
        self._secondary_ok: dict[tuple[ResourceId, str], int] = {}  # (resource, metricnames) -> cycle of last success
        self._failing: dict[tuple[ResourceId, str], str] = {}  # (resource, metricnames) -> reason
        self._failing_metrics: dict[tuple[ResourceId, str], str] = {}  # (resource, metric) -> errorCode
        self._logged_truncation: set[tuple[ResourceId, str]] = set()
        self._semaphore = asyncio.Semaphore(self.cfg.concurrency)
        self._series_seen: dict[tuple[ResourceId, str], int] = {}  # (resource, metricnames) -> series last answer
        self._batch_refused_until = float("-inf")
        self._batch_refusal: str | None = None
        self._batch_refusals_in_a_row = 0
        self._logged_no_endpoint = False
        self._logged_split: set[tuple[str, str]] = set()
        # One parsing thread: answers are decoded one at a time, so only one answer's JSON tree is alive at once,
        # and glibc gives the thread one malloc arena, not one per default-pool worker (with asyncio.to_thread a
        # 1,200-resource cycle took the RSS from 190 MB to 440 MB). It is also the one writer of the metric caches,
        # the counter ledger and the query state (answers are folded in and the snapshot is built there, off the
        # event loop), so none of them needs a lock.
        self._parser = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="azure-parse")

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
        self._parser.shutdown(wait=False, cancel_futures=True)
        # a fresh one (its thread starts on first use) in case the collector is started again
        self._parser = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="azure-parse")
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
        self._cycle += 1
        await self._maybe_discover(clients, now, deadline)
        targets = [t for t in self._targets() if self.shard.owns(t.resource.uri)]
        self._set_watched(targets)
        if not targets and self._discovery_failure is not None:
            f = self._discovery_failure
            raise CollectError(f.reason, f"discovery failed: {f.message}", retry_after=f.retry_after)

        batched, single = self._split_paths(clients, targets, now)
        self.batch_enabled.set(1 if batched else 0)
        batch_jobs = self._batch_jobs(clients, batched)
        jobs = [(t, q) for t in single for q in plan(t.resource.kind) if self._due(t, q)]
        results = await asyncio.gather(
            *(self._run_query(clients, t, q, now, deadline) for t, q in jobs),
            *(self._run_batch(clients, job, now, deadline) for job in batch_jobs),
        )
        outcomes: list[Outcome] = list(results[: len(jobs)])  # type: ignore[arg-type]
        refused: list[tuple[Target, MetricQuery]] = []
        for job, result in zip(batch_jobs, results[len(jobs) :], strict=True):
            if isinstance(result, _BatchRefused):
                refused.extend((t, job.query) for t in job.targets)
            else:
                outcomes.extend(result)  # type: ignore[arg-type]
        if refused:  # the same cycle asks again per resource, so a refusal leaves no gap
            self.batch_enabled.set(0)
            outcomes.extend(await asyncio.gather(*(self._run_query(clients, t, q, now, deadline) for t, q in refused)))
        failures = [o for o in outcomes if o is not None]
        if outcomes and len(failures) == len(outcomes):
            raise self._cycle_error(failures)
        # Building the snapshot of every series takes a tenth of a second at 20,000 series: not on the event loop.
        return await loop.run_in_executor(self._parser, self._finish_cycle, targets, now)

    def _finish_cycle(self, targets: list[Target], now: float) -> Snapshot:
        self._forget_unwatched(targets)
        return self._snapshot(targets, now)

    # ---------------------------------------------------------------------------------------- batch planning
    def _split_paths(
        self, clients: AzureClients, targets: list[Target], now: float
    ) -> tuple[list[Target], list[Target]]:
        """(targets read with getBatch, targets read per resource)."""
        if self.cfg.batch == "never" or (self.cfg.batch == "auto" and now < self._batch_refused_until):
            return [], targets
        if self.cfg.metrics_endpoint() is None:
            if not self._logged_no_endpoint:
                self._logged_no_endpoint = True
                log.warning(
                    "no metrics data-plane endpoint is known for this cloud; set azure.batch_endpoint to use "
                    "getBatch. Querying per resource meanwhile",
                    extra={"arm_endpoint": self.cfg.arm_endpoint},
                )
            return [], targets
        # A resource whose ARM object could not be read has no known region: only Metrics List can reach it.
        return [t for t in targets if t.region], [t for t in targets if not t.region]

    def _batch_jobs(self, clients: AzureClients, targets: list[Target]) -> list[BatchJob]:
        groups: dict[tuple[str, str, str], list[Target]] = {}
        for t in targets:
            key = (t.resource.subscription_id.lower(), t.region or "", t.resource.kind)
            groups.setdefault(key, []).append(t)
        jobs: list[BatchJob] = []
        for (_, region, kind), members in sorted(groups.items()):
            endpoint = clients.batch_endpoint(region)
            if endpoint is None:
                continue  # _split_paths returned nothing to batch then
            members.sort(key=lambda t: t.resource.uri.lower())
            for query in plan(kind):
                due = [t for t in members if self._due(t, query)]
                for chunk in self._chunks(due, query):
                    jobs.append(BatchJob(endpoint, tuple(chunk), query))
        return jobs

    def _chunks(self, members: list[Target], query: MetricQuery) -> Iterator[list[Target]]:
        """Consecutive runs of at most ``batch_size`` resources whose series, as counted in the last cycle, stay
        under ``batch_series_limit``. A resource never answered yet is assumed as large as the largest known."""
        known = [
            self._series_seen[k] for k in ((t.resource, query.metricnames) for t in members) if k in self._series_seen
        ]
        default = max(known) if known else 0
        limit = self.cfg.batch_series_limit
        chunk: list[Target] = []
        total = 0.0
        for t in members:
            estimate = self._series_seen.get((t.resource, query.metricnames), default) * SERIES_HEADROOM
            if chunk and (len(chunk) >= self.cfg.batch_size or total + estimate > limit):
                yield chunk
                chunk, total = [], 0.0
            chunk.append(t)
            total += estimate
        if chunk:
            yield chunk

    def _due(self, target: Target, query: MetricQuery) -> bool:
        """A secondary group is asked every ``secondary_every`` cycles, and again next cycle when it failed."""
        if not query.secondary or self._secondary_every <= 1:
            return True
        last = self._secondary_ok.get((target.resource, query.metricnames))
        return last is None or self._cycle - last >= self._secondary_every

    def _query_start(self, qkey: tuple[ResourceId, str], now: float) -> tuple[float, float]:
        """(window start, the start to query from). The first query asks for the whole ``window``; later ones start
        where the last good answer said data may still arrive or change (``_resume``), which after a failed
        stretch reaches back before the window (back-filled, up to BACKFILL_LIMIT)."""
        window_start = _floor_minute(now - self.cfg.window)
        resume = self._resume.get(qkey)
        if resume is None:
            return window_start, window_start
        return window_start, max(resume, _floor_minute(now - BACKFILL_LIMIT))

    # ------------------------------------------------------------------------------------------ one batch
    async def _run_batch(
        self, clients: AzureClients, job: BatchJob, now: float, deadline: float
    ) -> list[Outcome] | _BatchRefused:
        query = job.query
        starts = {t.resource: self._query_start((t.resource, query.metricnames), now) for t in job.targets}
        start = min(s for _, s in starts.values())
        try:
            raw = await self._post_batch(clients, job, start, now, deadline)
            # Decoding a large answer and folding it into the caches take tens of milliseconds: on the parsing
            # thread, /metrics and the other calls' I/O go on meanwhile.
            await asyncio.get_running_loop().run_in_executor(self._parser, self._take_batch, job, raw, starts, now)
        except asyncio.CancelledError:
            raise
        except _BatchRefused as refusal:
            return self._refused(refusal, now)
        except _SeriesLimit:
            if len(job.targets) == 1:
                failure = QueryFailure("http_4xx", "one resource alone exceeds the batch series limit", None)
                return self._fail_all(job, failure)
            self._note_split(job)
            half = len(job.targets) // 2
            parts = await asyncio.gather(
                self._run_batch(clients, BatchJob(job.endpoint, job.targets[:half], query), now, deadline),
                self._run_batch(clients, BatchJob(job.endpoint, job.targets[half:], query), now, deadline),
            )
            if any(isinstance(p, _BatchRefused) for p in parts):
                return next(p for p in parts if isinstance(p, _BatchRefused))
            return [o for p in parts for o in p]  # type: ignore[union-attr]
        except Exception as e:
            reason, retry_after = error_reason(e)
            return self._fail_all(job, QueryFailure(reason, describe(e), retry_after))
        if self._batch_refusal is not None:
            log.info("metrics:getBatch is allowed again; leaving per-resource queries")
            self._batch_refusal = None
        self._batch_refusals_in_a_row = 0
        return [None] * len(job.targets)

    def _take_batch(self, job: BatchJob, raw: bytes, starts: dict[ResourceId, tuple[float, float]], now: float) -> None:
        """On the parsing thread: decodes a getBatch answer and folds each resource's part into the caches.
        Raises DecodeError or MalformedResponse before anything is folded in."""
        answers = _decode_batch(raw, job.query.fields, now)
        start = min(s for _, s in starts.values())
        for target in job.targets:
            SCRAPES.checkpoint()
            window_start, own_start = starts[target.resource]
            results = answers.get(target.resource.uri.lower(), {})
            if own_start > start:
                results = _since(results, own_start)
            self._accept(target, job.query, results, now, window_start, own_start)

    async def _post_batch(
        self, clients: AzureClients, job: BatchJob, start: float, now: float, deadline: float
    ) -> bytes:
        loop = asyncio.get_running_loop()
        query = job.query
        client = clients.batch_client(job.endpoint)
        options = clients.batch_call_options(job.endpoint)
        captured: dict[str, Any] = {}

        def keep_response(pipeline_response: Any, _deserialized: Any, _headers: Any) -> dict[str, Any]:
            captured["response"] = pipeline_response.http_response
            return {"values": []}  # nothing for the SDK to build: parse_batch reads the JSON

        attempt = 0
        while True:
            try:
                async with self._semaphore:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        raise TimeoutError("cycle deadline reached")
                    token = OPERATION.set("metrics_batch")
                    try:
                        await asyncio.wait_for(
                            client.query_resources(
                                resource_ids=[t.resource.uri for t in job.targets],
                                metric_namespace=query.namespace,
                                metric_names=list(query.names),
                                timespan=(_utc(start), _utc(now)),
                                granularity=timedelta(minutes=1),
                                aggregations=list(query.aggregations),
                                max_results=self.cfg.top if query.filter else None,
                                filter=query.filter,
                                # The SDK would build a model object per data point, eagerly: most of a cycle's
                                # CPU at a thousand resources. Streamed, it hands the answer over unread.
                                stream=True,
                                cls=keep_response,
                                **options,
                            ),
                            min(self.cfg.timeout, remaining),
                        )
                        response = captured["response"]
                        raw: bytes = await asyncio.wait_for(response.read(), max(0.001, deadline - loop.time()))
                    finally:
                        OPERATION.reset(token)
                return raw
            except HttpResponseError as e:
                status = _batch_status(e)
                if status in (401, 403) and self.cfg.batch == "auto":
                    if status == 403 or e.response is not None:  # an HTTP answer, not a credential failure
                        raise _BatchRefused("auth" if status == 401 else "permission_denied", describe(e)) from None
                if status == 400 and "series" in str(e).lower() and len(job.targets) > 1:
                    raise _SeriesLimit() from None
                retryable = status is not None and (status in _BATCH_RETRY_STATUSES or status >= 506)
                if not retryable or _has_retry_after(e) or attempt >= self.cfg.retries:
                    raise
                delay = min(BATCH_BACKOFF * 2**attempt, max(BATCH_BACKOFF, self.cfg.timeout / 4))
                if loop.time() + delay >= deadline:
                    raise
                attempt += 1
                await asyncio.sleep(delay)

    def _refused(self, refusal: _BatchRefused, now: float) -> _BatchRefused:
        first = self._batch_refusal is None
        if now >= self._batch_refused_until:
            self.batch_fallbacks.labels(refusal.reason).inc()
            self._batch_refusals_in_a_row += 1
        wait = min(BATCH_REPROBE * 2 ** (self._batch_refusals_in_a_row - 1), BATCH_REPROBE_MAX)
        self._batch_refused_until = now + wait
        self._batch_refusal = refusal.reason
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "metrics:getBatch was refused; querying each resource with Metrics List instead (batch needs "
            "Monitoring Reader on the subscription)",
            extra={"reason": refusal.reason, "error": str(refusal), "retry_batch_in_seconds": wait},
        )
        return refusal

    def _fail_all(self, job: BatchJob, failure: QueryFailure) -> list[Outcome]:
        for target in job.targets:
            for mm in job.query.metrics:
                self.metric_errors.labels(target.resource.name, mm.azure_name, failure.reason).inc()
            self._note_failure((target.resource, job.query.metricnames), failure)
        return [failure] * len(job.targets)

    def _note_split(self, job: BatchJob) -> None:
        self.batch_splits.inc()
        key = (job.endpoint, job.query.metricnames)
        if key not in self._logged_split:
            self._logged_split.add(key)
            log.info(
                "a getBatch call would return too many time series; splitting it (sized from now on by the series "
                "counted)",
                extra={"metrics": job.query.metricnames, "resources": len(job.targets)},
            )

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
        window_start, start = self._query_start(qkey, now)
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
            results = parse_response(response, query.fields, now)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            reason, retry_after = error_reason(e)
            failure = QueryFailure(reason, describe(e), retry_after)
            for mm in query.metrics:
                self.metric_errors.labels(resource.name, mm.azure_name, reason).inc()
            self._note_failure(qkey, failure)
            return failure
        # the parsing thread is the one writer of the caches (see __init__)
        await asyncio.get_running_loop().run_in_executor(
            self._parser, self._accept, target, query, results, now, window_start, start
        )
        return None

    def _accept(
        self,
        target: Target,
        query: MetricQuery,
        results: dict[str, MetricResult],
        now: float,
        window_start: float,
        start: float,
    ) -> None:
        """One resource's good answer to one query (asked from ``start``), whichever path brought it."""
        resource = target.resource
        qkey = (resource, query.metricnames)
        self._resume[qkey] = self._resume_from(query, results, window_start)
        self._series_seen[qkey] = sum(len(r.series) for r in results.values())
        if query.secondary:
            self._secondary_ok[qkey] = self._cycle
        if qkey in self._failing:
            log.info("query recovered", extra={"resource": resource.name, "metrics": query.metricnames})
            del self._failing[qkey]
        # Minutes before the start of a shortened query are final: the ledger forgets them. After a back-fill
        # (start before the window) it keeps the window, as a full query would.
        horizon = max(window_start, start)
        for mm in query.metrics:
            self._apply(target, query, mm, results.get(mm.azure_name.lower()), now, horizon)

    def _resume_from(self, query: MetricQuery, results: dict[str, MetricResult], window_start: float) -> float:
        """Where the next query of this group starts: ``revision_window`` before the oldest of the series' newest
        valued minutes. Every series keeps its newest minute in the next answer (so gauges never lose a series
        the whole window would show), and the minutes Azure may still revise are asked again (so counters see the
        revision). Older minutes were seen final. A metric in error, or no valued minute, asks for the whole
        window next time."""
        newest = math.inf
        for mm in query.metrics:
            result = results.get(mm.azure_name.lower())
            if result is None or not result.ok:
                return window_start
            for series in result.series:
                if series.points:
                    newest = min(newest, series.points[-1].timestamp)
        if newest == math.inf:
            return window_start
        return max(window_start, _floor_minute(newest - self.cfg.revision_window))

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
        cache = MetricCache(fetched_at=now)
        newest: list[float] = []
        if mm.counter:
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
        else:
            for labels, pts in valued.items():
                cache.values[labels] = pts[-1].value * mm.scale
                newest.append(pts[-1].timestamp)
        cache.sample_ts = min(newest) if newest else None
        if mm.counter and not valued and previous is not None:
            cache.sample_ts = previous.sample_ts  # no new minute: the age keeps growing from the last one
        self._cache[key] = cache

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
        for qkey in [k for k in self._resume if k[0] not in watched]:
            del self._resume[qkey]
        for qkey in [k for k in self._secondary_ok if k[0] not in watched]:
            del self._secondary_ok[qkey]
        for qkey in [k for k in self._series_seen if k[0] not in watched]:
            del self._series_seen[qkey]
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
    def _snapshot(self, targets: list[Target], now: float) -> Snapshot:
        f = Families()
        for spec in m.SNAPSHOT_SPECS:
            if spec is not m.SAMPLE_AGE:  # rendered at scrape time from sample_times, as its own family
                f.declare(spec)
        discovery = self._discovery
        if discovery is not None and discovery.cluster is not None and self.shard.primary:
            self._add_cluster(f, discovery.cluster)
        ages: dict[LabelKey, float] = {}
        for target in targets:
            SCRAPES.checkpoint()  # on the parsing thread: /metrics first
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
                    series = {**base, **dict(zip(mm.label_names, labels, strict=True))}
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
