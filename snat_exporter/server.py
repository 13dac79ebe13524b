"""The exporter process: builds the registry, the store and the runner, serves HTTP, shuts down cleanly.

Routes: ``/metrics`` (Prometheus text, or OpenMetrics when asked), ``/healthz`` (the process answers),
``/readyz`` (started), and ``/`` (a landing page listing each collector with its last success and last error).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import os
import signal
import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import ProcessCollector, disable_created_metrics
from prometheus_client.registry import CollectorRegistry

from snat_exporter import tuning
from snat_exporter.collectors.base import Collector
from snat_exporter.config import Config
from snat_exporter.exposition import HealthCollector, MetricsEndpoint
from snat_exporter.metrics import EXPOSITION_ERRORS
from snat_exporter.runner import Collection, Runner
from snat_exporter.store import Store
from snat_exporter.version import BUILD
from snat_exporter.web.basic import BasicAuth
from snat_exporter.web.config import WebConfig, load_web_config
from snat_exporter.web.door import Authenticator, FrontDoor

log = logging.getLogger("snat_exporter.server")

# `_created` series double the counter lines and no dashboard or rule here reads them.
disable_created_metrics()


class Exporter:
    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        collectors: list[Collector] | None = None,
    ):
        self.config = config
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=False)
        self.store = Store()
        # The exporter's own RSS, CPU and open fds: what an SRE checks first when the exporter itself misbehaves.
        ProcessCollector(registry=self.registry)
        self.collection = Collection(config, self.registry, self.store, clock=clock, collectors=collectors)
        exposition_errors = EXPOSITION_ERRORS.counter(self.registry)
        # The registry holds what changes every scrape; snapshots are rendered once and cached by the endpoint.
        self.registry.register(HealthCollector(self.store, exposition_errors, clock=clock))
        self.metrics = MetricsEndpoint(
            self.store, self.registry, exposition_errors, self.collection.scrapes, clock=clock
        )
        # Read (and checked) once, before anything starts: a bad file must fail start-up, not a request.
        self.web = load_web_config(config.web_config_file) if config.web_config_file else WebConfig()
        self.door = FrontDoor(self.web, config.http, self.registry, self._authenticators())
        self._runner: web.AppRunner | None = None
        self.ready = False
        self.url = ""

    @property
    def collectors(self) -> list[Collector]:
        return self.collection.collectors

    @property
    def runners(self) -> dict[str, Runner]:
        return self.collection.runners

    # ------------------------------------------------------------------------------------------------ HTTP
    def _authenticators(self) -> dict[str, Authenticator]:
        out: dict[str, Authenticator] = {}
        if self.web.users:
            out["basic"] = BasicAuth(self.web.users)
        if self.config.auth == "kubernetes":
            if self.web.tls is None:
                # A Prometheus service account token is valid at the API server: over plain http it can be replayed.
                log.warning(
                    "auth: kubernetes without TLS: bearer tokens cross the network in clear text; "
                    "set tls_server_config in web_config_file"
                )
            from snat_exporter.collectors.kube.client import api_client
            from snat_exporter.web.kubeauth import ApiReviewer, KubernetesAuth

            reviewer = ApiReviewer(lambda: api_client(self.config.kubernetes), self.config.http.auth_timeout)
            out["kubernetes"] = KubernetesAuth(reviewer, self.config.http, self.registry)
        return out

    def make_app(self) -> web.Application:
        app = web.Application()
        self.door.install(app)
        app.router.add_get("/metrics", self.metrics.handle)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/", self._index)
        return app

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        if not self.ready:
            return web.Response(status=503, text="starting\n")
        return web.Response(text="ready\n")

    async def _index(self, request: web.Request) -> web.Response:
        now = self.clock()
        rows = []
        for state in self.store.states():
            last_ok = f"{now - state.last_success_at:.0f}s ago" if state.last_success_at is not None else "never"
            status = {None: "pending", True: "ok", False: "failing"}[state.last_ok]
            rows.append(
                f"<tr><td>{html.escape(state.name)}</td><td>{status}</td><td>{last_ok}</td>"
                f"<td>{html.escape(state.last_error or '')}</td><td>{state.interval:g}s</td></tr>"
            )
        body = (
            "<!doctype html><html><head><title>snat-exporter</title></head><body>"
            f"<h1>snat-exporter {html.escape(BUILD.version)}</h1>"
            f"<p>revision {html.escape(BUILD.revision)}, Python {html.escape(BUILD.python_version)}</p>"
            '<p><a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a> · '
            '<a href="/readyz">/readyz</a></p>'
            "<table border=1 cellpadding=4><tr><th>collector</th><th>status</th><th>last success</th>"
            "<th>last error</th><th>interval</th></tr>"
            + "".join(rows)
            + "</table>"
            + ("" if rows else "<p>No collector is enabled: see the configuration reference.</p>")
            + "</body></html>"
        )
        return web.Response(text=body, content_type="text/html")

    # ------------------------------------------------------------------------------------------- lifecycle
    async def start(self, host: str | None = None, port: int | None = None, *, background: bool = True) -> str:
        """Start collectors and the HTTP server; returns the base URL. ``port=0`` picks a free port.
        ``background=False`` leaves the runs to the caller (tests call ``runners[name].run_once()``)."""
        await self.collection.start(background=background)
        self._runner = web.AppRunner(
            self.make_app(), access_log=None, handle_signals=False, **self.door.runner_options()
        )
        await self._runner.setup()
        bind_host, bind_port = self.config.listen
        # The front door serves the socket (connection cap, timeouts, rotating TLS) with aiohttp behind it.
        host, port = host if host is not None else bind_host, port if port is not None else bind_port
        try:
            actual = await self.door.listen(self._runner, host, port)
        except OSError as err:
            raise ListenError(host, port, err) from err
        shown = "127.0.0.1" if actual[0] in ("0.0.0.0", "::") else actual[0]
        shown = f"[{shown}]" if ":" in shown else shown
        self.url = f"{self.door.scheme}://{shown}:{actual[1]}"
        self.ready = True
        log.info("serving", extra={"url": self.url, "collectors": ",".join(self.runners) or "none"})
        return self.url

    async def stop(self) -> None:
        self.ready = False
        await self.collection.stop()
        await self.door.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class ListenError(Exception):
    """The HTTP server cannot bind its address (in use, not local, a privileged port): a user's mistake to report
    in one line, not a crash."""

    def __init__(self, host: str, port: int, err: OSError) -> None:
        reason = os.strerror(err.errno) if err.errno else str(err)
        shown = f"[{host}]" if ":" in host else host
        super().__init__(f"cannot listen on {shown}:{port}: {reason[:1].lower()}{reason[1:]}")


class SignalWaiter:
    """Catches SIGTERM and SIGINT from the moment it is created, so a signal during start-up is not lost."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._received: asyncio.Future[signal.Signals] = self._loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if not self._received.done():
            self._received.set_result(sig)

    async def wait(self) -> signal.Signals:
        try:
            return await self._received
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(Exception):
                    self._loop.remove_signal_handler(sig)


async def serve(
    config: Config, *, signals: SignalWaiter | None = None, on_ready: Callable[[str], None] | None = None
) -> None:
    """Run the exporter until SIGTERM or SIGINT: the one place the process is tuned (:mod:`snat_exporter.tuning`)."""
    signals = signals or SignalWaiter()
    log.debug("malloc", extra={"mmap_threshold": tuning.before_start()})
    exporter = Exporter(config)
    try:
        url = await exporter.start()
        tuning.after_start()
        if on_ready is not None:
            on_ready(url)
        sig = await signals.wait()
        log.info("shutting down", extra={"signal": sig.name})
    finally:
        await exporter.stop()
