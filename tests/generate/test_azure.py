"""The Azure Monitor rule groups (deploy/azure): valid against the resource type's published schema, and the same
rules as the Prometheus rule files, expression for expression."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema
import pytest
import yaml

from snat_exporter.generate import promql
from snat_exporter.settings import parse_duration
from tests.conftest import ROOT

TEMPLATE: dict[str, Any] = json.loads((ROOT / "deploy" / "azure" / "prometheus-rule-groups.json").read_text())
BICEP = (ROOT / "deploy" / "azure" / "prometheus-rule-groups.bicep").read_text()
SCHEMA = json.loads((ROOT / "tests" / "deploy" / "schemas" / "prometheusRuleGroups-2023-03-01.json").read_text())
SEVERITY = {"critical": 0, "warning": 2, "info": 3}  # Azure: 0 critical, 1 error, 2 warning, 3 informational


def prometheus_groups() -> dict[str, list[dict[str, Any]]]:
    out = {}
    for name in ("recording_rules.yml", "alerts.yml"):
        for group in yaml.safe_load((ROOT / "alerts" / name).read_text())["groups"]:
            out[group["name"]] = group["rules"]
    return out


def group_name(resource: dict[str, Any]) -> str:
    m = re.fullmatch(r"\[format\('\{0\}-(.+)', parameters\('clusterName'\)\)\]", resource["name"])
    assert m, resource["name"]
    return m.group(1)


def iso8601(prometheus: str) -> str:
    seconds = int(parse_duration(prometheus))
    assert seconds % 60 == 0 and seconds < 3600, "the rule set only has whole minutes under an hour"
    return f"PT{seconds // 60}M"


@pytest.mark.parametrize("resource", TEMPLATE["resources"], ids=group_name)
def test_every_resource_validates_against_the_published_schema(resource: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(SCHEMA).validate(resource)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("properties", "rules", -1, "severity"), 5),
        (("properties", "rules", -1, "for"), "5m"),
        (("properties", "rules", -1, "expr"), "up"),
        (("properties", "interval"), "1m"),
        (("apiVersion",), "2021-07-22-preview"),
    ],
)
def test_the_schema_refuses_what_azure_refuses(path: tuple[Any, ...], value: Any) -> None:
    resource = copy.deepcopy(TEMPLATE["resources"][-1])
    node = resource
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(SCHEMA).validate(resource)


def test_template_declares_what_it_references_and_asks_for_the_workspace_cluster_and_action_group() -> None:
    assert TEMPLATE["$schema"] == "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", TEMPLATE["contentVersion"])
    declared = TEMPLATE["parameters"]
    used = set(re.findall(r"parameters\('(\w+)'\)", json.dumps(TEMPLATE["resources"])))
    assert used <= set(declared)
    for required in ("azureMonitorWorkspaceId", "clusterName", "actionGroupId"):
        assert "defaultValue" not in declared[required], required
    for resource in TEMPLATE["resources"]:
        assert resource["properties"]["scopes"] == ["[parameters('azureMonitorWorkspaceId')]"]
        assert resource["properties"]["clusterName"] == "[parameters('clusterName')]"


def test_every_rule_is_the_prometheus_rule_with_the_same_expression_and_it_parses() -> None:
    groups = prometheus_groups()
    assert sorted(group_name(r) for r in TEMPLATE["resources"]) == sorted(groups)
    compared = 0
    for resource in TEMPLATE["resources"]:
        source = groups[group_name(resource)]
        rules = resource["properties"]["rules"]
        assert [r.get("alert") or r["record"] for r in rules] == [r.get("alert") or r["record"] for r in source]
        for azure, prom in zip(rules, source, strict=True):
            name = azure.get("alert") or azure["record"]
            assert azure["expression"] == prom["expr"], name
            promql.parse(azure["expression"], name)
            compared += 1
    assert compared == sum(len(rules) for rules in groups.values())


def test_alerts_map_for_severity_actions_and_resolution_to_azure() -> None:
    source = {r["alert"]: r for rules in prometheus_groups().values() for r in rules if "alert" in r}
    azure = [r for res in TEMPLATE["resources"] for r in res["properties"]["rules"] if "alert" in r]
    assert len(azure) == len(source)
    for rule in azure:
        prom = source[rule["alert"]]
        assert rule["for"] == iso8601(prom["for"]), rule["alert"]
        assert rule["severity"] == SEVERITY[prom["labels"]["severity"]], rule["alert"]
        assert rule["labels"] == prom["labels"]
        assert rule["actions"] == [{"actionGroupId": "[parameters('actionGroupId')]"}]
        assert rule["resolveConfiguration"]["autoResolved"] is True
        assert rule["annotations"]["summary"] == prom["annotations"]["summary"]
        assert rule["annotations"]["runbook_url"] == prom["annotations"]["runbook_url"]


def test_azure_descriptions_run_no_template_query_and_only_drop_the_drill_downs() -> None:
    source = {r["alert"]: r for rules in prometheus_groups().values() for r in rules if "alert" in r}
    dropped = []
    for res in TEMPLATE["resources"]:
        for rule in res["properties"]["rules"]:
            if "alert" not in rule:
                continue
            text, prom = rule["annotations"]["description"], source[rule["alert"]]["annotations"]["description"]
            assert "| query" not in text and not promql.template_queries(text), rule["alert"]
            if text != prom:
                dropped.append(rule["alert"])
                assert promql.template_queries(prom), rule["alert"]
    assert sorted(dropped) == [
        "SnatCiliumNatTuplePressureHigh",
        "SnatDestinationPressureHigh",
        "SnatExporterCollectorFailing",
        "SnatExporterDataStale",
    ]


def _bicep_strings(key: str) -> list[str]:
    out = []
    for raw in re.findall(rf"^\s*{key}: '((?:[^'\\]|\\.)*)'$", BICEP, re.M):
        out.append(re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), raw))
    return out


def test_the_bicep_file_deploys_the_same_groups_and_expressions() -> None:
    arm = [r["expression"] for res in TEMPLATE["resources"] for r in res["properties"]["rules"]]
    assert _bicep_strings("expression") == arm
    assert len(
        re.findall(r"^resource \w+ 'Microsoft.AlertsManagement/prometheusRuleGroups@2023-03-01' = \{$", BICEP, re.M)
    ) == len(TEMPLATE["resources"])
    for name in TEMPLATE["parameters"]:
        assert re.search(rf"^param {name} string\b", BICEP, re.M), name
    assert _bicep_strings("for") == [
        r["for"] for res in TEMPLATE["resources"] for r in res["properties"]["rules"] if "for" in r
    ]


def test_a_literal_that_looks_like_an_arm_expression_stays_literal() -> None:
    from snat_exporter.generate.rules import azure as azure_rules

    assert azure_rules.arm_literal("[5m] window") == "[[5m] window"
    assert azure_rules.arm_literal("up == 0") == "up == 0"
    assert azure_rules.bicep_value("[[5m] window", "") == "'[5m] window'"
    assert azure_rules.bicep_value("[parameters('clusterName')]", "") == "clusterName"
    assert azure_rules.iso8601(90) == "PT1M30S" and azure_rules.iso8601(86400) == "P1D"
