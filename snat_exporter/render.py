"""A snapshot as exposition bytes, rendered once so that a scrape does not re-render what has not changed.

Rendering text with prometheus_client costs about 17 µs a series, a third of a second for 20,000 series. So the
runner renders each snapshot ONCE, in a thread, with :func:`render_snapshot`; a scrape only joins the cached blocks
and writes what changes per scrape, the data ages (:func:`render_ages`). The sample lines are written straight
from the snapshot's rows, byte for byte what client_python writes (tests/test_exposition.py holds the two to each
other).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.utils import floatToGoString

from snat_exporter.catalogue import MetricSpec
from snat_exporter.snapshot import RowFamily, SampleTime, Snapshot

EOF = b"# EOF\n"

Pause = Callable[[], None]
"""Called between pieces of work (a family, a few thousand lines) where pausing holds nothing a scrape needs."""


def _never() -> None:
    pass


@dataclass(frozen=True)
class AgeLines:
    """The sample-time series of one family, pre-rendered up to the value, which each scrape writes (now -
    timestamp): ``runs`` holds, per distinct timestamp, the series' ``b'name{labels} '`` prefixes followed by an
    empty one, so that ``value.join(prefixes)`` is every line of the run."""

    header_text: bytes
    header_openmetrics: bytes
    runs: tuple[tuple[float, tuple[bytes, ...]], ...]


@dataclass(frozen=True)
class Rendered:
    """A snapshot's series as exposition text.

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


class _Families:
    """The minimal 'registry' prometheus_client's encoders accept: something with collect(). Takes client_python
    families or row families (which offer the same read-only view)."""

    def __init__(self, families: Iterable[Metric | RowFamily]):
        self._families = families

    def collect(self) -> Iterable[Metric]:
        families: Any = self._families
        return families


def _age_lines(spec: MetricSpec, samples: list[SampleTime]) -> AgeLines:
    family = spec.new_family()
    for st in samples:
        values = dict(st.labels)
        family.add_metric([values.get(name, "") for name in spec.labels], 0.0)  # type: ignore[attr-defined]
    lines = generate_latest(_Families([family])).splitlines(keepends=True)
    header, om_header = _headers(spec)
    # prometheus_client writes "name{labels} 0.0": keep everything up to the value.
    prefixes = tuple(line[: -len(b"0.0\n")] for line in lines if not line.startswith(b"#"))
    if len(prefixes) != len(samples):
        raise ValueError(f"{spec.name}: rendered {len(prefixes)} lines for {len(samples)} samples")
    # Series that share a timestamp (most do: the same few minutes) share their value, so a scrape writes each run
    # as value.join(prefixes): one join per distinct timestamp instead of a concatenation per series.
    runs: dict[float, list[bytes]] = {}
    for prefix, st in zip(prefixes, samples, strict=True):
        runs.setdefault(st.timestamp, []).append(prefix)
    return AgeLines(header, om_header, tuple((ts, (*p, b"")) for ts, p in runs.items()))


@functools.cache
def _headers(spec: MetricSpec) -> tuple[bytes, bytes]:
    """The ``# HELP``/``# TYPE`` lines of a family in each format, as client_python writes them."""
    empty = _Families([spec.new_family()])
    return generate_latest(empty), generate_openmetrics(empty).removesuffix(EOF)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    # Go's format is Python's repr except for infinities, NaN and positive values of 1e6 and more.
    if type(value) is float and -math.inf < value < 1e6:
        return repr(value)
    return floatToGoString(value)


_PAUSE_LINES = 2_000  # about 2 ms of rendering


def _rows_body(family: RowFamily, pause: Pause) -> bytes:
    """The sample lines of a row family, byte for byte what client_python writes (labels sorted by name, values
    escaped, floats in Go's format)."""
    spec = family.spec
    if not spec.labels:
        return "".join(f"{spec.name} {_number(value)}\n" for _, value in family.rows).encode()
    order = sorted(range(len(spec.labels)), key=lambda i: spec.labels[i])
    # One %-template per family: name{a="%s",b="%s"} %s
    template = spec.name + "{" + ",".join(f'{spec.labels[i]}="%s"' for i in order) + "} %s\n"
    lines = []
    for n, (values, value) in enumerate(family.rows):
        if n % _PAUSE_LINES == 0:
            pause()
        joined = "".join(values)  # one check for the usual case: nothing to escape
        if "\\" in joined or "\n" in joined or '"' in joined:
            lines.append(template % (*[_escape(values[i]) for i in order], _number(value)))
        else:
            lines.append(template % (*[values[i] for i in order], _number(value)))
    return "".join(lines).encode()


def _render_family(family: RowFamily, pause: Pause) -> tuple[bytes, bytes, bytes]:
    """(text header, OpenMetrics header, sample lines): a snapshot family is a gauge, counter or info family, whose
    sample lines are the same bytes in both formats (the `_created` series are disabled in server.py)."""
    text_header, om_header = _headers(family.spec)
    return text_header, om_header, _rows_body(family, pause)


def render_snapshot(snapshot: Snapshot, pause: Pause = _never) -> Rendered:
    """``pause``: the runner's pause-for-scrapes hook, called between pieces of the work."""
    parts = []
    for family in snapshot.families:
        pause()
        parts.append(_render_family(family, pause))
    groups: dict[str, tuple[MetricSpec, list[SampleTime]]] = {}
    for st in snapshot.sample_times:
        extra = {name for name, _ in st.labels} - set(st.spec.labels)
        if extra:
            raise KeyError(f"{st.spec.name}: labels {sorted(extra)} are not declared")
        groups.setdefault(st.spec.name, (st.spec, []))[1].append(st)
    ages = tuple(_age_lines(spec, samples) for spec, samples in groups.values())
    return Rendered(tuple(p[0] for p in parts), tuple(p[1] for p in parts), tuple(p[2] for p in parts), ages)


def render_ages(blocks: Iterable[Rendered], now: float, openmetrics: bool) -> list[bytes]:
    out: list[bytes] = []
    for block in blocks:
        for group in block.ages:
            out.append(group.header_openmetrics if openmetrics else group.header_text)
            out.extend((repr(max(0.0, now - ts)).encode() + b"\n").join(prefixes) for ts, prefixes in group.runs)
    return out
