"""Every metric that alerts/ and dashboards/ read is exported (per the catalogue) or recorded by a rule.

A renamed metric would otherwise leave an alert that can never fire and a panel that shows nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from snat_exporter.metrics import all_specs
from tests.alerts.promql import label_values_selector, metric_names
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
            # Only printf strings piped into `query` are PromQL; `$value | printf "%.3g"` is formatting.
            for query in re.findall(r'printf\s+"((?:[^"\\]|\\.)*)"[^}|]*\|\s*query', text):
                yield f"{name} (annotation)", query.replace('\\"', '"').replace("%q", '"x"')


def dashboard_queries() -> Iterator[tuple[str, str]]:
    for path in sorted((ROOT / "dashboards" / "out").glob("*.json")):
        board: dict[str, Any] = json.loads(path.read_text())
        for panel in board.get("panels", []):
            for inner in [panel, *panel.get("panels", [])]:
                for target in inner.get("targets", []):
                    yield f"{path.name}: {inner.get('title')}", target["expr"]
        for var in board.get("templating", {}).get("list", []):
            if var.get("type") == "query":
                query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
                yield f"{path.name}: ${var['name']}", label_values_selector(query)


QUERIES = [*alert_queries(), *dashboard_queries()]


def test_the_dashboards_are_generated() -> None:
    assert list((ROOT / "dashboards" / "out").glob("*.json")), "dashboards/out is empty"


@pytest.mark.parametrize(("where", "expr"), QUERIES, ids=[w for w, _ in QUERIES])
def test_query_reads_only_known_series(where: str, expr: str) -> None:
    names = metric_names(expr)
    assert names, f"{where}: no metric found in {expr!r}"
    unknown = names - known_names()
    assert not unknown, f"{where}: {sorted(unknown)} neither exported (snat_exporter.metrics.all_specs) nor recorded"
