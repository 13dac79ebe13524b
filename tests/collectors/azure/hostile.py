"""Legal but hostile Azure answers: a real HTTP proxy between the exporter and the simulator that rewrites the JSON
of the metric answers (Metrics List and getBatch alike) while a rewrite is set. The exporter reads them through
the real Azure SDK, exactly as it would read such an answer from Azure.

A rewrite changes the body in place: :func:`metrics_of` gives every Metric object of either shape, and the helpers
below change what issue 15 found (a value, a timestamp, a dimension value) in the metric's data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
from aiohttp import web

Rewrite = Callable[[Any], bool]  # changes the body in place; True when it found what to change

_METRIC_PATH = re.compile(r"(?i)(/providers/microsoft\.insights/metrics|/metrics:getbatch)$")
# Hop-by-hop and body-describing headers: the proxy re-frames the body it forwards.
_DROP = {"host", "content-length", "transfer-encoding", "content-encoding", "connection"}


class HostileProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.rewrite: Rewrite | None = None
        self.times: int | None = None  # how many answers the rewrite changes (None: until cleared)
        self.rewritten = 0
        self.path: re.Pattern[str] | None = None
        self.requests: list[str] = []  # method, path?query and body of every metric request
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def hit(self, rewrite: Rewrite, times: int | None = 1, path: str | None = None) -> None:
        """Rewrite the next ``times`` metric answers, or with ``path`` (a regex) the ARM answers it matches."""
        self.rewrite, self.times, self.rewritten = rewrite, times, 0
        self.path = None if path is None else re.compile(path, re.IGNORECASE)

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._session = aiohttp.ClientSession(auto_decompress=True)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        body = await request.read()
        metric = bool(_METRIC_PATH.search(request.path))
        if metric:
            self.requests.append(f"{request.method} {request.path_qs} {body.decode(errors='replace')}")
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body or None
        ) as upstream:
            data = await upstream.read()
            out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _DROP}
            status = upstream.status
        wanted = metric if self.path is None else bool(self.path.search(request.path))
        if wanted and status == 200 and self.rewrite is not None:
            doc = json.loads(data)
            if self.rewrite(doc):
                data = json.dumps(doc).encode()  # ensure_ascii: a lone surrogate travels as the escape \ud800
                self.rewritten += 1
                if self.times is not None and self.rewritten >= self.times:
                    self.rewrite = None
        return web.Response(status=status, body=data, headers=out_headers)


def metrics_of(doc: Any) -> Iterator[dict[str, Any]]:
    """Every Metric object of a Metrics List answer ({"value": [...]}) or a getBatch one ({"values": [...]})."""
    if "values" in doc:
        for item in doc["values"]:
            yield from item.get("value") or ()
    else:
        yield from doc.get("value") or ()


def named(doc: Any, name: str) -> Iterator[dict[str, Any]]:
    return (m for m in metrics_of(doc) if m["name"]["value"].lower() == name.lower())


def set_values(name: str, field: str, value: Any, *, series: int | None = None, newest_only: bool = False) -> Rewrite:
    """Every valued point of metric ``name`` (of series index ``series`` only, if given; of its newest valued
    minute only, if ``newest_only``) gets ``value`` in ``field``."""

    def rewrite(doc: Any) -> bool:
        changed = False
        for metric in named(doc, name):
            for i, ts in enumerate(metric.get("timeseries") or ()):
                if series is not None and i != series:
                    continue
                valued = [p for p in ts.get("data") or () if field in p]
                for p in valued[-1:] if newest_only else valued:
                    p[field] = value
                    changed = True
        return changed

    return rewrite


def set_timestamps(name: str, stamp: str) -> Rewrite:
    """The newest valued minute of every series of metric ``name`` is moved to ``stamp``."""

    def rewrite(doc: Any) -> bool:
        changed = False
        for metric in named(doc, name):
            for ts in metric.get("timeseries") or ():
                valued = [p for p in ts.get("data") or () if len(p) > 1]
                if valued:
                    valued[-1]["timeStamp"] = stamp
                    changed = True
        return changed

    return rewrite


def set_dimension(name: str, dimension: str, value: str, *, series: int = 0) -> Rewrite:
    """Dimension ``dimension`` of series index ``series`` of metric ``name`` holds ``value``."""

    def rewrite(doc: Any) -> bool:
        changed = False
        for metric in named(doc, name):
            timeseries = metric.get("timeseries") or ()
            if len(timeseries) > series:
                for md in timeseries[series].get("metadatavalues") or ():
                    if md["name"]["value"].lower() == dimension.lower():
                        md["value"] = value
                        changed = True
        return changed

    return rewrite
