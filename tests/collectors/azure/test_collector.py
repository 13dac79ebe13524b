"""The Azure collector end to end: the real SDK over HTTP against the simulator, /metrics scraped over real HTTP.

A FakeClock is shared by the simulator and the exporter, so "a minute later" is one ``clock.advance(60)`` and a
``runner.run_once()``: no sleeps. Every rig test runs twice: per-resource Metrics List (``list``) and getBatch
(``batch``); a fault written for ``operation="metrics"`` hits the metric queries of the path under test.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from snat_exporter.config import load_config
from snat_exporter.identity import NodeInfo, PodInfo
from snat_exporter.runner import Runner
from snat_exporter.server import Exporter
from snat_exporter.simulator import Fault, Simulator, exporter_settings, load_scenario
from tests.conftest import FakeClock

Sample = tuple[str, dict[str, str], float]


class NodeTable:
    """The Identity a Kubernetes collector would give: InternalIP -> node."""

    def __init__(self, nodes: dict[str, str]):
        self.nodes = nodes

    def node_by_ip(self, ip: str) -> NodeInfo | None:
        name = self.nodes.get(ip)
        return NodeInfo(name) if name is not None else None

    def node_by_name(self, name: str) -> NodeInfo | None:
        return None

    def cilium_config(self) -> dict[str, str] | None:
        return None

    def pod_by_ip(self, ip: str) -> PodInfo | None:
        return None


PATHS = {"list": ("never", "metrics", "metrics_list"), "batch": ("always", "batch", "metrics_batch")}


@dataclass
class Rig:
    exporter: Exporter
    sim: Any
    scenario: Any
    url: str
    session: aiohttp.ClientSession
    clock: FakeClock
    path: str = "list"

    @property
    def runner(self) -> Runner:
        return self.exporter.runners["azure"]

    @property
    def operation(self) -> str:
        """The `operation` label of this path's metric requests."""
        return PATHS[self.path][2]

    def add_fault(self, fault: Fault) -> Fault:
        """A fault on the metric queries of the path under test (operation "metrics" is rewritten for batch)."""
        if fault.operation == "metrics":
            fault = dataclasses.replace(fault, operation=PATHS[self.path][1])
        return self.sim.add_fault(fault)

    async def text(self) -> str:
        async with self.session.get(self.url + "/metrics") as resp:
            assert resp.status == 200
            return await resp.text()

    async def scrape(self) -> list[Sample]:
        out = []
        for family in text_string_to_metric_families(await self.text()):
            for s in family.samples:
                out.append((s.name, dict(s.labels), float(s.value)))
        return out

    async def series(self, name: str, **match: str) -> list[Sample]:
        return [s for s in await self.scrape() if s[0] == name and all(s[1].get(k) == v for k, v in match.items())]

    async def value(self, name: str, **match: str) -> float:
        found = await self.series(name, **match)
        assert len(found) == 1, f"{name}{match}: {len(found)} series"
        return found[0][2]

    async def step(self, minutes: int = 1) -> bool:
        self.clock.advance(60 * minutes)
        return await self.runner.run_once()


async def start_rig(
    clock: FakeClock, scenario_name: str, *, identity: Any = None, **overrides: str
) -> tuple[Exporter, Any, Any]:
    scenario = load_scenario(scenario_name)
    sim = Simulator(scenario, clock=clock)
    sim_url = await sim.start("127.0.0.1", 0)
    settings = {
        **exporter_settings(scenario, sim_url),
        "azure.timeout": "5s",
        "azure.retries": "1",
        **{f"azure.{k}": v for k, v in overrides.items()},
    }
    exporter = Exporter(load_config(None, environ={}, overrides=settings), clock=clock)
    if identity is not None:
        exporter.collectors[0].context.identity = identity  # type: ignore[attr-defined]
    return exporter, sim, scenario


@pytest.fixture(params=sorted(PATHS))
def query_path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def rig_factory(clock: FakeClock, query_path: str) -> AsyncIterator[Any]:
    made: list[tuple[Exporter, Any, aiohttp.ClientSession]] = []

    async def make(scenario_name: str, *, identity: Any = None, **overrides: str) -> Rig:
        overrides.setdefault("batch", PATHS[query_path][0])
        exporter, sim, scenario = await start_rig(clock, scenario_name, identity=identity, **overrides)
        url = await exporter.start(host="127.0.0.1", port=0, background=False)
        session = aiohttp.ClientSession()
        made.append((exporter, sim, session))
        return Rig(exporter, sim, scenario, url, session, clock, query_path)

    yield make
    for exporter, sim, session in made:
        await session.close()
        await exporter.stop()
        await sim.stop()


