"""Done-when of issue 3: the simulator's 60-node load balancer, a test API server holding those 60 nodes, and one
exporter running both collectors: every azure_lb_snat_ports_used series names its node, and the whole exposition
passes promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from snat_exporter.config import load_config
from snat_exporter.server import Exporter
from snat_exporter.simulator import Simulator, exporter_settings, load_scenario
from snat_exporter.simulator.kubeapi import KubeApiServer
from snat_exporter.simulator.kubeobjects import nodes_from_scenario, write_kubeconfig
from tests.conftest import FakeClock


async def test_every_lb_series_of_the_60_node_cluster_names_its_node(
    kubeapi: KubeApiServer, tmp_path: Path, clock: FakeClock
) -> None:
    scenario = load_scenario("steady")
    assert len(scenario.nodes) == 60
    kubeapi.add(*nodes_from_scenario(scenario.nodes))
    sim = Simulator(scenario, clock=clock)
    sim_url = await sim.start("127.0.0.1", 0)
    settings = {
        "kubernetes.enabled": "true",
        "kubernetes.kubeconfig": str(write_kubeconfig(tmp_path / "kubeconfig", kubeapi.url)),
        **exporter_settings(scenario, sim_url),
        "azure.timeout": "5s",
    }
    exporter = Exporter(load_config(None, environ={}, overrides=settings), clock=clock)
    url = await exporter.start(host="127.0.0.1", port=0, background=False)
    try:
        assert await exporter.runners["kubernetes"].run_once()
        assert all(exporter.collection.identity.node_by_ip(n.ip) for n in scenario.nodes)
        assert await exporter.runners["azure"].run_once()
        async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as resp:
            text = await resp.text()
    finally:
        await exporter.stop()
        await sim.stop()
    used = [
        s.labels
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "azure_lb_snat_ports_used"
    ]
    expected = {n.ip: n.name for n in scenario.nodes}
    assert len(used) == 120  # 60 nodes x tcp/udp
    assert {(labels["backend_ip"], labels["node"]) for labels in used} == set(expected.items())
    info = {
        (s.labels["internal_ip"], s.labels["node"], s.labels["node_pool"], s.labels["zone"])
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "snat_kube_node_info"
    }
    assert info == {(n.ip, n.name, n.pool, n.zone) for n in scenario.nodes}
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (/usr/bin/promtool, Debian package prometheus)")
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
