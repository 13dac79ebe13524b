"""Every metric that alerts/ and dashboards/ read is exported (per the catalogue) or recorded by a rule, and every
expression parses with a real PromQL parser (promql-parser, the Rust port of Prometheus's parser).

A renamed metric would otherwise leave an alert that can never fire and a panel that shows nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from snat_exporter.generate import promql
from snat_exporter.metrics import all_specs
from tests.alerts.test_rules import ALERTS, RECORDS
from tests.conftest import ROOT

# Series Prometheus itself makes (`up` per target, `ALERTS` per alert).
PROMETHEUS_SERIES = {"up", "ALERTS", "ALERTS_FOR_STATE"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def known_names() -> set[str]:
    names = set(PROMETHEUS_SERIES) | {r["record"] for r in RECORDS}
    for spec in all_specs().values():
        names.add(spec.name)
        if spec.type == "histogram":
            names.update(spec.name + s for s in HISTOGRAM_SUFFIXES)
    return names


def alert_queries() -> Iterator[tuple[str, str]]:
    for rule in [*RECORDS, *ALERTS]:
        name = rule.get("alert") or rule["record"]
        yield name, rule["expr"]
        # Queries run from annotation templates: {{ with printf "query %q" ... | query }}
        for text in rule.get("annotations", {}).values():
            for query in promql.template_queries(text):
                yield f"{name} (annotation)", query


def dashboard_queries() -> Iterator[tuple[str, str]]:
    for path in sorted((ROOT / "dashboards" / "out").glob("*.json")):
        board: dict[str, Any] = json.loads(path.read_text())
        for where, query in promql.dashboard_queries(board):
            yield f"{path.name}: {where}", query


QUERIES = [*alert_queries(), *dashboard_queries()]


def test_the_dashboards_and_annotation_queries_are_found() -> None:
    assert list((ROOT / "dashboards" / "out").glob("*.json")), "dashboards/out is empty"
    assert len([w for w, _ in QUERIES if w.endswith("(annotation)")]) >= 4
    assert len([w for w, _ in QUERIES if w.startswith("snat-activity.json")]) >= 20


@pytest.mark.parametrize(("where", "expr"), QUERIES, ids=[w for w, _ in QUERIES])
def test_query_parses_and_reads_only_known_series(where: str, expr: str) -> None:
    names = promql.metric_names(expr, where)  # raises on anything the parser refuses
    assert names, f"{where}: no metric found in {expr!r}"
    unknown = names - known_names()
    assert not unknown, f"{where}: {sorted(unknown)} neither exported (snat_exporter.metrics.all_specs) nor recorded"


@pytest.mark.parametrize(
    "expr",
    [
        'sum by (node (snat_destination_flows{job="snat-exporter-node"})',
        'rate(snat_conntrack_drop_total{job="x"})',
        'up{job="snat-exporter"} == 1 unless on (cluster',
    ],
)
def test_the_parser_refuses_what_prometheus_refuses(expr: str) -> None:
    with pytest.raises(promql.GenerateError, match="not valid PromQL"):
        promql.parse(expr, "case")
