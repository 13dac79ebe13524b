"""auth: kubernetes through real HTTP: the exporter asks the (fake) API server with the official client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snat_exporter.config import load_config
from snat_exporter.server import Exporter
from snat_exporter.simulator.kubeapi import KubeApiServer
from snat_exporter.simulator.kubeauth import User
from snat_exporter.simulator.kubeobjects import write_kubeconfig
from snat_exporter.web.kubeauth import KubernetesAuth
from snat_exporter.web.verdict import Verdict
from tests.conftest import FakeClock

PROMETHEUS = User.service_account("monitoring", "prometheus")
STRANGER = User.service_account("default", "stranger")


@dataclass
class Running:
    api: KubeApiServer
    exporter: Exporter
    url: str
    clock: FakeClock

    @property
    def auth(self) -> KubernetesAuth:
        auth = self.exporter.door.authenticators["kubernetes"]
        assert isinstance(auth, KubernetesAuth)
        return auth

    def counted(self, outcome: str) -> float:
        value = self.exporter.registry.get_sample_value(
            "snat_exporter_http_auth_total", {"method": "kubernetes", "outcome": outcome}
        )
        return value or 0.0


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    api = KubeApiServer()
    await api.start()
    api.auth.add_token("prometheus-token", PROMETHEUS)
    api.auth.add_token("stranger-token", STRANGER)
    api.auth.grant(PROMETHEUS.username)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url)
    config = load_config(
        None,
        environ={},
        overrides={"auth": "kubernetes", "kubernetes.kubeconfig": str(kubeconfig), "http.auth_cache_ttl": "60s"},
    )
    exporter = Exporter(config, collectors=[])
    url = await exporter.start(host="127.0.0.1", port=0, background=False)
    clock = FakeClock(1000.0)
    auth = exporter.door.authenticators["kubernetes"]
    assert isinstance(auth, KubernetesAuth)
    auth.clock = clock
    try:
        yield Running(api, exporter, url, clock)
    finally:
        await exporter.stop()
        await api.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, aiohttp.typedefs.LooseHeaders, str]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers or {}) as resp:
        return resp.status, dict(resp.headers), await resp.text()


async def test_the_four_answers(running: Running) -> None:
    status, headers, _ = await get(running.url + "/metrics")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")  # type: ignore[index]
    assert (await get(running.url + "/metrics", bearer("made-up")))[0] == 401
    assert (await get(running.url + "/metrics", bearer("stranger-token")))[0] == 403
    status, _, body = await get(running.url + "/metrics", bearer("prometheus-token"))
    assert status == 200 and "snat_exporter_build_info" in body
    # The probes of the kubelet carry no token.
    assert (await get(running.url + "/healthz"))[0] == 200
    assert (await get(running.url + "/readyz"))[0] == 200
    # The landing page needs `get` on "/", which Prometheus's role does not hold.
    assert (await get(running.url + "/", bearer("prometheus-token")))[0] == 403
    assert {o: running.counted(o) for o in ("allowed", "unauthenticated", "forbidden", "unavailable")} == {
        "allowed": 1,
        "unauthenticated": 2,
        "forbidden": 2,
        "unavailable": 0,
    }


async def test_reviews_carry_the_user_and_the_non_resource_url(running: Running) -> None:
    assert (await get(running.url + "/metrics", bearer("prometheus-token")))[0] == 200
    token_review, access_review = running.api.auth.requests
    assert token_review["apiVersion"] == "authentication.k8s.io/v1" and token_review["kind"] == "TokenReview"
    assert token_review["spec"]["token"] == "prometheus-token"
    assert access_review["apiVersion"] == "authorization.k8s.io/v1"
    spec = access_review["spec"]
    assert spec["user"] == PROMETHEUS.username and spec["uid"] == PROMETHEUS.uid
    assert spec["groups"] == list(PROMETHEUS.groups) and spec["extra"] == PROMETHEUS.extra
    assert spec["nonResourceAttributes"] == {"path": "/metrics", "verb": "get"}
    assert "resourceAttributes" not in spec


async def test_one_review_per_token_per_ttl(running: Running) -> None:
    reviews = running.api.auth.reviews
    # A burst of concurrent scrapes with one token shares one review.
    statuses = await asyncio.gather(*(get(running.url + "/metrics", bearer("prometheus-token")) for _ in range(10)))
    assert [s[0] for s in statuses] == [200] * 10
    for _ in range(3):
        assert (await get(running.url + "/metrics", bearer("stranger-token")))[0] == 403  # denials are cached too
    assert reviews == {"tokenreview": 2, "subjectaccessreview": 2}
    running.clock.advance(59)
    assert (await get(running.url + "/metrics", bearer("prometheus-token")))[0] == 200
    assert reviews["tokenreview"] == 2
    running.clock.advance(2)
    assert (await get(running.url + "/metrics", bearer("prometheus-token")))[0] == 200
    assert reviews == {"tokenreview": 3, "subjectaccessreview": 3}


async def test_revoked_permission_is_denied_after_the_ttl(running: Running) -> None:
    assert (await get(running.url + "/metrics", bearer("prometheus-token")))[0] == 200
    running.api.auth.grants.clear()
    running.clock.advance(61)
    assert (await get(running.url + "/metrics", bearer("prometheus-token")))[0] == 403


async def test_api_server_down_never_lets_a_request_in(running: Running) -> None:
    assert (await get(running.url + "/metrics", bearer("prometheus-token")))[0] == 200
    await running.api.stop()
    # A new token cannot be checked: 503 (the exporter cannot decide), not 401 or 403, and never 200.
    status, headers, body = await get(running.url + "/metrics", bearer("stranger-token"))
    assert status == 503 and headers["Retry-After"] == "5" and "snat_" not in body  # type: ignore[index]
    # An answer cached before the outage stands until it expires; then the same 503.
    assert (await get(running.url + "/metrics", bearer("prometheus-token")))[0] == 200
    running.clock.advance(61)
    assert (await get(running.url + "/metrics", bearer("prometheus-token")))[0] == 503
    assert running.counted("unavailable") == 2
    # Failures are not cached: the API server back, the next request is checked and let in.
    await running.api.start()
    assert (await get(running.url + "/metrics", bearer("prometheus-token")))[0] == 200


@pytest.mark.parametrize("status", [500, 403, 401, 429])
async def test_review_errors_answer_503(running: Running, status: int) -> None:
    """403/401 on the review itself means the exporter's own service account lacks RBAC: still not the client's fault."""
    running.api.auth.fail(status)
    assert (await get(running.url + "/metrics", bearer("prometheus-token")))[0] == 503
    running.api.auth.fail(None)
    assert (await get(running.url + "/metrics", bearer("prometheus-token")))[0] == 200


# An Authorization header is attacker-controlled text. Whatever it holds, only the exact registered token is let
# in, nothing raises, and a header that cannot hold a token costs no review.
authorization = st.one_of(
    st.text(max_size=200),
    st.builds(lambda s, t: f"{s} {t}", st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "Bearer:", ""]), st.text(max_size=100)),
    st.sampled_from(
        ["Bearer", "Bearer ", "Bearer  prometheus-token x", "Bearer prometheus-token\x00", "Bearer prometheus-tokeN",
         "Bearer " + "a" * 20000, "Bearer prometheus-token,Bearer x", "Bearer\tprometheus-token", "Bearer prometheus-toke"]
    ),
)  # fmt: skip


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(header=authorization)
async def test_fuzz_authorization_header(running: Running, header: str) -> None:
    verdict = await running.auth.verdict("/metrics", {"Authorization": header})
    expected_allowed = (
        header.strip().partition(" ")[0].lower() == "bearer"
        and header.strip().partition(" ")[2].strip() == "prometheus-token"
    )
    assert (verdict is Verdict.ALLOWED) is expected_allowed, header
    assert verdict in (Verdict.ALLOWED, Verdict.UNAUTHENTICATED, Verdict.FORBIDDEN)


async def test_fuzzed_headers_through_http(running: Running) -> None:
    """The same shapes as real requests: never a 200, never a 500."""
    for header in [
        "Bearer",
        "Bearer ",
        "bearer prometheus-tokenx",
        "Basic cHJvbWV0aGV1czp4",
        "Bearer " + "é" * 10,
        "Bearer " + "a" * 8000,
        "Token prometheus-token",
    ]:
        async with (
            aiohttp.ClientSession() as s,
            s.get(running.url + "/metrics", headers={"Authorization": header}) as resp,
        ):
            assert resp.status == 401, header


async def test_the_cache_is_bounded_least_recently_used_first() -> None:
    from prometheus_client.registry import CollectorRegistry

    from snat_exporter.web.kubeauth import ApiReviewer
    from snat_exporter.web.settings import HttpConfig

    asked: list[str] = []

    class Reviewer(ApiReviewer):
        def review(self, token: str, path: str) -> Verdict:
            asked.append(token)
            return Verdict.ALLOWED

    auth = KubernetesAuth(
        Reviewer(lambda: None, 1.0),  # type: ignore[arg-type, return-value]
        HttpConfig(auth_cache_size=2),
        CollectorRegistry(),
        clock=FakeClock(0.0),
    )
    for token in ("a", "b", "a", "c", "a", "b"):
        assert await auth.verdict("/metrics", bearer(token)) is Verdict.ALLOWED
    # c pushed out b (a was used since); b is asked again, a never twice.
    assert asked == ["a", "b", "c", "b"]
