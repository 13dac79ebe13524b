"""Hypothesis fuzzing of what found issue 15: answers of the right shape whose values are not measurements.

Where ``test_parsers.py`` breaks the shape of the input, this file keeps the shape and breaks the values: minutes
from the future, out of order and repeated; NaN, infinities, negative and absurdly large values; lone surrogates,
control characters and kilobytes of text in every string that becomes a label (Azure dimension values and error
codes, Kubernetes names, namespaces, pools, zones, owners and IPs). The properties are what an SRE would notice:

- nothing a parser keeps is impossible (a value outside [0, 2^53], a minute after now, a label no encoder takes);
- every point or series dropped is counted, none silently lost;
- whatever was kept renders, and the rendered block is valid UTF-8 that Prometheus' parser reads back.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from snat_exporter.catalogue import MetricSpec
from snat_exporter.collectors.azure.parse import FUTURE_SLACK, MAX_VALUE
from snat_exporter.collectors.azure.parse_batch import parse_batch, parse_metrics_json
from snat_exporter.collectors.kube.cache import KubeIdentity, NodeIndex, PodIndex
from snat_exporter.collectors.kube.metrics import NODE_INFO
from snat_exporter.labels import is_label_text
from snat_exporter.render import render_snapshot
from snat_exporter.simulator.kubeobjects import node_object, pod_object
from snat_exporter.snapshot import Families, Snapshot

FUZZ = settings(max_examples=150, deadline=1000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)

NOW = 1_800_000_000.0
RESOURCE = (
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourcegroups/rg/providers/microsoft.network/loadbalancers/lb"
)

# Strings as hostile sources send them: ordinary ones, and ones with what no label may hold.
hostile_text = st.one_of(
    st.sampled_from(["10.224.0.4", "TCP", "Failed", "aks-nodepool1-0", "", "fd00::4"]),
    st.text(st.characters(codec="utf-8"), max_size=12),  # any character that can be encoded
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2).map(
        lambda s: "10.0.0." + s
    ),  # lone surrogates
    st.text(st.characters(max_codepoint=0x9F, categories=["Cc"]), min_size=1, max_size=3).map(lambda s: "n" + s),
    st.just("x" * 2000),
)
hostile_value = st.one_of(
    st.floats(min_value=0, max_value=1e6),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), -8.0, 1e308, -0.0, 2.0**53, 2.0**53 + 2]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
)
# Minutes around now: the usual past, a few just after now (clock skew), far future, the year 2099, repeats.
minute = st.one_of(
    st.integers(-15, 0).map(lambda m: NOW + 60 * m),
    st.integers(1, 10).map(lambda m: NOW + 60 * m),
    st.just(datetime(2099, 1, 1, tzinfo=UTC).timestamp()),
    st.integers(-(10**6), 10**6).map(lambda m: NOW + 60 * m),
)


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@st.composite
def hostile_metric(draw: st.DrawFn) -> dict[str, Any]:
    """One Metric object of an answer: right shape, hostile content."""
    series = []
    for _ in range(draw(st.integers(0, 4))):
        points = [
            {"timeStamp": _stamp(draw(minute)), **({"total": draw(hostile_value)} if draw(st.booleans()) else {})}
            for _ in range(draw(st.integers(0, 6)))
        ]  # any order, repeats allowed
        dims = [{"name": {"value": "BackendIPAddress"}, "value": draw(hostile_text)}]
        if draw(st.booleans()):
            dims.append({"name": {"value": "ConnectionState"}, "value": draw(hostile_text)})
        series.append({"metadatavalues": dims, "data": points})
    code = draw(st.one_of(st.just("Success"), hostile_text))
    return {"name": {"value": "SnatConnectionCount"}, "errorCode": code, "errorMessage": "x", "timeseries": series}


def _valued(metric: dict[str, Any]) -> int:
    return sum(1 for s in metric["timeseries"] for p in s["data"] if p.get("total") is not None)


TEST_SPEC = MetricSpec("snat_test_connections", "gauge", "Fuzzed series.", ("backend_ip", "state"), source="fuzz")


def _renders(families: Families) -> None:
    """The block renders, as valid UTF-8 that Prometheus' parser reads back, every series in it."""
    built = families.build()
    rendered = render_snapshot(Snapshot(built))
    text = b"".join(rendered.chunks(openmetrics=False)).decode("utf-8")  # strict
    parsed = [s for f in text_string_to_metric_families(text) for s in f.samples]
    assert len(parsed) == sum(len(f.rows) for f in built)


