"""Pure parsing: an Azure Monitor Metrics List response (SDK models) -> plain records, and minute handling.

No I/O here. Facts the parser is built on (see docs/azure.md): dimension names come back lower-cased and are
matched case-insensitively; a minute without data comes back with no value field at all and is *missing*, never
0; a metric can fail alone inside an HTTP 200 (``errorCode`` other than ``Success``); each data point carries
every aggregation the call asked for, so one call can serve metrics that read different fields. A getBatch
answer is read from its raw JSON by parse_batch.py, into the same records with the same checks.

This is where Azure's data enters, so this is where a legal but impossible answer is contained: a value that is
not a measurement (NaN, an infinity, a negative or absurdly large count), a minute in the future, or a dimension
value that cannot be a label drops that one point or that one series, counted in the result's ``rejected``; the
rest of the answer is kept. One such answer can then neither poison a counter for good, nor hide the other series,
nor move the next query window out of range.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from snat_exporter.labels import code_label, is_label_text

SUCCESS = "success"

# Every metric read is a count (ports, connections, bytes, packets) or a percentage. Above 2**53 a float counter
# stops counting by one, and no SNAT resource moves 9e15 of anything in a minute: such a value is not a
# measurement (one Total of 1e308 left a counter at +Inf for good).
MAX_VALUE = 2.0**53
# A minute may start this far after our clock (clock skew) before it counts as coming from the future.
FUTURE_SLACK = 300.0

# Why a point or a series was dropped (the `reason` label of snat_exporter_azure_rejected_values_total).
NON_FINITE = "non_finite"  # a point: NaN or an infinity
NEGATIVE = "negative"  # a point: below 0
TOO_LARGE = "too_large"  # a point: above MAX_VALUE
FUTURE = "future"  # a point: its minute starts after now (+ FUTURE_SLACK)
BAD_LABEL = "bad_label"  # a series: a dimension value that cannot be a label value (see snat_exporter.labels)
REJECT_REASONS = (NON_FINITE, NEGATIVE, TOO_LARGE, FUTURE, BAD_LABEL)

# The data point field each metric reads: one aggregation for every metric of the answer, or a mapping lower-cased
# metric name -> aggregation when one call asked for several (a metric not in the mapping was not asked: skipped).
Fields = str | Mapping[str, str]


def field_of(fields: Fields, name: str) -> str | None:
    return fields if isinstance(fields, str) else fields.get(name.lower())


class MalformedResponse(ValueError):
    """The answer does not have the shape of a Metrics List response."""


class Point(NamedTuple):
    # A tuple, not a dataclass: a large cycle builds hundreds of thousands of them.
    timestamp: float  # Unix time of the start of the minute
    value: float


@dataclass(frozen=True)
class Series:
    dimensions: tuple[tuple[str, str], ...]  # (lower-cased name, value), sorted
    points: tuple[Point, ...]  # only minutes that carry the aggregation, oldest first

    @property
    def dims(self) -> dict[str, str]:
        return dict(self.dimensions)

    def newest(self) -> Point | None:
        return self.points[-1] if self.points else None


@dataclass(frozen=True)
class MetricResult:
    name: str  # as Azure spelled it
    error_code: str | None  # None when the metric succeeded
    error_message: str
    series: tuple[Series, ...]
    rejected: tuple[tuple[str, int], ...] = ()  # (reason, points or series dropped), see REJECT_REASONS

    @property
    def ok(self) -> bool:
        return self.error_code is None


def timestamp(value: Any) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise MalformedResponse(f"data point timeStamp is not a time: {value!r}")


def number(raw: Any, aggregation: str) -> float | str | None:
    """A data point's aggregation value: None when absent (a minute without data), a float when it is a
    measurement, else the reason it is not (one of REJECT_REASONS). A value that is not a number at all is a
    malformed answer."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise MalformedResponse(f"{aggregation} is not a number: {raw!r}")
    try:
        value = float(raw)
    except OverflowError:  # an integer beyond the float range
        return TOO_LARGE
    if 0.0 <= value <= MAX_VALUE:
        return value
    if value != value or value in (math.inf, -math.inf):
        return NON_FINITE
    return NEGATIVE if value < 0 else TOO_LARGE


