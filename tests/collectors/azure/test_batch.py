"""The getBatch path against the simulator: same series as per-resource Metrics List, far fewer calls, the
fallback when batch is refused, our own backoff on a POST azure-core does not retry, and batches kept under
the time-series limit. A FakeClock drives both the simulator and the exporter: no sleeps."""

from __future__ import annotations

import pytest

from snat_exporter.collectors.azure.config import ResourceId
from snat_exporter.collectors.azure.discovery import Target
from snat_exporter.collectors.azure.planning import BATCH_REPROBE
from snat_exporter.config import load_config
from snat_exporter.simulator import Fault
from tests.collectors.azure.rigs import SUB, Rig, estate

# ------------------------------------------------------------------------------------------- same series


async def test_batch_and_per_resource_paths_export_identical_series(make_rig, clock) -> None:
    """Same scenario, same clock, faults included: the parsed azure_* series of both paths are equal, minute
    after minute, while batch makes a fraction of the calls."""
    data = estate(revise_minutes=2, revise_fraction=0.4)  # late fills: counters must count each minute once
    listed = await make_rig(data, batch="never")
    batched = await make_rig(data, batch="always", batch_size="4")
    resources = 1 + 7 + 3
    for step in range(4):
        if step == 2:  # a metric failing inside an HTTP 200, and empty newest minutes, on both paths
            for rig, operation in ((listed, "metrics"), (batched, "batch")):
                rig.sim.add_fault(
                    Fault(kind="metric_error", operation=operation, resource="lb-3", metric="UsedSnatPorts")
                )
                rig.sim.add_fault(Fault(kind="empty_minutes", operation=operation, resource="nat-1", minutes=2))
        assert await listed.run() and await batched.run()
        by_list, by_batch = await listed.samples("azure_"), await batched.samples("azure_")
        assert by_batch == by_list, f"step {step}"
        clock.advance(60)
    names = {s[0] for s in by_list}
    assert {"azure_lb_snat_ports_used", "azure_lb_snat_connections_total", "azure_natgw_bytes_total"} <= names
    assert {s[1] for s in by_list if s[0] == "azure_lb_frontend_ips"} >= {
        (("load_balancer", f"lb-{i}"), ("resource_group", data_rg(listed)), ("subscription_id", SUB)) for i in range(7)
    }
    # per resource: 4 calls per load balancer, 4 per NAT gateway in the first cycle, then only the primary groups
    # (2 and 3) until the secondary ones are due again (secondary_interval 10m: every 10th cycle); batch: the same
    # groups per batch of <= 4 resources (8 LBs in 2 batches, 3 NAT gateways in 1)
    assert len(listed.requests("metrics")) == (4 * 8 + 4 * 3) + 3 * (2 * 8 + 3 * 3)
    assert listed.requests("batch") == []
    assert len(batched.requests("batch")) == (4 * 2 + 4 * 1) + 3 * (2 * 2 + 3 * 1)
    # dropped packets (Total) and datapath availability (Average) came in one call asking both, on both paths
    for rig, operation in ((listed, "metrics"), (batched, "batch")):
        drops = [r for r in rig.requests(operation) if "PacketDropCount" in r.query["metricnames"]]
        assert drops and {(r.query["metricnames"], r.query["aggregation"]) for r in drops} == {
            ("PacketDropCount,DatapathAvailability", "Total,Average")
        }
    assert {"azure_natgw_dropped_packets_total", "azure_natgw_datapath_availability_ratio"} <= names
    assert batched.requests("metrics") == []
    assert await batched.value("snat_exporter_azure_batch_enabled") == 1
    assert await listed.value("snat_exporter_azure_batch_enabled") == 0
    assert await batched.value("snat_exporter_azure_watched_resources", resource_type="load_balancer") == 8
    assert resources == 11


def data_rg(rig: Rig) -> str:
    return rig.sim.scenario.cluster.node_resource_group


