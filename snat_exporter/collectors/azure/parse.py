"""Pure parsing: an Azure Monitor Metrics List response (SDK models) -> plain records, and minute handling.

No I/O here. Facts the parser is built on (see docs/azure.md): dimension names come back lower-cased and are
matched case-insensitively; a minute without data comes back with no value field at all and is *missing*, never
0; a metric can fail alone inside an HTTP 200 (``errorCode`` other than ``Success``); each data point carries
every aggregation the call asked for, so one call can serve metrics that read different fields.

This is where Azure's data enters, so this is where a legal but impossible answer is contained: a value that is
not a measurement (NaN, an infinity, a negative or absurdly large count), a minute in the future, or a dimension
value that cannot be a label drops that one point or that one series, counted in the result's ``rejected``; the
rest of the answer is kept. One such answer can then neither poison a counter for good, nor hide the other series,
nor move the next query window out of range.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeGuard

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


def _field(fields: Fields, name: str) -> str | None:
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


def _timestamp(value: Any) -> float:
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


def _number(raw: Any, aggregation: str) -> float | str | None:
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
    return _number(getattr(point, aggregation.lower(), None), aggregation)


def _dimension_value(value: Any) -> str | None:
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
        label = _dimension_value(getattr(md, "value", None))
        if label is None:
            rejected[BAD_LABEL] += 1
            return None
        dims.append((name, label))
    by_minute: dict[float, float] = {}
    for point in getattr(element, "data", None) or ():
        value = _value(point, aggregation)
        if value is None:
            continue  # an empty minute: missing, not 0
        ts = _timestamp(getattr(point, "time_stamp", None))
        if isinstance(value, str):
            rejected[value] += 1
        elif ts > not_after:
            rejected[FUTURE] += 1
        else:
            by_minute[ts] = value
    points = tuple(Point(ts, by_minute[ts]) for ts in sorted(by_minute))
    return Series(tuple(sorted(dims)), points)


def _latest(now: float | None) -> float:
    """The latest minute start an answer may hold when asked at ``now`` (None: no check)."""
    return math.inf if now is None else now + FUTURE_SLACK


def _result(name: str, series: Iterable[Series | None], rejected: Counter[str]) -> MetricResult:
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
        aggregation = _field(fields, name)
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
        latest = _latest(now)
        out[name.lower()] = _result(
            name, (parse_series(el, aggregation, latest, rejected) for el in timeseries), rejected
        )
    return out


# ------------------------------------------------------------------------------------- raw JSON (getBatch)
#
# The batch answers are read from the JSON itself: the SDK's result models drop a metric's errorCode (a per-metric
# failure would pass for "no series"), and building them is most of the CPU a large cycle costs.


def _is_object(value: Any) -> TypeGuard[Mapping[str, Any]]:
    # json.loads makes dicts; the Mapping check (an ABC, slow) is only for other callers.
    return type(value) is dict or isinstance(value, Mapping)


def parse_series_json(
    element: Any,
    aggregation: str,
    stamps: dict[str, float],
    names: dict[str, str] | None = None,
    not_after: float = math.inf,
    rejected: Counter[str] | None = None,
) -> Series | None:
    """One timeseries element of the JSON; ``stamps`` caches timeStamp text -> Unix time and ``names`` dimension
    name -> its lower-cased form, across a whole answer (every series repeats the same few minutes and names).
    None when the series is dropped (counted in ``rejected``)."""
    if not _is_object(element):
        raise MalformedResponse("timeseries element is not an object")
    names = {} if names is None else names
    rejected = Counter() if rejected is None else rejected
    dims = []
    metadatavalues = element.get("metadatavalues") or ()
    if not isinstance(metadatavalues, list | tuple):
        raise MalformedResponse("metadatavalues is not a list")
    for md in metadatavalues:
        name = md.get("name") if _is_object(md) else None
        text = name.get("value") if _is_object(name) else None
        if not isinstance(text, str):
            raise MalformedResponse("metadatavalue without a name")
        lowered = names.get(text)
        if lowered is None:
            lowered = names[text] = text.strip().lower()
        label = _dimension_value(md.get("value"))
        if label is None:
            rejected[BAD_LABEL] += 1
            return None
        dims.append((lowered, label))
    key = aggregation.lower()
    data = element.get("data")
    if data is None:
        data = []  # a series without minutes: legal, and not the same as a malformed one ([] is falsy)
    if not isinstance(data, list):
        raise MalformedResponse("data is not a list")
    points: list[Point] = []
    ordered = True
    previous = -math.inf
    for point in data:
        if not _is_object(point):
            raise MalformedResponse("data point is not an object")
        raw = point.get(key)
        if raw is None:
            continue  # an empty minute: missing, not 0
        if type(raw) is float and 0.0 <= raw <= MAX_VALUE:  # the usual case; False for NaN
            value = raw
        else:
            checked = _number(raw, aggregation)
            if isinstance(checked, str):
                rejected[checked] += 1
                continue
            assert checked is not None  # raw is not None
            value = checked
        raw_ts = point.get("timeStamp")
        ts = stamps.get(raw_ts) if isinstance(raw_ts, str) else None
        if ts is None:
            ts = _timestamp(raw_ts)
            if isinstance(raw_ts, str):
                stamps[raw_ts] = ts
        if ts > not_after:
            rejected[FUTURE] += 1
            continue
        if ts <= previous:
            ordered = False
        previous = ts
        points.append(Point(ts, value))
    if not ordered:  # Azure sends minutes in order; otherwise the last value of a minute wins, as in parse_series
        by_minute = dict(points)
        points = [Point(ts, by_minute[ts]) for ts in sorted(by_minute)]
    dims.sort()
    return Series(tuple(dims), tuple(points))


def parse_metrics_json(
    values: Any, fields: Fields, stamps: dict[str, float] | None = None, now: float | None = None
) -> dict[str, MetricResult]:
    """The ``value`` list of one resource (Metric objects) -> results keyed by lower-cased metric name, exactly as
    :func:`parse_response` reads the same answer through the SDK models."""
    if not isinstance(values, list):
        raise MalformedResponse("response has no `value` list")
    stamps = {} if stamps is None else stamps
    names: dict[str, str] = {}
    latest = _latest(now)
    out: dict[str, MetricResult] = {}
    for metric in values:
        if not isinstance(metric, Mapping):
            raise MalformedResponse("metric is not an object")
        name_obj = metric.get("name")
        name = name_obj.get("value") if isinstance(name_obj, Mapping) else None
        if not isinstance(name, str) or not name:
            raise MalformedResponse("metric without name.value")
        aggregation = _field(fields, name)
        if aggregation is None:
            continue
        code = metric.get("errorCode")
        if code is not None and str(code).lower() != SUCCESS:
            out[name.lower()] = MetricResult(name, code_label(code), str(metric.get("errorMessage") or ""), ())
            continue
        timeseries = metric.get("timeseries") or []
        if not isinstance(timeseries, list):
            raise MalformedResponse(f"{name}: timeseries is not a list")
        rejected: Counter[str] = Counter()
        series = (parse_series_json(el, aggregation, stamps, names, latest, rejected) for el in timeseries)
        out[name.lower()] = _result(name, series, rejected)
    return out


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def load_batch_json(raw: bytes, between: Callable[[], None] | None = None) -> Any:
    """``json.loads(raw)``, but a getBatch answer's ``values`` one element (one resource) at a time.

    json.loads is one C call that holds the GIL throughout: tens of milliseconds for a 1 MB answer, during which
    the event loop (and every /metrics scrape) waits although the decoding runs on another thread. Between two
    elements the interpreter can switch threads, and ``between`` is called. Any other shape is handed to json.loads
    whole, so the result and the errors (ValueError) are json.loads's."""
    text = raw.decode(json.detect_encoding(raw), "surrogatepass")
    try:
        return _load_object_with_values(text, between)
    except _OtherShape:
        return json.loads(text)
    except IndexError:  # the text ended inside the object
        raise json.JSONDecodeError("unexpected end of data", text, len(text)) from None


