"""The pure layer: SDK response models -> records, the query plan, the counter ledger, ARM JSON helpers."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.mgmt.monitor.models import Response
from hypothesis import given, settings
from hypothesis import strategies as st

from snat_exporter.azure_facts import LOAD_BALANCERS, NAT_GATEWAYS
from snat_exporter.collectors.azure.config import AzureConfig
from snat_exporter.collectors.azure.discovery import lb_capacity, nat_ip_refs, parse_cluster, prefix_size
from snat_exporter.collectors.azure.ledger import Ledger
from snat_exporter.collectors.azure.parse import (
    MalformedResponse,
    Point,
    format_timespan,
    merge_minutes,
    parse_response,
)
from snat_exporter.collectors.azure.parse_batch import load_batch_json, parse_batch, parse_metrics_json
from snat_exporter.collectors.azure.queries import LB_METRICS, NAT_METRICS, plan, protocol
from tests.conftest import AZURE_EXAMPLES, ROOT, azure_example

FIXTURES = Path(__file__).parent / "fixtures"


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def example(name: str) -> Response:
    return Response.deserialize(azure_example(name))


def fixture(name: str) -> Response:
    return Response.deserialize(json.loads((FIXTURES / name).read_text()))


def test_real_example_parses_with_lower_cased_dimensions() -> None:
    results = parse_response(example("metrics-list-2024-02-01-GetMetric.json"), "Average")
    assert set(results) == {"blobcount", "blobcapacity"}
    count = results["blobcount"]
    assert count.ok and count.name == "BlobCount"
    tiers = {s.dims["tier"]: s for s in count.series}
    assert set(tiers) >= {"Hot", "Standard", "Cool"}
    assert tiers["Hot"].newest() == Point(ts("2021-04-20T13:00:00Z"), 7.0)
    cool = tiers["Cool"].newest()
    assert cool is not None and cool.value == 0.0  # a real 0 stays 0


def test_per_metric_error_inside_a_200_is_reported_and_the_other_metric_kept() -> None:
    results = parse_response(example("metrics-list-2023-10-01-GetMetricError.json"), "Average")
    failed = results["mongorequestscount"]
    assert not failed.ok and failed.error_code == "InvalidSamplingType"
    assert "Sampling type" in failed.error_message and failed.series == ()
    assert results["mongorequests"].ok


def test_empty_minutes_are_missing_not_zero_and_dimension_names_match_any_case() -> None:
    results = parse_response(fixture("lb-ports.json"), "Average")
    allocated = {s.dims["backendipaddress"]: s for s in results["allocatedsnatports"].series}
    # the newest minute has no value: the newest valued minute wins
    assert allocated["10.224.0.4"].newest() == Point(ts("2026-11-22T10:02:00Z"), 1024.0)
    assert allocated["10.224.0.5"].points == (Point(ts("2026-11-22T10:00:00Z"), 1024.0),)
    assert allocated["10.224.0.6"].points == ()  # no valued minute at all: absent, not 0
    used = results["usedsnatports"].series[0]
    assert used.dims == {"frontendipaddress": "20.1.2.3", "backendipaddress": "10.224.0.4", "protocoltype": "TCP"}
    assert [p.value for p in used.points] == [100.0, 0.0, 250.0]


def test_the_aggregation_read_is_the_one_asked_for() -> None:
    # in the 2018 example, empty minutes carry only `count: 0`: asked for Average, only the valued minute is kept
    results = parse_response(example("metrics-list-2018-01-01-GetMetric.json"), "Average")
    by_type = {s.dims["blobtype"]: s.points for s in results["blobcapacity"].series}
    assert by_type == {
        "PageBlob": (Point(ts("2017-04-14T02:23:00Z"), 0.0),),
        "BlockBlob": (Point(ts("2017-04-14T02:23:00Z"), 245.0),),
    }


def test_wrong_shapes_are_malformed() -> None:
    with pytest.raises(MalformedResponse):
        parse_response(Response.deserialize({"timespan": "x"}), "Average")
    with pytest.raises(MalformedResponse):
        parse_response(Response.deserialize({"timespan": "x", "value": [{"id": "a", "unit": "Count"}]}), "Average")


def test_timespan_is_iso_utc() -> None:
    start = datetime(2026, 11, 22, 10, 0, tzinfo=UTC).timestamp()
    assert format_timespan(start, start + 600.7) == "2026-11-22T10:00:00Z/2026-11-22T10:10:00Z"


def test_plan_groups_by_filter_and_asks_the_union_of_aggregations() -> None:
    lb = plan(LOAD_BALANCERS)
    assert [q.metricnames for q in lb] == [
        "AllocatedSnatPorts,UsedSnatPorts",
        "SnatConnectionCount",
        "VipAvailability",
        "DipAvailability",
    ]
    assert lb[0].aggregation == "Average"
    assert lb[0].filter == "BackendIPAddress eq '*' and FrontendIPAddress eq '*' and ProtocolType eq '*'"
    assert lb[1].aggregation == "Total" and "ConnectionState eq '*'" in (lb[1].filter or "")
    nat = plan(NAT_GATEWAYS)
    assert [q.metricnames for q in nat] == [
        "SNATConnectionCount",
        "TotalConnectionCount",
        "PacketDropCount,DatapathAvailability",
        "ByteCount,PacketCount",
    ]
    # the two metrics without dimensions share one call that asks for both fields; each reads its own
    drops = nat[2]
    assert drops.filter is None and drops.aggregation == "Total,Average"
    assert drops.fields == {"packetdropcount": "Total", "datapathavailability": "Average"}
    assert sum(len(q.metrics) for q in lb) == len(LB_METRICS)
    assert sum(len(q.metrics) for q in nat) == len(NAT_METRICS)


def test_calls_per_resource_per_cycle_primary_and_secondary() -> None:
    """A group is secondary only when all its metrics are: datapath availability rides with the dropped packets
    every cycle. A load balancer: 2 calls every cycle + 2 every `secondary_interval`; a NAT gateway: 3 + 1."""
    lb, nat = plan(LOAD_BALANCERS), plan(NAT_GATEWAYS)
    assert [q.secondary for q in lb] == [False, False, True, True]
    assert [q.secondary for q in nat] == [False, False, False, True]
    # the estate of docs/performance.md at the defaults: 1,000 LBs + 200 NAT gateways, `batch_size` per getBatch
    # call, the secondary groups every `secondary_interval` / `interval` cycles: <= 0.05 calls/resource/minute
    cfg = AzureConfig()
    every = round(cfg.secondary_interval / cfg.interval)
    estate = {LOAD_BALANCERS: 1000, NAT_GATEWAYS: 200}
    per_cycle = sum(
        math.ceil(n / cfg.batch_size) * (1 if not q.secondary else 1 / every)
        for kind, n in estate.items()
        for q in plan(kind)
    )
    assert per_cycle == pytest.approx(52 + 44 / 10)
    assert per_cycle * (60 / cfg.interval) / sum(estate.values()) <= 0.05


def _combined_answer() -> dict[str, Any]:
    """One NAT gateway answer to `metricnames=PacketDropCount,DatapathAvailability&aggregation=Total,Average`: every
    point carries both fields (as the examples with several aggregations do), with different values."""

    def metric(name: str, points: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": f"{NAT}/providers/Microsoft.Insights/metrics/{name}",
            "type": "Microsoft.Insights/metrics",
            "name": {"value": name, "localizedValue": name},
            "unit": "Count",
            "timeseries": [{"metadatavalues": [], "data": points}],
            "errorCode": "Success",
        }

    return {
        "timespan": "2026-11-22T10:00:00Z/2026-11-22T10:03:00Z",
        "interval": "PT1M",
        "value": [
            metric(
                "PacketDropCount",
                [
                    {"timeStamp": "2026-11-22T10:00:00Z", "total": 12.0, "average": 3.0},
                    {"timeStamp": "2026-11-22T10:01:00Z", "average": 2.0},  # no total: missing, not 2, not 0
                    {"timeStamp": "2026-11-22T10:02:00Z", "total": 0.0, "average": 0.0},
                ],
            ),
            metric(
                "DatapathAvailability",
                [
                    {"timeStamp": "2026-11-22T10:00:00Z", "total": 400.0, "average": 100.0},
                    {"timeStamp": "2026-11-22T10:01:00Z", "total": 199.0},  # no average: missing, not 199
                    {"timeStamp": "2026-11-22T10:02:00Z", "total": 399.2, "average": 99.8},
                ],
            ),
            metric("ByteCount", [{"timeStamp": "2026-11-22T10:00:00Z", "total": 5.0}]),  # not asked: skipped
        ],
    }


NAT = (
    f"/subscriptions/{'0' * 8}-0000-0000-0000-{'0' * 12}/resourceGroups/rg/providers/Microsoft.Network/natGateways/nat"
)


def test_each_metric_of_a_call_reads_its_own_aggregation_on_both_paths() -> None:
    fields = plan(NAT_GATEWAYS)[2].fields
    body = _combined_answer()
    by_sdk = parse_response(Response.deserialize(body), fields)
    by_json = parse_metrics_json(body["value"], fields)
    by_batch = parse_batch({"values": [{"resourceid": NAT, "value": body["value"]}]}, fields)[NAT.lower()]
    for results in (by_sdk, by_json, by_batch):
        assert set(results) == {"packetdropcount", "datapathavailability"}
        drops = results["packetdropcount"].series[0].points
        assert drops == (Point(ts("2026-11-22T10:00:00Z"), 12.0), Point(ts("2026-11-22T10:02:00Z"), 0.0))
        availability = results["datapathavailability"].series[0].points
        assert availability == (Point(ts("2026-11-22T10:00:00Z"), 100.0), Point(ts("2026-11-22T10:02:00Z"), 99.8))
    assert by_sdk == by_json == by_batch


def test_protocol_numbers_and_names_become_lower_case_labels() -> None:
    assert [protocol(v) for v in ("6", "17", "TCP", "Udp", "47")] == ["tcp", "udp", "tcp", "udp", "47"]


def test_ledger_counts_each_minute_once_through_late_fills_and_revisions() -> None:
    ledger = Ledger()
    key = ("lb", "SnatConnectionCount", ())
    # first window: minutes 0..2, minute 2 still partial
    obs = ledger.observe(key, [Point(0, 5), Point(60, 3), Point(120, 1)], window_start=0)
    assert obs.total == 9  # the first window is counted whole
    # next cycle: minute 2 revised up (1 -> 4), minute 3 filled in late, minute 1 unchanged
    obs = ledger.observe(key, [Point(60, 3), Point(120, 4), Point(180, 2)], window_start=60)
    assert (obs.total, obs.added) == (14, 5)
    # a downward revision is ignored and reported; re-sending the same minutes adds nothing
    obs = ledger.observe(key, [Point(120, 2), Point(180, 2)], window_start=60)
    assert (obs.total, obs.added, obs.downward_revisions) == (14, 0, 1)
    # a minute that left the window is forgotten and never counted again
    obs = ledger.observe(key, [Point(0, 5), Point(240, 1)], window_start=180)
    assert obs.total == 15


def test_merged_series_sum_per_minute() -> None:
    merged = merge_minutes([(Point(0, 1), Point(60, 2)), (Point(60, 3),)])
    assert merged == (Point(0, 1), Point(60, 5))


SUB = "11111111-2222-3333-4444-555555555555"


def test_cluster_outbound_type_and_subnets() -> None:
    body = {
        "name": "aks-shop",
        "properties": {
            "nodeResourceGroup": "MC_rg-shop_aks-shop_westeurope",
            "networkProfile": {"outboundType": "userAssignedNATGateway"},
            "agentPoolProfiles": [
                {"name": "a", "vnetSubnetID": "/subscriptions/x/subnets/s1"},
                {"name": "b", "vnetSubnetID": "/subscriptions/x/subnets/S1"},
                {"name": "c"},
            ],
        },
    }
    info, subnets = parse_cluster(body, SUB, "rg-shop", "aks-shop")
    assert info.outbound_type == "userAssignedNATGateway"
    assert info.node_resource_group == "MC_rg-shop_aks-shop_westeurope"
    assert subnets == ["/subscriptions/x/subnets/s1"]
    with pytest.raises(MalformedResponse):
        parse_cluster({"properties": {}}, SUB, "rg", "n")


def test_lb_capacity_counts_outbound_frontends() -> None:
    fe = [{"id": f"/lb/frontendIPConfigurations/{i}"} for i in range(3)]
    body = {
        "properties": {
            "frontendIPConfigurations": fe,
            "outboundRules": [
                {"properties": {"allocatedOutboundPorts": 0, "frontendIPConfigurations": fe[:2]}},
            ],
        }
    }
    assert lb_capacity(body) == (2, 0)
    assert lb_capacity({"properties": {"frontendIPConfigurations": fe}}) == (3, None)


def test_nat_public_ips_count_prefix_sizes() -> None:
    body = {"properties": {"publicIpAddresses": [{"id": "a"}, {"id": "b"}], "publicIPPrefixes": [{"id": "p"}]}}
    assert nat_ip_refs(body) == (2, ["p"])
    assert prefix_size({"properties": {"prefixLength": 28}}) == 16
    assert prefix_size({"properties": {"prefixLength": 124, "publicIPAddressVersion": "IPv6"}}) == 0
    with pytest.raises(MalformedResponse):
        prefix_size({"properties": {}})


def test_the_delayed_data_alert_watches_exactly_the_metrics_queried_every_cycle() -> None:
    """A secondary metric is normally up to `secondary_interval` + Azure's lag old: in the alert it would fire on a
    healthy exporter; a primary metric left out would go stale unnoticed."""
    rules = yaml.safe_load((ROOT / "alerts" / "alerts.yml").read_text())
    (expr,) = [r["expr"] for g in rules["groups"] for r in g["rules"] if r.get("alert") == "SnatAzureMetricsDelayed"]
    match = re.search(r'metric=~"([^"]+)"', expr)
    assert match is not None, expr
    primary = {
        mm.azure_name
        for kind in (LOAD_BALANCERS, NAT_GATEWAYS)
        for q in plan(kind)
        if not q.secondary
        for mm in q.metrics
    }
    assert set(match.group(1).split("|")) == primary


# ---------------------------------------------------------------------------------------- load_batch_json

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["values", "cost", "x"]), json_values, max_size=3),
    st.sampled_from(["", " ", "\n  "]),
)
def test_a_batch_body_decodes_exactly_as_json_loads_does(doc: dict[str, Any], space: str) -> None:
    compact = json.dumps(doc).encode()
    spaced = json.dumps(doc, indent=1).replace("\n", "\n" + space).encode()
    for raw in (compact, spaced, space.encode() + compact + space.encode()):
        assert load_batch_json(raw) == json.loads(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b'{"values": [',
        b'{"values": [{"a": 1},',
        b'{"values": [{"a": 1}}',
        b'{"values": [1 2]}',
        b'{"values": []} x',
        b'{"values": [] "x": 1}',
        b"{values: []}",
        b'{"values": [], }',
        b"\xff\xfe\xfa",
    ],
)
def test_a_broken_batch_body_is_refused_as_json_loads_refuses_it(raw: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(raw)
    with pytest.raises(ValueError):
        load_batch_json(raw)


def test_the_real_batch_example_decodes_as_json_loads_does() -> None:
    raw = (AZURE_EXAMPLES / "metrics-batch-2024-02-01-MetricBatchExample2.json").read_bytes()
    answer = json.dumps(json.loads(raw)["responses"]["200"]["body"], indent=2).encode()  # what the API returns
    assert load_batch_json(answer) == json.loads(answer)
    assert len(load_batch_json(answer)["values"]) == 3


def _hostile_answer() -> dict[str, Any]:
    """One LB answer in which every kind of impossible value sits next to good ones (issue 15)."""

    def series(ip: str, *points: dict[str, Any]) -> dict[str, Any]:
        return {
            "metadatavalues": [{"name": {"value": "BackendIPAddress"}, "value": ip}],
            "data": list(points),
        }

    def at(minute: int, value: Any, day: str = "2026-11-22") -> dict[str, Any]:
        return {"timeStamp": f"{day}T10:{minute:02d}:00Z", "total": value}

    return {
        "timespan": "2026-11-22T10:00:00Z/2026-11-22T10:05:00Z",
        "value": [
            {
                "name": {"value": "SnatConnectionCount"},
                "errorCode": "Success",
                "timeseries": [
                    series("10.0.0.1", at(0, 1.0), at(1, float("nan")), at(2, 3.0)),
                    series("10.0.0.2", at(0, -8.0), at(1, 1e308), at(2, float("inf")), at(3, 2**60), at(4, 5)),
                    series("10.0.0.3", at(0, 2.0), at(1, 4.0, day="2099-01-01")),
                    series("10.0.0.\ud800", at(0, 7.0)),
                    series("10.0.0.\x1b[2J", at(0, 7.0)),
                ],
            },
            {"name": {"value": "UsedSnatPorts"}, "errorCode": "Bad\ud800Code", "timeseries": []},
        ],
    }


NOW = ts("2026-11-22T10:06:00Z")


def test_impossible_values_drop_the_point_and_bad_labels_the_series_both_paths() -> None:
    """A NaN used to discard the whole query; a negative, 1e308 or a future minute was counted for good; a lone
    surrogate in a dimension made rendering fail for the whole collector."""
    body = _hostile_answer()
    fields = {"snatconnectioncount": "Total", "usedsnatports": "Average"}
    by_json = parse_metrics_json(body["value"], fields, now=NOW)
    by_sdk = parse_response(Response.deserialize(body), fields, now=NOW)
    by_batch = parse_batch({"values": [{"resourceid": NAT, "value": body["value"]}]}, fields, now=NOW)[NAT.lower()]
    for results in (by_json, by_sdk, by_batch):
        conns = results["snatconnectioncount"]
        assert {s.dims["backendipaddress"]: [p.value for p in s.points] for s in conns.series} == {
            "10.0.0.1": [1.0, 3.0],
            "10.0.0.2": [5.0],
            "10.0.0.3": [2.0],
        }
        assert dict(conns.rejected) == {"non_finite": 2, "negative": 1, "too_large": 2, "future": 1, "bad_label": 2}
        assert results["usedsnatports"].error_code == "other"  # a label value of the errors counter


def test_a_minute_within_clock_skew_is_not_from_the_future() -> None:
    body = _hostile_answer()
    late = parse_metrics_json(body["value"], "Total", now=ts("2099-01-01T09:57:00Z"))["snatconnectioncount"]
    assert "future" not in dict(late.rejected)


def test_a_series_without_minutes_is_not_a_malformed_batch_answer() -> None:
    """Found by tests/fuzz/test_hostile_values.py: `"data": []` (legal: a backend with no minute in the window)
    made the whole getBatch answer malformed, every resource of the call with it."""
    value = [
        {
            "name": {"value": "UsedSnatPorts"},
            "errorCode": "Success",
            "timeseries": [
                {"metadatavalues": [{"name": {"value": "BackendIPAddress"}, "value": "10.0.0.1"}], "data": []},
                {
                    "metadatavalues": [{"name": {"value": "BackendIPAddress"}, "value": "10.0.0.2"}],
                    "data": [{"timeStamp": "2026-11-22T10:00:00Z", "average": 3.0}],
                },
            ],
        }
    ]
    results = parse_batch({"values": [{"resourceid": NAT, "value": value}]}, "Average")[NAT.lower()]
    assert [len(s.points) for s in results["usedsnatports"].series] == [0, 1]
