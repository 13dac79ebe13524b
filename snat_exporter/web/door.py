"""The front door assembled: what the server puts between the listening socket and its routes.

Order on the way in: the connection's activity is noted (the listener's timeouts and eviction read it), then
authentication (``/healthz`` and ``/readyz`` stay open for the kubelet's probes), then the cap on concurrent
scrapes. On the way out every response, errors included, gets the configured headers and a ``Server`` header
without a version (a version string tells a scanner which vulnerabilities to try).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiohttp import web, web_response
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import Counter
from prometheus_client.registry import CollectorRegistry

from snat_exporter.web.config import WebConfig
from snat_exporter.web.listener import Listener
from snat_exporter.web.metrics import (
    HTTP_ACCEPT_ERRORS,
    HTTP_AUTH,
    HTTP_CONNECTIONS_CLOSED,
    HTTP_OPEN_CONNECTIONS,
    HTTP_SCRAPES_REJECTED,
    HTTP_TLS_RELOADS,
)
from snat_exporter.web.settings import HttpConfig
from snat_exporter.web.tls import RotatingTLS
from snat_exporter.web.verdict import Verdict

log = logging.getLogger("snat_exporter.web")

# Probes must work without credentials; these paths reveal nothing but "the process answers".
UNAUTHENTICATED_PATHS = frozenset({"/healthz", "/readyz"})
SCRAPE_PATH = "/metrics"
SERVER = "snat-exporter"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Authenticator(Protocol):
    @property
    def challenge(self) -> Mapping[str, str]: ...  # the WWW-Authenticate header of a 401

    async def verdict(self, path: str, headers: Mapping[str, str]) -> Verdict: ...


_BODIES = {
    Verdict.UNAUTHENTICATED: "Unauthorized\n",
    Verdict.FORBIDDEN: "Forbidden\n",
    Verdict.UNAVAILABLE: "authentication is unavailable (the Kubernetes API server cannot be reached)\n",
}


class FrontDoor:
    def __init__(
        self,
        web_config: WebConfig,
        http: HttpConfig,
        registry: CollectorRegistry,
        authenticators: Mapping[str, Authenticator] | None = None,
    ):
        """``authenticators``: method name (the ``method`` label) -> check; at most one is used today."""
        self.web = web_config
        self.http = http
        self.authenticators = dict(authenticators or {})
        self._auth_total: Counter = HTTP_AUTH.counter(registry)
        self._rejected: Counter = HTTP_SCRAPES_REJECTED.counter(registry)
        tls_reloads = HTTP_TLS_RELOADS.counter(registry)
        self.tls = RotatingTLS(web_config.tls, lambda r: tls_reloads.labels(r).inc()) if web_config.tls else None
        self._closed = HTTP_CONNECTIONS_CLOSED.counter(registry)
        self._accept_errors = HTTP_ACCEPT_ERRORS.counter(registry)
        self._open = HTTP_OPEN_CONNECTIONS.gauge(registry)
        self._scrapes = 0
        self.listener: Listener | None = None
        self._server_log = logging.getLogger("snat_exporter.web.aiohttp")
        self._server_log.filters[:] = [_ClientErrors(self._closed)]

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def install(self, app: web.Application) -> None:
        # aiohttp answers a request it cannot parse (400) outside the app, with no signal to hook: its default
        # Server value ("Python/3.x aiohttp/3.y") is the one place left that names versions. Server side only (the
        # client's User-Agent has its own copy), and this process serves nothing that would want it back.
        web_response.SERVER_SOFTWARE = SERVER
        app.middlewares.append(self._track)
        if self.authenticators:
            app.middlewares.append(self._authenticate)
        app.middlewares.append(self._limit_scrapes)
        app.on_response_prepare.append(self._headers)

    def runner_options(self) -> dict[str, Any]:
        # aiohttp's keep-alive timer is the idle timeout: it also closes a connection whose next request never
        # completes its header. Its logger is ours, so that a client's malformed request is counted, not logged.
        return {"keepalive_timeout": self.http.idle_timeout, "logger": self._server_log}

    async def listen(self, runner: web.AppRunner, host: str, port: int) -> tuple[str, int]:
        self.listener = Listener(
            runner.server,  # type: ignore[arg-type]
            self.http,
            tls=self.tls,
            closed_counter=self._closed,
            accept_errors=self._accept_errors,
            open_gauge=self._open,
        )
        return await self.listener.start(host, port)

    async def close(self) -> None:
        if self.listener is not None:
            await self.listener.close()
        for authenticator in self.authenticators.values():
            close = getattr(authenticator, "close", None)
            if close is not None:
                close()

    # middlewares -----------------------------------------------------------------------------------------
    @web.middleware
    async def _track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        listener = self.listener
        connection = listener.request_started(request.protocol) if listener is not None else None
        try:
            return await handler(request)
        finally:
            if listener is not None:
                listener.request_done(connection)

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in UNAUTHENTICATED_PATHS:
            return await handler(request)
        for method, authenticator in self.authenticators.items():
            verdict = await authenticator.verdict(request.path, request.headers)
            self._auth_total.labels(method, verdict.value).inc()
            if verdict is not Verdict.ALLOWED:
                headers = dict(authenticator.challenge) if verdict is Verdict.UNAUTHENTICATED else {}
                if verdict is Verdict.UNAVAILABLE:
                    headers["Retry-After"] = "5"
                return web.Response(status=verdict.status, text=_BODIES[verdict], headers=headers)
        return await handler(request)

    @web.middleware
    async def _limit_scrapes(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != SCRAPE_PATH:
            return await handler(request)
        if self._scrapes >= self.http.max_scrapes:
            self._rejected.inc()
            return web.Response(status=503, text=f"limit of concurrent scrapes reached ({self.http.max_scrapes})\n")
        self._scrapes += 1
        try:
            return await handler(request)
        finally:
            self._scrapes -= 1

    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(self.web.headers)
        response.headers["Server"] = SERVER


class _ClientErrors(logging.Filter):
    """aiohttp logs every malformed request (bad header, broken chunk, HTTP/2 preface) at ERROR with a traceback:
    anyone who can connect could fill the log. Those are the client's errors, answered 400 and closed by aiohttp:
    counted as ``snat_exporter_http_connections_closed_total{reason="bad_request"}`` instead. Errors of ours
    (a handler raising, a 500) are still logged."""

    def __init__(self, closed: Counter):
        super().__init__()
        self._closed = closed

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 0) < 500:
            self._closed.labels("bad_request").inc()
            return False
        return True