def by_label(samples: list[Sample], label: str) -> dict[str, float]:
    return {s[1][label]: s[2] for s in samples}


# ---------------------------------------------------------------------------------------------------- data


async def test_sixty_node_load_balancer_gives_every_node_both_protocols(rig_factory) -> None:
    """More than Azure's default top of 10 series: every node and protocol must be there."""
    rig = await rig_factory("steady")
    nodes = {n.ip: n.name for n in rig.scenario.nodes}
    assert len(nodes) == 60
    assert await rig.runner.run_once()
    for name in ("azure_lb_snat_ports_allocated", "azure_lb_snat_ports_used"):
        samples = await rig.series(name, load_balancer="kubernetes")
        pairs = {(s[1]["backend_ip"], s[1]["protocol"]) for s in samples}
        assert pairs == {(ip, p) for ip in nodes for p in ("tcp", "udp")}, name
        assert len(samples) == 120
    allocated = await rig.series("azure_lb_snat_ports_allocated", protocol="tcp")
    assert {s[2] for s in allocated} == {512.0}  # 60 nodes, 1 frontend IP: Azure's default table
    assert await rig.value("azure_lb_frontend_ips", load_balancer="kubernetes") == 1
    assert await rig.value("azure_lb_outbound_rule_allocated_ports", load_balancer="kubernetes") == 0
    info = await rig.series("azure_cluster_outbound_info")
    assert [s[1]["outbound_type"] for s in info] == ["loadBalancer"]
    assert info[0][1]["node_resource_group"] == rig.scenario.cluster.node_resource_group
    health = await rig.series("azure_lb_health_probe_status_ratio")
    assert len(health) == 60 and {s[2] for s in health} == {1.0}
    assert await rig.series("snat_exporter_azure_truncated_results_total") == []
    ages = by_label(await rig.series("azure_metric_sample_age_seconds", resource="kubernetes"), "metric")
    assert set(ages) == {
        "AllocatedSnatPorts",
        "UsedSnatPorts",
        "SnatConnectionCount",
        "VipAvailability",
        "DipAvailability",
    }
    assert all(60 <= age <= 15 * 60 for age in ages.values()), ages  # Azure's lag, not 0 and not absurd


async def test_a_result_that_fills_top_is_counted(rig_factory) -> None:
    rig = await rig_factory("steady", top="11")
    assert await rig.runner.run_once()
    truncated = by_label(await rig.series("snat_exporter_azure_truncated_results_total"), "metric")
    assert truncated == {"AllocatedSnatPorts": 1, "UsedSnatPorts": 1, "SnatConnectionCount": 1, "DipAvailability": 1}


async def test_exhausted_node_failed_connections_rise_once_per_failed_minute(rig_factory, clock) -> None:
    rig = await rig_factory("exhaustion")
    exhausted = rig.scenario.nodes[2].ip
    assert await rig.runner.run_once()

    async def failed() -> dict[str, float]:
        return by_label(await rig.series("azure_lb_snat_connections_total", state="failed"), "backend_ip")

    async def used() -> dict[str, float]:
        return by_label(await rig.series("azure_lb_snat_ports_used", protocol="tcp"), "backend_ip")

    start = await failed()
    assert (await used())[exhausted] == 1024  # the node is at its allocation
    assert await rig.runner.run_once()  # the same minute again: nothing is counted twice
    assert await failed() == start
    seen = [start[exhausted]]
    for _ in range(4):
        assert await rig.step()
        now = await failed()
        seen.append(now[exhausted])
        for ip, value in now.items():
            if ip != exhausted:
                assert value == start.get(ip, 0.0), ip  # the healthy nodes never fail
    assert all(b > a for a, b in zip(seen, seen[1:], strict=False)), seen  # rises with every failed minute
    assert await rig.series("snat_exporter_azure_downward_revisions_total") == []
    # every minute counted once: the counter equals the sum of the final per-minute values Azure now reports
    assert seen[-1] == pytest.approx(await oracle_failed_total(rig, exhausted, minutes=10 + 4 + 1))


