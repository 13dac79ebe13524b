"""/metrics: every collector's latest data plus its health, read from the store without making a scrape wait.

The runner stores each snapshot already rendered (:mod:`snat_exporter.render`); a scrape only joins the cached
blocks and renders what changes per scrape: the collectors' health, the data ages and the live self-metrics. With
gzip, the compressed form of the cached part is kept too, and each scrape compresses only its small tail onto a
copy of that compressor. This module only reads the store.

A collector whose block cannot be rendered is left out of the scrape and counted; the scrape still answers 200
(client_python does not contain a failing collector, so this module does).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload
from prometheus_client import Counter
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import ALLOWUTF8
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector, CollectorRegistry

from snat_exporter.metrics import (
    BUILD_INFO,
    COLLECTOR_DATA_AGE,
    COLLECTOR_DURATION,
    COLLECTOR_INTERVAL,
    COLLECTOR_LAST_SUCCESS,
    COLLECTOR_STALE,
    COLLECTOR_SUCCESS,
)
from snat_exporter.render import Rendered, render_ages, render_snapshot
from snat_exporter.snapshot import Families, Snapshot
from snat_exporter.store import CollectorState, Store
from snat_exporter.version import BUILD
from snat_exporter.web.negotiation import wants_gzip, wants_openmetrics

log = logging.getLogger("snat_exporter.exposition")

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ScrapeGate(Protocol):
    """Told when a scrape starts and when its response is written: background work pauses in between (the
    runner's :class:`~snat_exporter.runner.ScrapesFirst`)."""

    def begin(self) -> None: ...

    def end(self) -> None: ...


def is_expired(state: CollectorState, now: float) -> bool:
    """Too old to pass off as current: dropped from /metrics; the health series say why."""
    return state.last_success_at is None or now - state.last_success_at > state.max_age


class HealthCollector(Collector):
    """The per-scrape part: each collector's health, and the ages of its data points (now - timestamp)."""

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
        health.add(BUILD_INFO, BUILD.labels(), 1)
        for state in self.store.states():
            self._health(health, state, now)
        for family in health.build():
            yield family.metric()

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


@dataclass
class _Static:
    """The cached, per-snapshot part of a scrape, for one set of blocks: references to their bytes, not a copy."""

    blocks: tuple[Rendered, ...]
    _chunks: dict[bool, tuple[list[bytes], int]] = field(default_factory=dict)
    _gzip: dict[bool, tuple[bytes, zlib._Compress]] = field(default_factory=dict)
    _gzip_lock: threading.Lock = field(default_factory=threading.Lock)

    def chunks(self, openmetrics: bool) -> tuple[list[bytes], int]:
        """The blocks' chunks in one format, and their total length."""
        if openmetrics not in self._chunks:
            chunks = [c for block in self.blocks for c in block.chunks(openmetrics)]
            self._chunks[openmetrics] = (chunks, sum(len(c) for c in chunks))
        return self._chunks[openmetrics]

    def gzip_prefix(self, openmetrics: bool) -> tuple[bytes, zlib._Compress]:
        """The compressed static part and a compressor positioned after it (computed once per format, by the first
        caller; others wait for it)."""
        with self._gzip_lock:
            if openmetrics not in self._gzip:
                compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip container
                prefix = b"".join(compressor.compress(c) for c in self.chunks(openmetrics)[0])
                self._gzip[openmetrics] = (prefix, compressor)
            return self._gzip[openmetrics]

    def has_gzip(self, openmetrics: bool) -> bool:
        return openmetrics in self._gzip


_WRITE_SLICE = 256 * 1024


class _Chunks(Payload):
    """A response body sent as the cached chunks it is made of: joining them would copy the whole exposition
    (megabytes at tens of thousands of series) for every scrape."""

    def __init__(self, chunks: list[bytes], size: int, content_type: str):
        super().__init__(chunks, content_type=content_type)
        self._chunks = chunks
        self._size = size
        self._total = size

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return b"".join(self._chunks).decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        left = self._total if content_length is None else content_length
        for chunk in self._chunks:
            view = memoryview(chunk)[: max(0, left)]
            left -= len(view)
            # In slices: what the socket does not take at once is copied into the transport's buffer, and aiohttp
            # waits for it to drain between writes, so a slow reader holds a slice, not megabytes, in memory.
            for i in range(0, len(view), _WRITE_SLICE):
                await writer.write(view[i : i + _WRITE_SLICE])


class MetricsEndpoint:
    """The aiohttp handler of /metrics."""

    def __init__(
        self,
        store: Store,
        live: CollectorRegistry,
        errors: Counter,
        scrapes: ScrapeGate,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.live = live  # self-metrics, process metrics and the HealthCollector: rendered every scrape
        self.errors = errors
        self.scrapes = scrapes
        self.clock = clock
        self._static: _Static | None = None
        # Snapshots the runner could not render, rendered here (once each): kept by the endpoint, the store is the
        # runner's to write.
        self._rendered_here: dict[str, tuple[Snapshot, Rendered]] = {}

    def _block(self, state: CollectorState) -> Rendered | None:
        if state.rendered is not None or state.snapshot is None:
            self._rendered_here.pop(state.name, None)
            return state.rendered
        kept = self._rendered_here.get(state.name)
        if kept is None or kept[0] is not state.snapshot:
            # The runner renders ahead of time; this covers a snapshot it could not render (counted if it fails).
            kept = (state.snapshot, render_snapshot(state.snapshot))
            self._rendered_here[state.name] = kept
        return kept[1]

    def static(self, now: float, *, count: bool = True) -> _Static:
        """The cached part for the collectors' current blocks; ``count``: a block that cannot be rendered is counted
        (once per scrape) and logged."""
        blocks: list[Rendered] = []
        for state in self.store.states():
            if is_expired(state, now):
                continue
            try:
                block = self._block(state)
            except Exception:
                if count:
                    log.exception("cannot render collector", extra={"collector": state.name})
                    self.errors.labels(state.name).inc()
                continue
            if block is not None:
                blocks.append(block)
        cached = self._static
        if (
            cached is None
            or len(cached.blocks) != len(blocks)
            or any(a is not b for a, b in zip(cached.blocks, blocks, strict=True))
        ):
            cached = _Static(tuple(blocks))
            self._static = cached
        return cached

    def tail(self, static: _Static, now: float, openmetrics: bool) -> bytes:
        """What each scrape renders afresh: the data ages and the live registry (and ``# EOF``)."""
        ages = render_ages(static.blocks, now, openmetrics)
        if openmetrics:
            # Our names are all legacy-valid, so allow-utf-8 writes the same bytes, without client_python checking
            # every character of every label name (a third of a scrape's time).
            ages.append(generate_openmetrics(self.live, escaping=ALLOWUTF8))  # ends with # EOF
        else:
            ages.append(generate_latest(self.live))
        return b"".join(ages)

    def body(self, static: _Static, now: float, openmetrics: bool, gzip: bool) -> tuple[list[bytes], int]:
        """The response body as chunks, and its length."""
        tail = self.tail(static, now, openmetrics)
        if gzip:
            prefix, compressor = static.gzip_prefix(openmetrics)
            finish = compressor.copy()
            body = [prefix, finish.compress(tail), finish.flush()]
            return body, sum(len(c) for c in body)
        chunks, size = static.chunks(openmetrics)
        return [*chunks, tail], size + len(tail)

    async def handle(self, request: web.Request) -> web.Response:
        openmetrics = wants_openmetrics(request.headers.get("Accept", ""))
        gzip = wants_gzip(request.headers.get("Accept-Encoding", ""))
        content_type = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
        headers = {"Content-Encoding": "gzip"} if gzip else {}
        if gzip:
            warm = self.static(self.clock(), count=False)
            if not warm.has_gzip(openmetrics):
                # Compressing a new snapshot's exposition takes tens of milliseconds at 100,000 series: in a
                # thread, once per snapshot and format, while the loop serves the other scrapes.
                warm.chunks(openmetrics)  # built here: the loop is its only writer
                await asyncio.get_running_loop().run_in_executor(None, warm.gzip_prefix, openmetrics)
        # The data and the health series come from the same moment, with no await in between: a snapshot stored
        # while the compression ran is served with the health that reports it (compressed here if so, rarely).
        now = self.clock()
        static = self.static(now)
        # Background threads pause while a scrape is served, until the loop has also written the response: the
        # write runs right after this handler returns, before callbacks scheduled now.
        self.scrapes.begin()
        try:
            chunks, size = self.body(static, now, openmetrics, gzip)
        finally:
            asyncio.get_running_loop().call_soon(self.scrapes.end)
        response = web.Response(body=_Chunks(chunks, size, content_type), headers=headers)
        # aiohttp's content type would otherwise be split into type and charset and written back differently.
        response.headers["Content-Type"] = content_type
        return response
