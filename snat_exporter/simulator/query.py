"""Azure Monitor query semantics: time window and grain, aggregation, ``top`` and ``orderby``, lag and late
revisions, and the JSON of one metric in a Metrics List or getBatch answer (``$filter``: filters.py)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from snat_exporter.azure_facts import MetricDef
from snat_exporter.simulator.errors import bad_request
from snat_exporter.simulator.filters import Clause, resolve_filter
from snat_exporter.simulator.model import Model
from snat_exporter.simulator.scenario import LoadBalancer, NatGateway

AGGREGATIONS = ("average", "minimum", "maximum", "total", "count")
_AGG_ALIASES = {"sum": "total", "avg": "average", "min": "minimum", "max": "maximum"}
GRAINS = (1, 5, 15, 30, 60, 360, 720, 1440)  # minutes Azure accepts as an interval
MAX_METRIC_NAMES = 20
DEFAULT_TOP = 10
MAX_MINUTES = 93 * 1440  # platform metric retention


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, what: str) -> float:
    try:
        value = datetime.fromisoformat(text.strip().replace(" ", "+"))
    except ValueError:
        raise bad_request(f"Invalid {what} '{text}': expected an ISO 8601 date and time.") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


_DURATION_RE = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$", re.IGNORECASE)


def parse_duration_minutes(text: str) -> float | None:
    m = _DURATION_RE.match(text.strip())
    if not m or not any(m.groups()):
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return days * 1440 + hours * 60 + minutes + seconds / 60


def format_grain(minutes: int) -> str:
    if minutes % 1440 == 0:
        return f"P{minutes // 1440}D"
    if minutes % 60 == 0:
        return f"PT{minutes // 60}H"
    return f"PT{minutes}M"


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    grain: int | None  # minutes; None = FULL (one point over the whole window)

    @property
    def interval_text(self) -> str:
        if self.grain is None:
            return format_grain(max(1, math.ceil((self.end - self.start) / 60)))
        return format_grain(self.grain)

    def buckets(self) -> list[tuple[float, list[int]]]:
        """(bucket timestamp, absolute minute indexes in it) in time order."""
        first_minute = math.floor(self.start / 60)
        last_minute = math.ceil(self.end / 60)  # exclusive
        if self.grain is None:
            return [(first_minute * 60.0, list(range(first_minute, last_minute)))]
        out = []
        step = self.grain
        bucket = (first_minute // step) * step
        while bucket * 60 < self.end:
            minutes = [m for m in range(bucket, bucket + step) if first_minute <= m < last_minute]
            out.append((bucket * 60.0, minutes))
            bucket += step
        return out


def parse_grain(text: str | None, auto_adjust: bool) -> int | None:
    if text is None or text == "":
        return 1
    if text.strip().upper() == "FULL":
        return None
    minutes = parse_duration_minutes(text)
    if minutes is None:
        raise bad_request(f"Invalid interval '{text}': expected an ISO 8601 duration such as PT1M or FULL.")
    if minutes in GRAINS:
        return int(minutes)
    if auto_adjust:
        return min(GRAINS, key=lambda g: (abs(g - minutes), g))
    raise bad_request(
        f"Invalid time grain '{text}'. Supported time grains: {', '.join(format_grain(g) for g in GRAINS)}, FULL."
    )


def window_from_timespan(timespan: str | None, now: float, grain: int | None) -> Window:
    if not timespan:
        return _checked(Window(now - 3600, now, grain))
    first, sep, second = timespan.partition("/")
    if not sep:
        minutes = parse_duration_minutes(first)
        if minutes is None:
            raise bad_request(f"Invalid timespan '{timespan}': expected start/end in ISO 8601.")
        return _checked(Window(now - minutes * 60, now, grain))
    start = parse_time(first, "timespan start")
    minutes = parse_duration_minutes(second)
    end = start + minutes * 60 if minutes is not None else parse_time(second, "timespan end")
    return _checked(Window(start, end, grain))


def window_from_batch(starttime: str | None, endtime: str | None, now: float, grain: int | None) -> Window:
    end = parse_time(endtime, "endtime") if endtime else now
    start = parse_time(starttime, "starttime") if starttime else end - 3600
    return _checked(Window(start, end, grain))


def _checked(window: Window) -> Window:
    if window.end <= window.start:
        raise bad_request("Invalid time range: the start time must be before the end time.")
    if (window.end - window.start) / 60 > MAX_MINUTES:
        raise bad_request("The requested time range exceeds the maximum metrics retention period: 93.00:00:00.")
    return window


def parse_aggregations(text: str | None) -> list[str] | None:
    if not text:
        return None
    out = []
    for part in text.split(","):
        name = part.strip().lower()
        name = _AGG_ALIASES.get(name, name)
        if name not in AGGREGATIONS:
            raise bad_request(f"Invalid aggregation type '{part.strip()}'. Valid values: {', '.join(AGGREGATIONS)}.")
        if name not in out:
            out.append(name)
    return out


def parse_orderby(text: str | None) -> tuple[str, bool] | None:
    """(aggregation, descending)."""
    if not text:
        return None
    parts = text.split()
    agg = _AGG_ALIASES.get(parts[0].lower(), parts[0].lower())
    if agg not in AGGREGATIONS or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
        raise bad_request(f"Invalid orderby '{text}': expected an aggregation and asc or desc, e.g. 'sum asc'.")
    return agg, not (len(parts) == 2 and parts[1].lower() == "asc")


def parse_top(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f"Invalid top '{text}': expected a positive integer.") from None
    if value < 1:
        raise bad_request(f"Invalid top '{text}': expected a positive integer.")
    return value


# ------------------------------------------------------------------------------------------------ answers


@dataclass
class DataRules:
    """How fresh data looks at the moment of the request (lag, revisions) and the data faults in force."""

    now: float
    start_minute: int  # absolute minute of the simulator start (scenario minute 0)
    lag_minutes: int
    revise_minutes: int
    revise_fraction: float
    blank_newest: int = 0  # extra newest minutes without a value
    blank_all: bool = False

    @property
    def now_minute(self) -> int:
        return math.floor(self.now / 60)

    def valued(self, minute: int) -> bool:
        return not self.blank_all and self.now_minute - minute >= self.lag_minutes + self.blank_newest

    def revision_factor(self, minute: int) -> float:
        age = self.now_minute - minute
        if self.lag_minutes <= age < self.lag_minutes + self.revise_minutes:
            return self.revise_fraction
        return 1.0


@dataclass
class _Acc:
    total: float = 0.0
    count: int = 0
    minimum: float = math.inf
    maximum: float = -math.inf

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)

    def merge(self, other: _Acc) -> None:
        self.total += other.total
        self.count += other.count
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)

    def get(self, aggregation: str) -> float:
        if aggregation == "average":
            return self.total / self.count
        if aggregation == "total":
            return self.total
        if aggregation == "minimum":
            return self.minimum
        if aggregation == "maximum":
            return self.maximum
        return float(self.count)


@dataclass
class MetricRequest:
    window: Window
    aggregations: list[str] | None
    filter: tuple[Clause, ...] | None
    top: int | None
    orderby: tuple[str, bool] | None
    metadata_only: bool
    rollup: tuple[str, ...] = ()
    validate_dimensions: bool = True
    points: int = field(default=0)  # data points produced, for `cost`


def metric_id(resource: LoadBalancer | NatGateway, metric: MetricDef) -> str:
    return f"{resource.id}/providers/Microsoft.Insights/metrics/{metric.name}"


def metric_header(
    resource: LoadBalancer | NatGateway, metric: MetricDef, description: bool = True
) -> dict[str, object]:
    out: dict[str, object] = {
        "id": metric_id(resource, metric),
        "type": "Microsoft.Insights/metrics",
        "name": {"value": metric.name, "localizedValue": metric.display},
    }
    if description:
        out["displayDescription"] = metric.description
    out["unit"] = metric.unit
    return out


def metric_error(
    resource: LoadBalancer | NatGateway, metric: MetricDef, code: str, message: str | None
) -> dict[str, object]:
    """A per-metric failure inside an HTTP 200, as in GetMetricError.json."""
    out = metric_header(resource, metric, description=False)
    out["timeseries"] = []
    out["errorMessage"] = message or f"Failed to read metric {metric.name}: {code}."
    out["errorCode"] = code
    return out


def metric_body(
    model: Model,
    resource: LoadBalancer | NatGateway,
    metric: MetricDef,
    req: MetricRequest,
    rules: DataRules,
    empty_timeseries: bool = False,
) -> dict[str, object]:
    flt = resolve_filter(req.filter, metric, req.rollup, req.validate_dimensions)
    aggregations = req.aggregations or [metric.primary]
    revisable = metric.primary == "total"
    buckets = req.window.buckets()
    stamps = [iso(stamp) for stamp, _ in buckets]
    match_all = flt.splits_only
    groups: dict[tuple[str, ...], list[_Acc | None]] = {}
    for b, (_, minutes) in enumerate(buckets):
        for minute in minutes:
            samples = model.samples(resource, metric.name, minute - rules.start_minute)
            has_value = rules.valued(minute)
            factor = rules.revision_factor(minute) if revisable else 1.0
            for key, value in samples:
                if not match_all and not flt.matches(key):
                    continue
                gkey = tuple(key[i] for i in flt.group)
                accs = groups.get(gkey)
                if accs is None:
                    accs = groups[gkey] = [None] * len(buckets)
                if has_value:
                    acc = accs[b]
                    if acc is None:
                        acc = accs[b] = _Acc()
                    acc.add(round(value * factor) if factor != 1.0 else value)
    if not req.filter and not groups:
        groups[()] = [None] * len(buckets)
    names = [metric.dimensions[i].lower() for i in flt.group]

    ordered = list(groups.items())
    order_agg, descending = req.orderby or (aggregations[0], True)

    def sort_key(item: tuple[tuple[str, ...], list[_Acc | None]]) -> tuple[int, float, tuple[str, ...]]:
        whole = _Acc()
        for acc in item[1]:
            if acc is not None:
                whole.merge(acc)
        if whole.count == 0:
            return (1, 0.0, item[0])
        value = whole.get(order_agg)
        return (0, -value if descending else value, item[0])

    ordered.sort(key=sort_key)
    if req.filter:
        ordered = ordered[: req.top or DEFAULT_TOP]
    if empty_timeseries:
        ordered = []

    timeseries: list[dict[str, object]] = []
    for gkey, accs in ordered:
        element: dict[str, object] = {
            "metadatavalues": [
                {"name": {"value": name, "localizedValue": name}, "value": value}
                for name, value in zip(names, gkey, strict=True)
            ]
        }
        if not req.metadata_only:
            data = []
            for stamp, acc in zip(stamps, accs, strict=True):
                point: dict[str, object] = {"timeStamp": stamp}
                if acc is not None:
                    for agg in aggregations:
                        point[agg] = float(acc.get(agg))
                data.append(point)
            req.points += len(data)
            element["data"] = data
        timeseries.append(element)
    out = metric_header(resource, metric)
    out["timeseries"] = timeseries
    if not req.metadata_only:
        out["errorCode"] = "Success"
    return out


def series_count(model: Model, resource: LoadBalancer | NatGateway, metric: MetricDef, req: MetricRequest) -> int:
    """How many time series a query of ``metric`` yields before ``top`` (for the batch series limit)."""
    flt = resolve_filter(req.filter, metric, req.rollup, validate=False)
    samples = model.samples(resource, metric.name, 0)
    return max(len({tuple(k[i] for i in flt.group) for k, _ in samples if flt.matches(k)}), 1)