async def test_batch_request_is_the_documented_wire_format(make_rig) -> None:
    rig = await make_rig(estate(lbs=2, nats=0), batch="always")
    assert await rig.run()
    posts = rig.requests("batch")
    assert all(r.method == "POST" and r.path == f"/subscriptions/{SUB}/metrics:getBatch" for r in posts)
    ports = next(r for r in posts if "UsedSnatPorts" in r.query["metricnames"])
    assert ports.query["api-version"] == "2024-02-01"
    assert ports.query["metricnamespace"] == "Microsoft.Network/loadBalancers"
    assert ports.query["metricnames"] == "AllocatedSnatPorts,UsedSnatPorts"
    assert ports.query["interval"] == "PT1M"
    assert ports.query["aggregation"] == "Average"
    assert ports.query["top"] == "10000"
    assert ports.query["filter"] == "BackendIPAddress eq '*' and FrontendIPAddress eq '*' and ProtocolType eq '*'"
    assert "timespan" not in ports.query and ports.query["starttime"] < ports.query["endtime"]
    lbs = sorted(lb.id for lb in rig.sim.scenario.load_balancers)
    assert sorted(ports.body["resourceids"]) == lbs


# ------------------------------------------------------------------------------------------- fallback


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault(kind="auth", operation="batch"), "auth"),
        (Fault(kind="status", operation="batch", status=403), "permission_denied"),
    ],
    ids=["401", "403"],
)
async def test_refused_batch_falls_back_per_resource_in_the_same_cycle_and_remembers(
    make_rig, clock, fault, reason
) -> None:
    rig = await make_rig(estate(lbs=2, nats=1))
    rig.sim.add_fault(fault)
    assert await rig.run()
    assert len(await rig.samples("azure_lb_snat_ports_used")) == 2 * 4 + 2 * 2 * 3  # nothing lost this cycle
    assert await rig.value("snat_exporter_azure_batch_fallbacks_total", reason=reason) == 1
    assert await rig.value("snat_exporter_azure_batch_enabled") == 0
    refused = len(rig.requests("batch"))
    assert refused == 4 + 4  # one refusal per metric group of the cycle, then no more
    for _ in range(3):
        clock.advance(60)
        assert await rig.run()
    assert len(rig.requests("batch")) == refused  # remembered: no getBatch call per cycle
    assert await rig.value("snat_exporter_azure_batch_fallbacks_total", reason=reason) == 1
    clock.advance(BATCH_REPROBE - 3 * 60)  # 5 minutes after the refusal: tried again, refused again
    assert await rig.run()
    reprobed = len(rig.requests("batch"))
    assert reprobed > refused
    assert await rig.value("snat_exporter_azure_batch_fallbacks_total", reason=reason) == 2
    clock.advance(BATCH_REPROBE)  # the second refusal in a row waits twice as long: not yet
    assert await rig.run()
    assert len(rig.requests("batch")) == reprobed
    rig.sim.clear_faults()  # the role assignment was added
    clock.advance(BATCH_REPROBE)
    assert await rig.run()
    assert await rig.value("snat_exporter_azure_batch_enabled") == 1
    assert len(rig.requests("batch")) > reprobed


async def test_batch_always_reports_a_refusal_instead_of_falling_back(make_rig) -> None:
    rig = await make_rig(estate(lbs=2, nats=0), batch="always")
    rig.sim.add_fault(Fault(kind="status", operation="batch", status=403))
    assert not await rig.run()
    assert await rig.value("snat_exporter_collector_errors_total", collector="azure", reason="permission_denied") == 1
    assert rig.requests("metrics") == []


# ------------------------------------------------------------------------------------------- throttling


async def test_529_without_retry_after_is_retried_by_us(make_rig) -> None:
    """azure-core does not retry a POST on 529 (or 429) without Retry-After by default: the batch client's retry
    policy treats getBatch's POST as the read it is."""
    rig = await make_rig(estate(lbs=2, nats=0), batch="always")
    rig.sim.add_fault(Fault(kind="status", operation="batch", status=529, metric="SnatConnectionCount", times=1))
    assert await rig.run()
    assert await rig.value("snat_exporter_azure_requests_total", operation="metrics_batch", status="529") == 1
    assert await rig.value("snat_exporter_azure_throttled_requests_total", operation="metrics_batch") == 1
    failed = [s for s in await rig.samples("azure_lb_snat_connections_total")]
    assert len(failed) == 3 * (4 + 2 * 3)  # the retried call's data is there
    assert await rig.samples("snat_exporter_azure_metric_errors_total") == []


