"""Fixtures: the fake API server, and the collector pointed at it through a real kubeconfig file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client import CollectorRegistry

from snat_exporter.collectors.base import CollectorContext
from snat_exporter.collectors.kube.collector import KubeCollector
from snat_exporter.config import load_config
from snat_exporter.identity import NoIdentity
from snat_exporter.simulator.kubeapi import KubeApiServer
from snat_exporter.simulator.kubeobjects import write_kubeconfig
from tests.conftest import FakeClock

T = TypeVar("T")


def must(value: T | None) -> T:
    """The lookup result, failing the test when it is None."""
    assert value is not None
    return value


@pytest.fixture
async def kubeapi() -> AsyncIterator[KubeApiServer]:
    server = KubeApiServer()
    await server.start()
    yield server
    await server.stop()


class Harness:
    """Builds collectors against the fake server (closed at the end of the test)."""

    def __init__(self, server: KubeApiServer, tmp_path: Path, clock: FakeClock) -> None:
        self.server = server
        self.tmp_path = tmp_path
        self.clock = clock
        self.registry = CollectorRegistry()
        self.collectors: list[KubeCollector] = []

    def config(self, **settings: Any) -> Any:
        kubeconfig = write_kubeconfig(self.tmp_path / "kubeconfig", self.server.url or "http://127.0.0.1:1")
        overrides = {"kubernetes.enabled": "true", "kubernetes.kubeconfig": str(kubeconfig)}
        overrides.update({f"kubernetes.{k}": str(v) for k, v in settings.items()})
        return load_config(None, environ={}, overrides=overrides)

    def collector(self, environ: dict[str, str] | None = None, **settings: Any) -> KubeCollector:
        from snat_exporter.collectors.kube.backoff import Backoff

        config = self.config(**settings)
        context = CollectorContext(registry=self.registry, identity=NoIdentity(), clock=self.clock)
        collector = KubeCollector(
            config.kubernetes, context, environ=environ or {}, backoff=Backoff(initial=0.02, maximum=0.2)
        )
        self.collectors.append(collector)
        return collector

    def restarts(self, resource: str, reason: str) -> float:
        value = self.registry.get_sample_value(
            "snat_exporter_kube_watch_restarts_total", {"resource": resource, "reason": reason}
        )
        return value or 0.0


@pytest.fixture
async def harness(kubeapi: KubeApiServer, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Harness]:
    h = Harness(kubeapi, tmp_path, clock)
    yield h
    for collector in h.collectors:
        await collector.close()
