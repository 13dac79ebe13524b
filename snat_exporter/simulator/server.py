"""The simulator's HTTP server: Azure Resource Manager GETs, Metrics List and metrics:getBatch, over real HTTP.

Requests pass the same stages as at Azure's front door, in order: network latency, authentication, ARM
throttling (a token bucket per subscription), service errors, then the answer itself, whose body a fault may
still corrupt or cut. Every request is recorded in ``Simulator.requests`` for tests to assert on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from snat_exporter.azure_facts import DEFINITIONS, NAMESPACES, MetricDef
from snat_exporter.simulator import arm
from snat_exporter.simulator.faults import Fault
from snat_exporter.simulator.model import Model
from snat_exporter.simulator.query import (
    MAX_METRIC_NAMES,
    ApiError,
    DataRules,
    MetricRequest,
    bad_request,
    iso,
    metric_body,
    metric_error,
    parse_aggregations,
    parse_filter,
    parse_grain,
    parse_orderby,
    parse_top,
    series_count,
    window_from_batch,
    window_from_timespan,
)
from snat_exporter.simulator.scenario import LoadBalancer, NatGateway, Scenario, iter_resources

log = logging.getLogger("snat_exporter.simulator")

Clock = Callable[[], float]

METRICS_API_VERSIONS = ("2018-01-01", "2019-07-01", "2021-05-01", "2023-10-01", "2024-02-01")
BATCH_API_VERSIONS = ("2023-10-01", "2024-02-01")
MAX_BATCH_RESOURCES = 50
GLOBAL_BUCKET_FACTOR = 15  # ARM's global subscription limits are 15x the per-principal ones

_API_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_BATCH_RE = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/metrics:getbatch$")
_METRICS_RE = re.compile(
    r"^(?P<resource>/subscriptions/.+?)/providers/microsoft\.insights/(?P<what>metrics|metricdefinitions)$"
)
_ERROR_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "AuthorizationFailed",
    404: "ResourceNotFound",
    408: "RequestTimeout",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
    529: "ServerBusy",
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    operation: str  # "metrics" | "batch" | "arm"
    status: int | None = None
    body: Any = None  # the parsed JSON body of a POST


@dataclass
class _Bucket:
    capacity: float
    refill: float
    tokens: float
    last: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.last) * self.refill)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def retry_after(self) -> int:
        if self.refill <= 0:
            return 60
        return max(1, math.ceil((1 - self.tokens) / self.refill))


@dataclass
class _Matched:
    faults: list[Fault] = field(default_factory=list)

    def of(self, *kinds: str) -> list[Fault]:
        return [f for f in self.faults if f.kind in kinds]


class Simulator:
    """Azure Resource Manager + Azure Monitor metrics for one scenario, on a real aiohttp server."""

    def __init__(self, scenario: Scenario, clock: Clock = time.time, *, start_time: float | None = None):
        self.scenario = scenario
        self.clock = clock
        # Scenario minute 0 is the minute the simulator was created in: curves and events are relative to it.
        self.start_time = clock() if start_time is None else start_time
        self.start_minute = math.floor(self.start_time / 60)
        self.model = Model(scenario)
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = [Fault(**{k: v for k, v in vars(f).items() if k != "hits"}) for f in scenario.faults]
        self._resources: dict[str, arm.Body] = {}
        self._lists: dict[str, list[arm.Body]] = {}
        for rid, body in arm.all_resources(scenario):
            self._resources[rid.lower()] = body
            self._lists.setdefault(rid.rsplit("/", 1)[0].lower(), []).append(body)
            parts = rid.split("/")
            if len(parts) == 9:  # a top-level resource: also listed per subscription
                sub_list = "/".join(parts[:3] + parts[5:8]).lower()
                self._lists.setdefault(sub_list, []).append(body)
        self._metric_resources: dict[str, LoadBalancer | NatGateway] = {
            r.id.lower(): r for r in iter_resources(scenario)
        }
        self._buckets: dict[str, tuple[_Bucket, _Bucket]] = {}
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # ------------------------------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the simulator is not started: await sim.start() first")
        return self._url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # A short shutdown timeout: a request held by a latency fault must not hold up stop().
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            await self._runner.cleanup()
            self._runner = None
            raise
        await web.SockSite(self._runner, sock).start()
        bound = sock.getsockname()[1]
        self._url = f"http://[{host}]:{bound}" if family == socket.AF_INET6 else f"http://{host}:{bound}"
        log.info("simulator listening", extra={"url": self._url, "scenario": self.scenario.name})
        return self._url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        if self._url is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------------------------------ faults & helpers

    def add_fault(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self.faults.clear()

    def minute(self, at: float | None = None) -> int:
        """The scenario minute of time ``at`` (default now)."""
        return math.floor((self.clock() if at is None else at) / 60) - self.start_minute

    def newest_valued_minute(self) -> int:
        """The newest scenario minute that has a value now (Azure's lag)."""
        return self.minute() - self.scenario.lag_minutes

    def minute_timestamp(self, minute: int) -> float:
        """Unix time of the start of scenario ``minute`` (the data point's timeStamp)."""
        return (self.start_minute + minute) * 60.0

    def value(self, resource: str, metric: str, minute: int, **dimensions: str) -> float | None:
        """The final value of one raw series at a scenario minute, ignoring lag; dimensions by name
        (case-insensitive), e.g. ``value("kubernetes", "UsedSnatPorts", -5, BackendIPAddress="10.224.0.6",
        ProtocolType="TCP")``; dimensions not given are summed over. None when no series matches."""
        res = self.scenario.resource(resource)
        mdef = _find_metric(res, metric)
        wanted = {k.lower(): v.lower() for k, v in dimensions.items()}
        names = [d.lower() for d in mdef.dimensions]
        unknown = set(wanted) - set(names)
        if unknown:
            raise KeyError(f"{metric} has no dimension {sorted(unknown)[0]} (has {', '.join(mdef.dimensions)})")
        total, found = 0.0, False
        for key, value in self.model.samples(res, mdef.name, minute):
            if all(key[names.index(k)].lower() == v for k, v in wanted.items()):
                total += value
                found = True
        return total if found else None

    # ------------------------------------------------------------------------------------------ HTTP

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        lower = path.lower().rstrip("/")
        query = {k: v for k, v in request.query.items()}
        q = {k.lower(): v for k, v in query.items()}
        if request.method == "POST" and _BATCH_RE.match(lower):
            operation = "batch"
        elif _METRICS_RE.match(lower) and _METRICS_RE.match(lower).group("what") == "metrics":  # type: ignore[union-attr]
            operation = "metrics"
        else:
            operation = "arm"
        record = RecordedRequest(request.method, path, query, operation)
        self.requests.append(record)
        raw_body = await request.read() if request.body_exists else b""
        batch_body: Any = None
        if operation == "batch":
            try:
                batch_body = json.loads(raw_body or b"null")
            except ValueError:
                batch_body = None
            record.body = batch_body
        resources, metrics = self._targets(operation, lower, q, batch_body)
        matched = _Matched([f for f in self.faults if f.matches(operation, resources, metrics)])
        for fault in matched.faults:
            fault.hits += 1
        headers = {"x-ms-request-id": str(uuid.uuid4()), "x-ms-correlation-request-id": str(uuid.uuid4())}
        try:
            response = await self._answer(request, operation, path, q, raw_body, batch_body, matched, headers)
        except ApiError as err:
            headers.update(err.headers)
            error: dict[str, object] = {"code": err.code, "message": err.message}
            if operation == "batch":  # the data plane adds trace details, as in MetricBatchExample2's error
                error = {
                    "additionalInfo": [
                        {"type": "string", "info": f"TraceId={uuid.uuid4().hex}"},
                        {"type": "string", "info": "ExceptionType=Microsoft.Online.Metrics.MetricsMP.Simulated"},
                    ],
                    **error,
                }
            response = _json_response(err.status, {"error": error}, headers)
        record.status = response.status
        log.debug(
            "simulator request",
            extra={"method": request.method, "path": path, "operation": operation, "status": response.status},
        )
        return response

    def _targets(
        self, operation: str, lower: str, q: Mapping[str, str], batch_body: Any
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(resource names, metric names) a request is about, for matching faults."""
        metrics = tuple(n.strip() for n in q.get("metricnames", "").split(",") if n.strip())
        if operation == "batch":
            ids = batch_body.get("resourceids", []) if isinstance(batch_body, dict) else []
            names = tuple(str(i).rstrip("/").rsplit("/", 1)[-1] for i in ids if isinstance(i, str))
            return names, metrics
        if operation == "metrics":
            m = _METRICS_RE.match(lower)
            resource = m.group("resource") if m else lower
            return (resource.rsplit("/", 1)[-1],), metrics
        return (lower.rsplit("/", 1)[-1],), ()

    async def _answer(
        self,
        request: web.Request,
        operation: str,
        path: str,
        q: Mapping[str, str],
        raw_body: bytes,
        batch_body: Any,
        matched: _Matched,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        # The answer comes `delay` after the request, and is worked out meanwhile, as at Azure: on a machine shared
        # with the client, working it out after the delay would land the simulator's CPU on the very moment the
        # client reads the answer, and bill it to the client's figures.
        loop = asyncio.get_running_loop()
        answer_at = loop.time() + sum(f.seconds for f in matched.of("latency"))
        try:
            auth = request.headers.get("Authorization")
            if matched.of("auth") or (auth is not None and not auth.lower().startswith("bearer ")):
                message = next((f.message for f in matched.of("auth") if f.message), None)
                headers["WWW-Authenticate"] = (
                    f'Bearer authorization_uri="https://login.microsoftonline.com/{self.scenario.tenant_id}", '
                    'error="invalid_token", error_description="The access token is invalid."'
                )
                raise ApiError(401, "InvalidAuthenticationToken", message or "The access token is invalid.")

            if operation in ("metrics", "arm"):
                self._throttle(path, headers)

            for fault in matched.of("status"):
                if fault.retry_after is not None:
                    headers["Retry-After"] = str(int(math.ceil(fault.retry_after)))
                code = _ERROR_CODES.get(fault.status, "Error")
                if fault.status == 429 and operation != "batch":
                    code = "SubscriptionRequestsThrottled"
                raise ApiError(fault.status, code, fault.message or f"Simulated {fault.status} ({code}).")

            if request.method != "GET" and operation != "batch":
                raise ApiError(405, "MethodNotAllowed", f"The method {request.method} is not allowed on {path}.")
            if operation == "batch":
                body: Any = self._batch(path, q, batch_body, raw_body, matched)
            elif operation == "metrics":
                body = self._metrics_list(path, q, matched)
            else:
                body = self._arm(path, q)

            if matched.of("wrong_shape"):
                body = _wrong_shape(operation)
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json; charset=utf-8"
            if matched.of("malformed"):
                data = data[: max(1, len(data) // 2)]
        finally:
            if answer_at > loop.time():
                await asyncio.sleep(answer_at - loop.time())
        if matched.of("reset"):
            return await _reset_mid_body(request, data, headers)
        return web.Response(status=200, body=data, headers=headers)

    def _throttle(self, path: str, headers: dict[str, str]) -> None:
        s = self.scenario
        if s.ratelimit_reads <= 0:
            return
        m = re.match(r"^/subscriptions/([^/]+)", path, re.IGNORECASE)
        sub = (m.group(1) if m else "-").lower()
        now = self.clock()
        if sub not in self._buckets:
            reads, refill = float(s.ratelimit_reads), s.ratelimit_refill_per_second
            self._buckets[sub] = (
                _Bucket(reads, refill, reads, now),
                _Bucket(reads * GLOBAL_BUCKET_FACTOR, refill * GLOBAL_BUCKET_FACTOR, reads * GLOBAL_BUCKET_FACTOR, now),
            )
        bucket, global_bucket = self._buckets[sub]
        ok = bucket.take(now) and global_bucket.take(now)
        headers["x-ms-ratelimit-remaining-subscription-reads"] = str(int(bucket.tokens))
        headers["x-ms-ratelimit-remaining-subscription-global-reads"] = str(int(global_bucket.tokens))
        if not ok:
            wait = max(
                bucket.retry_after() if bucket.tokens < 1 else 1,
                global_bucket.retry_after() if global_bucket.tokens < 1 else 1,
            )
            raise ApiError(
                429,
                "SubscriptionRequestsThrottled",
                f"Number of 'read' requests for subscription '{sub}' actor 'simulated' exceeded. Please try again "
                f"after '{wait}' seconds after additional tokens are available. "
                "Refer to https://aka.ms/arm-throttling for additional information.",
                {"Retry-After": str(wait)},
            )

    # ------------------------------------------------------------------------------------------ ARM resources

    def _arm(self, path: str, q: Mapping[str, str]) -> Any:
        _check_api_version(q)
        lower = path.lower().rstrip("/")
        m = _METRICS_RE.match(lower)
        if m and m.group("what") == "metricdefinitions":
            res = self._metric_resources.get(m.group("resource"))
            if res is None:
                raise _not_found(path)
            return {"value": [_definition(res, d) for d in DEFINITIONS[res.kind]]}
        if lower in self._resources:
            return self._resources[lower]
        if lower in self._lists:
            return {"value": self._lists[lower]}
        # An existing resource group with no resource of this type is an empty list, as in ARM.
        lm = re.match(r"^/subscriptions/[^/]+(/resourcegroups/(?P<rg>[^/]+))?/providers/[^/]+/[^/]+$", lower)
        if lm:
            groups = {self.scenario.cluster.resource_group.lower(), self.scenario.cluster.node_resource_group.lower()}
            groups.update(res.resource_group.lower() for res in iter_resources(self.scenario))
            if lm.group("rg") is None or lm.group("rg") in groups:
                return {"value": []}
        raise _not_found(path)

    # ------------------------------------------------------------------------------------------ metrics

    def _rules(self, matched: _Matched, resource: str, metric: str | None) -> DataRules:
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
        self, res: LoadBalancer | NatGateway, defs: list[MetricDef], req: MetricRequest, matched: _Matched
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

    def _metrics_list(self, path: str, q: Mapping[str, str], matched: _Matched) -> dict[str, object]:
        version = _check_api_version(q)
        m = _METRICS_RE.match(path.lower().rstrip("/"))
        assert m is not None
        res = self._metric_resources.get(m.group("resource"))
        if res is None:
            raise _not_found(path[: m.end("resource")])
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

    def _batch(
        self, path: str, q: Mapping[str, str], body: Any, raw_body: bytes, matched: _Matched
    ) -> dict[str, object]:
        version = _check_api_version(q)
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
        if len(ids) > MAX_BATCH_RESOURCES:
            raise bad_request(f"At most {MAX_BATCH_RESOURCES} resource IDs are allowed per request, got {len(ids)}.")
        if len({str(i).lower() for i in ids}) != len(ids):
            raise bad_request("resourceids must be unique.")
        m = _BATCH_RE.match(path.lower().rstrip("/"))
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


# ---------------------------------------------------------------------------------------------- helpers


def _json_response(status: int, body: object, headers: Mapping[str, str]) -> web.Response:
    out = dict(headers)
    out["Content-Type"] = "application/json; charset=utf-8"
    if status == 404:
        out.setdefault("x-ms-failure-cause", "gateway")
    return web.Response(status=status, body=json.dumps(body).encode(), headers=out)


def _not_found(path: str) -> ApiError:
    parts = [p for p in path.split("/") if p]
    kind = "/".join(parts[-4:-1:2]) if len(parts) >= 4 else "resource"
    name = parts[-1] if parts else ""
    return ApiError(
        404,
        "ResourceNotFound",
        f"The Resource '{kind}/{name}' under resource group was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def _check_api_version(q: Mapping[str, str]) -> str:
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


def _find_metric(res: LoadBalancer | NatGateway, name: str) -> MetricDef:
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
    return [_find_metric(res, n) for n in wanted]


def _definition(res: LoadBalancer | NatGateway, d: MetricDef) -> dict[str, object]:
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


def _wrong_shape(operation: str) -> object:
    """Valid JSON a proxy or a changed API could send: right content type, wrong structure."""
    if operation == "metrics":
        return {"cost": "n/a", "value": {"timeseries": "unavailable"}}
    if operation == "batch":
        return {"values": {"resourceid": 0, "value": "unavailable"}}
    return ["unexpected", {"properties": "unavailable"}]


async def _reset_mid_body(request: web.Request, data: bytes, headers: Mapping[str, str]) -> web.StreamResponse:
    """Announce the whole body, send half of it, then drop the connection (a reset mid-transfer)."""
    response = web.StreamResponse(status=200, headers=headers)
    response.content_length = len(data)
    await response.prepare(request)
    await response.write(data[: max(1, len(data) // 2)])
    transport = request.transport
    if transport is not None:
        transport.abort()
    return response
