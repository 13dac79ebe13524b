"""``auth: kubernetes``: who may read /metrics is decided by the cluster, as the kubelet decides for its own.

A request carries ``Authorization: Bearer <token>``. A TokenReview (authentication.k8s.io/v1) says whose token it
is; a SubjectAccessReview (authorization.k8s.io/v1) says whether that user may ``get`` the non-resource URL of the
request (``/metrics``; any other path is asked as ``/``), the permission Prometheus's ClusterRole already holds for
the kubelet's metrics. 401 without a token or with one the API server does not accept, 403 when not allowed.

Answers, allowed and denied, are cached per token and path for ``http.auth_cache_ttl`` (bounded by
``http.auth_cache_size``, least recently used dropped first), and concurrent requests with the same token share one
review: a Prometheus scraping every 15 s costs two reviews a minute, not eight. Tokens are kept only as a SHA-256.

When the API server cannot be asked (unreachable, timeout, 5xx, or our own service account may not create
reviews), the request is answered **503 with Retry-After**, never let in unchecked and never cached: it is the
exporter that cannot decide, not the client that is wrong, so neither 401 nor 403 would be true, and Prometheus
shows the 503 on the target. Answers cached before the outage keep being used until they expire.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client import (
    ApiClient,
    AuthenticationV1Api,
    AuthorizationV1Api,
    V1NonResourceAttributes,
    V1SubjectAccessReview,
    V1SubjectAccessReviewSpec,
    V1TokenReview,
    V1TokenReviewSpec,
)
from prometheus_client.registry import CollectorRegistry

from snat_exporter.web.metrics import HTTP_AUTH_REVIEWS
from snat_exporter.web.settings import HttpConfig
from snat_exporter.web.verdict import Verdict

log = logging.getLogger("snat_exporter.web.kubeauth")

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="snat-exporter"'}
MAX_TOKEN_LENGTH = 16 * 1024  # service account JWTs are about 1 KiB; anything far longer is not worth a review
MAX_CONCURRENT_REVIEWS = 4  # a flood of made-up tokens must not become a flood on the API server
_TOKEN = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what a JWT (and any bearer token of RFC 6750) is made of


class ReviewUnavailable(Exception):
    """The API server could not answer; ``reason`` is short and has no secret in it."""

    def __init__(self, kind: str, reason: str):
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


def bearer_token(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (scheme case-insensitive), or None when there is none."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    if not _TOKEN.fullmatch(token):
        return None
    return token


def nonresource_path(path: str) -> str:
    # Bounded: an attacker cannot make a review (and a cache entry) per made-up path.
    return "/metrics" if path == "/metrics" else "/"


class ApiReviewer:
    """Sends the two reviews through the official client (blocking: called in a thread)."""

    def __init__(self, api_client: Callable[[], ApiClient], timeout: float, counter: Any = None):
        self._factory = api_client
        self._api: ApiClient | None = None
        self.timeout = timeout
        self.counter = counter  # snat_exporter_http_auth_reviews_total, set by KubernetesAuth

    def _client(self) -> ApiClient:
        if self._api is None:
            try:
                self._api = self._factory()
            except Exception as e:  # kubeconfig or service account unreadable: nothing can be checked
                raise ReviewUnavailable("tokenreview", f"no API client: {type(e).__name__}: {e}") from None
        return self._api

    def _call(self, kind: str, fn: Callable[[], Any]) -> Any:
        try:
            result = fn()
        except Exception as e:
            if self.counter is not None:
                self.counter.labels(kind, "error").inc()
            status = getattr(e, "status", None)
            reason = f"HTTP {status}" if status else type(e).__name__
            if status in (401, 403):
                reason += " (may the exporter's service account create tokenreviews and subjectaccessreviews?)"
            raise ReviewUnavailable(kind, reason) from None
        if self.counter is not None:
            self.counter.labels(kind, "ok").inc()
        return result

    def review(self, token: str, path: str) -> Verdict:
        api = self._client()
        timeout = self.timeout
        review = self._call(
            "tokenreview",
            lambda: AuthenticationV1Api(api).create_token_review(
                V1TokenReview(
                    api_version="authentication.k8s.io/v1", kind="TokenReview", spec=V1TokenReviewSpec(token=token)
                ),
                _request_timeout=timeout,
            ),
        )
        status = review.status
        if status is None or not status.authenticated or status.user is None or not status.user.username:
            return Verdict.UNAUTHENTICATED
        user = status.user
        access = self._call(
            "subjectaccessreview",
            lambda: AuthorizationV1Api(api).create_subject_access_review(
                V1SubjectAccessReview(
                    api_version="authorization.k8s.io/v1",
                    kind="SubjectAccessReview",
                    spec=V1SubjectAccessReviewSpec(
                        user=user.username,
                        uid=user.uid,
                        groups=user.groups,
                        extra=user.extra,
                        non_resource_attributes=V1NonResourceAttributes(path=path, verb="get"),
                    ),
                ),
                _request_timeout=timeout,
            ),
        )
        allowed = access.status is not None and access.status.allowed and not access.status.denied
        return Verdict.ALLOWED if allowed else Verdict.FORBIDDEN

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None


class KubernetesAuth:
    challenge = CHALLENGE

    def __init__(
        self,
        reviewer: ApiReviewer,
        http: HttpConfig,
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.reviewer = reviewer
        reviewer.counter = HTTP_AUTH_REVIEWS.counter(registry)
        self.ttl = http.auth_cache_ttl
        self.size = http.auth_cache_size
        self.clock = clock
        self._cache: OrderedDict[tuple[bytes, str], tuple[Verdict, float]] = OrderedDict()
        self._pending: dict[tuple[bytes, str], asyncio.Future[Verdict]] = {}
        self._reviews = asyncio.Semaphore(MAX_CONCURRENT_REVIEWS)
        # Its own threads: a review must not queue behind a conntrack dump or a bcrypt in the default pool.
        self._pool = concurrent.futures.ThreadPoolExecutor(MAX_CONCURRENT_REVIEWS, thread_name_prefix="auth-review")
        self._failing = False

    async def verdict(self, path: str, headers: Mapping[str, str]) -> Verdict:
        token = bearer_token(headers.get("Authorization"))
        if token is None:
            return Verdict.UNAUTHENTICATED
        key = (hashlib.sha256(token.encode()).digest(), nonresource_path(path))
        cached = self._cache.get(key)
        now = self.clock()
        if cached is not None:
            if cached[1] > now:
                self._cache.move_to_end(key)
                return cached[0]
            del self._cache[key]
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            verdict = await self._review(token, key[1])
            future.set_result(verdict)
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # retrieved: waiters get it, an unwaited one is not reported
            raise
        finally:
            del self._pending[key]
        if verdict is not Verdict.UNAVAILABLE:
            self._cache[key] = (verdict, self.clock() + self.ttl)
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return verdict

    async def _review(self, token: str, path: str) -> Verdict:
        async with self._reviews:
            try:
                loop = asyncio.get_running_loop()
                verdict = await loop.run_in_executor(self._pool, self.reviewer.review, token, path)
            except ReviewUnavailable as e:
                if not self._failing:  # logged when it starts failing, not per request
                    log.warning("cannot check a token with the API server: answering 503", extra={"error": str(e)})
                self._failing = True
                return Verdict.UNAVAILABLE
        if self._failing:
            log.info("the API server answers token reviews again")
            self._failing = False
        return verdict

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.reviewer.close()
