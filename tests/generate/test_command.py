"""`snat-exporter generate` is the one command behind every generated file, and the repository commits its output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from snat_exporter import cli
from snat_exporter.generate import differences, render
from snat_exporter.generate.mixin import load_mixin
from tests.conftest import ROOT


def test_committed_tree_is_a_fresh_generation_with_the_defaults() -> None:
    problems = differences(ROOT, render(load_mixin()))
    assert not problems, "\n".join(problems) + "\nrun: make generate"


def test_check_mode_is_clean_on_the_repository_and_runs_as_the_installed_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "snat_exporter", "generate", "--out", str(ROOT), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def test_generate_into_an_empty_directory_then_check_then_drift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["generate", "--out", str(tmp_path)]) == 0
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert "dashboards/out/cluster-overview.json" in written
    assert "deploy/kubernetes/overlays/kube-prometheus-stack/generated/prometheusrule-alerts.yaml" in written
    assert "docs/metrics.md" in written
    assert "alerts/alerts.yml" in written
    assert cli.main(["generate", "--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "dashboards" / "out" / "snat-activity.json").write_text("{}\n")
    capsys.readouterr()
    assert cli.main(["generate", "--out", str(tmp_path), "--check"]) == 1
    assert "dashboards/out/snat-activity.json: out of date" in capsys.readouterr().err


def test_a_bad_mixin_config_exits_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "mixin.yaml"
    config.write_text(
        "cluster_label: 'k8s-cluster'\nselectors:\n  node_agent: 'job=snat'\nthresholds:\n  ports_used_ratio: 80\n"
    )
    assert cli.main(["generate", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    for field in ("cluster_label", "selectors.node_agent", "thresholds.ports_used_ratio"):
        assert f"config error: {field}:" in err
    assert not (tmp_path / "out").exists()


def test_without_the_generate_extra_the_command_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("snat_exporter.generate.EXTRA_MODULES", ("grafana_foundation_sdk_absent",))
    assert cli.main(["generate", "--out", str(tmp_path)]) == 2
    assert "pip install 'snat-exporter[generate]'" in capsys.readouterr().err


def test_default_runbook_links_resolve_inside_this_repository() -> None:
    mixin = load_mixin()
    path, _, anchor = mixin.runbook_url("SnatExporterDown").partition("#")
    assert (ROOT / path).is_file(), f"{path}: the default runbook link points at nothing"
    assert "## SnatExporterDown" in (ROOT / path).read_text() and anchor == "snatexporterdown"
    assert "github.com" not in mixin.runbook_url_base
