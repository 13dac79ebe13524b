"""The Azure calls of a cycle: Metrics List, metrics:getBatch and discovery's ARM GETs, bounded by the cycle.

Every call waits for a slot of ``concurrency`` and is cut at the cycle's deadline. Retries are not done here:
the clients' retry policy (``client.BoundedRetryPolicy``) is the one retry path, getBatch's POST included, and a
Retry-After too long to wait inside the cycle reaches the runner through ``errors.error_reason``. What this module
adds is telling apart the getBatch failures that change the plan: one that Metrics List on ARM would not have
(per resource instead: a refusal, or a data-plane host that cannot be reached) and a call that would return too
many series (split it).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from azure.core.exceptions import DecodeError, HttpResponseError, ServiceRequestError

from snat_exporter.collectors.azure.client import OPERATION, AzureClients
from snat_exporter.collectors.azure.config import AzureConfig
from snat_exporter.collectors.azure.discovery import Target
from snat_exporter.collectors.azure.errors import describe
from snat_exporter.collectors.azure.parse import MetricResult, format_timespan, parse_response
from snat_exporter.collectors.azure.parse_batch import load_batch_json, parse_batch
from snat_exporter.collectors.azure.planning import BatchJob
from snat_exporter.collectors.azure.queries import MetricQuery

INTERVAL = "PT1M"


class BatchRefused(Exception):
    """getBatch failed in a way per-resource Metrics List (on ARM, another host) would not: ``reason`` is one of
    FALLBACK_REASONS."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


# Why getBatch is left for per-resource Metrics List, and what the warning tells the operator to check. getBatch
# goes to another host (the regional metrics.monitor.azure.com), with another token audience and another role
# scope than ARM: an egress allow-list, a private DNS zone or a TLS-inspecting proxy can block it alone.
FALLBACK_REASONS = {
    "auth": "getBatch answered 401: the metrics data plane did not accept the token. This is authentication, not a "
    "missing role: check the credential and azure.batch_audience",
    "permission_denied": "getBatch answered 403: getBatch needs Monitoring Reader on the subscription (Metrics List "
    "needs it only on the resources)",
    "not_found": "getBatch answered 404 or 405: the endpoint does not serve metrics:getBatch (check "
    "azure.batch_endpoint)",
    "unreachable": "the regional metrics data-plane host cannot be reached: is egress to "
    "<region>.metrics.monitor.azure.com allowed (firewall, NSG, proxy)?",
    "dns": "the regional metrics data-plane host name does not resolve (DNS, private DNS zone)",
    "tls": "the TLS handshake with the regional metrics data-plane host failed (a TLS-inspecting proxy whose CA "
    "is not trusted?)",
}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: azure-core keeps the transport's error as ``inner_exception``."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 16:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        yield e
        todo += [getattr(e, "inner_exception", None), e.__cause__, e.__context__]


def fallback_reason(exc: BaseException) -> str | None:
    """The FALLBACK_REASONS key of a getBatch failure that per-resource Metrics List could avoid, else None (the
    same failure would hit ARM too: throttling, 5xx, a credential that cannot get any token, a slow answer)."""
    status = _status(exc)
    if isinstance(exc, HttpResponseError) and exc.response is not None:
        # 405: a host that answers but has no such API (a proxy, a wrong batch_endpoint), like a 404
        return {401: "auth", 403: "permission_denied", 404: "not_found", 405: "not_found"}.get(status or 0)
    if status == 403:
        return "permission_denied"
    if not isinstance(exc, ServiceRequestError):  # the request was sent: the host is reachable
        return None
    chain = list(_chain(exc))
    if any(isinstance(e, ssl.SSLError | aiohttp.ClientSSLError) for e in chain):
        return "tls"
    if any(isinstance(e, socket.gaierror) or type(e).__name__ == "ClientConnectorDNSError" for e in chain):
        return "dns"
    return "unreachable"  # refused, reset or timed out while connecting: the request never left


class SeriesLimit(Exception):
    """getBatch refused the call for returning too many time series: split it."""


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(int(t), tz=UTC)


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