async def oracle_failed_total(rig: Rig, backend_ip: str, minutes: int) -> float:
    """What Azure says, asked directly over the wire: the Failed Totals of one backend over ``minutes``."""
    from datetime import UTC, datetime

    lb = rig.scenario.load_balancers[0]
    end = rig.clock()
    start = (end - minutes * 60) // 60 * 60

    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    params = {
        "api-version": "2024-02-01",
        "timespan": f"{iso(start)}/{iso(end)}",
        "interval": "PT1M",
        "metricnames": "SnatConnectionCount",
        "aggregation": "Total",
        "$filter": f"BackendIPAddress eq '{backend_ip}' and ConnectionState eq 'Failed'",
        "metricnamespace": "Microsoft.Network/loadBalancers",
    }
    sim_url = rig.exporter.config.azure.arm_endpoint
    async with rig.session.get(f"{sim_url}{lb.id}/providers/Microsoft.Insights/metrics", params=params) as resp:
        assert resp.status == 200
        body = await resp.json()
    return sum(p.get("total", 0.0) for ts in body["value"][0]["timeseries"] for p in ts["data"])


async def test_late_revisions_are_counted_exactly_once(rig_factory) -> None:
    rig = await rig_factory("exhaustion")
    exhausted = rig.scenario.nodes[2].ip
    rig.add_fault(Fault(kind="late_revisions", operation="metrics", minutes=4, fraction=0.25))
    assert await rig.runner.run_once()
    for _ in range(3):
        assert await rig.step()
    rig.sim.clear_faults()  # the partial minutes are now final: upward revisions
    for _ in range(2):
        assert await rig.step()
    counted = await rig.series("azure_lb_snat_connections_total", state="failed", backend_ip=exhausted)
    assert counted[0][2] == pytest.approx(await oracle_failed_total(rig, exhausted, minutes=10 + 5 + 1))


async def test_empty_minutes_are_not_zeros_and_the_last_value_ages(rig_factory) -> None:
    rig = await rig_factory("exhaustion")
    assert await rig.runner.run_once()
    before = by_label(await rig.series("azure_lb_snat_ports_used", protocol="tcp"), "backend_ip")
    age_before = await rig.value("azure_metric_sample_age_seconds", metric="UsedSnatPorts")
    rig.add_fault(Fault(kind="empty_minutes", operation="metrics", minutes=None))
    assert await rig.step(2)
    after = by_label(await rig.series("azure_lb_snat_ports_used", protocol="tcp"), "backend_ip")
    assert after == before  # never 0: the last valued minute is still served...
    assert await rig.value("azure_metric_sample_age_seconds", metric="UsedSnatPorts") == age_before + 120  # ...aging
    errors = await rig.series("snat_exporter_azure_metric_errors_total", metric="UsedSnatPorts", code="no_data")
    assert errors and errors[0][2] == 1
    rig.sim.clear_faults()
    rig.add_fault(Fault(kind="empty_minutes", operation="metrics", minutes=3))  # only the newest minutes
    assert await rig.step()
    assert await rig.value("azure_metric_sample_age_seconds", metric="UsedSnatPorts") > age_before
    assert min(by_label(await rig.series("azure_lb_snat_ports_allocated"), "backend_ip").values()) > 0


async def test_nat_gateway_series_info_and_public_ips(rig_factory) -> None:
    rig = await rig_factory("natgw")
    assert await rig.runner.run_once()
    nat = rig.scenario.nat_gateways[0].name
    info = await rig.series("azure_cluster_outbound_info")
    assert [s[1]["outbound_type"] for s in info] == ["managedNATGateway"]
    assert await rig.value("azure_natgw_public_ips", nat_gateway=nat) == 2
    connections = await rig.series("azure_natgw_snat_connections_total", nat_gateway=nat)
    assert {(s[1]["protocol"], s[1]["state"]) for s in connections} >= {("tcp", "attempted"), ("udp", "attempted")}
    active = by_label(await rig.series("azure_natgw_active_connections", nat_gateway=nat), "protocol")
    assert set(active) == {"tcp", "udp"} and active["tcp"] > 0
    assert 0.9 < await rig.value("azure_natgw_datapath_availability_ratio", nat_gateway=nat) <= 1.0
    assert await rig.value("azure_natgw_dropped_packets_total", nat_gateway=nat) >= 0
    for name in ("azure_natgw_bytes_total", "azure_natgw_packets_total"):
        pairs = {(s[1]["direction"], s[1]["protocol"]) for s in await rig.series(name, nat_gateway=nat)}
        assert pairs == {("in", "tcp"), ("out", "tcp"), ("in", "udp"), ("out", "udp")}, name
    assert await rig.series("azure_lb_snat_ports_used") == []


