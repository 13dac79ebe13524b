"""Config: every bad field exits 2 with a message that names it; good files, env and flags combine."""

from __future__ import annotations

import dataclasses
import os
import pkgutil
import textwrap
from pathlib import Path

import pytest

from snat_exporter import collectors
from snat_exporter.cli import main
from snat_exporter.collectors import collector_section, collector_table
from snat_exporter.config import Config, load_config
from snat_exporter.settings import ConfigError

SUB = "00000000-0000-0000-0000-000000000001"
LB = f"/subscriptions/{SUB}/resourceGroups/MC_rg_aks_westeurope/providers/Microsoft.Network/loadBalancers/kubernetes"

BAD_CASES = [
    ("unknown top-level key", "listne: 0.0.0.0:9874\n", "listne"),
    ("unknown nested key", "azure:\n  intervall: 60s\n", "azure.intervall"),
    ("wrong type: bool", "azure:\n  enabled: maybe\n", "azure.enabled"),
    ("wrong type: section", "azure: 5\n", "azure"),
    ("bad duration", "azure:\n  interval: soon\n", "azure.interval"),
    ("negative duration", "conntrack:\n  interval: -5s\n", "conntrack.interval"),
    ("interval too short for Azure", "azure:\n  interval: 1s\n", "azure.interval"),
    ("bad listen address", "listen: nowhere\n", "listen"),
    ("listen port out of range", "listen: 0.0.0.0:70000\n", "listen"),
    ("bad subscription id", "azure:\n  subscription_id: not-a-guid\n", "azure.subscription_id"),
    ("bad resource id", "azure:\n  resources: [/subscriptions/x/lb]\n", "azure.resources"),
    ("resources not a list", "azure:\n  resources: {a: b}\n", "azure.resources"),
    ("bad CIDR", "conntrack:\n  non_masquerade_cidrs: [10.0.0.0/33]\n", "conntrack.non_masquerade_cidrs"),
    ("bad choice", "azure:\n  credential: password\n", "azure.credential"),
    ("bad log level", "log_level: loud\n", "log_level"),
    ("top_k zero", "conntrack:\n  top_k: 0\n", "conntrack.top_k"),
    (
        "azure enabled without anything to watch",
        "azure:\n  enabled: true\n",
        "azure.cluster",
    ),
    (
        "cluster without subscription",
        "azure:\n  enabled: true\n  cluster: {resource_group: rg, name: aks}\n",
        "azure.subscription_id",
    ),
    ("half a cluster", "azure:\n  cluster: {name: aks}\n", "azure.cluster.resource_group"),
    ("credential none against real Azure", "azure:\n  credential: none\n", "azure.credential"),
    ("plain http to a remote host", "azure:\n  arm_endpoint: http://example.com\n", "azure.arm_endpoint"),
    ("not a URL", "azure:\n  arm_endpoint: management.azure.com\n", "azure.arm_endpoint"),
    ("web config file missing", "web_config_file: /nonexistent/web.yml\n", "web_config_file"),
    ("not a mapping", "- a\n- b\n", "(top level)"),
    ("not YAML", "azure: [unclosed\n", "(file)"),
]