class Fetcher:
    def __init__(self, cfg: AzureConfig, checkpoint: Callable[[], None]):
        self.cfg = cfg
        self.checkpoint = checkpoint  # lets a waiting scrape go first while a large answer is decoded
        self._semaphore = asyncio.Semaphore(cfg.concurrency)

    def _remaining(self, deadline: float) -> float:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise TimeoutError("cycle deadline reached")
        return min(self.cfg.timeout, remaining)

    async def metrics_list(
        self, clients: AzureClients, target: Target, query: MetricQuery, start: float, now: float, deadline: float
    ) -> dict[str, MetricResult]:
        """One resource's answer to one query, asked from ``start``, keyed by lower-cased metric name."""
        async with self._semaphore:
            timeout = self._remaining(deadline)
            token = OPERATION.set("metrics_list")
            try:
                response = await asyncio.wait_for(
                    clients.monitor.metrics.list(
                        target.resource.uri,
                        timespan=format_timespan(start, now),
                        interval=INTERVAL,
                        metricnames=query.metricnames,
                        aggregation=query.aggregation,
                        top=self.cfg.top if query.filter else None,
                        filter=query.filter,
                        metricnamespace=query.namespace,
                        **clients.call_options,
                    ),
                    timeout,
                )
            finally:
                OPERATION.reset(token)
        return parse_response(response, query.fields, now)

    async def batch(self, clients: AzureClients, job: BatchJob, start: float, now: float, deadline: float) -> bytes:
        """One getBatch call's raw answer (decoded by ``decode_batch``, on the parsing thread). Raises BatchRefused
        or SeriesLimit when the plan must change, else the error of the last try."""
        loop = asyncio.get_running_loop()
        query = job.query
        client = clients.batch_client(job.endpoint)
        captured: dict[str, Any] = {}

        def keep_response(pipeline_response: Any, _deserialized: Any, _headers: Any) -> dict[str, Any]:
            captured["response"] = pipeline_response.http_response
            return {"values": []}  # nothing for the SDK to build: parse_batch reads the JSON

        try:
            async with self._semaphore:
                timeout = self._remaining(deadline)
                token = OPERATION.set("metrics_batch")
                try:
                    await asyncio.wait_for(
                        client.query_resources(
                            resource_ids=[t.resource.uri for t in job.targets],
                            metric_namespace=query.namespace,
                            metric_names=list(query.names),
                            timespan=(_utc(start), _utc(now)),
                            granularity=timedelta(minutes=1),
                            aggregations=list(query.aggregations),
                            max_results=self.cfg.top if query.filter else None,
                            filter=query.filter,
                            # The SDK would build a model object per data point, eagerly: most of a cycle's CPU at
                            # a thousand resources. Streamed, it hands the answer over unread.
                            stream=True,
                            cls=keep_response,
                            **clients.batch_call_options(job.endpoint),
                        ),
                        timeout,
                    )
                    raw: bytes = await asyncio.wait_for(captured["response"].read(), max(0.001, deadline - loop.time()))
                finally:
                    OPERATION.reset(token)
        except (HttpResponseError, ServiceRequestError) as e:
            reason = fallback_reason(e) if self.cfg.batch == "auto" else None
            if reason is not None:
                raise BatchRefused(reason, describe(e)) from None
            if _status(e) == 400 and "series" in str(e).lower() and len(job.targets) > 1:
                raise SeriesLimit() from None
            raise
        return raw

    def decode_batch(self, raw: bytes, fields: Mapping[str, str], now: float) -> dict[str, dict[str, MetricResult]]:
        """A getBatch answer -> per lower-cased resource ID, its results. Raises DecodeError or MalformedResponse."""
        try:
            body = load_batch_json(raw, self.checkpoint)
        except ValueError as e:
            raise DecodeError("metrics:getBatch: the body is not JSON") from e
        return parse_batch(body, fields, self.checkpoint, now)

    def arm_get(self, clients: AzureClients, deadline: float) -> Callable[[str, str, str], Any]:
        """Discovery's ARM GET, bounded like every other call of the cycle."""

        async def get(operation: str, path: str, api_version: str) -> Any:
            async with self._semaphore:
                return await asyncio.wait_for(clients.get_json(operation, path, api_version), self._remaining(deadline))

        return get