def _value(point: Any, aggregation: str) -> float | str | None:
    return number(getattr(point, aggregation.lower(), None), aggregation)


def dimension_value(value: Any) -> str | None:
    """A dimension's value as a label value, None when it cannot be one."""
    text = "" if value is None else str(value)
    return text if is_label_text(text) else None


def _dimension_name(md: Any) -> str:
    name = getattr(md, "name", None)
    text = getattr(name, "value", None) if name is not None else None
    if not isinstance(text, str):
        raise MalformedResponse("metadatavalue without a name")
    return text.strip().lower()


def parse_series(
    element: Any, aggregation: str, not_after: float = math.inf, rejected: Counter[str] | None = None
) -> Series | None:
    """One timeseries element of an SDK model; None when the series is dropped (counted in ``rejected``)."""
    rejected = Counter() if rejected is None else rejected
    dims = []
    for md in getattr(element, "metadatavalues", None) or ():
        name = _dimension_name(md)
        label = dimension_value(getattr(md, "value", None))
        if label is None:
            rejected[BAD_LABEL] += 1
            return None
        dims.append((name, label))
    by_minute: dict[float, float] = {}
    for point in getattr(element, "data", None) or ():
        value = _value(point, aggregation)
        if value is None:
            continue  # an empty minute: missing, not 0
        ts = timestamp(getattr(point, "time_stamp", None))
        if isinstance(value, str):
            rejected[value] += 1
        elif ts > not_after:
            rejected[FUTURE] += 1
        else:
            by_minute[ts] = value
    points = tuple(Point(ts, by_minute[ts]) for ts in sorted(by_minute))
    return Series(tuple(sorted(dims)), points)


def latest_minute(now: float | None) -> float:
    """The latest minute start an answer may hold when asked at ``now`` (None: no check)."""
    return math.inf if now is None else now + FUTURE_SLACK


def result_of(name: str, series: Iterable[Series | None], rejected: Counter[str]) -> MetricResult:
    kept = tuple(s for s in series if s is not None)  # consumes ``series`` first: it fills ``rejected``
    return MetricResult(name, None, "", kept, tuple(sorted(rejected.items())))


def parse_response(response: Any, fields: Fields, now: float | None = None) -> dict[str, MetricResult]:
    """Metric results keyed by lower-cased metric name. Raises MalformedResponse when the shape is wrong.
    ``now``: the time of the request; minutes after it (beyond clock skew) are dropped."""
    values = getattr(response, "value", None)
    if not isinstance(values, list):
        raise MalformedResponse("response has no `value` list")
    out: dict[str, MetricResult] = {}
    for metric in values:
        name_obj = getattr(metric, "name", None)
        name = getattr(name_obj, "value", None) if name_obj is not None else None
        if not isinstance(name, str) or not name:
            raise MalformedResponse("metric without name.value")
        aggregation = field_of(fields, name)
        if aggregation is None:
            continue
        code = getattr(metric, "error_code", None)
        if code is not None and str(code).lower() != SUCCESS:
            message = str(getattr(metric, "error_message", "") or "")
            out[name.lower()] = MetricResult(name, code_label(code), message, ())
            continue
        timeseries = getattr(metric, "timeseries", None) or []
        if not isinstance(timeseries, list):
            raise MalformedResponse(f"{name}: timeseries is not a list")
        rejected: Counter[str] = Counter()
        latest = latest_minute(now)
        out[name.lower()] = result_of(
            name, (parse_series(el, aggregation, latest, rejected) for el in timeseries), rejected
        )
    return out


def merge_minutes(series: Iterable[tuple[Point, ...]]) -> tuple[Point, ...]:
    """Several Azure series that map to one exported series: their values per minute are summed."""
    acc: dict[float, float] = {}
    for points in series:
        for p in points:
            acc[p.timestamp] = acc.get(p.timestamp, 0.0) + p.value
    return tuple(Point(ts, acc[ts]) for ts in sorted(acc))


def format_timespan(start: float, end: float) -> str:
    """ISO 8601 ``start/end`` in UTC, to the second, as the Metrics List API takes it."""

    def iso(t: float) -> str:
        return datetime.fromtimestamp(int(t), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    return f"{iso(start)}/{iso(end)}"