@pytest.mark.parametrize(("case", "text", "field"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_config_exits_2_naming_the_field(tmp_path: Path, capsys, case: str, text: str, field: str) -> None:
    path = tmp_path / "exporter.yaml"
    path.write_text(text)
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"config error: {field}:" in err, err


def test_every_bad_field_is_reported_at_once(tmp_path: Path, capsys) -> None:
    path = tmp_path / "exporter.yaml"
    path.write_text("listen: x\nazure:\n  interval: y\nconntrack:\n  top_k: z\n")
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    for field in ("listen", "azure.interval", "conntrack.top_k"):
        assert f"config error: {field}:" in err


def test_good_config_is_accepted(tmp_path: Path, capsys) -> None:
    path = tmp_path / "exporter.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            listen: 0.0.0.0:9874
            azure:
              enabled: true
              interval: 60s
              subscription_id: {SUB}
              credential: default
              cluster: {{resource_group: rg-shop, name: aks-shop}}
              resources: [{LB}]
            kubernetes: {{enabled: true, kubeconfig: ~/.kube/config}}
            conntrack: {{enabled: true, interval: 15s}}
            """
        )
    )
    assert main(["check-config", str(path)]) == 0
    assert "collectors enabled: azure, kubernetes, conntrack" in capsys.readouterr().out
    config = load_config(path, environ={})
    assert config.azure.resources[0].name == "kubernetes"
    assert config.azure.resources[0].kind == "loadBalancers"
    assert config.azure.interval == 60.0


def test_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    path = tmp_path / "exporter.yaml"
    path.write_text("listen: 127.0.0.1:1000\nazure:\n  interval: 60s\n  top: 500\n")
    env = {"SNAT_EXPORTER_LISTEN": "127.0.0.1:2000", "SNAT_EXPORTER_AZURE_INTERVAL": "2m"}
    config = load_config(path, environ=env, overrides={"listen": "127.0.0.1:3000"})
    assert config.listen == ("127.0.0.1", 3000)  # flag wins
    assert config.azure.interval == 120.0  # env beats the file
    assert config.azure.top == 500  # file beats the default


def test_env_var_with_a_bad_value_names_the_variable_and_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, environ={"SNAT_EXPORTER_CONNTRACK_TOP_K": "many"})
    assert info.value.problems[0][0] == "SNAT_EXPORTER_CONNTRACK_TOP_K (conntrack.top_k)"


def test_unknown_set_flag_names_the_setting(capsys) -> None:
    assert main(["check-config", "/dev/null", "--set", "azure.intervall=5m"]) == 2
    assert "config error: azure.intervall: unknown setting" in capsys.readouterr().err


def test_simulator_endpoint_over_loopback_http_is_allowed() -> None:
    config = load_config(
        None,
        environ={},
        overrides={"azure.arm_endpoint": "http://127.0.0.1:9875", "azure.credential": "none"},
    )
    assert config.azure.credential == "none"


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_a_config_path_that_is_not_a_regular_file_exits_2_naming_it(tmp_path: Path, kind: str) -> None:
    """Issue 15: a FIFO as the config file blocked start-up forever, /dev/zero read without end. Run as a process
    with a deadline, so that a hang fails the test instead of stalling the suite."""
    import subprocess
    import sys

    if kind == "fifo":
        path = tmp_path / "exporter.yaml"
        os.mkfifo(path)
    elif kind == "directory":
        path = tmp_path
    else:
        path = Path("/dev/zero")
    for argv in (["check-config", str(path)], ["serve", "--config", str(path), "--listen", "127.0.0.1:0"]):
        try:
            done = subprocess.run(
                [sys.executable, "-m", "snat_exporter", *argv], capture_output=True, text=True, timeout=20
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"{' '.join(argv)} with a {kind} as the config file still runs after 20 s")
        assert done.returncode == 2, done.stderr
        assert f"config error: (file): {path} is " in done.stderr and "not a regular file" in done.stderr, done.stderr


def test_every_collector_package_is_one_row_of_the_table_with_what_the_runner_reads() -> None:
    rows = Config.collectors()
    packages = sorted(info.name for info in pkgutil.iter_modules(collectors.__path__) if info.ispkg)
    assert sorted(row.package for row in rows) == packages
    assert [row.name for row in rows if row.provides_identity] == ["kubernetes"]
    config = load_config(None, environ={})
    for row in rows:
        section = config.section(row)
        assert section.interval > 0 and section.timeout > 0 and section.max_age > 0 and not section.enabled
        assert callable(row.factory())


@dataclasses.dataclass(frozen=True)
class _Partial:
    enabled: bool = False
    interval: float = 15.0


@dataclasses.dataclass(frozen=True)
class _Table:
    partial: _Partial = collector_section(_Partial, "partial", "A section without timeout and max_age.")


def test_a_collector_section_without_the_scheduling_fields_is_refused() -> None:
    with pytest.raises(TypeError, match="timeout, max_age"):
        collector_table(_Table)
