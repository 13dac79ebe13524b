"""Through the real Azure SDKs (azure-mgmt-monitor, azure-monitor-querymetrics) against the simulator over HTTP."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    DecodeError,
    DeserializationError,
    HttpResponseError,
    IncompleteReadError,
    ServiceResponseError,
)
from azure.monitor.querymetrics.aio import MetricsClient

from snat_exporter.simulator import Fault, load_scenario
from tests.simulator.conftest import FakeCredential, error_code, error_message, header, timespan, with_headers

SPLIT_ALL = "BackendIPAddress eq '*' and ProtocolType eq '*'"


async def list_metrics(client: Any, resource_id: str, clock: Any, **kwargs: Any) -> Any:
    args: dict[str, Any] = {
        "timespan": timespan(clock),
        "interval": "PT1M",
        "metricnames": "UsedSnatPorts",
        "aggregation": "Average",
    }
    args.update(kwargs)
    return await client.metrics.list(resource_id, enforce_https=False, **args)


def backends(metric: Any) -> set[str]:
    return {mv.value for ts in metric.timeseries for mv in ts.metadatavalues if mv.name.value == "backendipaddress"}


async def test_top_defaults_to_10_and_60_nodes_need_top_120(make_sim, monitor, clock) -> None:
    sim = await make_sim("steady")
    client = monitor(sim)
    lb = sim.scenario.load_balancers[0].id

    default = await list_metrics(client, lb, clock, filter=SPLIT_ALL)
    assert len(default.value[0].timeseries) == 10  # the trap: 50 of the 60 nodes silently missing

    short = await list_metrics(client, lb, clock, filter=SPLIT_ALL, top=119)
    assert len(short.value[0].timeseries) == 119

    full = await list_metrics(client, lb, clock, filter=SPLIT_ALL, top=120)
    assert len(full.value[0].timeseries) == 120
    assert backends(full.value[0]) == {n.ip for n in sim.scenario.nodes}

    # Without a $filter there is one series averaged over everything, and `top` does not apply.
    whole = await list_metrics(client, lb, clock)
    assert len(whole.value[0].timeseries) == 1
    assert whole.value[0].timeseries[0].metadatavalues == []
    assert sim.requests[0].query["api-version"] == "2024-02-01"
    assert "top" not in sim.requests[0].query


async def test_dimension_names_come_back_lower_cased_and_match_case_insensitively(make_sim, monitor, clock) -> None:
    sim = await make_sim("steady")
    client = monitor(sim)
    node = sim.scenario.nodes[7]
    result = await list_metrics(
        client,
        sim.scenario.load_balancers[0].id,
        clock,
        filter=f"BACKENDIPADDRESS eq '{node.ip}' and protocolType eq 'tcp'",
    )
    [series] = result.value[0].timeseries
    assert [(mv.name.value, mv.value) for mv in series.metadatavalues] == [
        ("backendipaddress", node.ip),
        ("protocoltype", "TCP"),  # values keep Azure's casing
    ]
    assert result.namespace == "microsoft.network/loadbalancers"


async def test_values_are_the_scenario_values_and_recent_minutes_have_none(make_sim, monitor, clock) -> None:
    sim = await make_sim("exhaustion")
    client = monitor(sim)
    clock.advance(90)  # values depend on the minute relative to the start, not on the wall clock
    node = sim.scenario.nodes[2]
    result = await list_metrics(
        client, sim.scenario.load_balancers[0].id, clock, filter=f"BackendIPAddress eq '{node.ip}'", top=100
    )
    [series] = result.value[0].timeseries
    valued = [p for p in series.data if p.average is not None]
    empty = [p for p in series.data if p.average is None]
    assert len(series.data) == 11  # 10 minutes from hh:mm:30: the partial minutes at both ends count
    assert len(empty) == sim.scenario.lag_minutes  # the newest 3 minutes have not arrived yet
    assert all(p.time_stamp > valued[-1].time_stamp for p in empty)
    for point in valued:
        minute = sim.minute(point.time_stamp.timestamp())
        # Averaged over TCP and UDP, as Azure does without a ProtocolType split.
        tcp = sim.value("kubernetes", "UsedSnatPorts", minute, BackendIPAddress=node.ip, ProtocolType="TCP")
        udp = sim.value("kubernetes", "UsedSnatPorts", minute, BackendIPAddress=node.ip, ProtocolType="UDP")
        assert point.average == pytest.approx((tcp + udp) / 2)
    assert sim.minute(valued[-1].time_stamp.timestamp()) == sim.newest_valued_minute()


async def test_empty_minutes_have_no_value_fields_on_the_wire(make_sim, clock) -> None:
    sim = await make_sim("exhaustion")
    sim.add_fault(Fault("empty_minutes", minutes=2, times=1))
    url = sim.url + sim.scenario.load_balancers[0].id + "/providers/Microsoft.Insights/metrics"
    params = {
        "api-version": "2024-02-01",
        "timespan": timespan(clock),
        "metricnames": "SnatConnectionCount",
        "aggregation": "Total,Count",
    }
    async with aiohttp.ClientSession() as session:
        async with session.get(url, params=params) as resp:
            late = await resp.json()
        async with session.get(url, params=params) as resp:
            normal = await resp.json()
    late_points = late["value"][0]["timeseries"][0]["data"]
    normal_points = normal["value"][0]["timeseries"][0]["data"]
    # At hh:00:00 with a 3-minute lag, hh-1:57 has its value and hh-1:58, hh-1:59 do not; the fault blanks 2 more.
    assert [set(p) for p in normal_points[-3:]] == [{"timeStamp", "total", "count"}] + [{"timeStamp"}] * 2
    assert [set(p) for p in late_points[-5:]] == [{"timeStamp", "total", "count"}] + [{"timeStamp"}] * 4


async def test_late_revisions_show_a_partial_total_first_then_the_final_one(make_sim, monitor, clock) -> None:
    sim = await make_sim("exhaustion")
    sim.add_fault(Fault("late_revisions", minutes=2, fraction=0.5))
    client = monitor(sim)
    lb = sim.scenario.load_balancers[0].id
    node = sim.scenario.nodes[2]
    flt = f"BackendIPAddress eq '{node.ip}' and ConnectionState eq 'Successful'"

    async def totals() -> dict[int, float]:
        r = await list_metrics(client, lb, clock, metricnames="SnatConnectionCount", aggregation="Total", filter=flt)
        return {
            sim.minute(p.time_stamp.timestamp()): p.total for p in r.value[0].timeseries[0].data if p.total is not None
        }

    first = await totals()
    newest = sim.newest_valued_minute()
    final = sim.value(
        "kubernetes", "SnatConnectionCount", newest, BackendIPAddress=node.ip, ConnectionState="Successful"
    )
    assert first[newest] == round(final * 0.5)
    assert first[newest - 2] == sim.value(
        "kubernetes", "SnatConnectionCount", newest - 2, BackendIPAddress=node.ip, ConnectionState="Successful"
    )
    clock.advance(120)
    assert (await totals())[newest] == final


@pytest.mark.parametrize(
    ("fault", "status", "retry_after"),
    [
        (Fault("status", status=429, retry_after=7), 429, "7"),
        (Fault("status", status=429), 429, None),
        (Fault("status", status=500), 500, None),
        (Fault("status", status=503, retry_after=2), 503, "2"),
    ],
)
async def test_http_faults_reach_the_sdk_as_azure_errors(make_sim, monitor, clock, fault, status, retry_after) -> None:
    sim = await make_sim("steady")
    client = monitor(sim)
    sim.add_fault(fault)
    fault.times = 1
    with pytest.raises(HttpResponseError) as caught:
        await list_metrics(client, sim.scenario.load_balancers[0].id, clock)
    assert caught.value.status_code == status
    assert header(caught.value, "Retry-After") == retry_after
    assert error_code(caught.value)  # the ARM error body was parsed
    # `times` spent: the next call is answered.
    await list_metrics(client, sim.scenario.load_balancers[0].id, clock)
    assert fault.hits == 1


async def test_auth_fault_is_a_401_the_sdk_reports_as_authentication_error(make_sim, monitor, clock) -> None:
    sim = await make_sim("steady")
    sim.add_fault(Fault("auth", operation="metrics"))
    with pytest.raises(ClientAuthenticationError) as caught:
        await list_metrics(monitor(sim), sim.scenario.load_balancers[0].id, clock)
    assert caught.value.status_code == 401
    assert error_code(caught.value) == "InvalidAuthenticationToken"


@pytest.mark.parametrize(
    ("kind", "error"),
    [("malformed", DecodeError), ("reset", IncompleteReadError), ("wrong_shape", DeserializationError)],
)
async def test_broken_bodies(make_sim, monitor, clock, kind, error) -> None:
    sim = await make_sim("steady")
    sim.add_fault(Fault(kind, resource="KUBERNETES", metric="usedsnatports"))
    with pytest.raises(error):
        await list_metrics(monitor(sim), sim.scenario.load_balancers[0].id, clock)
    # The fault matched only that metric: another one is answered.
    await list_metrics(monitor(sim), sim.scenario.load_balancers[0].id, clock, metricnames="AllocatedSnatPorts")


async def test_latency_fault_makes_a_client_time_out(make_sim, monitor, clock) -> None:
    sim = await make_sim("steady")
    sim.add_fault(Fault("latency", seconds=0.6, times=1))
    with pytest.raises(ServiceResponseError):
        await list_metrics(monitor(sim), sim.scenario.load_balancers[0].id, clock, read_timeout=0.1)


async def test_per_metric_error_and_empty_timeseries_inside_a_200(make_sim, monitor, clock) -> None:
    sim = await make_sim("natgw")
    sim.add_fault(Fault("metric_error", metric="PacketDropCount", error_code="InternalServerError", message="boom"))
    sim.add_fault(Fault("empty_timeseries", metric="TotalConnectionCount"))
    result = await list_metrics(
        monitor(sim),
        sim.scenario.nat_gateways[0].id,
        clock,
        metricnames="PacketDropCount,TotalConnectionCount,DatapathAvailability",
        aggregation="Total,Average",
    )
    by_name = {m.name.value: m for m in result.value}
    assert (by_name["PacketDropCount"].error_code, by_name["PacketDropCount"].error_message) == (
        "InternalServerError",
        "boom",
    )
    assert by_name["TotalConnectionCount"].timeseries == []
    assert by_name["DatapathAvailability"].error_code == "Success"
    availability = [p.average for p in by_name["DatapathAvailability"].timeseries[0].data if p.average is not None]
    assert availability and all(99.8 <= a <= 100 for a in availability)


async def test_unknown_metric_is_a_400_in_the_arm_error_shape(make_sim, monitor, clock) -> None:
    sim = await make_sim("steady")
    with pytest.raises(HttpResponseError) as caught:
        await list_metrics(monitor(sim), sim.scenario.load_balancers[0].id, clock, metricnames="UsedSnatPorts,Nope")
    assert caught.value.status_code == 400
    assert error_code(caught.value) == "BadRequest"
    assert "Nope" in error_message(caught.value)


async def test_arm_read_bucket_throttles_and_refills(make_sim, monitor, clock) -> None:
    data = {
        "subscription_id": "11111111-2222-3333-4444-555555555555",
        "ratelimit": {"reads": 3, "refill_per_second": 1},
        "cluster": {"resource_group": "rg", "name": "aks", "agent_pools": [{"name": "pool", "count": 2}]},
        "load_balancers": [{"name": "kubernetes"}],
    }
    sim = await make_sim(load_scenario(data))
    client = monitor(sim)
    lb = sim.scenario.load_balancers[0].id
    remaining = []
    for _ in range(3):
        _, headers = await list_metrics(client, lb, clock, cls=with_headers)
        remaining.append(headers["x-ms-ratelimit-remaining-subscription-reads"])
        assert int(headers["x-ms-ratelimit-remaining-subscription-global-reads"]) >= 40
    assert remaining == ["2", "1", "0"]
    with pytest.raises(HttpResponseError) as caught:
        await list_metrics(client, lb, clock)
    assert caught.value.status_code == 429
    assert header(caught.value, "Retry-After") == "1"
    assert error_code(caught.value) == "SubscriptionRequestsThrottled"
    clock.advance(1)
    await list_metrics(client, lb, clock)


async def test_batch_through_querymetrics_gives_the_same_data_as_metrics_list(make_sim, monitor, clock) -> None:
    sim = await make_sim("exhaustion")
    lb = sim.scenario.load_balancers[0]
    start, end = (v for v in timespan(clock).split("/"))
    from datetime import datetime

    window = (datetime.fromisoformat(start), datetime.fromisoformat(end))
    from datetime import timedelta

    async with MetricsClient(sim.url, FakeCredential(), retry_total=0) as batch:
        [result] = await batch.query_resources(
            resource_ids=[lb.id],
            metric_namespace="Microsoft.Network/loadBalancers",
            metric_names=["UsedSnatPorts", "SnatConnectionCount"],
            timespan=window,
            granularity=timedelta(minutes=1),
            aggregations=["Average", "Total"],
            max_results=1000,
            filter="BackendIPAddress eq '*'",
            enforce_https=False,
        )
    listed = await list_metrics(
        monitor(sim),
        lb.id,
        clock,
        metricnames="UsedSnatPorts,SnatConnectionCount",
        aggregation="Average,Total",
        filter="BackendIPAddress eq '*'",
        top=1000,
    )
    batch_request = next(r for r in sim.requests if r.operation == "batch")
    assert batch_request.path.endswith("/metrics:getBatch")
    assert batch_request.body == {"resourceids": [lb.id]}
    by_batch = {
        (m.name, tuple(ts.metadata_values.items()), p.timestamp.isoformat(), p.average, p.total)
        for m in result.metrics
        for ts in m.timeseries
        for p in ts.data
    }
    by_list = {
        (
            m.name.value,
            tuple((mv.name.value, mv.value) for mv in ts.metadatavalues),
            p.time_stamp.isoformat(),
            p.average,
            p.total,
        )
        for m in listed.value
        for ts in m.timeseries
        for p in ts.data
    }
    assert by_batch == by_list
    assert len(by_batch) == 2 * 6 * 10


async def test_batch_limits_and_529(make_sim, clock) -> None:
    data = {
        "subscription_id": "11111111-2222-3333-4444-555555555555",
        "batch_series_limit": 100,
        "cluster": {"resource_group": "rg", "name": "aks", "agent_pools": [{"name": "pool", "count": 1}]},
        "load_balancers": [{"name": "kubernetes"}, {"name": "lb-{i}", "count": 51, "backends": 4}],
        "nat_gateways": [{"name": "nat"}],
    }
    sim = await make_sim(load_scenario(data))
    url = f"{sim.url}/subscriptions/{sim.scenario.subscription_id}/metrics:getBatch"
    start, end = timespan(clock).split("/")
    params = {
        "api-version": "2024-02-01",
        "starttime": start,
        "endtime": end,
        "interval": "PT1M",
        "metricnamespace": "Microsoft.Network/loadBalancers",
        "metricnames": "UsedSnatPorts",
        "aggregation": "Average",
        "filter": "BackendIPAddress eq '*'",
        "top": "10",
    }
    lbs = [lb.id for lb in sim.scenario.load_balancers[1:]]
    nat = sim.scenario.nat_gateways[0].id

    async def post(ids: list[str], **extra: str) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, params={**params, **extra}, json={"resourceids": ids}) as resp,
        ):
            return resp.status, await resp.json()

    status, body = await post(lbs[:25])  # 25 x 4 series = the limit of 100
    assert status == 200 and len(body["values"]) == 25
    assert [v["resourceid"] for v in body["values"]] == lbs[:25]
    for ids, words in [
        (lbs, "At most 50"),
        (lbs[:26], "more than the limit"),
        ([lbs[0], nat], "must be of type"),
        ([lbs[0], lbs[0]], "unique"),
    ]:
        status, body = await post(ids)
        assert status == 400 and words in body["error"]["message"], (len(ids), body)
    status, body = await post(lbs[:2], metricnames="")
    assert status == 400 and "metricnames" in body["error"]["message"]

    sim.add_fault(Fault("status", status=529, operation="batch", times=1))
    status, body = await post(lbs[:2])
    assert status == 529 and body["error"]["code"] == "ServerBusy"
    status, _ = await post(lbs[:2])
    assert status == 200
