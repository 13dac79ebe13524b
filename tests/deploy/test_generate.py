"""The PrometheusRules and dashboard ConfigMaps are generated from alerts/ and dashboards/out/, never copied."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deploy import generate
from tests.conftest import ROOT
from tests.deploy.manifests import OVERLAYS, Obj, of_kind, render, render_dir

KPS = OVERLAYS["kube-prometheus-stack"]


def test_committed_generated_files_match_a_fresh_generation() -> None:
    problems = generate.differences(ROOT)
    assert not problems, "\n".join(problems) + "\nrun: python deploy/generate.py"


def test_check_mode_is_what_ci_runs() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def _rules(objs: list[Obj]) -> dict[str, Obj]:
    return {o["metadata"]["annotations"]["snat-exporter/source"]: o for o in of_kind(objs, "PrometheusRule")}


def test_rendered_rules_are_the_rule_files() -> None:
    """Whatever alerts/*.yml holds (nothing yet, or the whole rule set) is exactly what the cluster will evaluate."""
    rendered = _rules(render(KPS))
    files = generate.rule_files(ROOT)
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
    files = generate.dashboard_files(ROOT)
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
        assert not generate.rule_files(ROOT)
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
    for path in sorted((ROOT / generate.GENERATED).glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            size = len(json.dumps(obj, separators=(",", ":")).encode())
            assert size < generate.MAX_OBJECT_BYTES, f"{path.name}: {size} bytes; split it or apply --server-side"


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


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A checkout with one rule file and one dashboard, plus a copy of the overlay to render them through."""
    (tmp_path / "alerts").mkdir()
    (tmp_path / "alerts" / "recording_rules.yml").write_text(RULES)
    (tmp_path / "alerts" / "tests").mkdir()
    (tmp_path / "alerts" / "tests" / "alerts.test.yml").write_text("rule_files: []\n")
    (tmp_path / "dashboards" / "out").mkdir(parents=True)
    (tmp_path / "dashboards" / "out" / "snat_activity.json").write_text(DASHBOARD)
    shutil.copytree(ROOT / "deploy" / "kubernetes", tmp_path / "deploy" / "kubernetes")
    shutil.rmtree(tmp_path / generate.GENERATED)
    return tmp_path


def test_generator_turns_rule_files_and_dashboards_into_objects(repo: Path) -> None:
    changed = generate.write(repo)
    assert {p.name for p in changed} == {
        "kustomization.yaml",
        "prometheusrule-recording-rules.yaml",
        "dashboard-snat-activity.yaml",
    }
    objs = render_dir(repo / "deploy" / "kubernetes" / "overlays" / "kube-prometheus-stack")
    (rule,) = of_kind(objs, "PrometheusRule")
    assert rule["metadata"]["name"] == "snat-exporter-recording-rules"
    assert rule["metadata"]["namespace"] == "snat-exporter"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"]["groups"] == yaml.safe_load(RULES)["groups"]
    (dashboard,) = [o for o in of_kind(objs, "ConfigMap") if "grafana_dashboard" in o["metadata"]["labels"]]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"] == {"snat_activity.json": DASHBOARD}
    text = (repo / generate.GENERATED / "prometheusrule-recording-rules.yaml").read_text()
    assert "expr: |\n" in text, "multi-line PromQL stays readable in the generated file"


def test_generator_is_deterministic_and_check_reports_drift(repo: Path) -> None:
    generate.write(repo)
    first = {p: (repo / p).read_text() for p in generate.render(repo)}
    assert generate.write(repo) == []
    assert generate.differences(repo) == []
    assert generate.main(["--check", "--root", str(repo)]) == 0
    (repo / "alerts" / "recording_rules.yml").write_text(RULES.replace("0.99", "0.95"))
    assert generate.differences(repo) == [f"{generate.GENERATED}/prometheusrule-recording-rules.yaml: out of date"]
    assert generate.main(["--check", "--root", str(repo)]) == 1
    generate.write(repo)
    assert {p: (repo / p).read_text() for p in generate.render(repo)} != first


def test_generator_removes_what_no_input_produces_any_more(repo: Path) -> None:
    generate.write(repo)
    (repo / "dashboards" / "out" / "snat_activity.json").unlink()
    assert f"{generate.GENERATED}/dashboard-snat-activity.yaml: stale (no input produces it)" in generate.differences(
        repo
    )
    generate.write(repo)
    assert not (repo / generate.GENERATED / "dashboard-snat-activity.yaml").exists()
    objs = render_dir(repo / "deploy" / "kubernetes" / "overlays" / "kube-prometheus-stack")
    assert not [o for o in of_kind(objs, "ConfigMap") if "grafana_dashboard" in o["metadata"]["labels"]]


def test_generator_with_no_inputs_still_renders(repo: Path) -> None:
    shutil.rmtree(repo / "alerts")
    shutil.rmtree(repo / "dashboards")
    generate.write(repo)
    objs = render_dir(repo / "deploy" / "kubernetes" / "overlays" / "kube-prometheus-stack")
    assert not of_kind(objs, "PrometheusRule")
    assert of_kind(objs, "DaemonSet")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("groups: []\n", "non-empty `groups`"),
        ("groups:\n  - name: a\n    rules: []\n  - name: a\n    rules: []\n", "unique name"),
        ("groups: [\n", "not valid YAML"),
    ],
)
def test_generator_refuses_a_broken_rule_file(repo: Path, content: str, message: str) -> None:
    (repo / "alerts" / "recording_rules.yml").write_text(content)
    with pytest.raises(generate.GenerateError, match=message):
        generate.render(repo)
    assert generate.main(["--root", str(repo)]) == 2