@FUZZ
@given(st.lists(hostile_metric(), min_size=1, max_size=2), st.booleans())
def test_azure_answers_keep_only_measurements_and_count_the_rest(metrics: list[dict[str, Any]], batch: bool) -> None:
    body = {"values": [{"resourceid": RESOURCE, "value": metrics}]}
    if batch:
        results = parse_batch(body, "Total", now=NOW)[RESOURCE]
    else:
        results = parse_metrics_json(metrics, "Total", now=NOW)
    result = results["snatconnectioncount"]
    last = metrics[-1]  # a repeated metric name: the last one wins, as in every parser of the answer
    if not result.ok:
        assert result.error_code is not None and is_label_text(result.error_code) and len(result.error_code) <= 64
        return
    families = Families()
    kept = 0
    for series in result.series:
        assert all(is_label_text(v) for _, v in series.dimensions), series.dimensions
        stamps = [p.timestamp for p in series.points]
        assert stamps == sorted(set(stamps)), "minutes in order, each once"
        for p in series.points:
            assert 0.0 <= p.value <= MAX_VALUE and math.isfinite(p.value), p
            assert p.timestamp <= NOW + FUTURE_SLACK, p
        kept += len(series.points)
        dims = series.dims
        families.add(
            TEST_SPEC, {"backend_ip": dims.get("backendipaddress", ""), "state": dims.get("connectionstate", "")}, 1.0
        )
    rejected = dict(result.rejected)
    dropped_series = rejected.get("bad_label", 0)
    assert len(result.series) + dropped_series == len(last["timeseries"])
    # every valued point is kept, counted as rejected, or a repeat of a kept minute (the last value wins), or
    # belongs to a dropped series
    points_rejected = sum(n for reason, n in rejected.items() if reason != "bad_label")
    assert kept + points_rejected <= _valued(last)
    distinct = all(
        len({p["timeStamp"] for p in s["data"] if p.get("total") is not None})
        == len([p for p in s["data"] if p.get("total") is not None])
        for s in last["timeseries"]
    )
    if dropped_series == 0 and distinct:  # nothing merged, nothing dropped with its series: all accounted for
        assert kept + points_rejected == _valued(last)
    _renders(families)


@FUZZ
@given(
    st.lists(
        st.tuples(
            hostile_text, hostile_text, hostile_text, st.sampled_from(["10.224.0.4", "10.224.0.5"]), hostile_text
        ),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.tuples(hostile_text, hostile_text, hostile_text), max_size=6),
)
def test_kubernetes_objects_with_hostile_names_never_reach_a_label(
    nodes: list[tuple[str, str, str, str, str]], pods: list[tuple[str, str, str]]
) -> None:
    node_index, pod_index = NodeIndex(), PodIndex()
    identity = KubeIdentity(node_index, pod_index)
    for name, pool, zone, ip, extra_ip in nodes:
        if not name:
            continue
        node_index.apply("ADDED", node_object(name, [ip, extra_ip] if extra_ip else ip, pool=pool or "p", zone=zone))
    for i, (namespace, name, owner) in enumerate(pods):
        if not name:
            continue
        pod_index.apply("ADDED", pod_object(namespace, name, f"10.244.0.{i}", owner=("StatefulSet", owner or "o")))
    families = Families()
    for ip, node in node_index.items():
        assert all(is_label_text(t) for t in (ip, node.name, node.pool, node.zone))
        families.add(NODE_INFO, {"node": node.name, "internal_ip": ip, "node_pool": node.pool, "zone": node.zone}, 1)
    for i in range(len(pods)):
        pod = identity.pod_by_ip(f"10.244.0.{i}")
        if pod is not None:
            assert all(is_label_text(t) for t in (pod.namespace, pod.name, pod.workload, pod.workload_kind))
    bad = [p for p in pods if p[1] and not all(is_label_text(t) for t in (p[0], p[1], p[2] or "o"))]
    assert pod_index.rejected == len(bad)
    _renders(families)


@FUZZ
@given(hostile_text, hostile_text, st.lists(st.tuples(hostile_text, hostile_text), min_size=1, max_size=4))
def test_names_arm_returns_never_reach_a_label_nor_the_batch_host(
    node_rg: str, cluster_name: str, lbs: list[tuple[str, str]]
) -> None:
    """Every name discovery reads from ARM becomes a label; a location becomes the host getBatch sends a token to."""
    import asyncio

    from snat_exporter.collectors.azure.discovery import Discoverer
    from snat_exporter.collectors.azure.parse import MalformedResponse

    sub = "00000000-0000-0000-0000-000000000001"

    async def get_json(operation: str, path: str, api_version: str) -> Any:
        if operation == "get_managed_cluster":
            return {
                "name": cluster_name,
                "properties": {"nodeResourceGroup": node_rg, "networkProfile": {"outboundType": "loadBalancer"}},
            }
        rules: dict[str, Any] = {"outboundRules": [{"properties": {"frontendIPConfigurations": []}}]}
        return {"value": [{"name": name, "location": where, "properties": rules} for name, where in lbs]}

    try:
        found = asyncio.run(Discoverer(get_json, subscription_id=sub, cluster=("rg", "aks")).discover(()))
    except MalformedResponse:
        return  # no nodeResourceGroup: the discovery fails as a whole, the known resources stay watched
    for target in found.targets:
        r = target.resource
        assert all(is_label_text(t) for t in (r.name, r.resource_group, r.subscription_id)), r
        assert target.region is None or target.region.isalnum() and target.region.isascii(), target.region
    if found.cluster is not None:
        c = found.cluster
        assert all(is_label_text(t) for t in (c.name, c.node_resource_group, c.outbound_type)), c
    families = Families()
    for target in found.targets:
        families.add(TEST_SPEC, {"backend_ip": target.resource.name, "state": target.resource.resource_group}, 1.0)
    _renders(families)
