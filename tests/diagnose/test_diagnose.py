"""`snat-exporter diagnose` against the simulator's scenarios: the right node, the right remedy, the right numbers."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from snat_exporter.cli import main
from snat_exporter.diagnose.report import SCHEMA_PATH
from snat_exporter.simulator import Simulator, load_scenario
from snat_exporter.simulator.cli import config_snippet
from snat_exporter.simulator.kubeapi import KubeApiServer
from snat_exporter.simulator.kubeobjects import nodes_from_scenario, write_kubeconfig


def write_config(tmp_path: Path, scenario, sim_url: str, kube_url: str | None = None) -> Path:
    text = config_snippet(scenario, sim_url)
    if kube_url:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", kube_url)
        text += f"kubernetes:\n  enabled: true\n  kubeconfig: {kubeconfig}\n"
    path = tmp_path / "exporter.yaml"
    path.write_text(text)
    return path


async def run_cli(args: list[str], capsys) -> tuple[int, str]:
    import asyncio

    # The CLI runs its own event loop: run it in a thread so the simulator keeps serving on this one.
    code = await asyncio.to_thread(main, args)
    return code, capsys.readouterr().out


async def test_exhaustion_names_the_node_and_the_remedy(tmp_path: Path, capsys) -> None:
    scenario = load_scenario("exhaustion")
    sim = Simulator(scenario)
    kube = KubeApiServer()
    kube.add(*nodes_from_scenario(scenario.nodes))
    try:
        config = write_config(tmp_path, scenario, await sim.start("127.0.0.1", 0), await kube.start("127.0.0.1", 0))
        code, out = await run_cli(["diagnose", "--config", str(config), "--output", "json"], capsys)
    finally:
        await kube.stop()
        await sim.stop()
    report = json.loads(out)
    jsonschema.validate(report, json.loads(SCHEMA_PATH.read_text()))
    assert code == 1 and report["exit_code"] == 1
    assert report["outbound"]["type"] == "loadBalancer"
    exhausted = scenario.nodes[2]
    top = report["findings"][0]
    assert top["severity"] == "critical"
    assert top["node"] == exhausted.name  # named through the Kubernetes API, not just its IP
    assert top["numbers"]["allocated_ports"] == 1024
    assert top["numbers"]["used_peak"] == 1024
    assert top["numbers"]["failed_connections"] > 0
    # 1,024 peak x 1.5 headroom = 1,536 ports; 7 nodes (6 + 1 surge) x 1,536 fit in one IP's 64,000.
    assert "--load-balancer-outbound-ports 1536 --load-balancer-managed-outbound-ip-count 1" in top["remedy"]
    others = [f for f in report["findings"] if f["node"] and f["node"] != exhausted.name]
    assert not [f for f in others if f["severity"] != "info"]
    cap = report["capacity"]
    assert cap["nodes"] == 6 and cap["frontend_ips"] == 1 and cap["allocated_outbound_ports"] == 1024
    assert cap["max_nodes"] == 62  # 64,000 / 1,024
    assert cap["max_ports_per_node"] == 9136  # 64,000 / 7 nodes, down to a multiple of 8


async def test_steady_is_healthy_exit_0(tmp_path: Path, capsys) -> None:
    scenario = load_scenario("steady")
    sim = Simulator(scenario)
    try:
        config = write_config(tmp_path, scenario, await sim.start("127.0.0.1", 0))
        code, out = await run_cli(["diagnose", "--config", str(config)], capsys)
    finally:
        await sim.stop()
    assert code == 0, out
    assert "Outbound type: loadBalancer" in out
    assert "[CRITICAL]" not in out and "[WARNING]" not in out
    assert "No SNAT pressure found" in out
    assert "60 nodes" in out and "default table for this pool size: 512 ports per node" in out


async def test_natgw_capacity_numbers(tmp_path: Path, capsys) -> None:
    scenario = load_scenario("natgw")
    sim = Simulator(scenario)
    try:
        config = write_config(tmp_path, scenario, await sim.start("127.0.0.1", 0))
        code, out = await run_cli(["diagnose", "--config", str(config), "--output", "json"], capsys)
    finally:
        await sim.stop()
    report = json.loads(out)
    jsonschema.validate(report, json.loads(SCHEMA_PATH.read_text()))
    assert report["outbound"]["type"] == "managedNATGateway"
    assert report["capacity"]["natgw_public_ips"] == 2
    assert report["capacity"]["natgw_total_ports"] == 129_024  # 2 x 64,512
    assert report["capacity"]["peak_concurrent_flows"] > 0
    assert code == report["exit_code"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["diagnose", "--since", "soon"], "--since"),
        (["diagnose", "--prometheus", "not a url"], "--prometheus"),
        (["diagnose"], "nothing to read"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str, capsys) -> None:
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_unreachable_prometheus_exits_2(capsys) -> None:
    assert main(["diagnose", "--prometheus", "http://127.0.0.1:1"]) == 2
    assert "cannot query" in capsys.readouterr().err
