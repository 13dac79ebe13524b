"""The rule files are valid, every alert is unit-tested with promtool, and every alert is documented.

promtool is the real Prometheus rule engine (Debian package ``prometheus``); without it these tests fail with
an install hint rather than skip, because CI must run them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

ALERTS_DIR = ROOT / "alerts"
RULE_FILES = [ALERTS_DIR / "recording_rules.yml", ALERTS_DIR / "alerts.yml"]
TEST_FILES = sorted((ALERTS_DIR / "tests").glob("*.yml"))
RUNBOOK = ALERTS_DIR / "runbook.md"
RUNBOOK_BASE = "alerts/runbook.md#"
SEVERITIES = {"critical", "warning", "info"}
# level:metric:operations (https://prometheus.io/docs/practices/rules/)
RECORD_NAME = re.compile(r"^(node|nat_gateway|cluster):[a-z][a-z0-9_]*:[a-z0-9_]+$")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: install the Debian package `prometheus` (make system-deps)")
    return path


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path}: not a YAML mapping"
    return data


def rules(kind: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in load(path)["groups"]:
            out.extend(r for r in group["rules"] if kind in r)
    return out


ALERTS = rules("alert")
RECORDS = rules("record")


def github_anchor(heading: str) -> str:
    """GitHub's heading slug: lower case, punctuation dropped, spaces to hyphens."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def runbook_anchors() -> set[str]:
    return {github_anchor(m) for m in re.findall(r"^#{1,6}\s+(.+)$", RUNBOOK.read_text(), re.M)}


def test_promtool_check_rules_is_clean() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RECORDS)} rules found" in result.stdout
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    assert TEST_FILES, "alerts/tests/*.yml: no promtool test files"
    result = subprocess.run(
        [promtool(), "test", "rules", *map(str, TEST_FILES)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ALERTS_DIR,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_files_have_one_group_per_source() -> None:
    groups = [g["name"] for g in load(ALERTS_DIR / "alerts.yml")["groups"]]
    assert groups == [
        "snat-exporter.azure-lb",
        "snat-exporter.azure-natgw",
        "snat-exporter.conntrack",
        "snat-exporter.exporter",
    ]


@pytest.mark.parametrize("rule", ALERTS, ids=lambda r: r["alert"])
def test_alert_is_named_labelled_and_annotated(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"Snat(?:[A-Z][a-z0-9]*)+", name), f"{name}: CamelCase with the prefix Snat"
    assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity must be one of {SEVERITIES}"
    annotations = rule.get("annotations", {})
    summary = annotations.get("summary", "")
    assert summary[:1].isupper() and summary.endswith("."), f"{name}: summary is a sentence"
    assert "{{" not in summary, f"{name}: summary is static; details belong in description"
    assert annotations.get("description", "").strip(), f"{name}: description missing"
    assert annotations.get("runbook_url") == RUNBOOK_BASE + name.lower(), f"{name}: runbook_url off the pattern"
    assert "for" in rule, f"{name}: needs a `for:` (Azure data is late and gappy)"


@pytest.mark.parametrize("rule", ALERTS, ids=lambda r: r["alert"])
def test_alert_has_a_runbook_section(rule: dict[str, Any]) -> None:
    anchors = runbook_anchors()
    anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
    assert anchor in anchors, f"alerts/runbook.md has no section for {rule['alert']} (#{anchor})"
    section = RUNBOOK.read_text().split(f"## {rule['alert']}\n", 1)[1].split("\n## ", 1)[0]
    for part in ("**Meaning.**", "**Impact.**", "Diagnosis", "Mitigation"):
        assert part in section, f"runbook section {rule['alert']} lacks {part}"


def test_descriptions_name_the_node_pod_or_destination_when_the_series_carry_them() -> None:
    by_name = {r["alert"]: r["annotations"]["description"] for r in ALERTS}
    for name, description in by_name.items():
        expr = next(r["expr"] for r in ALERTS if r["alert"] == name)
        if "node:" in expr:
            assert "$labels.node" in description, name
    assert "destination" in by_name["SnatDestinationPressureHigh"]
    assert ".Labels.pod" in by_name["SnatDestinationPressureHigh"]
    assert "$labels.destination" in by_name["SnatNatGatewayDestinationPressureHigh"]


def _unit_tests() -> list[dict[str, Any]]:
    return [case for path in TEST_FILES for case in load(path)["tests"]]


@pytest.mark.parametrize("rule", ALERTS, ids=lambda r: r["alert"])
def test_every_alert_is_unit_tested_firing_and_silent(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    checks = [c for case in _unit_tests() for c in case.get("alert_rule_test", []) if c["alertname"] == name]
    firing = [c for c in checks if c.get("exp_alerts")]
    silent = [c for c in checks if not c.get("exp_alerts")]
    assert firing, f"{name}: no promtool case where it fires"
    assert silent, f"{name}: no promtool case where it stays silent (before `for`, or on healthy input)"
    for check in firing:
        for alert in check["exp_alerts"]:
            assert alert.get("exp_labels", {}).get("severity") == rule["labels"]["severity"], name
            assert set(alert.get("exp_annotations", {})) == set(rule["annotations"]), f"{name}: all annotations"


@pytest.mark.parametrize("rule", RECORDS, ids=lambda r: r["record"])
def test_every_recording_rule_is_named_and_unit_tested(rule: dict[str, Any]) -> None:
    name = rule["record"]
    assert RECORD_NAME.match(name), f"{name}: use level:metric:operations"
    exprs = [t["expr"] for case in _unit_tests() for t in case.get("promql_expr_test", [])]
    assert any(re.match(rf"^{re.escape(name)}(\{{|$)", e) for e in exprs), f"{name}: no promql_expr_test"
