"""The runner: schedules every collector on its own interval, renders what it returns, and writes the store.

It is the one writer of the store. Around each collector run it owns the deadline, error capture and
classification, the self-metrics, logging a fault once (not every cycle), and the back-off that honours a
Retry-After hint; one collector failing never touches another, nor /metrics. It renders each new snapshot on its
own thread, and it owns the pause-for-scrapes hook that collectors reach through their context.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import Counter
from prometheus_client.registry import CollectorRegistry

from snat_exporter.collectors import start_order
from snat_exporter.collectors.base import CollectError, Collector, CollectorContext, IdentitySource
from snat_exporter.config import Config
from snat_exporter.identity import Identity, NoIdentity
from snat_exporter.logs import redact
from snat_exporter.metrics import COLLECTOR_ERRORS
from snat_exporter.render import Rendered, render_snapshot
from snat_exporter.store import CollectorState, Store

log = logging.getLogger("snat_exporter.runner")

Clock = Callable[[], float]

SHUTDOWN_GRACE = 5.0

# Every runner renders on this one thread: on the default pool each worker got its own glibc malloc arena, and the
# multi-megabyte bodies of a large snapshot left every arena at its high-water mark.
_RENDERER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")


def _no_pause() -> None:
    pass


class ScrapesFirst:
    """Scrapes before background work: the pause-for-scrapes hook.

    Decoding Azure answers and building and rendering snapshots run on threads, but the interpreter runs one thread
    at a time: a scrape sharing it with a busy thread waits up to a switch interval (5 ms) each time it gives the
    GIL up (every socket call), and four concurrent scrapes took 80 ms instead of 10 while a 20,000-series cycle was
    processed (docs/performance.md). So while a scrape is served, background threads pause at their next
    :meth:`checkpoint` (between two resources, two families, a few thousand lines). A pause lasts at most
    ``pause_limit``; one that lasted that long is followed by as long without one, so that back-to-back scrapes
    cannot starve the collection of more than half its time."""

    def __init__(self, pause_limit: float = 0.05) -> None:
        self.pause_limit = pause_limit
        self._idle = threading.Event()
        self._idle.set()
        self._serving = 0  # changed on the event loop only
        self._free_until = 0.0

    def begin(self) -> None:
        self._serving += 1
        self._idle.clear()

    def end(self) -> None:
        self._serving -= 1
        if self._serving <= 0:
            self._serving = 0
            self._idle.set()

    def checkpoint(self) -> None:
        """Called by background threads at points where pausing holds nothing a scrape needs."""
        if self._idle.is_set() or time.monotonic() < self._free_until:
            return
        if not self._idle.wait(self.pause_limit):
            # Scrapes kept coming for a whole pause: the next stretch runs without one. Only then: scrapes arrive
            # in bursts (several Prometheus servers, all fired at once), and the whole burst should find the
            # background paused, not just its first scrape.
            self._free_until = time.monotonic() + self.pause_limit


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
    """Runs one collector: each run's outcome goes to its state in the store."""

    def __init__(
        self,
        collector: Collector,
        state: CollectorState,
        errors: Counter,
        *,
        timeout: float,
        clock: Clock = time.time,
        logger: logging.Logger | None = None,
        pause_for_scrapes: Callable[[], None] | None = None,
    ):
        self.collector = collector
        self.state = state
        self.errors = errors
        self.timeout = timeout
        self.clock = clock
        self.log = logger or logging.getLogger(f"snat_exporter.collector.{collector.name}")
        self._pause = pause_for_scrapes or _no_pause
        self._failing_reason: str | None = None
        self._retry_after: float | None = None

    async def run_once(self) -> bool:
        state = self.state
        started = time.monotonic()
        state.last_attempt_at = self.clock()
        state.attempts += 1
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that lands as the
            # collection finishes, and the task then sleeps a whole interval while shutdown waits its grace out.
            async with asyncio.timeout(self.timeout):
                snapshot = await self.collector.collect()
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
            rendered: Rendered = await loop.run_in_executor(_RENDERER, render_snapshot, snapshot, self._pause)
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


class Collection:
    """Every enabled collector with its runner and its state in the store: created from the collector table
    (:meth:`Config.collectors`), started and stopped together.

    ``collectors``: given instead of created from the config (tests); each is scheduled by the config section of
    its name.
    """

    def __init__(
        self,
        config: Config,
        registry: CollectorRegistry,
        store: Store,
        *,
        clock: Clock = time.time,
        collectors: list[Collector] | None = None,
    ):
        self.config = config
        self.registry = registry
        self.store = store
        self.clock = clock
        self.scrapes = ScrapesFirst()
        self.errors = COLLECTOR_ERRORS.counter(registry)
        self.identity: Identity = NoIdentity()
        self.collectors: list[Collector] = collectors if collectors is not None else self._create_collectors()
        sections = {row.name: config.section(row) for row in config.collectors()}
        self.runners: dict[str, Runner] = {}
        for collector in self.collectors:
            section = sections[collector.name]
            state = self.store.register(collector.name, section.interval, section.max_age)
            self.runners[collector.name] = Runner(
                collector,
                state,
                self.errors,
                timeout=section.timeout,
                clock=clock,
                pause_for_scrapes=self.scrapes.checkpoint,
            )
        self._tasks: list[asyncio.Task[None]] = []

    def _context(self) -> CollectorContext:
        return CollectorContext(
            registry=self.registry, identity=self.identity, clock=self.clock, pause_for_scrapes=self.scrapes.checkpoint
        )

    def _create_collectors(self) -> list[Collector]:
        out: list[Collector] = []
        for row in start_order(self.config.collectors()):
            section = self.config.section(row)
            if not section.enabled:
                continue
            collector = row.factory()(section, self._context())
            if row.provides_identity:
                # The lookup the collectors created after it receive in their context.
                if not isinstance(collector, IdentitySource):
                    raise TypeError(f"collector {row.name} is marked provides_identity but has no identity lookup")
                self.identity = collector.identity
            out.append(collector)
        return out

    async def start(self, *, background: bool = True) -> None:
        """Start every collector; ``background=False`` leaves the runs to the caller (``runners[name].run_once()``)."""
        for collector in self.collectors:
            await collector.start()
        if background:
            for name, runner in self.runners.items():
                self._tasks.append(asyncio.create_task(runner.run_forever(), name=f"collector:{name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=SHUTDOWN_GRACE)
        self._tasks.clear()
        for collector in reversed(self.collectors):
            try:
                await asyncio.wait_for(collector.close(), SHUTDOWN_GRACE)
            except Exception:  # shutdown goes on whatever one collector does
                log.warning("collector did not close cleanly", extra={"collector": collector.name}, exc_info=True)
