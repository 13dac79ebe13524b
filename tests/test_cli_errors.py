"""What a newcomer trips over first: a port in use, a wrong URL, a typo, a variable. One line naming the cause,
exit 2, never a traceback; and --help that explains every command and option."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from snat_exporter.cli import build_parser, main
from snat_exporter.config import load_config
from snat_exporter.settings import ConfigError
from tests.conftest import ROOT, unreachable_kubeconfig


@pytest.fixture
def one_collector(tmp_path: Path) -> list[str]:
    """A collector that starts without its peer (runs fail at once: the API server refuses connections), so that
    serve gets as far as binding its port."""
    return ["--set", "kubernetes.enabled=true", "--set", f"kubernetes.kubeconfig={unreachable_kubeconfig(tmp_path)}"]


def cli(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snat_exporter", *argv], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_serve_on_a_port_in_use_says_so_in_one_line(busy_port: int, one_collector: list[str]) -> None:
    done = cli("serve", "--listen", f"127.0.0.1:{busy_port}", "--log-level", "error", *one_collector)
    assert done.returncode == 2
    assert done.stderr == f"error: cannot listen on 127.0.0.1:{busy_port}: address already in use\n"


def test_demo_on_a_port_in_use_says_so_in_one_line(busy_port: int) -> None:
    done = cli("demo", "--listen", f"127.0.0.1:{busy_port}", "--log-level", "error")
    assert done.returncode == 2
    assert done.stderr == f"error: cannot listen on 127.0.0.1:{busy_port}: address already in use\n"
    assert "metrics:" not in done.stdout


def test_simulate_on_a_port_in_use_says_so_in_the_same_line(busy_port: int) -> None:
    done = cli("simulate", "--listen", f"127.0.0.1:{busy_port}", "--log-level", "error")
    assert done.returncode == 2
    assert done.stderr == f"error: cannot listen on 127.0.0.1:{busy_port}: address already in use\n"


def test_serve_with_a_tls_file_it_cannot_read_says_which(tmp_path: Path, one_collector: list[str]) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {tmp_path}/missing.crt\n  key_file: {tmp_path}/missing.key\n")
    done = cli("serve", "--listen", "127.0.0.1:0", "--set", f"web_config_file={web}", *one_collector)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("config error: web_config_file.tls_server_config.cert_file: ")
    assert f"{tmp_path}/missing.crt" in line and "No such file or directory" in line


def test_serve_with_no_collector_enabled_refuses_to_start() -> None:
    done = cli("serve", "--listen", "127.0.0.1:0")
    assert done.returncode == 2
    assert done.stderr == (
        "error: no collector is enabled: set kubernetes.enabled, azure.enabled, conntrack.enabled to true "
        "in the config file (see docs/configuration.md) or with --set\n"
    )


class _NotPrometheus(BaseHTTPRequestHandler):
    """What people point --prometheus at by mistake: a 404 page, or a UI that answers every path with HTML."""

    def do_GET(self) -> None:
        status = 200 if self.path.startswith("/ui/") else 404
        body = b"<html><body>not here</body></html>"
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def not_prometheus() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotPrometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("path", "status"), [("", "404 Not Found"), ("/ui", "200 OK")])
def test_diagnose_at_something_that_is_not_prometheus_names_the_url_and_the_status(
    not_prometheus: str, path: str, status: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = not_prometheus + path
    assert main(["diagnose", "--prometheus", url]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {url} is not the Prometheus HTTP API: GET /api/v1/query answered HTTP {status} (text/html)\n"


def _commands(
    parser: argparse.ArgumentParser, name: str = "snat-exporter"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _commands(sub, f"{name} {sub_name}")


def test_every_command_has_a_description_and_every_option_a_help_text() -> None:
    commands = dict(_commands(build_parser()))
    assert {"snat-exporter serve", "snat-exporter demo", "snat-exporter dashboards add-row"} <= set(commands)
    for name, parser in commands.items():
        assert parser.description, f"{name} --help has no description"
        for action in parser._actions:
            assert action.help, f"{name}: {'/'.join(action.option_strings) or action.dest} has no help text"


def test_scenario_help_lists_the_built_in_scenarios() -> None:
    commands = dict(_commands(build_parser()))
    for name in ("snat-exporter demo", "snat-exporter simulate"):
        (scenario,) = [a for a in commands[name]._actions if "--scenario" in a.option_strings]
        assert "exhaustion, natgw, steady" in str(scenario.help), name


def test_a_bad_value_from_the_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, environ={"SNAT_EXPORTER_AZURE_INTERVAL": "banana"})
    ((where, message),) = err.value.problems
    assert where == "SNAT_EXPORTER_AZURE_INTERVAL (azure.interval)"
    assert "'banana'" in message
    # The same value given with --set is the flag's problem, not the variable's.
    with pytest.raises(ConfigError) as err:
        load_config(None, environ={"SNAT_EXPORTER_AZURE_INTERVAL": "1m"}, overrides={"azure.interval": "pear"})
    assert [w for w, _ in err.value.problems] == ["azure.interval"]


def test_an_unknown_key_suggests_the_closest_known_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "exporter.yaml"
    config.write_text("azure:\n  intervall: 30s\n")
    assert main(["check-config", str(config)]) == 2
    assert capsys.readouterr().err == "config error: azure.intervall: unknown key; did you mean interval?\n"
    assert main(["check-config", "/dev/null", "--set", "azure.intervall=30s"]) == 2
    assert "azure.intervall: unknown setting; did you mean azure.interval?" in capsys.readouterr().err
    # Nothing close: every key the section knows.
    config.write_text("azure:\n  zzzz: 1\n")
    assert main(["check-config", str(config)]) == 2
    assert "azure.zzzz: unknown key (known: arm_audience, " in capsys.readouterr().err
