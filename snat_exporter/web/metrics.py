"""Self-metrics of the HTTP front door: what it refused, closed and checked, so that a locked door that also locks
out Prometheus shows up as a number, not only as a missing target."""

from __future__ import annotations

from snat_exporter.catalogue import MetricSpec

HTTP_AUTH = MetricSpec(
    "snat_exporter_http_auth_total",
    "counter",
    "Requests checked by authentication, by method (basic, kubernetes) and outcome: allowed, unauthenticated (401), "
    "forbidden (403), unavailable (503: the API server could not be asked).",
    ("method", "outcome"),
)
HTTP_AUTH_REVIEWS = MetricSpec(
    "snat_exporter_http_auth_reviews_total",
    "counter",
    "Reviews sent to the Kubernetes API server (kind: tokenreview, subjectaccessreview) by result (ok, error); "
    "answers are cached, so this grows with distinct tokens, not with scrapes.",
    ("kind", "result"),
)
HTTP_CONNECTIONS_CLOSED = MetricSpec(
    "snat_exporter_http_connections_closed_total",
    "counter",
    "Connections the exporter closed itself, by reason: header_timeout (no complete request in time), evicted (the "
    "longest idle one, to make room at max_connections), refused (at max_connections with none idle), tls_handshake "
    "(handshake failed), client_san (client certificate not in client_allowed_sans), bad_request (a malformed request, "
    "answered 400).",
    ("reason",),
)
HTTP_OPEN_CONNECTIONS = MetricSpec(
    "snat_exporter_http_open_connections",
    "gauge",
    "Connections open now, and the cap (http.max_connections after fitting the file descriptor limit).",
    ("state",),
)
HTTP_SCRAPES_REJECTED = MetricSpec(
    "snat_exporter_http_scrapes_rejected_total",
    "counter",
    "Scrapes answered 503 because http.max_scrapes were already in flight.",
)
HTTP_ACCEPT_ERRORS = MetricSpec(
    "snat_exporter_http_accept_errors_total",
    "counter",
    "Failures to accept a connection (out of file descriptors or memory); accepting pauses for a second each time.",
)
HTTP_TLS_RELOADS = MetricSpec(
    "snat_exporter_http_tls_reloads_total",
    "counter",
    "Reloads of the TLS certificate, key and client CA after they changed on disk, by result (ok, error: the "
    "previous files keep serving).",
    ("result",),
)

SPECS = (
    HTTP_AUTH,
    HTTP_AUTH_REVIEWS,
    HTTP_CONNECTIONS_CLOSED,
    HTTP_OPEN_CONNECTIONS,
    HTTP_SCRAPES_REJECTED,
    HTTP_ACCEPT_ERRORS,
    HTTP_TLS_RELOADS,
)
