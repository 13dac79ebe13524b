"""SNAT capacity arithmetic for AKS outbound, as Microsoft documents it.

The limits (ports per IP, the default allocation table, maximum IPs and connections) are Azure's facts and live in
``snat_exporter.azure_facts`` with their sources; here is what follows from them: AKS's sizing formula
``64,000 / ports per node * outbound IPs = max nodes`` with headroom for upgrade surge nodes, ports per node in
multiples of 8, and the IPs a node count needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from snat_exporter.azure_facts import (
    DEFAULT_ALLOCATION_CAP,
    LB_MAX_MANAGED_IPS,
    LB_MAX_PORTS_PER_NODE,
    LB_PORTS_PER_IP,
    NATGW_PORTS_PER_IP,
    PORT_GRANULARITY,
)


def round_down_to_granularity(ports: int) -> int:
    return ports - ports % PORT_GRANULARITY


def round_up_to_granularity(ports: float) -> int:
    return int(math.ceil(ports / PORT_GRANULARITY) * PORT_GRANULARITY)


def max_ports_per_node(outbound_ips: int, nodes: int) -> int:
    """The largest manual allocation that fits every node: 64,000 x IPs / nodes, in multiples of 8."""
    if nodes < 1 or outbound_ips < 1:
        raise ValueError("nodes and outbound IPs must be at least 1")
    return min(round_down_to_granularity(LB_PORTS_PER_IP * outbound_ips // nodes), LB_MAX_PORTS_PER_NODE)


def max_nodes(ports_per_node: int, outbound_ips: int) -> int:
    """AKS's sizing formula: 64,000 / ports per node x outbound IPs. Surge nodes during upgrades count too."""
    if ports_per_node < 1 or outbound_ips < 1:
        raise ValueError("ports per node and outbound IPs must be at least 1")
    return LB_PORTS_PER_IP * outbound_ips // ports_per_node


def ips_needed(ports_per_node: int, nodes: int) -> int:
    """Outbound IPs needed so that ``nodes`` nodes each get ``ports_per_node``."""
    return max(1, math.ceil(ports_per_node * nodes / LB_PORTS_PER_IP))


def natgw_total_ports(public_ips: int) -> int:
    return NATGW_PORTS_PER_IP * public_ips


@dataclass(frozen=True)
class LbPlan:
    """A Load Balancer setting that fits an observed peak: what to pass to ``az aks update``."""

    ports_per_node: int
    outbound_ips: int
    max_nodes: int
    fits: bool  # False when even 100 IPs cannot give every node that many ports

    def az_flags(self) -> str:
        return (
            f"--load-balancer-outbound-ports {self.ports_per_node} "
            f"--load-balancer-managed-outbound-ip-count {self.outbound_ips}"
        )


def plan_lb(peak_used_per_node: float, nodes: int, surge_nodes: int = 1, headroom: float = 1.5) -> LbPlan:
    """Ports per node = peak x headroom (at least the 1,024 default, a multiple of 8); IPs so that every node,
    upgrade surge nodes included, gets them."""
    if headroom < 1:
        raise ValueError("headroom must be at least 1")
    wanted = max(round_up_to_granularity(peak_used_per_node * headroom), DEFAULT_ALLOCATION_CAP)
    ports = min(wanted, LB_MAX_PORTS_PER_NODE)
    total_nodes = nodes + max(0, surge_nodes)
    ips = ips_needed(ports, total_nodes)
    fits = ips <= LB_MAX_MANAGED_IPS and ports == wanted
    ips = min(ips, LB_MAX_MANAGED_IPS)
    return LbPlan(ports_per_node=ports, outbound_ips=ips, max_nodes=max_nodes(ports, ips), fits=fits)
