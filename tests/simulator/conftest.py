from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.mgmt.monitor.aio import MonitorManagementClient

from snat_exporter.simulator import Scenario, Simulator, load_scenario
from snat_exporter.simulator.query import iso
from tests.conftest import FakeClock


class FakeCredential:
    """Just enough of an async TokenCredential for azure-core's bearer policy."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("simulated-token", int(time.time()) + 3600)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> FakeCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass


@pytest.fixture
async def make_sim(clock: FakeClock) -> AsyncIterator[Callable[..., Any]]:
    started: list[Simulator] = []

    async def make(scenario: str | Scenario | dict[str, Any] = "steady") -> Simulator:
        loaded = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        sim = Simulator(loaded, clock=clock)
        await sim.start("127.0.0.1", 0)
        started.append(sim)
        return sim

    yield make
    for sim in started:
        await sim.stop()


@pytest.fixture
async def monitor() -> AsyncIterator[Callable[[Simulator], MonitorManagementClient]]:
    clients: list[MonitorManagementClient] = []

    def make(sim: Simulator) -> MonitorManagementClient:
        # retry_total=0: a test sees exactly what Azure answered, as the exporter configures its client.
        client = MonitorManagementClient(
            FakeCredential(),
            sim.scenario.subscription_id,
            base_url=sim.url,
            retry_total=0,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def timespan(clock: FakeClock, minutes: int = 10) -> str:
    return f"{iso(clock() - minutes * 60)}/{iso(clock())}"


def with_headers(pipeline_response: Any, deserialized: Any, _: Any) -> tuple[Any, Any]:
    return deserialized, pipeline_response.http_response.headers


def error_code(err: HttpResponseError) -> str:
    assert err.error is not None, "the error body was not parsed as an ARM error"
    return str(err.error.code)


def error_message(err: HttpResponseError) -> str:
    assert err.error is not None, "the error body was not parsed as an ARM error"
    return str(err.error.message)


def header(err: HttpResponseError, name: str) -> str | None:
    assert err.response is not None
    return err.response.headers.get(name)  # type: ignore[attr-defined]
