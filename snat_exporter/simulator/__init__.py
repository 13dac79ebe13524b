"""Azure Monitor / Azure Resource Manager simulator: the demo's and the tests' Azure, over real HTTP.

Production modules never import this package; the exporter reaches it only through ``azure.arm_endpoint``.
"""

from __future__ import annotations

from snat_exporter.simulator.cli import exporter_settings
from snat_exporter.simulator.faults import Fault
from snat_exporter.simulator.scenario import (
    AgentPool,
    Cluster,
    Event,
    LoadBalancer,
    NatGateway,
    Node,
    PublicIP,
    PublicIPPrefix,
    Scenario,
    ScenarioError,
    default_ports_per_backend,
)
from snat_exporter.simulator.scenario_load import builtin_scenarios, load_scenario
from snat_exporter.simulator.server import RecordedRequest, Simulator

__all__ = [
    "AgentPool",
    "Cluster",
    "Event",
    "Fault",
    "LoadBalancer",
    "NatGateway",
    "Node",
    "PublicIP",
    "PublicIPPrefix",
    "RecordedRequest",
    "Scenario",
    "ScenarioError",
    "Simulator",
    "builtin_scenarios",
    "default_ports_per_backend",
    "exporter_settings",
    "load_scenario",
]
