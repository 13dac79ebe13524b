"""The simulator's Azure Monitor metrics API: Metrics List, metrics:getBatch and metric definitions, validated and
answered as Azure does (api-versions, namespaces, metric names, the batch's limits), with the data faults of a
request applied. The HTTP front door (latency, auth, throttling, status faults) is ``server.py``'s."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from snat_exporter.azure_facts import DEFINITIONS, NAMESPACES, MetricDef
from snat_exporter.simulator.errors import ApiError, bad_request
from snat_exporter.simulator.faults import Fault
from snat_exporter.simulator.filters import parse_filter
from snat_exporter.simulator.model import Model
from snat_exporter.simulator.query import (
    MAX_METRIC_NAMES,
    DataRules,
    MetricRequest,
    iso,
    metric_body,
    metric_error,
    parse_aggregations,
    parse_grain,
    parse_orderby,
    parse_top,
    series_count,
    window_from_batch,
    window_from_timespan,
)
from snat_exporter.simulator.scenario import LoadBalancer, NatGateway, Scenario

METRICS_API_VERSIONS = ("2018-01-01", "2019-07-01", "2021-05-01", "2023-10-01", "2024-02-01")
BATCH_API_VERSIONS = ("2023-10-01", "2024-02-01")
MAXBATCH_RESOURCES = 50
_API_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
BATCH_RE = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/metrics:getbatch$")
METRICS_RE = re.compile(
    r"^(?P<resource>/subscriptions/.+?)/providers/microsoft\.insights/(?P<what>metrics|metricdefinitions)$"
)


@dataclass
class Matched:
    """The faults that matched one request."""

    faults: list[Fault] = field(default_factory=list)

    def of(self, *kinds: str) -> list[Fault]:
        return [f for f in self.faults if f.kind in kinds]


class MetricsApi:
    def __init__(
        self,
        scenario: Scenario,
        model: Model,
        clock: Callable[[], float],
        start_minute: int,
        resources: Mapping[str, LoadBalancer | NatGateway],
    ):
        self.scenario = scenario
        self.model = model
        self.clock = clock
        self.start_minute = start_minute
        self._metric_resources = resources

    def _rules(self, matched: Matched, resource: str, metric: str | None) -> DataRules:
        s = self.scenario
        rules = DataRules(self.clock(), self.start_minute, s.lag_minutes, s.revise_minutes, s.revise_fraction)
        for fault in matched.of("empty_minutes"):
            if fault.applies_to(resource, metric):
                if fault.minutes is None:
                    rules.blank_all = True
                else:
                    rules.blank_newest = max(rules.blank_newest, fault.minutes)
        for fault in matched.of("late_revisions"):
            if fault.applies_to(resource, metric):
                rules.revise_minutes = fault.minutes if fault.minutes is not None else max(s.revise_minutes, 2)
                rules.revise_fraction = fault.fraction
        return rules

    def _metric_values(
        self, res: LoadBalancer | NatGateway, defs: list[MetricDef], req: MetricRequest, matched: Matched
    ) -> list[dict[str, object]]:
        values = []
        for mdef in defs:
            errors = [f for f in matched.of("metric_error") if f.applies_to(res.name, mdef.name)]
            if errors:
                values.append(metric_error(res, mdef, errors[0].error_code, errors[0].message))
                continue
            empty = any(f.applies_to(res.name, mdef.name) for f in matched.of("empty_timeseries"))
            values.append(metric_body(self.model, res, mdef, req, self._rules(matched, res.name, mdef.name), empty))
        return values

    def _request(self, q: Mapping[str, str], grain_key: str, window_fn: Callable[[int | None], Any]) -> MetricRequest:
        auto = q.get("autoadjusttimegrain", "").lower() == "true"
        grain = parse_grain(q.get(grain_key), auto)
        return MetricRequest(
            window=window_fn(grain),
            aggregations=parse_aggregations(q.get("aggregation")),
            filter=None,
            top=parse_top(q.get("top")),
            orderby=parse_orderby(q.get("orderby")),
            metadata_only=q.get("resulttype", "data").lower() == "metadata",
            rollup=tuple(r for r in q.get("rollupby", "").split(",") if r.strip()),
            validate_dimensions=q.get("validatedimensions", "true").lower() != "false",
        )

    def metrics_list(self, path: str, q: Mapping[str, str], matched: Matched) -> dict[str, object]:
        version = check_api_version(q)
        m = METRICS_RE.match(path.lower().rstrip("/"))
        assert m is not None
        res = self._metric_resources.get(m.group("resource"))
        if res is None:
            raise not_found(path[: m.end("resource")])
        if version not in METRICS_API_VERSIONS:
            raise ApiError(
                400,
                "NoRegisteredProviderFound",
                f"No registered resource provider found for location '{self.scenario.region}' and API version "
                f"'{version}' for type 'metrics'. The supported api-versions are "
                f"'{', '.join(METRICS_API_VERSIONS)}'.",
            )
        _check_namespace(res, q.get("metricnamespace"))
        defs = _metric_defs(res, q.get("metricnames"))
        req = self._request(q, "interval", lambda g: window_from_timespan(q.get("timespan"), self.clock(), g))
        req.filter = parse_filter(q.get("$filter"))
        values = self._metric_values(res, defs, req, matched)
        out: dict[str, object] = {}
        if not req.metadata_only:
            out["cost"] = req.points
        out["timespan"] = f"{iso(req.window.start)}/{iso(req.window.end)}"
        out["interval"] = req.window.interval_text
        out["value"] = values
        out["namespace"] = NAMESPACES[res.kind].lower()
        out["resourceregion"] = self.scenario.region
        return out

    def batch(self, path: str, q: Mapping[str, str], body: Any, raw_body: bytes, matched: Matched) -> dict[str, object]:
        version = check_api_version(q)
        if version not in BATCH_API_VERSIONS:
            raise bad_request(
                f"The api-version '{version}' is not supported; supported: {', '.join(BATCH_API_VERSIONS)}."
            )
        if "timespan" in q:
            raise bad_request(
                f"Detected invalid time range parameters for API version {version}. "
                "Please use only starttime and endtime to specify a time range."
            )
        namespace = q.get("metricnamespace")
        if not namespace:
            raise bad_request("The metricnamespace query parameter is required.")
        if not q.get("metricnames"):
            raise bad_request("The metricnames query parameter is required.")
        if not isinstance(body, dict) or not isinstance(body.get("resourceids"), list):
            raise bad_request('The request body must be a JSON object {"resourceids": [...]}.')
        ids = body["resourceids"]
        if not ids:
            raise bad_request("resourceids must contain at least one resource ID.")
        if len(ids) > MAXBATCH_RESOURCES:
            raise bad_request(f"At most {MAXBATCH_RESOURCES} resource IDs are allowed per request, got {len(ids)}.")
        if len({str(i).lower() for i in ids}) != len(ids):
            raise bad_request("resourceids must be unique.")
        m = BATCH_RE.match(path.lower().rstrip("/"))
        assert m is not None
        sub = m.group("sub")
        targets: list[tuple[str, LoadBalancer | NatGateway]] = []
        for rid in ids:
            if not isinstance(rid, str):
                raise bad_request(f"Invalid resource ID {rid!r}.")
            if not rid.lower().startswith(f"/subscriptions/{sub}/"):
                raise bad_request(f"All resource IDs must be in subscription {sub}: {rid}.")
            res = self._metric_resources.get(rid.lower().rstrip("/"))
            if res is None:
                raise bad_request(f"The resource {rid} was not found or has no metrics.")
            if NAMESPACES[res.kind].lower() != namespace.lower():
                raise bad_request(
                    f"All resources of a batch must be of type {namespace}; {rid} is {NAMESPACES[res.kind]}."
                )
            targets.append((rid, res))
        if len({res.kind for _, res in targets}) > 1:
            raise bad_request("All resources of a batch must have the same type.")
        req = self._request(
            q, "interval", lambda g: window_from_batch(q.get("starttime"), q.get("endtime"), self.clock(), g)
        )
        req.filter = parse_filter(q.get("filter"))
        defs_by_target = [(rid, res, _metric_defs(res, q.get("metricnames"))) for rid, res in targets]
        series = 0
        for _, res, defs in defs_by_target:
            for mdef in defs:
                n = series_count(self.model, res, mdef, req)
                series += min(n, req.top or 10) if req.filter else n
        if series > self.scenario.batch_series_limit:
            raise bad_request(
                f"The query would return {series} time series, more than the limit of "
                f"{self.scenario.batch_series_limit}; query fewer resources or metrics per call."
            )
        out = []
        for rid, res, defs in defs_by_target:
            out.append(
                {
                    "starttime": iso(req.window.start),
                    "endtime": iso(req.window.end),
                    "interval": req.window.interval_text,
                    "value": self._metric_values(res, defs, req, matched),
                    "namespace": NAMESPACES[res.kind].lower(),
                    "resourceregion": self.scenario.region,
                    "resourceid": rid,
                }
            )
        return {"values": out}


def not_found(path: str) -> ApiError:
    parts = [p for p in path.split("/") if p]
    kind = "/".join(parts[-4:-1:2]) if len(parts) >= 4 else "resource"
    name = parts[-1] if parts else ""
    return ApiError(
        404,
        "ResourceNotFound",
        f"The Resource '{kind}/{name}' under resource group was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def check_api_version(q: Mapping[str, str]) -> str:
    version = q.get("api-version")
    if not version:
        raise ApiError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if not _API_VERSION_RE.match(version):
        raise ApiError(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are of the form YYYY-MM-DD[-preview].",
        )
    return version


def _check_namespace(res: LoadBalancer | NatGateway, namespace: str | None) -> None:
    if namespace and namespace.lower() != NAMESPACES[res.kind].lower():
        raise bad_request(
            f"Metric namespace {namespace} is not valid for resource type {NAMESPACES[res.kind]}; "
            f"use {NAMESPACES[res.kind]}."
        )


def find_metric(res: LoadBalancer | NatGateway, name: str) -> MetricDef:
    for mdef in DEFINITIONS[res.kind]:
        if mdef.name.lower() == name.strip().lower():
            return mdef
    provider, _, kind = NAMESPACES[res.kind].partition("/")
    raise bad_request(
        f"Failed to find metric configuration for provider: {provider}, resource Type: {kind}, metric: {name}, "
        f"Valid metrics: {','.join(d.name for d in DEFINITIONS[res.kind])}"
    )


def _metric_defs(res: LoadBalancer | NatGateway, names: str | None) -> list[MetricDef]:
    if not names:
        return [DEFINITIONS[res.kind][0]]
    wanted = [n.replace("%2", ",").strip() for n in names.split(",") if n.strip()]
    if len(wanted) > MAX_METRIC_NAMES:
        raise bad_request(f"Requested {len(wanted)} metrics; at most {MAX_METRIC_NAMES} metric names are allowed.")
    return [find_metric(res, n) for n in wanted]


def definition(res: LoadBalancer | NatGateway, d: MetricDef) -> dict[str, object]:
    aggs = ["Average", "Minimum", "Maximum", "Total", "Count"]
    return {
        "id": f"{res.id}/providers/microsoft.insights/metricdefinitions/{d.name}",
        "resourceId": res.id,
        "namespace": NAMESPACES[res.kind],
        "name": {"value": d.name, "localizedValue": d.display},
        "displayDescription": d.description,
        "isDimensionRequired": False,
        "unit": d.unit,
        "primaryAggregationType": d.primary.capitalize(),
        "supportedAggregationTypes": aggs,
        "metricAvailabilities": [
            {"timeGrain": "PT1M", "retention": "P93D"},
            {"timeGrain": "PT5M", "retention": "P93D"},
            {"timeGrain": "PT1H", "retention": "P93D"},
        ],
        "dimensions": [{"value": dim, "localizedValue": dim} for dim in d.dimensions],
    }
