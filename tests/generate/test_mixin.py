"""A team's mixin config reaches every rule and every dashboard query: the issue's own example, `k8s_cluster`,
jobs `snat` / `snat-node` and a 70% ports threshold, checked with promtool and with the PromQL parser."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from snat_exporter import cli
from snat_exporter.generate import promql
from tests.conftest import ROOT

FIXTURES = Path(__file__).parent / "fixtures"
EXPORTER, AGENT = ("job", "=", "snat"), ("job", "=", "snat-node")
CLUSTER_VAR = ("k8s_cluster", "=~", "$cluster")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mixin")
    assert cli.main(["generate", "--config", str(FIXTURES / "k8s-cluster-mixin.yaml"), "--out", str(out)]) == 0
    return out


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: install the Debian package `prometheus` (make system-deps)")
    return path


def source_job(names: set[str]) -> tuple[str, str, str] | None:
    """The job a series comes from, by its name (raw or recorded); None for the exporter's own health series."""
    if any(n.startswith(("azure_", "node:azure_", "nat_gateway:")) for n in names):
        return EXPORTER
    if any(s in n for n in names for s in ("snat_conntrack", "snat_outbound", "snat_destination", "snat_pod")):
        return AGENT
    return None


def test_rules_generated_for_the_config_pass_promtool_tests_written_for_it(generated: Path) -> None:
    tests = generated / "alerts" / "tests"
    tests.mkdir()
    shutil.copy(FIXTURES / "k8s-cluster.test.yml", tests)
    proc = subprocess.run(
        [promtool(), "test", "rules", "tests/k8s-cluster.test.yml"],
        cwd=generated / "alerts",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_raw_selector_of_every_rule_names_its_job_and_groupings_keep_k8s_cluster(generated: Path) -> None:
    for name in ("recording_rules.yml", "alerts.yml"):
        for group in yaml.safe_load((generated / "alerts" / name).read_text())["groups"]:
            for rule in group["rules"]:
                where = rule.get("alert") or rule["record"]
                for sel in promql.selectors(rule["expr"], where):
                    if sel.name and ":" in sel.name:
                        continue  # recorded series carry the job of their source already
                    assert sel.has(*EXPORTER) or sel.has(*AGENT), f"{where}: {sel} lacks the configured job"
                assert "(cluster" not in rule["expr"] and " cluster=" not in rule["expr"], where
                if " by (" in rule["expr"] or " on (" in rule["expr"]:
                    assert "k8s_cluster" in rule["expr"], f"{where}: an aggregation or join drops k8s_cluster"
                for query in promql.template_queries(rule.get("annotations", {}).get("description", "")):
                    assert "k8s_cluster=" in query, f"{where}: a drill-down query ignores the alert's cluster"


def boards(generated: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((generated / "dashboards" / "out").glob("*.json"))]


def test_every_dashboard_query_selects_k8s_cluster_and_its_job(generated: Path) -> None:
    checked = 0
    for board in boards(generated):
        for where, query in promql.dashboard_queries(board):
            for sel in promql.selectors(query, where):
                # the cluster variable lists the values of k8s_cluster (checked below); every other query filters by it
                if not where.endswith("$cluster"):
                    assert sel.has(*CLUSTER_VAR), f"{where}: {sel} ignores the k8s_cluster variable"
                assert not any(label == "cluster" for label, _, _ in sel.matchers), where
                names = sel.names()
                job = source_job(names)
                if job is not None and "__name__" not in {label for label, _, _ in sel.matchers}:
                    assert sel.has(*job), f"{where}: {sel} lacks {job}"
                elif names & {"snat_exporter_collector_data_age_seconds", "snat_exporter_build_info"}:
                    assert sel.has(*EXPORTER) or sel.has(*AGENT), where
                checked += 1
    assert checked > 40


def test_the_ports_threshold_reaches_the_panels(generated: Path) -> None:
    panel = next(
        p for b in boards(generated) for p in b["panels"] if p.get("title") == "SNAT port utilisation per node"
    )
    steps = [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]
    assert 0.7 in steps and 0.8 not in steps
    assert "SnatPortsNearlyExhausted at 70%" in panel["description"]
    cluster = next(v for v in boards(generated)[0]["templating"]["list"] if v["name"] == "cluster")
    assert cluster["query"]["query"] == 'label_values(snat_exporter_build_info{job="snat"}, k8s_cluster)'


def test_the_default_tree_differs_from_it(generated: Path) -> None:
    """The committed files are the defaults: the config changed what a team would deploy."""
    assert (generated / "alerts" / "alerts.yml").read_text() != (ROOT / "alerts" / "alerts.yml").read_text()


def test_per_alert_for_and_severity_reach_the_rule_files_and_azure(tmp_path: Path) -> None:
    config = tmp_path / "mixin.yaml"
    config.write_text(
        "alerts:\n"
        "  SnatNatGatewayPacketsDropped: {for: 30m, severity: critical}\n"
        "  SnatConntrackInsertFailing: {severity: info}\n"
    )
    out = tmp_path / "out"
    assert cli.main(["generate", "--config", str(config), "--out", str(out)]) == 0
    rules = {
        r["alert"]: r for g in yaml.safe_load((out / "alerts" / "alerts.yml").read_text())["groups"] for r in g["rules"]
    }
    dropped = rules["SnatNatGatewayPacketsDropped"]
    assert (dropped["for"], dropped["labels"]["severity"]) == ("30m", "critical")
    assert "for 30 minutes" in dropped["annotations"]["description"]
    assert (rules["SnatConntrackInsertFailing"]["for"], rules["SnatConntrackInsertFailing"]["labels"]["severity"]) == (
        "5m",
        "info",
    )
    azure = {
        r["alert"]: r
        for res in json.loads((out / "deploy" / "azure" / "prometheus-rule-groups.json").read_text())["resources"]
        for r in res["properties"]["rules"]
        if "alert" in r
    }
    assert (azure["SnatNatGatewayPacketsDropped"]["for"], azure["SnatNatGatewayPacketsDropped"]["severity"]) == (
        "PT30M",
        0,
    )
    assert azure["SnatConntrackInsertFailing"]["severity"] == 3


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("alerts:\n  SnatNoSuchAlert: {for: 5m}\n", "alerts"),
        ("alerts:\n  SnatPortsExhausted: {severity: page}\n", "alerts"),
        ("thresholds:\n  azure_metric_age: soon\n", "thresholds.azure_metric_age"),
        ("runbook_url_base: 'https://x/runbook.md#top'\n", "runbook_url_base"),
        ("dashboards:\n  colour: blue\n", "dashboards.colour"),
    ],
)
def test_bad_mixin_values_exit_2_naming_the_field(
    tmp_path: Path, text: str, field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "mixin.yaml"
    config.write_text(text)
    assert cli.main(["generate", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    assert f"config error: {field}:" in capsys.readouterr().err
