"""``snat-exporter demo``: the Azure Monitor simulator and the exporter on loopback, until Ctrl-C.

The exporter reaches the simulator exactly as it reaches Azure: through the real SDK, over HTTP, configured by
``azure.arm_endpoint`` and discovering the scenario's AKS cluster. A fake Kubernetes API server with the scenario's
nodes fills the ``node`` label, as the real API server does in a cluster.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from snat_exporter.config import Config, load_config
from snat_exporter.server import SignalWaiter, serve

if TYPE_CHECKING:
    from snat_exporter.simulator import Scenario

log = logging.getLogger("snat_exporter.demo")


def diagnose_config(scenario: Scenario, simulator_url: str, kubeconfig: str) -> str:
    """A config for `snat-exporter diagnose`: the demo's simulator as Azure, its fake API server for node names."""
    from snat_exporter.simulator import exporter_settings

    settings: dict[str, Any] = {}
    for path, value in {**exporter_settings(scenario, simulator_url), "kubernetes.enabled": "true"}.items():
        *parents, leaf = path.split(".")
        node = settings
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    settings["kubernetes"]["kubeconfig"] = kubeconfig
    return yaml.safe_dump(settings, sort_keys=False)


def demo_config(scenario: Scenario, simulator_url: str, listen: str, kubeconfig: str | None) -> Config:
    from snat_exporter.simulator import exporter_settings

    overrides: dict[str, object] = {
        "listen": listen,
        **exporter_settings(scenario, simulator_url),
        # Shorter than production's 60 s so that the demo moves while you watch.
        "azure.interval": "15s",
    }
    if kubeconfig is not None:
        overrides.update({"kubernetes.enabled": "true", "kubernetes.kubeconfig": kubeconfig})
    return load_config(None, environ={}, overrides=overrides)


async def _run(scenario_name: str, host: str, port: int) -> int:
    from snat_exporter.simulator import Simulator, load_scenario
    from snat_exporter.simulator.kubeapi import KubeApiServer
    from snat_exporter.simulator.kubeobjects import nodes_from_scenario, write_kubeconfig

    signals = SignalWaiter()
    scenario = load_scenario(scenario_name)
    simulator = Simulator(scenario)
    sim_url = await simulator.start("127.0.0.1", 0)
    kube = KubeApiServer()
    kube.add(*nodes_from_scenario(scenario.nodes))
    with tempfile.TemporaryDirectory(prefix="snat-demo-") as tmp:
        kubeconfig = str(write_kubeconfig(Path(tmp) / "kubeconfig", await kube.start("127.0.0.1", 0)))
        diagnose = Path(tmp) / "diagnose.yaml"
        diagnose.write_text(diagnose_config(scenario, sim_url, kubeconfig))
        config = demo_config(scenario, sim_url, f"{host}:{port}", kubeconfig)

        def announce(url: str) -> None:
            print(
                f"\nsnat-exporter demo, scenario {scenario_name!r}\n"
                f"  metrics:    {url}/metrics\n"
                f"  status:     {url}/\n"
                f"  simulator:  {sim_url} (Azure Resource Manager + Azure Monitor)\n"
                f"  diagnose:   snat-exporter diagnose --config {diagnose}\n"
                "SNAT series appear after the first collection (a few seconds). Ctrl-C stops.\n",
                flush=True,
            )

        try:
            await serve(config, signals=signals, on_ready=announce)
        finally:
            await kube.stop()
            await simulator.stop()
    return 0


def run_demo(scenario: str, host: str, port: int) -> int:
    return asyncio.run(_run(scenario, host, port))
