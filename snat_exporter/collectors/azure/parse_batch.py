"""Pure parsing of a metrics:getBatch answer from its raw JSON (the records and the checks are parse.py's).

The batch answers are read from the JSON itself: the SDK's result models drop a metric's errorCode (a per-metric
failure would pass for "no series"), and building them is most of the CPU a large cycle costs.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, TypeGuard

from snat_exporter.collectors.azure.parse import (
    BAD_LABEL,
    FUTURE,
    MAX_VALUE,
    SUCCESS,
    Fields,
    MalformedResponse,
    MetricResult,
    Point,
    Series,
    dimension_value,
    field_of,
    latest_minute,
    number,
    result_of,
    timestamp,
)
from snat_exporter.labels import code_label


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
        label = dimension_value(md.get("value"))
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
            checked = number(raw, aggregation)
            if isinstance(checked, str):
                rejected[checked] += 1
                continue
            assert checked is not None  # raw is not None
            value = checked
        raw_ts = point.get("timeStamp")
        ts = stamps.get(raw_ts) if isinstance(raw_ts, str) else None
        if ts is None:
            ts = timestamp(raw_ts)
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
    latest = latest_minute(now)
    out: dict[str, MetricResult] = {}
    for metric in values:
        if not isinstance(metric, Mapping):
            raise MalformedResponse("metric is not an object")
        name_obj = metric.get("name")
        name = name_obj.get("value") if isinstance(name_obj, Mapping) else None
        if not isinstance(name, str) or not name:
            raise MalformedResponse("metric without name.value")
        aggregation = field_of(fields, name)
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
        out[name.lower()] = result_of(name, series, rejected)
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
