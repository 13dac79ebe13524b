"""The PrometheusRules and dashboard ConfigMaps are generated from alerts/ and dashboards/out/, never copied."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml

from snat_exporter.generate import deploy, write
from tests.conftest import ROOT
from tests.deploy.manifests import OVERLAYS, Obj, of_kind, render, render_dir

KPS = OVERLAYS["kube-prometheus-stack"]


def rule_files() -> list[Path]:
    return sorted((ROOT / "alerts").glob("*.yml"))


def dashboard_files() -> list[Path]:
    return sorted((ROOT / "dashboards" / "out").glob("*.json"))


def _rules(objs: list[Obj]) -> dict[str, Obj]:
    return {o["metadata"]["annotations"]["snat-exporter/source"]: o for o in of_kind(objs, "PrometheusRule")}


def test_rendered_rules_are_the_rule_files() -> None:
    """Whatever alerts/*.yml holds (nothing yet, or the whole rule set) is exactly what the cluster will evaluate."""
    rendered = _rules(render(KPS))
    files = rule_files()
    assert sorted(rendered) == sorted(p.relative_to(ROOT).as_posix() for p in files)
    for path in files:
        source = yaml.safe_load(path.read_text())
        assert rendered[path.relative_to(ROOT).as_posix()]["spec"]["groups"] == source["groups"]


def test_rendered_dashboards_are_the_dashboard_files() -> None:
    dashboards = {
        o["metadata"]["annotations"]["snat-exporter/source"]: o
        for o in of_kind(render(KPS), "ConfigMap")
        if o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    }
    files = dashboard_files()
    assert sorted(dashboards) == sorted(p.relative_to(ROOT).as_posix() for p in files)
    for path in files:
        configmap = dashboards[path.relative_to(ROOT).as_posix()]
        assert configmap["data"] == {path.name: path.read_text()}
        json.loads(configmap["data"][path.name])


def test_rendered_rules_pass_promtool(tmp_path: Path) -> None:
    """The operator rejects a PrometheusRule whose PromQL does not parse; promtool finds that here first."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (make system-deps installs the prometheus package)")
    rules = of_kind(render(KPS), "PrometheusRule")
    if not rules:
        assert not rule_files()
        return
    paths = []
    for rule in rules:
        path = tmp_path / f"{rule['metadata']['name']}.yml"
        path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
        paths.append(str(path))
    proc = subprocess.run([promtool, "check", "rules", *paths], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_generated_objects_fit_client_side_apply() -> None:
    """`kubectl apply` (client side) keeps a copy of each object in a 256 KiB annotation; bigger ones fail to apply."""
    for path in sorted((ROOT / deploy.GENERATED).glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            size = len(json.dumps(obj, separators=(",", ":")).encode())
            assert size < deploy.MAX_OBJECT_BYTES, f"{path.name}: {size} bytes; split it or apply --server-side"


# ------------------------------------------------------------------------------------------------ the generator
RULES = """\
groups:
  - name: snat.recording
    rules:
      - record: node:snat_ports:ratio
        expr: |
          sum without (backend_ip) (azure_lb_snat_ports_used)
          /
          sum without (backend_ip) (azure_lb_snat_ports_allocated)
  - name: snat.alerts
    rules:
      - alert: SnatPortsExhausted
        expr: node:snat_ports:ratio >= 0.99
        for: 2m
        labels: {severity: critical}
        annotations: {summary: "A node has no SNAT ports left."}
"""
DASHBOARD = '{\n  "title": "SNAT Activity",\n  "uid": "snat-activity",\n  "panels": []\n}\n'


INPUTS = {
    PurePosixPath("alerts/recording_rules.yml"): RULES,
    PurePosixPath("dashboards/out/snat_activity.json"): DASHBOARD,
}


@pytest.fixture
def overlay(tmp_path: Path) -> Path:
    """A copy of the deploy tree without its generated files, to render generated objects through."""
    shutil.copytree(ROOT / "deploy" / "kubernetes", tmp_path / "deploy" / "kubernetes")
    shutil.rmtree(tmp_path / deploy.GENERATED)
    return tmp_path


def test_generator_turns_rule_files_and_dashboards_into_objects(overlay: Path) -> None:
    changed = write(overlay, deploy.render(INPUTS, folder="Networking"))
    assert {p.name for p in changed} == {
        "kustomization.yaml",
        "prometheusrule-recording-rules.yaml",
        "dashboard-snat-activity.yaml",
    }
    objs = render_dir(overlay / "deploy" / "kubernetes" / "overlays" / "kube-prometheus-stack")
    (rule,) = of_kind(objs, "PrometheusRule")
    assert rule["metadata"]["name"] == "snat-exporter-recording-rules"
    assert rule["metadata"]["namespace"] == "snat-exporter"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"]["groups"] == yaml.safe_load(RULES)["groups"]
    (dashboard,) = [o for o in of_kind(objs, "ConfigMap") if "grafana_dashboard" in o["metadata"]["labels"]]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"]["grafana_folder"] == "Networking"
    assert dashboard["data"] == {"snat_activity.json": DASHBOARD}
    text = (overlay / deploy.GENERATED / "prometheusrule-recording-rules.yaml").read_text()
    assert "expr: |\n" in text, "multi-line PromQL stays readable in the generated file"


def test_generator_is_deterministic_and_removes_what_no_input_produces_any_more(overlay: Path) -> None:
    write(overlay, deploy.render(INPUTS))
    assert write(overlay, deploy.render(INPUTS)) == []
    only_rules = {k: v for k, v in INPUTS.items() if k.suffix == ".yml"}
    changed = write(overlay, deploy.render(only_rules))
    assert deploy.GENERATED / "dashboard-snat-activity.yaml" in changed
    assert not (overlay / deploy.GENERATED / "dashboard-snat-activity.yaml").exists()
    objs = render_dir(overlay / "deploy" / "kubernetes" / "overlays" / "kube-prometheus-stack")
    assert not [o for o in of_kind(objs, "ConfigMap") if "grafana_dashboard" in o["metadata"]["labels"]]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("groups: []\n", "non-empty `groups`"),
        ("groups:\n  - name: a\n    rules: []\n  - name: a\n    rules: []\n", "unique name"),
        ("groups: [\n", "not valid YAML"),
    ],
)
def test_generator_refuses_a_broken_rule_file(content: str, message: str) -> None:
    with pytest.raises(deploy.GenerateError, match=message):
        deploy.render({PurePosixPath("alerts/recording_rules.yml"): content})
