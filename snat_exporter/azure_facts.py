"""Azure's facts about SNAT: the metrics Azure Monitor serves for load balancers and NAT gateways, the SNAT port
limits, and which of the metrics the exporter asks every cycle.

One module, read by the Azure collector (what to ask), the rule and dashboard generators (what is fresh),
``diagnose`` (capacity arithmetic) and the simulator (what to serve). It imports nothing of the package, so any
layer may read it; the simulator reads it without the exporter reading the simulator.

Sources: Microsoft's supported-metrics tables for Microsoft.Network/loadBalancers and natGateways (names in their
exact casing: the load balancer says ``SnatConnectionCount``, the NAT gateway ``SNATConnectionCount``);
https://learn.microsoft.com/azure/load-balancer/load-balancer-outbound-connections (64,000 SNAT ports per Load
Balancer frontend IP; the default allocation table by backend pool size, capped at 1,024 ports per instance);
https://learn.microsoft.com/azure/aks/configure-load-balancer-standard (ports per node in multiples of 8; up to 100
managed outbound IPs) and https://learn.microsoft.com/azure/nat-gateway/nat-gateway-resource (NAT Gateway: 64,512
ports per public IP, up to 16 IPs; 50,000 connections per IP and destination, 2 million in all).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

# ------------------------------------------------------------------------------------------ resource types

LOAD_BALANCERS = "loadBalancers"
NAT_GATEWAYS = "natGateways"
KINDS = (LOAD_BALANCERS, NAT_GATEWAYS)
NAMESPACES = {LOAD_BALANCERS: "Microsoft.Network/loadBalancers", NAT_GATEWAYS: "Microsoft.Network/natGateways"}

# -------------------------------------------------------------------------------------------- metric definitions


@dataclass(frozen=True)
class MetricDef:
    name: str  # REST name.value, exact Azure casing
    display: str  # name.localizedValue
    description: str  # displayDescription
    unit: str
    primary: str  # the default aggregation: "average" or "total"
    dimensions: tuple[str, ...]  # Azure's casing; responses lower-case them


LB_METRIC_DEFINITIONS = (
    MetricDef(
        "AllocatedSnatPorts",
        "Allocated SNAT Ports",
        "Total number of SNAT ports allocated within time period",
        "Count",
        "average",
        ("FrontendIPAddress", "BackendIPAddress", "ProtocolType", "IsAwaitingRemoval"),
    ),
    MetricDef(
        "UsedSnatPorts",
        "Used SNAT Ports",
        "Total number of SNAT ports used within time period",
        "Count",
        "average",
        ("FrontendIPAddress", "BackendIPAddress", "ProtocolType", "IsAwaitingRemoval"),
    ),
    MetricDef(
        "SnatConnectionCount",
        "SNAT Connection Count",
        "Total number of new SNAT connections created within time period",
        "Count",
        "total",
        ("FrontendIPAddress", "BackendIPAddress", "ConnectionState"),
    ),
    MetricDef(
        "VipAvailability",
        "Data Path Availability",
        "Average Load Balancer data path availability per time duration",
        "Count",
        "average",
        ("FrontendIPAddress", "FrontendPort"),
    ),
    MetricDef(
        "DipAvailability",
        "Health Probe Status",
        "Average Load Balancer health probe status per time duration",
        "Count",
        "average",
        ("ProtocolType", "BackendPort", "FrontendIPAddress", "FrontendPort", "BackendIPAddress"),
    ),
)

NAT_METRIC_DEFINITIONS = (
    MetricDef(
        "ByteCount",
        "Bytes",
        "Total number of Bytes transmitted within time period",
        "Bytes",
        "total",
        ("Protocol", "Direction"),
    ),
    MetricDef(
        "DatapathAvailability",
        "Datapath Availability (Preview)",
        "NAT Gateway Datapath Availability",
        "Count",
        "average",
        (),
    ),
    MetricDef(
        "PacketCount",
        "Packets",
        "Total number of Packets transmitted within time period",
        "Count",
        "total",
        ("Protocol", "Direction"),
    ),
    MetricDef("PacketDropCount", "Dropped Packets", "Count of dropped packets", "Count", "total", ()),
    MetricDef(
        "SNATConnectionCount",
        "SNAT Connection Count",
        "Total concurrent active connections",
        "Count",
        "total",
        ("Protocol", "ConnectionState"),
    ),
    MetricDef(
        "TotalConnectionCount",
        "Total SNAT Connection Count",
        "Total number of active SNAT connections",
        "Count",
        "total",
        ("Protocol",),
    ),
)

DEFINITIONS = {LOAD_BALANCERS: LB_METRIC_DEFINITIONS, NAT_GATEWAYS: NAT_METRIC_DEFINITIONS}

# Metrics List takes at most 20 names per call.
MAX_NAMES_PER_CALL = 20

# -------------------------------------------------------------------------------------- what the exporter asks

# The metrics read, per resource type, in the order the exporter asks them (and lists them in its output).
ASKED = {
    LOAD_BALANCERS: (
        "AllocatedSnatPorts",
        "UsedSnatPorts",
        "SnatConnectionCount",
        "VipAvailability",
        "DipAvailability",
    ),
    NAT_GATEWAYS: (
        "SNATConnectionCount",
        "TotalConnectionCount",
        "PacketDropCount",
        "DatapathAvailability",
        "ByteCount",
        "PacketCount",
    ),
}

# The filter of each metric: `eq '*'` splits by a dimension. Without the split Azure averages the load balancer
# port metrics across every backend and over TCP and UDP, which hides the one node that runs out.
FILTERS: dict[str, str | None] = {
    "AllocatedSnatPorts": "BackendIPAddress eq '*' and FrontendIPAddress eq '*' and ProtocolType eq '*'",
    "UsedSnatPorts": "BackendIPAddress eq '*' and FrontendIPAddress eq '*' and ProtocolType eq '*'",
    "SnatConnectionCount": "BackendIPAddress eq '*' and FrontendIPAddress eq '*' and ConnectionState eq '*'",
    "VipAvailability": "FrontendIPAddress eq '*'",
    "DipAvailability": "BackendIPAddress eq '*'",
    "SNATConnectionCount": "Protocol eq '*' and ConnectionState eq '*'",
    "TotalConnectionCount": "Protocol eq '*'",
    "PacketDropCount": None,
    "DatapathAvailability": None,
    "ByteCount": "Protocol eq '*' and Direction eq '*'",
    "PacketCount": "Protocol eq '*' and Direction eq '*'",
}

# Queried every `secondary_interval` rather than every cycle: they do not show SNAT exhaustion coming and no alert
# reads them. The port and connection metrics stay every cycle, and so does PacketDropCount: its alert takes a
# 5-minute rate, which a counter that steps only every few minutes would make flap. A group is secondary only when
# all its metrics are: DatapathAvailability shares PacketDropCount's call (same filter), so it comes every cycle
# at no cost.
SECONDARY = frozenset({"VipAvailability", "DipAvailability", "DatapathAvailability", "ByteCount", "PacketCount"})


@functools.cache
def query_groups(kind: str) -> tuple[tuple[str | None, tuple[str, ...]], ...]:
    """(filter, metric names) of each call for one resource of ``kind``: the metrics grouped by filter alone, in
    ``ASKED`` order, at most MAX_NAMES_PER_CALL names a call."""
    groups: dict[str | None, list[str]] = {}
    for name in ASKED[kind]:
        groups.setdefault(FILTERS[name], []).append(name)
    return tuple(
        (flt, tuple(names[i : i + MAX_NAMES_PER_CALL]))
        for flt, names in groups.items()
        for i in range(0, len(names), MAX_NAMES_PER_CALL)
    )


def is_secondary(names: tuple[str, ...]) -> bool:
    """A call is asked only every ``secondary_interval`` when all its metrics are secondary."""
    return all(name in SECONDARY for name in names)


def every_cycle_metrics() -> tuple[str, ...]:
    """The Azure metric names asked every cycle (not only every ``secondary_interval``), load balancers first.

    The one list that the freshness alert (``SnatAzureMetricsDelayed``), the dashboard's freshness panel and their
    tests select on: a metric moved to or from ``SECONDARY`` changes all of them at once.
    """
    names = [name for kind in KINDS for _, group in query_groups(kind) if not is_secondary(group) for name in group]
    return tuple(dict.fromkeys(names))


# ---------------------------------------------------------------------------------------------- SNAT limits

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
