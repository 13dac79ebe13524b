"""Scenarios: the Azure estate the simulator pretends to be, loaded from YAML and validated with the field named.

A scenario is data only: resources (cluster, nodes, load balancers, NAT gateways, public IPs), usage curves and
events in minutes relative to the simulator's start, and faults. Everything derived from it (node names, IPs,
resource IDs, SNAT allocations) is deterministic, so that tests and docs can state exact numbers.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from snat_exporter.azure_facts import LB_PORTS_PER_IP, NATGW_PORTS_PER_IP, default_allocation
from snat_exporter.settings import parse_number, setting
from snat_exporter.simulator.faults import Fault

OUTBOUND_TYPES = (
    "loadBalancer",
    "managedNATGateway",
    "managedNATGatewayV2",
    "userAssignedNATGateway",
    "userDefinedRouting",
    "none",
)
NAT_OUTBOUND = ("managedNATGateway", "managedNATGatewayV2", "userAssignedNATGateway")

# Default SNAT ports per backend instance and per frontend IP, by backend pool size (Azure LB outbound docs).
PORTS_PER_LB_FRONTEND = LB_PORTS_PER_IP
PORTS_PER_NAT_IP = NATGW_PORTS_PER_IP


class ScenarioError(ValueError):
    """A scenario that cannot be loaded; ``path`` is the dotted field (e.g. ``load_balancers[0].frontend_ips``)."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


def default_ports_per_backend(pool_size: int, frontends: int) -> int:
    """The allocation Azure makes when allocatedOutboundPorts is 0: MIN(table(pool size) x frontend IPs, 1024).
    Beyond the table's 1,000 instances there is no default allocation: 0."""
    try:
        return default_allocation(max(pool_size, 1), max(frontends, 1))
    except ValueError:
        return 0


def stable_fraction(*parts: object) -> float:
    """A deterministic number in [0, 1) from its arguments, the same in every process (unlike hash())."""
    digest = hashlib.blake2b("|".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def stable_guid(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "snat-exporter-simulator|" + "|".join(str(p) for p in parts)))


# ------------------------------------------------------------------------------------------------ the model


@dataclass(frozen=True)
class Node:
    """A Kubernetes node: ``ip`` is its InternalIP, which is the load balancer's BackendIPAddress."""

    name: str
    ip: str
    pool: str
    zone: str


@dataclass(frozen=True)
class AgentPool:
    name: str
    count: int
    vm_size: str
    zones: tuple[str, ...]
    max_surge: str
    mode: str


@dataclass(frozen=True)
class Cluster:
    resource_group: str
    name: str
    node_resource_group: str
    outbound_type: str
    kubernetes_version: str
    network_plugin: str
    agent_pools: tuple[AgentPool, ...]
    vnet_subnet_id: str
    byo_vnet: bool  # vnetSubnetID shows in agentPoolProfiles only for a bring-your-own VNet, as in AKS
    id: str


@dataclass(frozen=True)
class PublicIP:
    id: str
    name: str
    resource_group: str
    address: str


@dataclass(frozen=True)
class PublicIPPrefix:
    id: str
    name: str
    resource_group: str
    prefix: str  # "198.18.4.0/28"
    length: int

    @property
    def size(self) -> int:
        return int(2 ** (32 - self.length))


@dataclass(frozen=True)
class LoadBalancerUsage:
    """Per backend: TCP used/allocated ratio swings between min and max over period_minutes (each backend with its
    own phase); UDP uses udp_ratio of the TCP figure; new connections per minute are used ports x
    connections_per_port. Read from a scenario's ``usage.load_balancer`` (and a load balancer's ``usage``)."""

    min: float = setting(0.10, "Lowest TCP used/allocated ratio.", parse=parse_number(0, 1))
    max: float = setting(0.40, "Highest TCP used/allocated ratio.", parse=parse_number(0, 1))
    period_minutes: float = setting(45.0, "Minutes of one swing.", parse=parse_number(1))
    udp_ratio: float = setting(0.10, "UDP ports as a share of TCP ports.", parse=parse_number(0, 1))
    connections_per_port: float = setting(0.5, "New connections per used port per minute.", parse=parse_number(0))

    def validate(self) -> list[tuple[str, str]]:
        return [("min", f"must not exceed max ({self.max})")] if self.min > self.max else []


