"""`snat-exporter dashboards add-row` on a team's own cluster dashboard (a kubernetes-mixin-shaped fixture): the row
goes in below everything, the other panels stay as they were, variables are mapped or added, and a second run
changes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.models.dashboard import Dashboard

from snat_exporter import cli
from snat_exporter.generate import promql
from tests.dashboards.test_dashboards import SNAT_ROW

FIXTURE = Path(__file__).parent / "fixtures" / "cluster-overview-thirdparty.json"
ROW = "Network: SNAT Activity"


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def split(board: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the dashboard's own panels, the SNAT row and its panels)."""
    panels = board["panels"]
    start = next(i for i, p in enumerate(panels) if p.get("type") == "row" and p["title"] == ROW)
    return panels[:start] + [p for p in panels[start + 1 :] if p.get("type") == "row"], [
        p for p in panels[start:] if p.get("type") != "row" or p["title"] == ROW
    ]


@pytest.fixture
def added(tmp_path: Path) -> Path:
    out = tmp_path / "with-row.json"
    assert cli.main(["dashboards", "add-row", "--into", str(FIXTURE), "--out", str(out)]) == 0
    return out


def test_the_result_loads_in_the_foundation_sdk_model(added: Path) -> None:
    data = load(added)
    model = Dashboard.from_json(data)
    assert model.title == "Kubernetes / Compute Resources / Cluster"
    assert model.panels is not None and len(model.panels) == len(data["panels"])


def test_every_other_panel_and_variable_is_unchanged_and_the_row_sits_below(added: Path) -> None:
    before, after = load(FIXTURE), load(added)
    own, row = split(after)
    assert own == before["panels"]
    assert {k: v for k, v in after.items() if k not in ("panels", "templating")} == {
        k: v for k, v in before.items() if k not in ("panels", "templating")
    }
    assert after["templating"]["list"][:2] == before["templating"]["list"]
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in own)
    assert min(p["gridPos"]["y"] for p in row) == bottom
    assert [p["title"] for p in row][:2] == [ROW, "SNAT port utilisation per node"]
    assert len(row) == 1 + len(SNAT_ROW)  # the row header and its panels
    ids = [p["id"] for p in after["panels"]] + [q["id"] for p in after["panels"] for q in p.get("panels", [])]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in after["panels"]:
        g = p["gridPos"]
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & area, f"{p['title']} overlaps another panel"
        cells |= area


def test_variables_are_mapped_onto_the_dashboards_own_and_only_node_is_added(added: Path) -> None:
    data = load(added)
    assert [v["name"] for v in data["templating"]["list"]] == ["prometheus", "k8s", "node"]
    node = data["templating"]["list"][2]
    assert node["query"]["query"].endswith(', cluster=~"${k8s}"}, node)')
    assert node["datasource"] == {"type": "prometheus", "uid": "${prometheus}"}
    _, row = split(data)
    text = json.dumps(row)
    for gone in ("$datasource", "${datasource}", "$cluster", "$load_balancer", "$nat_gateway"):
        assert gone not in text
    for panel in row[1:]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${prometheus}"}, panel["title"]
        for target in panel["targets"]:
            sels = list(promql.selectors(target["expr"], panel["title"]))
            assert sels and all(s.has("cluster", "=~", "${k8s}") for s in sels), target["expr"]


def test_a_second_run_in_place_changes_nothing(added: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = added.read_text()
    capsys.readouterr()
    assert cli.main(["dashboards", "add-row", "--into", str(added)]) == 0
    assert added.read_text() == first
    assert "unchanged" in capsys.readouterr().err


def test_an_older_copy_of_the_row_is_replaced_whole(added: Path) -> None:
    data = load(added)
    data["panels"] = [p for p in data["panels"] if p["title"] != "Data freshness"]  # last year's row lacked it
    added.write_text(json.dumps(data))
    assert cli.main(["dashboards", "add-row", "--into", str(added)]) == 0
    own, row = split(load(added))
    assert own == load(FIXTURE)["panels"] and len(row) == 1 + len(SNAT_ROW)
    assert [p["title"] for p in load(added)["panels"]].count(ROW) == 1


def test_a_dashboard_without_variables_gets_datasource_cluster_and_node(tmp_path: Path) -> None:
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"title": "Cluster Overview", "panels": [], "schemaVersion": 39}))
    assert cli.main(["dashboards", "add-row", "--into", str(bare), "--config", str(_mixin(tmp_path))]) == 0
    data = load(bare)
    assert [v["name"] for v in data["templating"]["list"]] == ["datasource", "cluster", "node"]
    assert (
        data["templating"]["list"][1]["query"]["query"]
        == 'label_values(snat_exporter_build_info{job="snat"}, k8s_cluster)'
    )
    _, row = split(data)
    assert row[0]["gridPos"]["y"] == 0
    exprs = [t["expr"] for p in row[1:] for t in p["targets"]]
    assert all('k8s_cluster=~"${cluster}"' in e for e in exprs)
    Dashboard.from_json(data)


def _mixin(tmp_path: Path) -> Path:
    path = tmp_path / "mixin.yaml"
    path.write_text(
        'cluster_label: k8s_cluster\nselectors:\n  cluster_exporter: job="snat"\n  node_agent: job="snat-node"\n'
    )
    return path


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"panels": 3}'])
def test_what_is_not_a_dashboard_exits_2_and_is_left_alone(
    tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.json"
    path.write_text(content)
    assert cli.main(["dashboards", "add-row", "--into", str(path)]) == 2
    assert path.read_text() == content
    assert "error:" in capsys.readouterr().err


def test_the_fixture_is_left_untouched_by_out(tmp_path: Path) -> None:
    copy = tmp_path / "fixture.json"
    shutil.copy(FIXTURE, copy)
    assert cli.main(["dashboards", "add-row", "--into", str(copy), "--out", str(tmp_path / "o.json")]) == 0
    assert copy.read_text() == FIXTURE.read_text()
