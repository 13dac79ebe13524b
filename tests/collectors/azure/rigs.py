"""An exporter with only the Azure collector against its own simulator, for the batch and shard tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from snat_exporter.collectors.azure.collector import AzureCollector
from snat_exporter.config import load_config
from snat_exporter.server import Exporter
from snat_exporter.simulator import Simulator, exporter_settings, load_scenario
from tests.conftest import FakeClock

SUB = "3c0f6b8e-1d2a-4c5b-9e7f-8a9b0c1d2e3f"
Sample = tuple[str, tuple[tuple[str, str], ...], float]


def estate(lbs: int = 7, nats: int = 3, **extra: Any) -> dict[str, Any]:
    """A cluster (LB `kubernetes`, 4 nodes) plus `lbs` other load balancers (3 backends each) and `nats` NAT
    gateways in the node resource group, all watched as explicit resources."""
    return {
        "subscription_id": SUB,
        "region": "northeurope",
        "cluster": {"resource_group": "rg-big", "name": "aks-big", "agent_pools": [{"name": "pool", "count": 4}]},
        "load_balancers": [{"name": "kubernetes"}, {"name": "lb-{i}", "count": lbs, "backends": 3}],
        "nat_gateways": [{"name": "nat-{i}", "count": nats, "public_ips": 2}] if nats else [],
        **extra,
    }


@dataclass
class Rig:
    exporter: Exporter
    sim: Simulator
    url: str
    session: aiohttp.ClientSession
    clock: FakeClock

    async def run(self) -> bool:
        return await self.exporter.runners["azure"].run_once()

    async def samples(self, prefix: str = "") -> list[Sample]:
        async with self.session.get(self.url + "/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
        out = []
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name.startswith(prefix):
                    out.append((s.name, tuple(sorted(s.labels.items())), float(s.value)))
        return sorted(out)

    async def value(self, name: str, **match: str) -> float:
        found = [s for s in await self.samples(name) if s[0] == name and all((k, v) in s[1] for k, v in match.items())]
        assert len(found) == 1, f"{name}{match}: {found}"
        return found[0][2]

    def requests(self, operation: str) -> list[Any]:
        return [r for r in self.sim.requests if r.operation == operation]

    @property
    def collector(self) -> AzureCollector:
        return self.exporter.collectors[0]  # type: ignore[return-value]


@pytest.fixture
async def make_rig(clock: FakeClock) -> AsyncIterator[Callable[..., Any]]:
    made: list[Rig] = []

    async def make(data: dict[str, Any], *, explicit: bool = True, **overrides: str) -> Rig:
        scenario = load_scenario(data)
        # Every rig made in one test starts at the same moment, so their simulators serve identical data.
        sim = Simulator(scenario, clock=clock, start_time=1_800_000_000.0)
        sim_url = await sim.start("127.0.0.1", 0)
        resources = [lb.id for lb in scenario.load_balancers if lb.name != "kubernetes"]
        resources += [nat.id for nat in scenario.nat_gateways]
        settings = {
            **exporter_settings(scenario, sim_url),
            "azure.timeout": "5s",
            "azure.retries": "1",
            **({"azure.resources": ",".join(resources)} if explicit and resources else {}),
            # "{sim_host}" in a value: the simulator's host:port (an endpoint pointing at it, or near it)
            **{f"azure.{k}": v.replace("{sim_host}", sim_url.removeprefix("http://")) for k, v in overrides.items()},
        }
        exporter = Exporter(load_config(None, environ={}, overrides=settings), clock=clock)
        url = await exporter.start(host="127.0.0.1", port=0, background=False)
        rig = Rig(exporter, sim, url, aiohttp.ClientSession(), clock)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        await rig.session.close()
        await rig.exporter.stop()
        await rig.sim.stop()
