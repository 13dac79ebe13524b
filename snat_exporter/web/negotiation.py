"""Content negotiation of /metrics: which format and which encoding a scraper asked for, q-values included.

RFC 9110 section 12.4.2: ``q=0`` means "not acceptable". Prometheus sends ``Accept:
application/openmetrics-text;version=1.0.0;q=0.5,...,text/plain;version=0.0.4;q=0.3,*/*;q=0.2`` and ``Accept-Encoding:
gzip``; a client that writes ``gzip;q=0`` or ``application/openmetrics-text;q=0`` is saying no, and gets the plain
alternative. Parsing stays forgiving: a malformed q is read as 1 for a listed item (what most servers do), so a
client with a sloppy header still gets an answer.
"""

from __future__ import annotations

OPENMETRICS = "application/openmetrics-text"


def _items(header: str) -> list[tuple[str, dict[str, str]]]:
    out = []
    for part in header.split(","):
        token, *params = part.split(";")
        name = token.strip().lower()
        if not name:
            continue
        values = {}
        for param in params:
            key, _, value = param.partition("=")
            values[key.strip().lower()] = value.strip().strip('"')
        out.append((name, values))
    return out


def _q(params: dict[str, str]) -> float:
    try:
        q = float(params.get("q", "1"))
    except ValueError:
        return 1.0
    return q if 0.0 <= q <= 1.0 else 1.0


def wants_openmetrics(accept: str) -> bool:
    """OpenMetrics when the client lists it with a q above 0 and at least as high as every text alternative it
    lists (``text/plain``, ``*/*``): the client's preference decides, and a tie goes to the richer format."""
    openmetrics = 0.0
    text = 0.0
    for name, params in _items(accept):
        q = _q(params)
        if name == OPENMETRICS:
            openmetrics = max(openmetrics, q)
        elif name in ("text/plain", "text/*", "*/*"):
            text = max(text, q)
    return openmetrics > 0.0 and openmetrics >= text


def wants_gzip(accept_encoding: str) -> bool:
    """gzip when listed (or covered by ``*``) with a q above 0; an explicit ``gzip;q=0`` wins over ``*``."""
    star: float | None = None
    for name, params in _items(accept_encoding):
        if name in ("gzip", "x-gzip"):
            return _q(params) > 0.0
        if name == "*":
            star = _q(params)
    return star is not None and star > 0.0
