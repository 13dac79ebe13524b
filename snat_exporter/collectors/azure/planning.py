"""Planning one Azure cycle: which queries are asked, by which path, and from which minute.

Decides, per cycle: which resources go through ``metrics:getBatch`` and which through per-resource Metrics List
(and for how long a refused getBatch is left alone), how batches are packed (subscription, region, type, then
``batch_size`` and the series each resource answered last time), whether a secondary metric group is due, and the
timespan each query asks for (the trailing window, or from where the last good answer left off). It makes no call
and holds no metric value; it learns from each good answer through ``answered()``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass

from snat_exporter.collectors.azure.client import AzureClients
from snat_exporter.collectors.azure.config import AzureConfig, ResourceId
from snat_exporter.collectors.azure.discovery import Target
from snat_exporter.collectors.azure.parse import MetricResult
from snat_exporter.collectors.azure.queries import MetricQuery, plan

log = logging.getLogger("snat_exporter.azure")

# A failed stretch shorter than this is back-filled (counters count its minutes once) by querying from the start
# of the last good window; longer gaps are not, so one cycle never asks Azure for hours of data.
BACKFILL_LIMIT = 3600.0
# After getBatch is refused, try it again after 5 minutes, doubling per refusal in a row up to an hour: a missing
# role stays cheap to notice being fixed, and one transient 401 does not hold 1,000 resources on the per-resource
# path (which cannot cover them in one cycle) for an hour.
BATCH_REPROBE = 300.0
BATCH_REPROBE_MAX = 3600.0
# Series estimates from the last cycle are scaled by this before packing a batch: estates grow between cycles.
SERIES_HEADROOM = 1.1

# The failure reasons (errors.error_reason) of a request Azure refused as such: the resume point is reset.
RESET_REASONS = frozenset({"http_4xx", "not_found"})

QueryKey = tuple[ResourceId, str]  # (resource, the query's metricnames): the unit a query's state is kept by


@dataclass(frozen=True)
class BatchJob:
    """One getBatch call: up to ``batch_size`` resources of one subscription, region and type, one metric group."""

    endpoint: str
    targets: tuple[Target, ...]
    query: MetricQuery


def floor_minute(t: float) -> float:
    return math.floor(t / 60.0) * 60.0


class Planner:
    """The query plan of each cycle, and the little it must remember between cycles to make it."""

    def __init__(self, cfg: AzureConfig):
        self.cfg = cfg
        self.cycle = 0
        self._secondary_every = max(1, round(cfg.secondary_interval / cfg.interval))
        self._secondary_ok: dict[QueryKey, int] = {}  # -> cycle of the last good answer of a secondary group
        self._resume: dict[QueryKey, float] = {}  # -> the first minute the next query must ask for
        self._series_seen: dict[QueryKey, int] = {}  # -> series in the last answer (sizes the batches)
        self._batch_refused_until = float("-inf")
        self._batch_refusal: str | None = None
        self._batch_refusals_in_a_row = 0
        self._logged_no_endpoint = False

    def start_cycle(self) -> None:
        self.cycle += 1

    # ------------------------------------------------------------------------------------------- paths
    def split_paths(self, targets: list[Target], now: float) -> tuple[list[Target], list[Target]]:
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

    def list_jobs(self, targets: list[Target]) -> list[tuple[Target, MetricQuery]]:
        """The per-resource Metrics List calls due this cycle."""
        return [(t, q) for t in targets for q in plan(t.resource.kind) if self.due(t, q)]

    def batch_jobs(self, clients: AzureClients, targets: list[Target]) -> list[BatchJob]:
        """The getBatch calls due this cycle."""
        groups: dict[tuple[str, str, str], list[Target]] = {}
        for t in targets:
            key = (t.resource.subscription_id.lower(), t.region or "", t.resource.kind)
            groups.setdefault(key, []).append(t)
        jobs: list[BatchJob] = []
        for (_, region, kind), members in sorted(groups.items()):
            endpoint = clients.batch_endpoint(region)
            if endpoint is None:
                continue  # split_paths returned nothing to batch then
            members.sort(key=lambda t: t.resource.uri.lower())
            for query in plan(kind):
                due = [t for t in members if self.due(t, query)]
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

    def due(self, target: Target, query: MetricQuery) -> bool:
        """A secondary group is asked every ``secondary_every`` cycles, and again next cycle when it failed."""
        if not query.secondary or self._secondary_every <= 1:
            return True
        last = self._secondary_ok.get((target.resource, query.metricnames))
        return last is None or self.cycle - last >= self._secondary_every

    # ------------------------------------------------------------------------------------------ timespans
    def query_start(self, qkey: QueryKey, now: float) -> tuple[float, float]:
        """(window start, the start to query from). The first query asks for the whole ``window``; later ones start
        where the last good answer said data may still arrive or change (``_resume``), which after a failed
        stretch reaches back before the window (back-filled, up to BACKFILL_LIMIT).

        A resume point later than ``now - revision_window`` can only come from an answer holding minutes after
        now (clock skew, or a hostile answer): the whole window is asked again, never a timespan that starts in
        the future (Azure answers it with 400 for good, and every series expires)."""
        window_start = floor_minute(now - self.cfg.window)
        resume = self._resume.get(qkey)
        if resume is None or resume > floor_minute(now - self.cfg.revision_window):
            return window_start, window_start
        return window_start, max(resume, floor_minute(now - BACKFILL_LIMIT))

    def failed(self, qkey: QueryKey, reason: str) -> None:
        """A query failed. Azure refusing the request itself (400 and other 4xx but throttling, auth and
        permissions) may be about its timespan: the next query asks for the whole window."""
        if reason in RESET_REASONS:
            self._resume.pop(qkey, None)

    def answered(
        self, qkey: QueryKey, query: MetricQuery, results: dict[str, MetricResult], window_start: float
    ) -> None:
        """One resource's good answer to one query: where its next query starts, its size, its cadence."""
        self._resume[qkey] = self._resume_from(query, results, window_start)
        self._series_seen[qkey] = sum(len(r.series) for r in results.values())
        if query.secondary:
            self._secondary_ok[qkey] = self.cycle

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
        return max(window_start, floor_minute(newest - self.cfg.revision_window))

    # ------------------------------------------------------------------------------------ getBatch refusal
    def batch_refused(self, reason: str, message: str, now: float, why: str = "") -> bool:
        """getBatch failed in a way Metrics List would not (``reason``, ``why`` for the operator): per resource
        until the re-probe time. True when this starts a new back-off period (to be counted once, not once per
        failed call of the cycle)."""
        first = self._batch_refusal is None
        new_period = now >= self._batch_refused_until
        if new_period:
            self._batch_refusals_in_a_row += 1
        wait = min(BATCH_REPROBE * 2 ** (self._batch_refusals_in_a_row - 1), BATCH_REPROBE_MAX)
        self._batch_refused_until = now + wait
        self._batch_refusal = reason
        log.log(
            logging.WARNING if first else logging.DEBUG,
            f"metrics:getBatch failed; querying each resource with Metrics List instead. {why}".strip(),
            extra={"reason": reason, "error": message, "retry_batch_in_seconds": wait},
        )
        return new_period

    def batch_answered(self) -> None:
        if self._batch_refusal is not None:
            log.info("metrics:getBatch is allowed again; leaving per-resource queries")
            self._batch_refusal = None
        self._batch_refusals_in_a_row = 0

    # --------------------------------------------------------------------------------------------- pruning
    def forget(self, watched: set[ResourceId]) -> None:
        """Drop what is kept of resources no longer watched."""
        for book in (self._resume, self._secondary_ok, self._series_seen):
            for qkey in [k for k in book if k[0] not in watched]:
                del book[qkey]
