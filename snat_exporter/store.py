"""The latest data of each collector, written by its runner and read by /metrics without waiting.

Every collector has one writer (its runner task); the exposition only reads. Both run on the one event loop,
so a snapshot is replaced in a single assignment and a reader always sees a whole one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from snat_exporter.catalogue import MetricSpec, RowFamily


@dataclass(frozen=True)
class SampleTime:
    """A series whose value is the age of a data point: rendered at scrape time as now - ``timestamp``."""

    spec: MetricSpec
    labels: tuple[tuple[str, str], ...]
    timestamp: float


@dataclass(frozen=True)
class Snapshot:
    families: tuple[RowFamily, ...] = ()
    sample_times: tuple[SampleTime, ...] = ()


@dataclass(frozen=True)
class Rendered:
    """A snapshot's series as exposition text, so that a scrape does not re-render what has not changed.

    One entry per family: its header in each format, and its sample lines, which are the same bytes in the text
    format and in OpenMetrics for the gauges, counters and info series of a snapshot (only ``# HELP``/``# TYPE``
    differ), so they are kept once. OpenMetrics comes without the ``# EOF`` that only ends a whole scrape."""

    text_headers: tuple[bytes, ...] = ()
    openmetrics_headers: tuple[bytes, ...] = ()
    bodies: tuple[bytes, ...] = ()
    ages: tuple[AgeLines, ...] = ()

    def chunks(self, openmetrics: bool) -> list[bytes]:
        out: list[bytes] = []
        for header, body in zip(
            self.openmetrics_headers if openmetrics else self.text_headers, self.bodies, strict=True
        ):
            out.append(header)
            out.append(body)
        return out


@dataclass(frozen=True)
class AgeLines:
    """The sample-time series of one family, pre-rendered up to the value, which each scrape writes (now -
    timestamp): ``runs`` holds, per distinct timestamp, the series' ``b'name{labels} '`` prefixes followed by an
    empty one, so that ``value.join(prefixes)`` is every line of the run."""

    header_text: bytes
    header_openmetrics: bytes
    runs: tuple[tuple[float, tuple[bytes, ...]], ...]


@dataclass
class CollectorState:
    name: str
    interval: float
    max_age: float
    attempts: int = 0
    last_attempt_at: float | None = None
    last_duration: float | None = None
    last_ok: bool | None = None
    last_error: str | None = None  # "reason: message" of the last failure, for the landing page
    last_success_at: float | None = None
    consecutive_failures: int = 0
    # The last good data: its rendered exposition once rendered (the families are then let go: keeping both held
    # every series twice), or the snapshot itself until then. One of the two is set, replaced in one step.
    snapshot: Snapshot | None = None
    rendered: Rendered | None = None
    details: dict[str, str] = field(default_factory=dict)  # free-form status for the landing page


class Store:
    def __init__(self) -> None:
        self._states: dict[str, CollectorState] = {}

    def register(self, name: str, interval: float, max_age: float) -> CollectorState:
        state = CollectorState(name=name, interval=interval, max_age=max_age)
        self._states[name] = state
        return state

    def states(self) -> list[CollectorState]:
        return list(self._states.values())

    def get(self, name: str) -> CollectorState:
        return self._states[name]