@dataclass(frozen=True)
class NatGatewayUsage:
    """Active connections swing between min and max; new (attempted) connections per minute are
    active x new_per_active; UDP takes udp_ratio; outbound bytes are bytes_per_connection per new connection.
    Read from a scenario's ``usage.nat_gateway`` (and a NAT gateway's ``usage``)."""

    min: float = setting(2000.0, "Fewest active connections.", parse=parse_number(0))
    max: float = setting(6000.0, "Most active connections.", parse=parse_number(0))
    period_minutes: float = setting(60.0, "Minutes of one swing.", parse=parse_number(1))
    udp_ratio: float = setting(0.10, "UDP connections as a share of all.", parse=parse_number(0, 1))
    new_per_active: float = setting(0.30, "New connections per active connection per minute.", parse=parse_number(0))
    bytes_per_connection: float = setting(20000.0, "Outbound bytes per new connection.", parse=parse_number(0))

    def validate(self) -> list[tuple[str, str]]:
        return [("min", f"must not exceed max ({self.max})")] if self.min > self.max else []


@dataclass(frozen=True)
class LoadBalancer:
    id: str
    name: str
    resource_group: str
    frontend_ips: tuple[PublicIP, ...]
    allocated_outbound_ports: int  # as configured on the outbound rule: 0 = Azure's default table
    idle_timeout_minutes: int
    backends: tuple[str, ...]  # backend IPs
    usage: LoadBalancerUsage
    kind: str = "loadBalancers"

    @property
    def ports_per_backend(self) -> int:
        """SNAT ports each backend instance gets, over all frontend IPs."""
        if self.allocated_outbound_ports:
            return self.allocated_outbound_ports
        return default_ports_per_backend(len(self.backends), len(self.frontend_ips))


@dataclass(frozen=True)
class NatGateway:
    id: str
    name: str
    resource_group: str
    public_ips: tuple[PublicIP, ...]
    public_ip_prefixes: tuple[PublicIPPrefix, ...]
    idle_timeout_minutes: int
    subnets: tuple[str, ...]
    usage: NatGatewayUsage
    kind: str = "natGateways"

    @property
    def snat_ports(self) -> int:
        addresses = len(self.public_ips) + sum(p.size for p in self.public_ip_prefixes)
        return PORTS_PER_NAT_IP * addresses


@dataclass(frozen=True)
class Event:
    """``climb``: the target's level goes linearly from ``start`` (its curve value there, unless ``from_level``)
    to ``to_level`` between start_minute and end_minute, then stays at ``to_level`` until ``until_minute``
    (for ever when None). While it stays there, ``failed_per_minute`` failed SNAT connections are reported.
    The level is the TCP used/allocated ratio of a load balancer backend, or a NAT gateway's active connections."""

    kind: str
    target: str  # a backend IP (load balancers) or a NAT gateway name
    start_minute: float
    end_minute: float
    to_level: float
    from_level: float | None = None
    until_minute: float | None = None
    failed_per_minute: float = 0.0


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    subscription_id: str
    tenant_id: str
    region: str
    lag_minutes: int
    revise_minutes: int
    revise_fraction: float
    ratelimit_reads: int  # ARM subscription read bucket; 0 turns throttling off
    ratelimit_refill_per_second: float
    batch_series_limit: int
    cluster: Cluster
    nodes: tuple[Node, ...]
    load_balancers: tuple[LoadBalancer, ...]
    nat_gateways: tuple[NatGateway, ...]
    public_ips: tuple[PublicIP, ...]
    public_ip_prefixes: tuple[PublicIPPrefix, ...]
    subnets: Mapping[str, str | None]  # subnet ID -> NAT gateway ID attached to it (or None)
    events: tuple[Event, ...] = ()
    faults: tuple[Fault, ...] = field(default=())

    def node_by_ip(self, ip: str) -> Node | None:
        for node in self.nodes:
            if node.ip == ip:
                return node
        return None

    def resource(self, name: str) -> LoadBalancer | NatGateway:
        for res in iter_resources(self):
            if res.name.lower() == name.lower():
                return res
        raise KeyError(name)


def iter_resources(scenario: Scenario) -> Iterator[LoadBalancer | NatGateway]:
    yield from scenario.load_balancers
    yield from scenario.nat_gateways
