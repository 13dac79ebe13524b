"""SNAT capacity arithmetic for AKS outbound, as Microsoft documents it.

Sources: https://learn.microsoft.com/azure/load-balancer/load-balancer-outbound-connections (64,000 SNAT ports per
Load Balancer frontend IP; the default allocation table by backend pool size, capped at 1,024 ports per instance),
https://learn.microsoft.com/azure/aks/configure-load-balancer-standard (AKS's sizing formula
``64,000 / ports per node * outbound IPs = max nodes`` with headroom for upgrade surge nodes; ports per node in
multiples of 8; up to 100 managed outbound IPs) and https://learn.microsoft.com/azure/nat-gateway/nat-gateway-resource
(NAT Gateway: 64,512 ports per public IP, up to 16 IPs; 50,000 connections per IP and destination, 2 million in all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LB_PORTS_PER_IP = 64_000
NATGW_PORTS_PER_IP = 64_512
NATGW_MAX_IPS = 16
NATGW_CONNECTIONS_PER_IP_PER_DESTINATION = 50_000
NATGW_MAX_CONNECTIONS = 2_000_000
DEFAULT_ALLOCATION_CAP = 1_024
PORT_GRANULARITY = 8
LB_MAX_MANAGED_IPS = 100
LB_MAX_PORTS_PER_NODE = 64_000

# (largest backend pool size, default ports per instance per frontend IP)
DEFAULT_ALLOCATION_TABLE: tuple[tuple[int, int], ...] = (
    (50, 1024),
    (100, 512),
    (200, 256),
    (400, 128),
    (800, 64),
    (1000, 32),
)


def default_ports_per_ip(pool_size: int) -> int:
    """Default SNAT ports per backend instance for one frontend IP (the Load Balancer's table)."""
    if pool_size < 1:
        raise ValueError("pool size must be at least 1")
    for largest, ports in DEFAULT_ALLOCATION_TABLE:
        if pool_size <= largest:
            return ports
    raise ValueError(f"the default allocation table stops at 1,000 instances, got {pool_size}")


def default_allocation(pool_size: int, frontend_ips: int = 1) -> int:
    """Ports per node when AKS leaves allocatedOutboundPorts at 0: MIN(table x frontend IPs, 1,024)."""
    if frontend_ips < 1:
        raise ValueError("at least one frontend IP")
    return min(default_ports_per_ip(pool_size) * frontend_ips, DEFAULT_ALLOCATION_CAP)


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
