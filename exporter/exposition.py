"""/metrics: every collector's latest snapshot plus its health, without making a scrape wait or redo work.

Rendering text with prometheus_client costs about 17 µs a series, a third of a second for 20,000 series, and
it runs on the event loop. So a snapshot's series are rendered ONCE, when the runner stores the snapshot (in a
thread, see :func:`render_snapshot`), and a scrape only joins the cached blocks and renders what changes per
scrape: the collectors' health, the data ages and the live self-metrics. With gzip, the compressed form of the
cached part is kept too, and each scrape compresses only its small tail onto a copy of that compressor.

A collector whose block cannot be rendered is left out of the scrape and counted; the scrape still answers 200
(client_python does not contain a failing collector, so this module does).
"""

from __future__ import annotations

import logging
import platform
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import Counter
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector, CollectorRegistry

from exporter import __version__
from exporter.catalogue import Families, MetricSpec
from exporter.metrics import (
    BUILD_INFO,
    COLLECTOR_DATA_AGE,
    COLLECTOR_DURATION,
    COLLECTOR_INTERVAL,
    COLLECTOR_LAST_SUCCESS,
    COLLECTOR_STALE,
    COLLECTOR_SUCCESS,
)
from exporter.store import AgeLines, CollectorState, Rendered, SampleTime, Snapshot, Store

log = logging.getLogger("snat_exporter.exposition")

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_EOF = b"# EOF\n"


class _Families:
    """The minimal 'registry' prometheus_client's encoders accept: something with collect()."""

    def __init__(self, families: Iterable[Metric]):
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def _age_lines(spec: MetricSpec, samples: list[SampleTime]) -> AgeLines:
    family = spec.new_family()
    for st in samples:
        values = dict(st.labels)
        family.add_metric([values.get(name, "") for name in spec.labels], 0.0)  # type: ignore[attr-defined]
    lines = generate_latest(_Families([family])).splitlines(keepends=True)
    header = b"".join(line for line in lines if line.startswith(b"#"))
    # prometheus_client writes "name{labels} 0.0": keep everything up to the value.
    prefixes = tuple(line[: -len(b"0.0\n")] for line in lines if not line.startswith(b"#"))
    if len(prefixes) != len(samples):
        raise ValueError(f"{spec.name}: rendered {len(prefixes)} lines for {len(samples)} samples")
    om_header = generate_openmetrics(_Families([spec.new_family()])).removesuffix(_EOF)
    return AgeLines(header, om_header, prefixes, tuple(st.timestamp for st in samples))


def render_snapshot(snapshot: Snapshot) -> Rendered:
    families = _Families(snapshot.families)
    om = generate_openmetrics(families)
    groups: dict[str, tuple[MetricSpec, list[SampleTime]]] = {}
    for st in snapshot.sample_times:
        extra = {name for name, _ in st.labels} - set(st.spec.labels)
        if extra:
            raise KeyError(f"{st.spec.name}: labels {sorted(extra)} are not declared")
        groups.setdefault(st.spec.name, (st.spec, []))[1].append(st)
    ages = tuple(_age_lines(spec, samples) for spec, samples in groups.values())
    return Rendered(generate_latest(families), om.removesuffix(_EOF), ages)


def render_ages(blocks: Iterable[Rendered], now: float, openmetrics: bool) -> bytes:
    out: list[bytes] = []
    for block in blocks:
        for group in block.ages:
            out.append(group.header_openmetrics if openmetrics else group.header_text)
            out.extend(
                p + repr(max(0.0, now - ts)).encode() + b"\n"
                for p, ts in zip(group.prefixes, group.timestamps, strict=True)
            )
    return b"".join(out)


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
        health.add(BUILD_INFO, {"version": __version__, "python": platform.python_version()}, 1)
        for state in self.store.states():
            self._health(health, state, now)
        yield from health.build()

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
    """The cached, per-snapshot part of a scrape, for one set of blocks."""

    blocks: tuple[Rendered, ...]
    text: bytes
    openmetrics: bytes
    _gzip: dict[bool, tuple[bytes, zlib._Compress]] = field(default_factory=dict)

    def gzip_prefix(self, openmetrics: bool) -> tuple[bytes, zlib._Compress]:
        """The compressed static part and a compressor positioned after it (computed once per format)."""
        if openmetrics not in self._gzip:
            compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip container
            body = self.openmetrics if openmetrics else self.text
            self._gzip[openmetrics] = (compressor.compress(body), compressor)
        return self._gzip[openmetrics]


class MetricsEndpoint:
    """The aiohttp handler of /metrics."""

    def __init__(self, store: Store, live: CollectorRegistry, errors: Counter, clock: Callable[[], float] = time.time):
        self.store = store
        self.live = live  # self-metrics, process metrics and the HealthCollector: rendered every scrape
        self.errors = errors
        self.clock = clock
        self._static: _Static | None = None

    def _block(self, state: CollectorState) -> Rendered | None:
        if state.rendered is None and state.snapshot is not None:
            # The runner renders ahead of time; this covers a snapshot it could not render (counted if it fails).
            state.rendered = render_snapshot(state.snapshot)
            state.snapshot = None
        return state.rendered

    def static(self, now: float) -> _Static:
        blocks: list[Rendered] = []
        for state in self.store.states():
            if is_expired(state, now):
                continue
            try:
                block = self._block(state)
            except Exception:
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
            cached = _Static(tuple(blocks), b"".join(b.text for b in blocks), b"".join(b.openmetrics for b in blocks))
            self._static = cached
        return cached

    def body(self, openmetrics: bool, gzip: bool) -> bytes:
        now = self.clock()
        static = self.static(now)
        ages = render_ages(static.blocks, now, openmetrics)
        if openmetrics:
            tail = ages + generate_openmetrics(self.live)  # ends with # EOF
        else:
            tail = ages + generate_latest(self.live)
        if not gzip:
            return (static.openmetrics if openmetrics else static.text) + tail
        prefix, compressor = static.gzip_prefix(openmetrics)
        finish = compressor.copy()
        return prefix + finish.compress(tail) + finish.flush()

    async def handle(self, request: web.Request) -> web.Response:
        accept = request.headers.get("Accept", "")
        openmetrics = "application/openmetrics-text" in accept
        gzip = "gzip" in request.headers.get("Accept-Encoding", "")
        headers = {"Content-Type": OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE}
        if gzip:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=self.body(openmetrics, gzip), headers=headers)
