"""docker-compose.yml is checked structurally (no Docker engine here): services and ports, every mounted file
exists, the configurations it mounts are valid for the real Prometheus and Alertmanager tools, and the services
point at each other by the names and ports compose gives them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from snat_exporter.cli import build_parser
from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
PORTS = {"exporter": 9874, "prometheus": 9090, "alertmanager": 9093, "grafana": 3000}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def mounts(service: str) -> dict[str, Path]:
    """Container path -> file in the repository, for the service's bind mounts."""
    out = {}
    for volume in compose()["services"][service].get("volumes", []):
        host, container = volume.split(":")[:2]
        out[container] = (ROOT / host).resolve()
    return out


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: install the Debian packages prometheus and prometheus-alertmanager")
    return path


def test_services_and_well_known_ports() -> None:
    services = compose()["services"]
    assert set(services) == set(PORTS)
    for name, port in PORTS.items():
        assert f"{port}:{port}" in services[name]["ports"], name


def test_every_mounted_file_exists_in_the_repository() -> None:
    for service in PORTS:
        for container, host in mounts(service).items():
            assert host.exists(), f"{service}: {host} (mounted at {container}) does not exist"
            assert ROOT in host.parents, f"{service}: {host} is outside the repository"


def test_exporter_is_built_from_the_dockerfile_and_runs_the_demo_on_its_port() -> None:
    exporter = compose()["services"]["exporter"]
    assert exporter["build"] == "." and (ROOT / "Dockerfile").exists()
    assert 'ENTRYPOINT ["snat-exporter"]' in (ROOT / "Dockerfile").read_text()
    command = [part.replace("${SNAT_SCENARIO:-exhaustion}", "exhaustion") for part in exporter["command"]]
    args = build_parser().parse_args(command)  # the entry point accepts exactly this command line
    assert args.command == "demo" and args.scenario == "exhaustion" and args.listen == "0.0.0.0:9874"


def test_prometheus_config_is_valid_with_the_rules_it_mounts(tmp_path: Path) -> None:
    files = mounts("prometheus")
    config = files["/etc/prometheus/prometheus.yml"].read_text()
    for container, host in files.items():
        config = config.replace(container, str(host))  # what the container sees, at the repository's paths
    (tmp_path / "prometheus.yml").write_text(config)
    result = subprocess.run(
        [tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "alerts.yml" in result.stdout and "recording_rules.yml" in result.stdout

    parsed = yaml.safe_load(files["/etc/prometheus/prometheus.yml"].read_text())
    (scrape,) = parsed["scrape_configs"]
    assert scrape["job_name"] == "snat-exporter"  # the alerts' job selector
    assert scrape["static_configs"][0]["targets"] == ["exporter:9874"]
    am = parsed["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am == ["alertmanager:9093"]


def test_alertmanager_config_is_valid() -> None:
    (config,) = mounts("alertmanager").values()
    result = subprocess.run([tool("amtool"), "check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisions_the_datasource_and_both_dashboards() -> None:
    files = mounts("grafana")
    datasources = yaml.safe_load(files["/etc/grafana/provisioning/datasources/prometheus.yml"].read_text())[
        "datasources"
    ]
    assert [(d["type"], d["url"], d.get("isDefault")) for d in datasources] == [
        ("prometheus", "http://prometheus:9090", True)
    ]
    (provider,) = yaml.safe_load(files["/etc/grafana/provisioning/dashboards/snat-exporter.yml"].read_text())[
        "providers"
    ]
    dashboards_dir = files[provider["options"]["path"]]
    assert {p.name for p in dashboards_dir.glob("*.json")} >= {"cluster-overview.json", "snat-activity.json"}
    home = compose()["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (dashboards_dir / Path(home).name).exists()
