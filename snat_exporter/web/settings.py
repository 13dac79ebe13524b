"""Settings of the HTTP server (section ``http``): limits that keep hostile or broken clients from starving a scrape,
and the cache of Kubernetes authentication answers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from snat_exporter.settings import parse_int, setting

AUTH_CHOICES = ("none", "kubernetes")


@dataclass(frozen=True)
class HttpConfig:
    header_timeout: float = setting(
        10.0,
        "A new connection must complete its TLS handshake and send a whole request header within this time, or it "
        "is closed (a client that connects and says nothing holds a file descriptor).",
    )
    idle_timeout: float = setting(
        120.0,
        "A keep-alive connection with no request for this long is closed. Above the longest scrape interval, so "
        "Prometheus keeps reusing its connection.",
    )
    max_connections: int = setting(
        256,
        "Open connections at most. At the cap a new connection closes the one idle for longest (or is refused when "
        "none is idle), so idle clients cannot lock a scraper out. Lowered at start-up to fit the file descriptor "
        "limit (RLIMIT_NOFILE) with room for the collectors.",
        parse=parse_int(1),
    )
    max_scrapes: int = setting(
        40,
        "Concurrent /metrics requests at most (like node_exporter's --web.max-requests); more are answered 503.",
        parse=parse_int(1),
    )
    auth_cache_ttl: float = setting(
        60.0,
        "With auth: kubernetes, how long an answer for a token (allowed or denied) is reused before it is asked "
        "again: one TokenReview and one SubjectAccessReview per token and path per period.",
    )
    auth_cache_size: int = setting(
        1024, "With auth: kubernetes, answers kept at most (least recently used dropped first).", parse=parse_int(1)
    )
    auth_timeout: float = setting(
        5.0, "With auth: kubernetes, deadline of one review request to the API server (the request then gets 503)."
    )

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.header_timeout > self.idle_timeout:
            yield "header_timeout", f"longer than idle_timeout ({self.idle_timeout:g}s)"
