"""What diagnose observed, whichever source it came from (Azure Monitor directly, or a Prometheus)."""

from __future__ import annotations

from dataclasses import dataclass, field

LOAD_BALANCER = "loadBalancer"
NAT_GATEWAY_TYPES = ("managedNATGateway", "managedNATGatewayV2", "userAssignedNATGateway")


@dataclass
class Destination:
    destination: str
    port: str
    protocol: str
    flows: float


@dataclass
class PodFlows:
    namespace: str
    pod: str
    workload: str
    flows: float


@dataclass
class NodeObservation:
    node: str  # the Kubernetes node name, or the backend IP when the name is unknown
    backend_ip: str = ""
    allocated_ports: float | None = None
    used_now: float | None = None
    used_peak: float | None = None
    failed_connections: float = 0.0
    max_flows_per_destination: float | None = None  # from the node agent (conntrack)
    top_destinations: list[Destination] = field(default_factory=list)
    top_pods: list[PodFlows] = field(default_factory=list)

    @property
    def peak_utilisation(self) -> float | None:
        if not self.allocated_ports or self.used_peak is None:
            return None
        return self.used_peak / self.allocated_ports


@dataclass
class LoadBalancerObservation:
    name: str
    resource_group: str = ""
    frontend_ips: int = 1
    allocated_outbound_ports: int = 0  # 0 = automatic (the default allocation table)


@dataclass
class NatGatewayObservation:
    name: str
    resource_group: str = ""
    public_ips: int = 1
    active_connections_peak: float | None = None
    failed_connections: float = 0.0
    dropped_packets: float = 0.0


@dataclass
class Observations:
    source: str  # "azure" or the Prometheus URL
    since_seconds: float
    cluster: str = ""
    outbound_type: str = ""
    surge_nodes: int = 1  # upgrade surge nodes to leave room for (maxSurge; AKS default 1 node per pool)
    load_balancers: list[LoadBalancerObservation] = field(default_factory=list)
    nat_gateways: list[NatGatewayObservation] = field(default_factory=list)
    nodes: list[NodeObservation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be read, and why
