"""The one prometheus_client collector: renders every collector's latest snapshot plus its health.

``collect()`` runs synchronously on the event loop for each scrape, so it only reads memory. Each collector's
block is rendered inside its own try/except, because client_python does not contain a failing collector and
one bad block must not turn the whole scrape into a 500.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Iterator

from prometheus_client import Counter
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.catalogue import Families
from exporter.metrics import (
    BUILD_INFO,
    COLLECTOR_DATA_AGE,
    COLLECTOR_DURATION,
    COLLECTOR_INTERVAL,
    COLLECTOR_LAST_SUCCESS,
    COLLECTOR_STALE,
    COLLECTOR_SUCCESS,
)
from exporter.store import CollectorState, Store

log = logging.getLogger("snat_exporter.exposition")


class SnapshotCollector(Collector):
    def __init__(self, store: Store, errors: Counter, clock: Callable[[], float] = time.time):
        self.store = store
        self.errors = errors
        self._now = clock

    def collect(self) -> Iterator[Metric]:
        now = self._now()
        health = Families()
        for spec in (
            COLLECTOR_SUCCESS,
            COLLECTOR_DURATION,
            COLLECTOR_LAST_SUCCESS,
            COLLECTOR_DATA_AGE,
            COLLECTOR_STALE,
            COLLECTOR_INTERVAL,
        ):
            health.declare(spec)
        health.add(BUILD_INFO, {"version": __version__, "python": platform.python_version()}, 1)
        data: list[Metric] = []
        for state in self.store.states():
            try:
                self._health(health, state, now)
                data.extend(self._data(state, now))
            except Exception:  # leave this collector's block out, keep the scrape
                log.exception("cannot render collector", extra={"collector": state.name})
                self.errors.labels(state.name).inc()
        yield from health.build()
        yield from data

    @staticmethod
    def _health(f: Families, state: CollectorState, now: float) -> None:
        labels = {"collector": state.name}
        f.add(COLLECTOR_INTERVAL, labels, state.interval)
        if state.last_ok is None:
            return  # no run finished yet: say nothing rather than "failed"
        f.add(COLLECTOR_SUCCESS, labels, 1.0 if state.last_ok else 0.0)
        if state.last_duration is not None:
            f.add(COLLECTOR_DURATION, labels, state.last_duration)
        if state.last_success_at is not None:
            f.add(COLLECTOR_LAST_SUCCESS, labels, state.last_success_at)
            f.add(COLLECTOR_DATA_AGE, labels, max(0.0, now - state.last_success_at))
            f.add(COLLECTOR_STALE, labels, 0.0 if state.last_ok else 1.0)

    @staticmethod
    def _data(state: CollectorState, now: float) -> list[Metric]:
        snap = state.snapshot
        if snap is None or state.last_success_at is None:
            return []
        if now - state.last_success_at > state.max_age:
            return []  # too old to pass off as current: dropped, the health series say why
        out = list(snap.families)
        if snap.sample_times:
            ages = Families()
            for st in snap.sample_times:
                ages.add(st.spec, dict(st.labels), max(0.0, now - st.timestamp))
            out.extend(ages.build())
        return out
