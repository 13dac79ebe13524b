"""Accepting connections so that no client can keep a scraper out: a cap, timeouts, and quiet accept failures.

aiohttp holds a connection that never sends a request, or sends half a header, until its keep-alive timer; under
the file descriptor limit a few hundred of them starve the collectors and the scrapes (``Too many open files``),
and asyncio logs every failed ``accept()``. So the listening socket is served here, with aiohttp's protocol behind
a thin wrapper per connection:

- **header timeout**: a connection must finish its TLS handshake and send one whole request header within
  ``http.header_timeout`` of being accepted; later, aiohttp's keep-alive timer (``http.idle_timeout``) closes it
  when no complete request arrives.
- **max connections**: the cap is counted from ``accept()``, TLS handshakes included. At the cap a new connection
  closes the one that has been idle longest (no request in flight), so idle and half-open connections cannot lock
  a scraper out; only when every connection is busy is the new one refused. The cap is lowered to fit the process's
  file descriptor limit, with room left for the collectors' sockets and files.
- **TLS** is started per connection (``loop.start_tls``) with the context of that moment, which follows
  certificate rotation (``tls.RotatingTLS``), and ``client_allowed_sans`` is checked before any byte is read.
- **accept failures** (EMFILE and friends): asyncio already pauses accepting for a second; the error is counted and
  logged at most once a minute instead of once per attempt.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge

from snat_exporter.web.settings import HttpConfig
from snat_exporter.web.tls import RotatingTLS

log = logging.getLogger("snat_exporter.web")

# Descriptors kept for everything but client connections: the collectors' sockets (Azure, API server watches,
# netlink), the config and TLS files read at run time, the thread pool's work.
FD_RESERVE = 128
ACCEPT_LOG_INTERVAL = 60.0
_ACCEPT_MESSAGE = "socket.accept() out of system resource"


def fitted_max_connections(wanted: int) -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - FD_RESERVE))


class _Connection(asyncio.Protocol):
    """One client connection: counts it from accept() on and forwards everything to the aiohttp protocol."""

    def __init__(self, listener: Listener):
        self.listener = listener
        self.app: Any = listener.protocol_factory()  # aiohttp's RequestHandler
        self.transport: asyncio.BaseTransport | None = None
        self.opened = self.last_active = time.monotonic()
        self.requests = 0
        self.in_flight = 0
        self.ready = False
        self.closed = False
        self._deadline: asyncio.TimerHandle | None = None
        self._tls_task: asyncio.Task[None] | None = None

    # asyncio.Protocol -----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        listener = self.listener
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(listener.http.header_timeout, self._header_deadline)
        listener.opened(self)
        if self.closed:
            return
        if listener.tls is None:
            self._ready(transport)
            return
        # Nothing is read until the TLS layer is in place: start_tls takes over the transport.
        transport.pause_reading()  # type: ignore[attr-defined]
        self._tls_task = loop.create_task(self._start_tls(transport, listener.tls))

    def data_received(self, data: bytes) -> None:
        self.app.data_received(data)

    def eof_received(self) -> bool | None:
        return self.app.eof_received()

    def pause_writing(self) -> None:
        self.app.pause_writing()

    def resume_writing(self) -> None:
        self.app.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()
        if self.ready:
            self.app.connection_lost(exc)

    # -----------------------------------------------------------------------------------------------------
    async def _start_tls(self, raw: asyncio.BaseTransport, tls: RotatingTLS) -> None:
        loop = asyncio.get_running_loop()
        try:
            secured = await loop.start_tls(
                raw,  # type: ignore[arg-type]
                self,
                tls.context(),
                server_side=True,
                ssl_handshake_timeout=self.listener.http.header_timeout,
            )
        except (OSError, ssl.SSLError, ConnectionError, TimeoutError, RuntimeError):
            # Bad client, wrong CA, plain http to the TLS port, timeout: asyncio closed it and logs at debug only.
            if not self.closed:
                self.listener.count_closed("tls_handshake")
            raw.abort()  # type: ignore[attr-defined]
            self._gone()
            return
        if secured is None or self.closed:
            self._gone()
            return
        if not tls.peer_allowed(secured.get_extra_info("peercert")):
            self.listener.count_closed("client_san")
            secured.abort()
            self._gone()
            return
        self._ready(secured)

    def _ready(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.ready = True
        self.listener.by_protocol[self.app] = self
        self.app.connection_made(transport)

    def _header_deadline(self) -> None:
        self._deadline = None
        if self.requests == 0 and self.in_flight == 0 and not self.closed:
            self.listener.count_closed("header_timeout")
            self.abort()

    def abort(self) -> None:
        """Close at once, without a TLS close_notify exchange: the descriptor is freed now."""
        if self.transport is not None:
            self.transport.abort()  # type: ignore[attr-defined]
        self._gone()

    def _gone(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.listener.closed(self)


class Listener:
    """The listening socket and its connections."""

    def __init__(
        self,
        protocol_factory: Callable[[], Any],
        http: HttpConfig,
        *,
        tls: RotatingTLS | None,
        closed_counter: Counter,
        accept_errors: Counter,
        open_gauge: Gauge,
    ):
        self.protocol_factory = protocol_factory
        self.http = http
        self.tls = tls
        self.max_connections = fitted_max_connections(http.max_connections)
        if self.max_connections < http.max_connections:
            log.info(
                "http.max_connections lowered to fit the file descriptor limit",
                extra={"configured": http.max_connections, "used": self.max_connections},
            )
        self.connections: dict[_Connection, None] = {}  # insertion-ordered set
        self.by_protocol: dict[Any, _Connection] = {}
        self._closed_counter = closed_counter
        self._accept_errors = accept_errors
        open_gauge.labels("open").set_function(lambda: len(self.connections))
        open_gauge.labels("max").set(self.max_connections)
        self._server: asyncio.Server | None = None
        self._previous_handler: Any = None
        self._accept_logged_at = -ACCEPT_LOG_INTERVAL
        self._accept_unlogged = 0

    async def start(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), host, port, family=socket.AF_UNSPEC, reuse_address=True
        )
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._exception_handler)
        address = self._server.sockets[0].getsockname()
        return str(address[0]), int(address[1])

    async def close(self) -> None:
        """Stop accepting; the connections are closed by aiohttp's shutdown (or here, if still in a handshake)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for connection in list(self.connections):
            if not connection.ready:
                connection.abort()
        loop = asyncio.get_running_loop()
        if loop.get_exception_handler() == self._exception_handler:
            loop.set_exception_handler(self._previous_handler)

    # bookkeeping, called by the connections ------------------------------------------------------------
    def opened(self, connection: _Connection) -> None:
        self.connections[connection] = None
        if len(self.connections) <= self.max_connections:
            return
        idle = [c for c in self.connections if c.in_flight == 0 and c is not connection]
        if idle:
            self.count_closed("evicted")
            min(idle, key=lambda c: c.last_active).abort()
        else:
            self.count_closed("refused")
            connection.abort()

    def closed(self, connection: _Connection) -> None:
        self.connections.pop(connection, None)
        self.by_protocol.pop(connection.app, None)

    def count_closed(self, reason: str) -> None:
        self._closed_counter.labels(reason).inc()

    def request_started(self, protocol: Any) -> _Connection | None:
        connection = self.by_protocol.get(protocol)
        if connection is not None:
            connection.requests += 1
            connection.in_flight += 1
        return connection

    @staticmethod
    def request_done(connection: _Connection | None) -> None:
        if connection is not None:
            connection.in_flight -= 1
            connection.last_active = time.monotonic()

    # -----------------------------------------------------------------------------------------------------
    def _exception_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith(_ACCEPT_MESSAGE):
            self._accept_errors.inc()
            self._accept_unlogged += 1
            now = time.monotonic()
            if now - self._accept_logged_at >= ACCEPT_LOG_INTERVAL:
                log.warning(
                    "cannot accept connections, pausing accept (logged at most once a minute)",
                    extra={"error": str(context.get("exception")), "failures": self._accept_unlogged},
                )
                self._accept_logged_at = now
                self._accept_unlogged = 0
            return
        if self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)