async def test_persistent_529_fails_that_group_as_throttled(make_rig) -> None:
    rig = await make_rig(estate(lbs=2, nats=0), batch="always", timeout="2s")
    rig.sim.add_fault(Fault(kind="status", operation="batch", status=529))
    assert not await rig.run()
    assert await rig.value("snat_exporter_collector_errors_total", collector="azure", reason="throttled") == 1
    # one try and `retries` (1) of our own per call
    assert await rig.value("snat_exporter_azure_requests_total", operation="metrics_batch", status="529") == 2 * 4


# ------------------------------------------------------------------------------------------- series limit


async def test_a_batch_over_the_series_limit_is_split_then_sized_from_the_counted_series(make_rig, clock) -> None:
    # 6 load balancers x 3 backends x 2 protocols x 2 metrics = 72 port series (+ the cluster LB's 16): over 60.
    # The first cycle cannot know the series counts yet: Azure refuses, the call is split.
    rig = await make_rig(estate(lbs=6, nats=0, batch_series_limit=60), batch="always", batch_series_limit="60")
    assert await rig.run()
    first = rig.requests("batch")
    assert [r.status for r in first].count(400) >= 1
    assert await rig.value("snat_exporter_azure_batch_splits_total") >= 1
    assert len(await rig.samples("azure_lb_snat_ports_allocated")) == 4 * 2 + 6 * 3 * 2
    clock.advance(60)
    assert await rig.run()
    second = rig.requests("batch")[len(first) :]
    assert [r.status for r in second] == [200] * len(second)  # sized from last cycle's counts: no refusal
    for r in second:
        assert len(r.body["resourceids"]) <= 50


async def test_the_series_limit_setting_packs_batches_before_azure_refuses(make_rig, clock) -> None:
    rig = await make_rig(estate(lbs=6, nats=0), batch="always", batch_series_limit="40")
    assert await rig.run()  # first cycle: series unknown, one batch per group
    clock.advance(60)
    before = len(rig.requests("batch"))
    assert await rig.run()
    ports = [r for r in rig.requests("batch")[before:] if "UsedSnatPorts" in r.query["metricnames"]]
    assert len(ports) >= 2  # 88 series known > 40: split by our own estimate
    assert all(r.status == 200 for r in ports)


# ------------------------------------------------------------------------------------------- regions


async def test_discovery_records_each_resource_region(make_rig) -> None:
    rig = await make_rig(estate(lbs=3, nats=2), batch="always")
    assert await rig.run()
    discovery = rig.collector.watchlist.discovery
    assert discovery is not None and len(discovery.targets) == 1 + 3 + 2
    assert {t.location for t in discovery.targets} == {"northeurope"}
    # 3 explicit LBs and 2 NAT gateways of one resource group: one list call each kind, not one GET per resource
    arm_paths = [r.path.lower() for r in rig.requests("arm")]
    assert not any("/loadbalancers/lb-" in p for p in arm_paths)
    assert sum(p.endswith("/providers/microsoft.network/loadbalancers") for p in arm_paths) == 2  # cluster + explicit


async def test_batches_group_by_subscription_region_and_type(make_rig) -> None:
    rig = await make_rig(estate(lbs=1, nats=0), batch="always", batch_size="2")
    collector = rig.collector
    clients = collector._ensure_clients()
    other_sub = "0a1b2c3d-0000-4000-8000-000000000001"

    def lb(sub: str, name: str, region: str | None) -> Target:
        return Target(ResourceId(sub, "rg", "loadBalancers", name), location=region)

    targets = [
        lb(SUB, "a", "westeurope"),
        lb(SUB, "b", "West Europe"),
        lb(SUB, "c", "westeurope"),
        lb(SUB, "d", "eastus"),
        lb(other_sub, "e", "westeurope"),
        Target(ResourceId(SUB, "rg", "natGateways", "f"), location="westeurope"),
    ]
    batched, single = collector.planner.split_paths([*targets, lb(SUB, "unknown", None)], 0.0)
    assert [t.resource.name for t in single] == ["unknown"]  # no region: only Metrics List reaches it
    jobs = collector.planner.batch_jobs(clients, batched)
    ports = [j for j in jobs if "UsedSnatPorts" in j.query.metricnames]
    assert sorted(tuple(t.resource.name for t in j.targets) for j in ports) == [("a", "b"), ("c",), ("d",), ("e",)]
    # the simulator's loopback URL has no {region}; a real cloud's endpoint is regional
    assert clients.batch_endpoint("westeurope") == rig.sim.url
    public = load_config(
        None, environ={}, overrides={"azure.enabled": "true", "azure.resources": targets[0].resource.uri}
    )
    assert public.azure.metrics_endpoint() == "https://{region}.metrics.monitor.azure.com"
    assert public.azure.metrics_audience() == "https://metrics.monitor.azure.com"