class _OtherShape(Exception):
    pass


def _load_object_with_values(text: str, between: Callable[[], None] | None) -> dict[str, Any]:
    def space(i: int) -> int:
        return _SPACE.match(text, i).end()  # type: ignore[union-attr]  # matches the empty string anywhere

    def expect(i: int, char: str) -> int:
        if text[i] != char:
            raise json.JSONDecodeError(f"expected {char!r}", text, i)
        return space(i + 1)

    i = space(0)
    if text[i] != "{":
        raise _OtherShape
    i = space(i + 1)
    out: dict[str, Any] = {}
    if text[i] == "}":
        raise _OtherShape
    while True:
        if text[i] != '"':
            raise json.JSONDecodeError("expected a key", text, i)
        key, i = _DECODER.raw_decode(text, i)
        i = expect(space(i), ":")
        if key == "values" and text[i] == "[":
            items: list[Any] = []
            i = space(i + 1)
            if text[i] == "]":
                i += 1
            else:
                while True:
                    if between is not None:
                        between()
                    item, i = _DECODER.raw_decode(text, i)
                    items.append(item)
                    i = space(i)
                    if text[i] == "]":
                        i += 1
                        break
                    i = expect(i, ",")
            out[key] = items
        else:
            out[key], i = _DECODER.raw_decode(text, i)
        i = space(i)
        if text[i] == "}":
            i = space(i + 1)
            break
        i = expect(i, ",")
    if i != len(text):
        raise json.JSONDecodeError("extra data", text, i)
    return out


def parse_batch(
    body: Any, fields: Fields, between: Callable[[], None] | None = None, now: float | None = None
) -> dict[str, dict[str, MetricResult]]:
    """A getBatch answer -> per lower-cased resource ID, its metric results. Raises MalformedResponse."""
    if not isinstance(body, Mapping) or not isinstance(body.get("values"), list):
        raise MalformedResponse("batch response has no `values` list")
    stamps: dict[str, float] = {}
    out: dict[str, dict[str, MetricResult]] = {}
    for item in body["values"]:
        if between is not None:
            between()
        if not isinstance(item, Mapping):
            raise MalformedResponse("batch value is not an object")
        rid = item.get("resourceid")
        if not isinstance(rid, str) or not rid:
            raise MalformedResponse("batch value without resourceid")
        out[rid.strip().rstrip("/").lower()] = parse_metrics_json(item.get("value"), fields, stamps, now)
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
