"""Everything generated from code, behind one command: ``snat-exporter generate --config mixin.yaml --out DIR``.

Reads the metric catalogues, the settings declarations and the mixin config (:mod:`.mixin`); never the runner,
the server or a collector at work. Writes the same tree into ``DIR`` that the repository commits with the
defaults (``make generate`` is ``snat-exporter generate --out .``):

- ``alerts/recording_rules.yml``, ``alerts/alerts.yml``: Prometheus rule files (:mod:`.rules.prometheus`);
- ``dashboards/out/*.json``: Grafana dashboards (:mod:`.dashboards`);
- ``deploy/kubernetes/overlays/kube-prometheus-stack/generated/``: PrometheusRules and dashboard ConfigMaps
  (:mod:`.deploy`);
- ``deploy/azure/``: the rules as Azure Monitor managed Prometheus rule groups, ARM template and Bicep
  (:mod:`.rules.azure`);
- ``docs/configuration.md``, ``docs/metrics.md`` (:mod:`.docs`), which the README links to.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path, PurePosixPath
from typing import Any

from snat_exporter.generate import deploy, docs, rules
from snat_exporter.generate.deploy import GenerateError
from snat_exporter.generate.mixin import MixinConfig
from snat_exporter.generate.rules import azure as azure_rules
from snat_exporter.generate.rules import prometheus as prometheus_rules

Files = dict[PurePosixPath, str]
# Only generating needs these; the exporter's image and a plain `pip install snat-exporter` go without them.
EXTRA_MODULES = ("grafana_foundation_sdk", "promql_parser")


def require_extra() -> None:
    missing = [m for m in EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise GenerateError(
            f"generating needs {', '.join(missing)}, which a plain install leaves out: "
            "pip install 'snat-exporter[generate]'"
        )


def render(mixin: MixinConfig) -> Files:
    """Every generated file (path relative to the output directory) and its exact content."""
    require_extra()
    from snat_exporter.generate import dashboards  # needs the `generate` extra (Grafana Foundation SDK)

    files: Files = {}
    files.update({PurePosixPath("alerts") / name: text for name, text in prometheus_rules.render(mixin).items()})
    boards = dashboards.render(mixin)
    files.update({PurePosixPath("dashboards/out") / name: text for name, text in boards.items()})
    check_promql(mixin, [json.loads(text) for text in boards.values()])
    files.update(deploy.render(files, folder=mixin.dashboards.folder))
    files.update(azure_rules.render(mixin))
    files.update(docs.render())
    return files


def check_promql(mixin: MixinConfig, boards: list[dict[str, Any]]) -> None:
    """Parses every rule expression, annotation query and dashboard query: raises GenerateError naming the first
    that a real PromQL parser refuses (a typo in a mixin selector ends here, not in Prometheus)."""
    from snat_exporter.generate import promql

    for rule_file in rules.rule_files(mixin):
        for group in rule_file.groups:
            for rule in group.rules:
                promql.parse(rule.expr, f"{rule_file.name}: {rule.name}")
                for query in promql.template_queries(rule.description_text()):
                    promql.parse(query, f"{rule_file.name}: {rule.name} (description)")
    for board in boards:
        for where, query in promql.dashboard_queries(board):
            promql.parse(query, where)


def stale(out: Path, files: Files) -> list[PurePosixPath]:
    """Files in a directory the generator owns whole that no input produces any more."""
    directory = out / deploy.GENERATED
    if not directory.is_dir():
        return []
    return sorted(p for p in (deploy.GENERATED / c.name for c in directory.iterdir()) if p not in files)


def differences(out: Path, files: Files) -> list[str]:
    problems = [f"{p}: stale (nothing generates it)" for p in stale(out, files)]
    for rel, text in sorted(files.items()):
        path = out / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif path.read_text() != text:
            problems.append(f"{rel}: out of date")
    return problems


def write(out: Path, files: Files) -> list[PurePosixPath]:
    """Writes what differs, removes what is stale; returns the paths changed."""
    changed = []
    for rel in stale(out, files):
        (out / rel).unlink()
        changed.append(rel)
    for rel, text in sorted(files.items()):
        path = out / rel
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(rel)
    return changed