async def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("broken", ["unreachable", "not_found"])
async def test_batch_that_cannot_reach_its_host_falls_back_and_says_what_failed(
    make_rig, clock, caplog, broken: str
) -> None:
    """Issue 15: with egress locked down to ARM, the regional data-plane host was unreachable and `batch: auto`
    collected nothing, forever: it fell back only on 401/403."""
    import logging

    endpoint = {
        "unreachable": f"http://127.0.0.1:{await _closed_port()}",
        "not_found": "http://{sim_host}/no-such-prefix",  # a host that answers, but not getBatch
    }[broken]
    rig2 = await make_rig(estate(lbs=2, nats=1), batch_endpoint=endpoint)
    with caplog.at_level(logging.WARNING, logger="snat_exporter.azure"):
        assert await rig2.run(), rig2.exporter.store.get("azure").last_error
    assert len(await rig2.samples("azure_lb_snat_ports_used")) == 2 * 4 + 2 * 2 * 3  # nothing lost this cycle
    assert await rig2.value("snat_exporter_azure_batch_fallbacks_total", reason=broken) == 1
    warned = [r.getMessage() for r in caplog.records if "getBatch" in r.getMessage()]
    assert len(warned) == 1, warned
    assert {"unreachable": "cannot be reached", "not_found": "404"}[broken] in warned[0]
    assert "Monitoring Reader" not in warned[0]
    calls = await rig2.value("snat_exporter_azure_requests_total", operation="metrics_batch")
    clock.advance(60)
    assert await rig2.run()
    assert await rig2.value("snat_exporter_azure_requests_total", operation="metrics_batch") == calls  # remembered
    clock.advance(BATCH_REPROBE)
    assert await rig2.run()  # re-probed, failed again, served per resource again
    assert await rig2.value("snat_exporter_azure_requests_total", operation="metrics_batch") > calls
    assert await rig2.value("snat_exporter_azure_batch_fallbacks_total", reason=broken) == 2


async def test_a_401_from_batch_is_reported_as_authentication_not_a_missing_role(make_rig, caplog) -> None:
    import logging

    rig = await make_rig(estate(lbs=2, nats=1))
    rig.sim.add_fault(Fault(kind="auth", operation="batch"))
    with caplog.at_level(logging.WARNING, logger="snat_exporter.azure"):
        assert await rig.run()
    warned = [r.getMessage() for r in caplog.records if "getBatch" in r.getMessage()]
    assert len(warned) == 1 and "authentication, not a missing role" in warned[0], warned


async def test_tls_and_dns_failures_of_the_batch_host_are_told_apart(make_rig) -> None:
    """The TLS case through azure-core's real aiohttp transport (TLS to a plain-HTTP port), DNS as the transport
    wraps it (resolving a name would leave the loopback)."""
    import socket

    from azure.core.exceptions import ServiceRequestError
    from azure.core.pipeline.transport import AioHttpTransport
    from azure.core.rest import HttpRequest

    from snat_exporter.collectors.azure.fetching import fallback_reason

    rig = await make_rig(estate(lbs=1, nats=0))
    async with AioHttpTransport() as transport:
        with pytest.raises(ServiceRequestError) as tls:
            await transport.send(HttpRequest("POST", rig.sim.url.replace("http://", "https://") + "/x"))
    assert fallback_reason(tls.value) == "tls"
    try:
        raise ServiceRequestError("Cannot connect to host") from socket.gaierror(-2, "Name or service not known")
    except ServiceRequestError as dns:
        assert fallback_reason(dns) == "dns"
