"""The committed dashboards are what the generator makes, and every panel is usable as shipped."""

from __future__ import annotations

import json
from typing import Any

import pytest

from snat_exporter.generate import dashboards
from snat_exporter.generate.dashboards.snat_row import fresh_metrics_regex
from snat_exporter.generate.mixin import load_mixin
from tests.conftest import ROOT

OUT = ROOT / "dashboards" / "out"
NAMES = sorted(dashboards.DASHBOARDS)
RENDERED = dashboards.render(load_mixin())
SNAT_ROW = [
    "SNAT port utilisation per node",
    "Allocated vs used SNAT ports",
    "SNAT connections by state",
    "NAT gateway active connections against capacity",
    "NAT gateway dropped packets",
    "Datapath availability",
    "Conntrack table utilisation per node",
    "Conntrack insert failures per node",
    "Node-side destination pressure",
    "Outbound flows by TCP state",
    "Top destinations by concurrent outbound flows",
    "Top pods by concurrent outbound flows",
    "Cilium NAT pressure per node (eBPF host routing)",
    "Top Cilium NAT tuples",
    "Data freshness",
]


def board(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((OUT / name).read_text())
    return data


def panels(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in data["panels"] if p["type"] != "row"]


def row_titles(data: dict[str, Any], row: str) -> list[str]:
    titles, inside = [], False
    for p in data["panels"]:
        if p["type"] == "row":
            inside = p["title"] == row
        elif inside:
            titles.append(p["title"])
    return titles


@pytest.mark.parametrize("name", NAMES)
def test_committed_json_is_the_generator_output_byte_for_byte(name: str) -> None:
    assert (OUT / name).read_text() == RENDERED[name], f"dashboards/out/{name}: run make generate"


def test_cluster_overview_has_the_snat_row_and_the_standalone_has_the_same_panels() -> None:
    overview, standalone = board("cluster-overview.json"), board("snat-activity.json")
    assert overview["title"] == "Cluster Overview"
    assert standalone["title"] == "SNAT Activity"
    assert row_titles(overview, "Network: SNAT Activity") == SNAT_ROW
    assert row_titles(standalone, "Network: SNAT Activity") == SNAT_ROW
    assert overview["uid"] != standalone["uid"]


@pytest.mark.parametrize("name", NAMES)
def test_every_panel_has_unit_thresholds_description_and_the_datasource_variable(name: str) -> None:
    for p in panels(board(name)):
        defaults = p["fieldConfig"]["defaults"]
        assert defaults.get("unit"), f"{p['title']}: unit"
        assert defaults.get("thresholds", {}).get("steps"), f"{p['title']}: thresholds"
        assert len(p.get("description", "")) > 40, f"{p['title']}: description"
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], f"{p['title']}: no query"
        for t in p["targets"]:
            assert '$cluster"' in t["expr"], f"{p['title']}: query ignores the cluster variable"


@pytest.mark.parametrize("name", NAMES)
def test_variables_cover_datasource_cluster_node_and_outbound_resources(name: str) -> None:
    variables = {v["name"]: v for v in board(name)["templating"]["list"]}
    assert list(variables) == ["datasource", "cluster", "node", "load_balancer", "nat_gateway"]
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for var in ("cluster", "node", "load_balancer", "nat_gateway"):
        # "All" is `.*`, which also matches series that have no such label (one cluster, no relabelling)
        assert variables[var]["includeAll"] and variables[var]["allValue"] == ".*", var


@pytest.mark.parametrize("name", NAMES)
def test_panels_do_not_overlap(name: str) -> None:
    cells: set[tuple[int, int]] = set()
    for p in board(name)["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & area, f"{p['title']} overlaps another panel"
        cells |= area


def test_failed_connections_stand_out() -> None:
    panel = next(p for p in panels(board("snat-activity.json")) if p["title"] == "SNAT connections by state")
    override = panel["fieldConfig"]["overrides"][0]
    assert override["matcher"] == {"id": "byRegexp", "options": ".*failed.*"}
    assert {"id": "color", "value": {"fixedColor": "red", "mode": "fixed"}} in override["properties"]


def test_data_freshness_reads_the_metrics_that_the_delayed_data_alert_reads() -> None:
    import yaml

    rules = yaml.safe_load((ROOT / "alerts" / "alerts.yml").read_text())
    alert = next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "SnatAzureMetricsDelayed")
    assert f'metric=~"{fresh_metrics_regex()}"' in alert["expr"]


@pytest.mark.parametrize("name", NAMES)
def test_the_committed_json_loads_in_the_foundation_sdk_model(name: str) -> None:
    from grafana_foundation_sdk.models.dashboard import Dashboard

    model = Dashboard.from_json(board(name))
    assert model.uid == board(name)["uid"] and model.panels and len(model.panels) == len(board(name)["panels"])
