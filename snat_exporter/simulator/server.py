"""The simulator's HTTP server: Azure Resource Manager GETs, Metrics List and metrics:getBatch, over real HTTP.

Requests pass the same stages as at Azure's front door, in order: network latency, authentication, ARM
throttling (a token bucket per subscription), service errors, then the answer itself, whose body a fault may
still corrupt or cut. Every request is recorded in ``Simulator.requests`` for tests to assert on. The metrics API
behind the door is ``metrics_api.py``, the throttling ``throttling.py``, the ARM bodies ``arm.py``.
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
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from snat_exporter.azure_facts import DEFINITIONS
from snat_exporter.simulator import arm
from snat_exporter.simulator.errors import ApiError
from snat_exporter.simulator.faults import Fault
from snat_exporter.simulator.metrics_api import (
    BATCH_RE,
    METRICS_RE,
    Matched,
    MetricsApi,
    check_api_version,
    definition,
    find_metric,
    not_found,
)
from snat_exporter.simulator.model import Model
from snat_exporter.simulator.scenario import LoadBalancer, NatGateway, Scenario, iter_resources
from snat_exporter.simulator.throttling import ArmThrottle

log = logging.getLogger("snat_exporter.simulator")

Clock = Callable[[], float]

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
        self.metrics_api = MetricsApi(scenario, self.model, clock, self.start_minute, self._metric_resources)
        self.throttle = ArmThrottle(scenario, clock)
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
        mdef = find_metric(res, metric)
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
        if request.method == "POST" and BATCH_RE.match(lower):
            operation = "batch"
        elif METRICS_RE.match(lower) and METRICS_RE.match(lower).group("what") == "metrics":  # type: ignore[union-attr]
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
        matched = Matched([f for f in self.faults if f.matches(operation, resources, metrics)])
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
            m = METRICS_RE.match(lower)
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
        matched: Matched,
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
                self.throttle.check(path, headers)

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
                body: Any = self.metrics_api.batch(path, q, batch_body, raw_body, matched)
            elif operation == "metrics":
                body = self.metrics_api.metrics_list(path, q, matched)
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

    # ------------------------------------------------------------------------------------------ ARM resources

    def _arm(self, path: str, q: Mapping[str, str]) -> Any:
        check_api_version(q)
        lower = path.lower().rstrip("/")
        m = METRICS_RE.match(lower)
        if m and m.group("what") == "metricdefinitions":
            res = self._metric_resources.get(m.group("resource"))
            if res is None:
                raise not_found(path)
            return {"value": [definition(res, d) for d in DEFINITIONS[res.kind]]}
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
        raise not_found(path)


# ---------------------------------------------------------------------------------------------- helpers


def _json_response(status: int, body: object, headers: Mapping[str, str]) -> web.Response:
    out = dict(headers)
    out["Content-Type"] = "application/json; charset=utf-8"
    if status == 404:
        out.setdefault("x-ms-failure-cause", "gateway")
    return web.Response(status=status, body=json.dumps(body).encode(), headers=out)


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