async def test_a_stored_snapshot_keeps_its_rendered_exposition_not_its_families(rig_factory) -> None:
    # Holding the prometheus_client families next to their rendered bytes kept every series twice in memory
    # (with rendering on one thread, 379 -> 290 MB of RSS at 1,200 resources: docs/performance.md).
    rig = await rig_factory("natgw")
    assert await rig.runner.run_once()
    state = rig.exporter.store.get("azure")
    rendered = state.rendered
    assert state.snapshot is None and rendered is not None
    nat = rig.scenario.nat_gateways[0].name
    assert await rig.value("azure_natgw_public_ips", nat_gateway=nat) == 2
    assert await rig.series("azure_metric_sample_age_seconds", resource=nat)
    async with rig.session.get(rig.url + "/metrics", headers={"Accept": "application/openmetrics-text"}) as resp:
        body = await resp.text()
    assert resp.status == 200 and f'azure_natgw_public_ips{{nat_gateway="{nat}"' in body
    assert (
        state.rendered is rendered and state.snapshot is None
    )  # served from the runner's rendering, not rendered again


async def test_node_label_comes_from_the_identity_lookup(rig_factory) -> None:
    scenario_nodes: dict[str, str] = {}
    rig = await rig_factory("exhaustion", identity=NodeTable(scenario_nodes))
    scenario_nodes.update({n.ip: n.name for n in rig.scenario.nodes[:-1]})  # the last node is not known yet
    assert await rig.runner.run_once()
    samples = await rig.series("azure_lb_snat_ports_used")
    unknown = rig.scenario.nodes[-1].ip
    for _, labels, _ in samples:
        expected = "" if labels["backend_ip"] == unknown else scenario_nodes[labels["backend_ip"]]
        assert labels["node"] == expected
    assert {s[1]["node"] for s in samples} >= {rig.scenario.nodes[2].name}


# -------------------------------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault(kind="status", operation="metrics", status=429, retry_after=600), "throttled"),
        (Fault(kind="status", operation="metrics", status=429), "throttled"),
        (Fault(kind="status", operation="metrics", status=503), "http_5xx"),
        (Fault(kind="malformed", operation="metrics"), "malformed"),
        (Fault(kind="latency", operation="metrics", seconds=30), "timeout"),
    ],
    ids=["429-retry-after", "429-no-retry-after", "503", "malformed", "timeout"],
)
async def test_a_failed_cycle_serves_the_last_good_values_and_counts_the_error(rig_factory, fault, reason) -> None:
    rig = await rig_factory("exhaustion", timeout="1s")
    assert await rig.runner.run_once()
    good = by_label(await rig.series("azure_lb_snat_ports_used", protocol="tcp"), "backend_ip")
    rig.add_fault(fault)
    assert not await rig.step()
    assert by_label(await rig.series("azure_lb_snat_ports_used", protocol="tcp"), "backend_ip") == good
    assert await rig.value("snat_exporter_collector_errors_total", collector="azure", reason=reason) == 1
    assert await rig.value("snat_exporter_collector_stale", collector="azure") == 1
    assert await rig.value("snat_exporter_collector_success", collector="azure") == 0
    if fault.status == 429:
        assert (await rig.series("snat_exporter_azure_throttled_requests_total", operation=rig.operation))[0][2] >= 1
    if fault.retry_after == 600:
        assert rig.runner.next_delay(0) == 600  # the runner waits instead of a cycle sleeping
        # a long Retry-After is not slept on: one try per query (the load balancer's two primary groups: the
        # secondary ones are not due in the second cycle)
        assert await rig.value("snat_exporter_azure_requests_total", operation=rig.operation, status="429") == 2
    rig.sim.clear_faults()
    assert await rig.step()
    assert await rig.value("snat_exporter_collector_stale", collector="azure") == 0


