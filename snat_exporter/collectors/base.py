"""The collector interface and the runner that drives every collector on its own interval.

A collector implements one coroutine, ``collect() -> Snapshot``; the runner owns everything around it: the
deadline, error capture and classification, the self-metrics, logging a fault once (not every cycle), and the
back-off that honours a Retry-After hint. One collector failing never touches another, nor /metrics.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter
from prometheus_client.registry import CollectorRegistry

from snat_exporter.exposition import render_snapshot
from snat_exporter.identity import Identity
from snat_exporter.logs import redact
from snat_exporter.store import CollectorState, Rendered, Snapshot

Clock = Callable[[], float]

# Every runner renders on this one thread: on the default pool each worker got its own glibc malloc arena, and the
# multi-megabyte bodies of a large snapshot left every arena at its high-water mark.
_RENDERER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")


class CollectError(Exception):
    """A run failed for a known reason. ``reason`` is a short label value (bounded set), ``retry_after``
    a server-given hint in seconds."""

    def __init__(self, reason: str, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class Collector(Protocol):
    name: str

    async def start(self) -> None:
        """Long-lived set-up (clients, watches). Failures here are reported by the first collect()."""

    async def collect(self) -> Snapshot:
        """One run: read the source and return the whole new snapshot, or raise."""

    async def close(self) -> None:
        """Release clients, sockets and tasks; called once at shutdown."""


@dataclass
class CollectorContext:
    """What a collector factory receives: the config, the live registry for its own self-metrics, the identity
    lookup and the clock (injected so tests can move time without sleeping)."""

    registry: CollectorRegistry
    identity: Identity
    clock: Clock = time.time


def classify(exc: BaseException) -> tuple[str, str]:
    """(reason, message) for an exception the collector did not classify itself."""
    if isinstance(exc, CollectError):
        return exc.reason, str(exc)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout", "deadline exceeded"
    if isinstance(exc, PermissionError):
        return "permission_denied", str(exc)
    if isinstance(exc, ConnectionError | OSError):
        return "unreachable", f"{type(exc).__name__}: {exc}"
    return "internal", f"{type(exc).__name__}: {exc}"


class Runner:
    def __init__(
        self,
        collector: Collector,
        state: CollectorState,
        errors: Counter,
        *,
        timeout: float,
        clock: Clock = time.time,
        logger: logging.Logger | None = None,
    ):
        self.collector = collector
        self.state = state
        self.errors = errors
        self.timeout = timeout
        self.clock = clock
        self.log = logger or logging.getLogger(f"snat_exporter.collector.{collector.name}")
        self._failing_reason: str | None = None
        self._retry_after: float | None = None

    async def run_once(self) -> bool:
        state = self.state
        started = time.monotonic()
        state.last_attempt_at = self.clock()
        state.attempts += 1
        try:
            snapshot = await asyncio.wait_for(self.collector.collect(), self.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the runner is the one place that contains every fault
            reason, message = classify(exc)
            self._record_failure(reason, message, time.monotonic() - started)
            self._retry_after = exc.retry_after if isinstance(exc, CollectError) else None
            return False
        try:
            # Rendered off the event loop, once per snapshot, so that scrapes only join cached bytes.
            loop = asyncio.get_running_loop()
            rendered: Rendered = await loop.run_in_executor(_RENDERER, render_snapshot, snapshot)
        except Exception as exc:
            # A snapshot that cannot be rendered is a failed run (a value past every boundary check): the last good
            # block stays served, marked stale. Storing it for the scrape to render instead failed every scrape,
            # on the event loop, with a traceback each time, while the health series said all was well.
            message = f"cannot render the snapshot: {type(exc).__name__}: {exc}"
            self._record_failure("internal", message, time.monotonic() - started)
            self._retry_after = None
            return False
        state.last_duration = time.monotonic() - started
        state.last_ok = True
        state.last_error = None
        state.last_success_at = self.clock()
        # A scrape needs only the rendered bytes (ages included): keeping the prometheus_client families
        # alongside them held every series twice (about 330 bytes a series: 30 MB at 92,700 series).
        state.snapshot = None
        state.rendered = rendered
        if self._failing_reason is not None:
            self.log.info(
                "collector recovered",
                extra={"collector": self.collector.name, "failures": state.consecutive_failures},
            )
        state.consecutive_failures = 0
        self._failing_reason = None
        self._retry_after = None
        return True

    def _record_failure(self, reason: str, message: str, duration: float) -> None:
        state = self.state
        state.last_duration = duration
        state.last_ok = False
        # Shown on the landing page, which the log formatter's scrubbing does not cover.
        state.last_error = redact(f"{reason}: {message}")
        state.consecutive_failures += 1
        self.errors.labels(self.collector.name, reason).inc()
        # Logged once per streak of the same fault: a collector failing every 15 s must not flood the log.
        level = logging.WARNING if reason != self._failing_reason else logging.DEBUG
        self.log.log(
            level,
            "collector run failed",
            extra={"collector": self.collector.name, "reason": reason, "error": message},
        )
        self._failing_reason = reason

    def next_delay(self, elapsed: float) -> float:
        delay = max(0.0, self.state.interval - elapsed)
        if self._retry_after is not None:
            delay = max(delay, self._retry_after)
        return delay

    async def run_forever(self) -> None:
        while True:
            t0 = time.monotonic()
            await self.run_once()
            await asyncio.sleep(self.next_delay(time.monotonic() - t0))
