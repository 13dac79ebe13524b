"""The simulator's answers have the structure of Azure's own examples: same keys, same types, same nesting.

The examples are the published ones of github.com/Azure/azure-rest-api-specs, kept in tests/fixtures/azure_examples
(each file names its source path and commit)."""

from __future__ import annotations

from typing import Any

import aiohttp

from snat_exporter.simulator import Fault
from tests.conftest import azure_example
from tests.simulator.conftest import timespan


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    return type(value).__name__


def structure_diff(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Where the two JSON trees differ in keys, types or nesting (values are free)."""
    if _kind(expected) != _kind(actual):
        return [f"{path}: expected {_kind(expected)}, got {_kind(actual)}"]
    if isinstance(expected, dict):
        problems = []
        if set(expected) != set(actual):
            missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
            problems.append(f"{path}: missing keys {missing}, extra keys {extra}")
        for key in set(expected) & set(actual):
            problems += structure_diff(expected[key], actual[key], f"{path}.{key}")
        return problems
    if isinstance(expected, list):
        if expected and not actual:
            return [f"{path}: expected a non-empty list"]
        if not expected:
            return [] if not actual else [f"{path}: expected an empty list"]
        # Same length: item by item (a list of different things, e.g. a failed and a good metric); otherwise
        # every item against the example's first.
        pairs = (
            zip(expected, actual, strict=True) if len(expected) == len(actual) else ((expected[0], a) for a in actual)
        )
        return [p for i, (e, a) in enumerate(pairs) for p in structure_diff(e, a, f"{path}[{i}]")]
    return []


def test_structure_diff_catches_differences() -> None:
    base = {"a": [{"b": 1.0, "c": "x"}], "d": 1}
    assert structure_diff(base, {"a": [{"b": 2.0, "c": "y"}, {"b": 3.0, "c": "z"}], "d": 5}) == []
    assert structure_diff(base, {"a": [{"b": 2.0}], "d": 5}) == ["$.a[0]: missing keys ['c'], extra keys []"]
    assert structure_diff(base, {"a": [{"b": "2", "c": "y"}], "d": 5}) == ["$.a[0].b: expected float, got str"]
    assert structure_diff(base, {"a": {"b": 1.0}, "d": 5}) == ["$.a: expected list, got dict"]


def dimension_names(body: Any) -> set[str]:
    return {md["name"]["value"] for m in body["value"] for ts in m["timeseries"] for md in ts["metadatavalues"]}


async def get_json(url: str, params: dict[str, str]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as resp:
        return resp.status, await resp.json()


def metrics_url(sim: Any) -> str:
    return sim.url + sim.scenario.load_balancers[0].id + "/providers/Microsoft.Insights/metrics"


async def test_metrics_list_data_matches_2024_02_01_example(make_sim, clock) -> None:
    sim = await make_sim("steady")
    # The example's own query shape: two metrics, a split, three aggregations, top and orderby.
    status, body = await get_json(
        metrics_url(sim),
        {
            "api-version": "2024-02-01",
            "timespan": timespan(clock),
            "interval": "PT1M",
            "metricnames": "UsedSnatPorts,AllocatedSnatPorts",
            "aggregation": "average,minimum,maximum",
            "$filter": "BackendIPAddress eq '*'",
            "top": "5",
            "orderby": "average asc",
            "metricnamespace": "Microsoft.Network/loadBalancers",
        },
    )
    assert status == 200
    # Only valued minutes can be compared with the example's points, which all have values.
    for metric in body["value"]:
        for ts in metric["timeseries"]:
            ts["data"] = [p for p in ts["data"] if "average" in p]
            assert ts["data"]
    expected = azure_example("metrics-list-2024-02-01-GetMetric.json")
    assert structure_diff(expected, body) == []
    assert len(body["value"][0]["timeseries"]) == 5
    # Azure answers a `$filter` on `Tier` or `BackendIPAddress` with the dimension's name lower-cased.
    assert dimension_names(expected) == {"tier"}
    assert dimension_names(body) == {"backendipaddress"}


async def test_metrics_list_metadata_matches_example(make_sim, clock) -> None:
    sim = await make_sim("steady")
    status, body = await get_json(
        metrics_url(sim),
        {
            "api-version": "2024-02-01",
            "timespan": timespan(clock),
            "metricnames": "UsedSnatPorts",
            "$filter": "BackendIPAddress eq '*'",
            "resultType": "Metadata",
            "top": "100",
        },
    )
    assert status == 200
    assert structure_diff(azure_example("metrics-list-2023-10-01-GetMetricMetadata.json"), body) == []
    assert len(body["value"][0]["timeseries"]) == 60


async def test_per_metric_error_matches_example(make_sim, clock) -> None:
    sim = await make_sim("steady")
    sim.add_fault(Fault("metric_error", metric="UsedSnatPorts", error_code="InvalidSamplingType"))
    status, body = await get_json(
        metrics_url(sim),
        {
            "api-version": "2024-02-01",
            "timespan": timespan(clock, 1000),
            "interval": "FULL",
            "metricnames": "UsedSnatPorts,VipAvailability",
            "aggregation": "average",
        },
    )
    assert status == 200
    assert structure_diff(azure_example("metrics-list-2023-10-01-GetMetricError.json"), body) == []
    assert [m["errorCode"] for m in body["value"]] == ["InvalidSamplingType", "Success"]


async def test_get_batch_matches_example(make_sim, clock) -> None:
    sim = await make_sim("steady")
    lb = sim.scenario.load_balancers[0]
    params = {
        "api-version": "2024-02-01",
        "starttime": timespan(clock, 60).split("/")[0],
        "endtime": timespan(clock, 60).split("/")[1],
        "interval": "FULL",
        "metricnamespace": "Microsoft.Network/loadBalancers",
        "metricnames": "UsedSnatPorts",
        "aggregation": "average",
        "top": "10",
        "orderby": "average desc",
        "filter": "BackendIPAddress eq '10.224.0.4'",
        "rollupby": "BackendIPAddress",
    }
    url = f"{sim.url}/subscriptions/{sim.scenario.subscription_id}/metrics:getBatch"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, params=params, json={"resourceids": [lb.id]}) as resp:
            assert resp.status == 200
            body = await resp.json()
        assert structure_diff(azure_example("metrics-batch-2024-02-01-MetricBatchExample2.json"), body) == []
        # The example's error: a time range given the pre-2024 way.
        async with session.post(
            url, params={**params, "timespan": timespan(clock)}, json={"resourceids": [lb.id]}
        ) as resp:
            assert resp.status == 400
            error = await resp.json()
    expected = azure_example("metrics-batch-2024-02-01-MetricBatchExample2.json", "default")
    assert structure_diff(expected, error) == []
    assert error["error"]["message"] == expected["error"]["message"]