async def test_a_short_retry_after_is_honoured_within_the_cycle(rig_factory) -> None:
    rig = await rig_factory("steady", timeout="5s")
    rig.add_fault(Fault(kind="status", operation="metrics", status=429, retry_after=1, times=1))
    assert await rig.runner.run_once()
    assert await rig.value("snat_exporter_azure_requests_total", operation=rig.operation, status="429") == 1
    assert await rig.value("snat_exporter_azure_throttled_requests_total", operation=rig.operation) == 1
    assert len(await rig.series("azure_lb_snat_ports_used")) == 120


async def test_per_metric_error_keeps_that_metric_and_serves_the_others_fresh(rig_factory) -> None:
    rig = await rig_factory("exhaustion")
    assert await rig.runner.run_once()
    used = await rig.series("azure_lb_snat_ports_used")
    rig.add_fault(Fault(kind="metric_error", operation="metrics", metric="UsedSnatPorts"))
    assert await rig.step()  # the cycle succeeds
    assert await rig.series("azure_lb_snat_ports_used") == used
    assert (
        await rig.value("snat_exporter_azure_metric_errors_total", metric="UsedSnatPorts", code="InvalidSamplingType")
        == 1
    )
    ages = by_label(await rig.series("azure_metric_sample_age_seconds"), "metric")
    assert ages["UsedSnatPorts"] > ages["AllocatedSnatPorts"]  # only the failing metric ages


async def test_one_failing_query_does_not_stop_the_others(rig_factory) -> None:
    rig = await rig_factory("exhaustion", timeout="1s")
    assert await rig.runner.run_once()
    failed_before = await rig.series("azure_lb_snat_connections_total", state="failed")
    rig.add_fault(Fault(kind="status", operation="metrics", status=500, metric="SnatConnectionCount"))
    assert await rig.step()
    assert await rig.series("azure_lb_snat_connections_total", state="failed") == failed_before  # held
    errors = await rig.series("snat_exporter_azure_metric_errors_total", metric="SnatConnectionCount")
    assert [(s[1]["code"], s[2]) for s in errors] == [("http_5xx", 1)]
    assert await rig.series("snat_exporter_collector_errors_total") == []
    # past max_age the held series are dropped rather than passed off as current
    for _ in range(3):
        assert await rig.step(6)
    assert await rig.series("azure_lb_snat_connections_total") == []
    assert await rig.series("azure_lb_snat_ports_used")


async def test_failed_rediscovery_keeps_the_known_resources(rig_factory) -> None:
    rig = await rig_factory("steady", discovery_interval="2m")
    assert await rig.runner.run_once()
    rig.add_fault(Fault(kind="status", operation="arm", status=500))
    assert await rig.step(3)
    assert await rig.value("snat_exporter_azure_discovery_errors_total", reason="http_5xx") == 1
    assert len(await rig.series("azure_lb_snat_ports_used")) == 120
    assert await rig.value("snat_exporter_azure_watched_resources", resource_type="load_balancer") == 1


async def test_missing_workload_identity_is_an_auth_error_naming_what_is_missing(clock, monkeypatch) -> None:
    for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    settings = {
        "azure.enabled": "true",
        "azure.credential": "workload_identity",
        "azure.resources": "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/"
        "Microsoft.Network/loadBalancers/kubernetes",
    }
    exporter = Exporter(load_config(None, environ={}, overrides=settings), clock=clock)
    await exporter.start(host="127.0.0.1", port=0, background=False)
    try:
        assert not await exporter.runners["azure"].run_once()
        state = exporter.store.get("azure")
        assert state.last_error is not None and state.last_error.startswith("auth: ")
        assert "AZURE_" in state.last_error
    finally:
        await exporter.stop()


async def test_exposition_passes_promtool(rig_factory) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (/usr/bin/promtool, Debian package prometheus)")
    rig = await rig_factory("exhaustion")
    assert await rig.runner.run_once()
    rig.add_fault(Fault(kind="metric_error", operation="metrics", metric="UsedSnatPorts"))
    assert await rig.step()
    text = await rig.text()
    assert "azure_lb_snat_connections_total" in text
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_the_watched_resources_log_line_names_their_type(rig_factory, caplog) -> None:
    # AKS calls its load balancer "kubernetes": alone, `resources=kubernetes` read as if Kubernetes were watched.
    caplog.set_level(logging.INFO, logger="snat_exporter")
    rig = await rig_factory("steady")
    assert await rig.runner.run_once()
    (record,) = [r for r in caplog.records if r.getMessage() == "watching Azure resources"]
    assert record.resources == "load_balancer/kubernetes"
