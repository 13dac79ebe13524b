"""The Azure collector: discovery, then the metric queries of this replica's shard, into a snapshot.

Two ways to read the same metrics, with identical series: one ``metrics:getBatch`` call per (subscription, region,
type, metric group) for up to ``batch_size`` resources (the data plane; Monitoring Reader on the subscription), or
one Metrics List call per (resource, metric group) (ARM; the fallback when batch is refused, and ``batch: never``).

A cycle never fails as a whole because one resource or one query does: each (resource, metric) keeps its last
good values until ``max_age`` (its ``azure_metric_sample_age_seconds`` grows meanwhile), and only when every
query of the cycle fails does ``collect()`` raise, so the runner serves the last good snapshot marked stale.

This module only runs a cycle; each job has its own module:

    watchlist.py   which resources are watched (discovery on its cadence, kept through failures)
    planning.py    which queries, by which path (getBatch or per resource), due when, from which minute
    fetching.py    the calls themselves, bounded by the cycle (retries: the clients' one retry policy)
    series.py      the series kept between cycles (caches, counter ledger, interning, pruning) and the snapshot
    outcomes.py    how failures are logged and summed up into the cycle's error
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import os

from snat_exporter.collectors.azure import metrics as m
from snat_exporter.collectors.azure.client import AzureClients, RequestMetrics
from snat_exporter.collectors.azure.config import AzureConfig, ResourceId
from snat_exporter.collectors.azure.discovery import Target
from snat_exporter.collectors.azure.errors import CredentialSetupError, describe, error_reason
from snat_exporter.collectors.azure.fetching import FALLBACK_REASONS, BatchRefused, Fetcher, SeriesLimit
from snat_exporter.collectors.azure.outcomes import FailureLog, Outcome, QueryFailure, cycle_error
from snat_exporter.collectors.azure.parse import MetricResult, Series
from snat_exporter.collectors.azure.planning import BatchJob, Planner, QueryKey
from snat_exporter.collectors.azure.queries import MetricQuery
from snat_exporter.collectors.azure.series import SeriesState
from snat_exporter.collectors.azure.shard import Shard, ShardError, resolve_shard
from snat_exporter.collectors.azure.watchlist import Watchlist
from snat_exporter.collectors.base import CollectError, CollectorContext
from snat_exporter.settings import ConfigError
from snat_exporter.snapshot import Snapshot

log = logging.getLogger("snat_exporter.azure")

# Share of the runner's deadline (``timeout``) one cycle may use, so partial results are returned before it.
CYCLE_SHARE = 0.85


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


class AzureCollector:
    name = "azure"

    def __init__(self, section: AzureConfig, context: CollectorContext):
        self.cfg = section
        self.context = context
        self.clock = context.clock
        registry = context.registry
        checkpoint = context.pause_for_scrapes  # between resources and answer elements: a waiting scrape goes first
        self.request_metrics = RequestMetrics(registry)
        self.state = SeriesState(self.cfg, registry, self.clock, checkpoint)
        try:
            self.shard: Shard = resolve_shard(self.cfg, os.environ.get("HOSTNAME"))
        except ShardError as e:
            raise ConfigError([("azure.shards", str(e))]) from None
        self.watchlist = Watchlist(self.cfg, self.shard, registry)
        self.batch_enabled = m.BATCH_ENABLED.gauge(registry)
        self.batch_fallbacks = m.BATCH_FALLBACKS.counter(registry)
        self.batch_splits = m.BATCH_SPLITS.counter(registry)
        m.SHARD_INDEX.gauge(registry).set(self.shard.index)
        m.SHARDS.gauge(registry).set(self.shard.count)
        self.planner = Planner(self.cfg)
        self.fetcher = Fetcher(self.cfg, checkpoint)
        self.failures = FailureLog()
        self._checkpoint = checkpoint
        self._clients: AzureClients | None = None
        self._logged_split: set[tuple[str, str]] = set()
        # One parsing thread: answers are decoded one at a time, so only one answer's JSON tree is alive at once,
        # and glibc gives the thread one malloc arena, not one per default-pool worker (with asyncio.to_thread a
        # 1,200-resource cycle took the RSS from 190 MB to 440 MB). It is also the one writer of the series state
        # and of the planner's per-query records (answers are folded in and the snapshot is built there, off the
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
        self.planner.start_cycle()
        await self.watchlist.refresh(self.fetcher.arm_get(clients, deadline), now)
        targets = self.watchlist.targets()
        if not targets and self.watchlist.failure is not None:
            f = self.watchlist.failure
            raise CollectError(f.reason, f"discovery failed: {f.message}", retry_after=f.retry_after)

        batched, single = self.planner.split_paths(targets, now)
        self.batch_enabled.set(1 if batched else 0)
        batch_jobs = self.planner.batch_jobs(clients, batched)
        jobs = self.planner.list_jobs(single)
        results = await asyncio.gather(
            *(self._run_query(clients, t, q, now, deadline) for t, q in jobs),
            *(self._run_batch(clients, job, now, deadline) for job in batch_jobs),
        )
        outcomes: list[Outcome] = list(results[: len(jobs)])  # type: ignore[arg-type]
        refused: list[tuple[Target, MetricQuery]] = []
        for job, result in zip(batch_jobs, results[len(jobs) :], strict=True):
            if isinstance(result, BatchRefused):
                refused.extend((t, job.query) for t in job.targets)
            else:
                outcomes.extend(result)  # type: ignore[arg-type]
        if refused:  # the same cycle asks again per resource, so a refusal leaves no gap
            self.batch_enabled.set(0)
            outcomes.extend(await asyncio.gather(*(self._run_query(clients, t, q, now, deadline) for t, q in refused)))
        failures = [o for o in outcomes if o is not None]
        if outcomes and len(failures) == len(outcomes):
            raise cycle_error(failures)
        # Building the snapshot of every series takes a tenth of a second at 20,000 series: not on the event loop.
        return await loop.run_in_executor(self._parser, self._finish_cycle, targets, now)

    def _finish_cycle(self, targets: list[Target], now: float) -> Snapshot:
        watched = {t.resource for t in targets}
        self.state.prune(watched)
        self.planner.forget(watched)
        return self.state.snapshot(targets, now, self.watchlist.cluster, self._node)

    # ------------------------------------------------------------------------------------------ one query
    async def _run_query(
        self, clients: AzureClients, target: Target, query: MetricQuery, now: float, deadline: float
    ) -> Outcome:
        qkey = (target.resource, query.metricnames)
        window_start, start = self.planner.query_start(qkey, now)
        try:
            results = await self.fetcher.metrics_list(clients, target, query, start, now, deadline)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            reason, retry_after = error_reason(e)
            return self._failed(target, query, QueryFailure(reason, describe(e), retry_after))
        # the parsing thread is the one writer of the state (see __init__)
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
        qkey: QueryKey = (target.resource, query.metricnames)
        self.planner.answered(qkey, query, results, window_start)
        self.failures.succeeded(qkey)
        # Minutes before the start of a shortened query are final: the ledger forgets them. After a back-fill
        # (start before the window) it keeps the window, as a full query would.
        horizon = max(window_start, start)
        for mm in query.metrics:
            self.state.fold(target, query, mm, results.get(mm.azure_name.lower()), now, horizon)

    def _failed(self, target: Target, query: MetricQuery, failure: QueryFailure) -> QueryFailure:
        for mm in query.metrics:
            self.state.metric_errors.labels(target.resource.name, mm.azure_name, failure.reason).inc()
        qkey: QueryKey = (target.resource, query.metricnames)
        self.planner.failed(qkey, failure.reason)
        self.failures.failed(qkey, failure)
        return failure

    # ------------------------------------------------------------------------------------------ one batch
    async def _run_batch(
        self, clients: AzureClients, job: BatchJob, now: float, deadline: float
    ) -> list[Outcome] | BatchRefused:
        query = job.query
        starts = {t.resource: self.planner.query_start((t.resource, query.metricnames), now) for t in job.targets}
        start = min(s for _, s in starts.values())
        try:
            raw = await self.fetcher.batch(clients, job, start, now, deadline)
            # Decoding a large answer and folding it into the caches take tens of milliseconds: on the parsing
            # thread, /metrics and the other calls' I/O go on meanwhile.
            await asyncio.get_running_loop().run_in_executor(self._parser, self._take_batch, job, raw, starts, now)
        except asyncio.CancelledError:
            raise
        except BatchRefused as refusal:
            why = FALLBACK_REASONS.get(refusal.reason, "")
            if self.planner.batch_refused(refusal.reason, f"{job.endpoint}: {refusal}", now, why):
                self.batch_fallbacks.labels(refusal.reason).inc()
            return refusal
        except SeriesLimit:
            return await self._split(clients, job, now, deadline)
        except Exception as e:
            reason, retry_after = error_reason(e)
            failure = QueryFailure(reason, describe(e), retry_after)
            return [self._failed(t, query, failure) for t in job.targets]
        self.planner.batch_answered()
        return [None] * len(job.targets)

    def _take_batch(self, job: BatchJob, raw: bytes, starts: dict[ResourceId, tuple[float, float]], now: float) -> None:
        """On the parsing thread: decodes a getBatch answer and folds each resource's part into the caches.
        Raises DecodeError or MalformedResponse before anything is folded in."""
        answers = self.fetcher.decode_batch(raw, job.query.fields, now)
        start = min(s for _, s in starts.values())
        for target in job.targets:
            self._checkpoint()
            window_start, own_start = starts[target.resource]
            results = answers.get(target.resource.uri.lower(), {})
            if own_start > start:
                results = _since(results, own_start)
            self._accept(target, job.query, results, now, window_start, own_start)

    async def _split(
        self, clients: AzureClients, job: BatchJob, now: float, deadline: float
    ) -> list[Outcome] | BatchRefused:
        """A batch that would return too many series, asked again in halves."""
        if len(job.targets) == 1:
            failure = QueryFailure("http_4xx", "one resource alone exceeds the batch series limit", None)
            return [self._failed(job.targets[0], job.query, failure)]
        self.batch_splits.inc()
        key = (job.endpoint, job.query.metricnames)
        if key not in self._logged_split:
            self._logged_split.add(key)
            log.info(
                "a getBatch call would return too many time series; splitting it (sized from now on by the series "
                "counted)",
                extra={"metrics": job.query.metricnames, "resources": len(job.targets)},
            )
        half = len(job.targets) // 2
        parts = await asyncio.gather(
            self._run_batch(clients, BatchJob(job.endpoint, job.targets[:half], job.query), now, deadline),
            self._run_batch(clients, BatchJob(job.endpoint, job.targets[half:], job.query), now, deadline),
        )
        for part in parts:
            if isinstance(part, BatchRefused):
                return part
        return [o for p in parts for o in p]  # type: ignore[union-attr]

    # ---------------------------------------------------------------------------------------------- nodes
    def _node(self, ip: str) -> str:
        if not ip:
            return ""
        try:
            info = self.context.identity.node_by_ip(ip)
        except Exception:  # the lookup is another collector's; its failure must not lose our data
            log.debug("node lookup failed", exc_info=True)
            return ""
        return info.name if info is not None else ""


def create(section: AzureConfig, context: CollectorContext) -> AzureCollector:
    return AzureCollector(section, context)
