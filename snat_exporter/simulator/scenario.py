"""Scenarios: the Azure estate the simulator pretends to be, loaded from YAML and validated with the field named.

A scenario is data only: resources (cluster, nodes, load balancers, NAT gateways, public IPs), usage curves and
events in minutes relative to the simulator's start, and faults. Everything derived from it (node names, IPs,
resource IDs, SNAT allocations) is deterministic, so that tests and docs can state exact numbers.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

import yaml

from snat_exporter.azure_facts import LB_PORTS_PER_IP, NATGW_PORTS_PER_IP, default_allocation
from snat_exporter.simulator.faults import Fault, fault_from_mapping

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

# Public addresses come from 198.18.0.0/15 (RFC 2544, benchmarking): never routable, and large enough for
# thousands of simulated frontends.
_PUBLIC_POOL = ipaddress.IPv4Network("198.18.0.0/15")
# Backends of load balancers that are not the cluster's (`backends: N`) get addresses here, apart from nodes.
_SYNTHETIC_BACKENDS = ipaddress.IPv4Network("10.128.0.0/9")


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
    connections_per_port."""

    min: float = 0.10
    max: float = 0.40
    period_minutes: float = 45.0
    udp_ratio: float = 0.10
    connections_per_port: float = 0.5


@dataclass(frozen=True)
class NatGatewayUsage:
    """Active connections swing between min and max; new (attempted) connections per minute are
    active x new_per_active; UDP takes udp_ratio; outbound bytes are bytes_per_connection per new connection."""

    min: float = 2000.0
    max: float = 6000.0
    period_minutes: float = 60.0
    udp_ratio: float = 0.10
    new_per_active: float = 0.30
    bytes_per_connection: float = 20000.0


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


# ------------------------------------------------------------------------------------------------ loading


_MISSING = object()


class _Section:
    """Reads one mapping of the YAML, naming the full path of any bad or unknown key."""

    def __init__(self, data: Any, path: str):
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ScenarioError(path, f"expected a mapping, got {type(data).__name__}")
        self.data = data
        self.path = path
        self.used: set[str] = set()

    def sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, parse: Callable[[Any], Any], default: Any = _MISSING) -> Any:
        self.used.add(key)
        if key not in self.data or self.data[key] is None:
            if default is _MISSING:
                raise ScenarioError(self.sub(key), "required")
            return default
        try:
            return parse(self.data[key])
        except ScenarioError:
            raise
        except (ValueError, TypeError) as err:
            raise ScenarioError(self.sub(key), str(err)) from None

    def raw(self, key: str) -> Any:
        self.used.add(key)
        return self.data.get(key)

    def done(self) -> None:
        unknown = sorted(str(k) for k in self.data if k not in self.used)
        if unknown:
            raise ScenarioError(self.sub(unknown[0]), "unknown key")


def _str(value: Any) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool) or str(value).strip() == "":
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return str(value).strip()


def _name(value: Any) -> str:
    text = _str(value)
    if not re.fullmatch(r"[A-Za-z0-9_.(){}-]+", text):
        raise ValueError(f"expected an Azure resource name (letters, digits, - _ . ( )), got {text!r}")
    return text


def _int(minimum: int | None = None, maximum: int | None = None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number, got {value!r}")
        if minimum is not None and value < minimum:
            raise ValueError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be at most {maximum}, got {value}")
        return value

    return parse


def _float(minimum: float | None = None, maximum: float | None = None) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {value!r}")
        number = float(value)
        if minimum is not None and number < minimum:
            raise ValueError(f"must be at least {minimum}, got {number}")
        if maximum is not None and number > maximum:
            raise ValueError(f"must be at most {maximum}, got {number}")
        return number

    return parse


def _guid(value: Any) -> str:
    try:
        return str(uuid.UUID(_str(value)))
    except ValueError:
        raise ValueError(f"expected a GUID like 00000000-0000-0000-0000-000000000000, got {value!r}") from None


def _ip(value: Any) -> str:
    return str(ipaddress.IPv4Address(_str(value)))


def _network(value: Any) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(_str(value))


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _str(value)
        for choice in choices:
            if text.lower() == choice.lower():
                return choice
        raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")

    return parse


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return value


def _zone_list(value: Any) -> tuple[str, ...]:
    return tuple(_str(z) for z in _list(value))


def _arm_id(sub: str, rg: str, provider: str, kind: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{provider}/{kind}/{name}"


def _base36(number: int, width: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out.rjust(width, "0")


class _Addresses:
    """Hands out public IP addresses in order, so a scenario's addresses are stable."""

    def __init__(self) -> None:
        self.next = 1

    def take(self, count: int = 1, align: int = 1) -> ipaddress.IPv4Address:
        self.next = -(-self.next // align) * align
        start = self.next
        self.next += count
        if self.next >= _PUBLIC_POOL.num_addresses:
            raise ScenarioError("", "too many public IP addresses for the simulator's address pool")
        return _PUBLIC_POOL.network_address + start


def _usage_lb(data: Any, path: str, base: LoadBalancerUsage) -> LoadBalancerUsage:
    s = _Section(data, path)
    out = LoadBalancerUsage(
        min=s.get("min", _float(0, 1), base.min),
        max=s.get("max", _float(0, 1), base.max),
        period_minutes=s.get("period_minutes", _float(1), base.period_minutes),
        udp_ratio=s.get("udp_ratio", _float(0, 1), base.udp_ratio),
        connections_per_port=s.get("connections_per_port", _float(0), base.connections_per_port),
    )
    s.done()
    if out.min > out.max:
        raise ScenarioError(s.sub("min"), f"must not exceed max ({out.max})")
    return out


def _usage_nat(data: Any, path: str, base: NatGatewayUsage) -> NatGatewayUsage:
    s = _Section(data, path)
    out = NatGatewayUsage(
        min=s.get("min", _float(0), base.min),
        max=s.get("max", _float(0), base.max),
        period_minutes=s.get("period_minutes", _float(1), base.period_minutes),
        udp_ratio=s.get("udp_ratio", _float(0, 1), base.udp_ratio),
        new_per_active=s.get("new_per_active", _float(0), base.new_per_active),
        bytes_per_connection=s.get("bytes_per_connection", _float(0), base.bytes_per_connection),
    )
    s.done()
    if out.min > out.max:
        raise ScenarioError(s.sub("min"), f"must not exceed max ({out.max})")
    return out


def _expand(count: int, name: str, path: str) -> list[str]:
    if count == 1:
        return [name.replace("{i}", "0")]
    if "{i}" not in name:
        raise ScenarioError(path, "with count > 1 the name needs {i} (replaced by 0, 1, ...)")
    return [name.replace("{i}", str(i)) for i in range(count)]


def parse_scenario(data: Any, name: str = "custom") -> Scenario:
    """Build a Scenario from parsed YAML (a mapping); raises ScenarioError naming the bad field."""
    top = _Section(data, "")
    description = top.get("description", _str, "")
    sub = top.get("subscription_id", _guid)
    tenant = top.get("tenant_id", _guid, stable_guid("tenant", sub))
    region = top.get("region", _name, "westeurope")
    lag = top.get("lag_minutes", _int(0, 60), 3)
    revise = top.get("revise_minutes", _int(0, 60), 0)
    revise_fraction = top.get("revise_fraction", _float(0, 1), 0.5)
    batch_limit = top.get("batch_series_limit", _int(1), 500_000)

    rl = _Section(top.raw("ratelimit"), "ratelimit")
    reads = rl.get("reads", _int(0), 250)
    refill = rl.get("refill_per_second", _float(0), 25.0)
    rl.done()

    usage = _Section(top.raw("usage"), "usage")
    lb_usage = _usage_lb(usage.raw("load_balancer"), "usage.load_balancer", LoadBalancerUsage())
    nat_usage = _usage_nat(usage.raw("nat_gateway"), "usage.nat_gateway", NatGatewayUsage())
    usage.done()

    # -- cluster and its agent pools
    c = _Section(top.raw("cluster"), "cluster")
    if "cluster" not in top.data:
        raise ScenarioError("cluster", "required")
    c_rg = c.get("resource_group", _name)
    c_name = c.get("name", _name)
    node_rg = c.get("node_resource_group", _name, f"MC_{c_rg}_{c_name}_{region}")
    outbound = c.get("outbound_type", _choice(*OUTBOUND_TYPES), "loadBalancer")
    k8s_version = c.get("kubernetes_version", _str, "1.31.2")
    plugin = c.get("network_plugin", _choice("azure", "kubenet", "none"), "azure")
    node_subnet = c.get("node_subnet", _network, ipaddress.IPv4Network("10.224.0.0/16"))
    byo = c.get("byo_vnet", lambda v: bool(v), outbound == "userAssignedNATGateway")
    pools: list[AgentPool] = []
    raw_pools = c.get("agent_pools", _list, [{"name": "nodepool1", "count": 3}])
    for i, raw in enumerate(raw_pools):
        p = _Section(raw, f"cluster.agent_pools[{i}]")
        pools.append(
            AgentPool(
                name=p.get("name", _name),
                count=p.get("count", _int(0, 5000)),
                vm_size=p.get("vm_size", _str, "Standard_D4ds_v5"),
                zones=p.get("zones", _zone_list, ("1", "2", "3")),
                max_surge=p.get("max_surge", _str, "10%"),
                mode=p.get("mode", _choice("System", "User"), "System" if i == 0 else "User"),
            )
        )
        p.done()
    if not pools:
        raise ScenarioError("cluster.agent_pools", "needs at least one pool")
    c.done()
    digits = f"{int(stable_fraction('vmss', sub, c_rg, c_name) * 1e8):08d}"
    if byo:
        vnet_rg, vnet, subnet = c_rg, f"vnet-{c_name}", "nodes"
    else:
        vnet_rg, vnet, subnet = node_rg, f"aks-vnet-{digits}", "aks-subnet"
    subnet_id = _arm_id(sub, vnet_rg, "Microsoft.Network", "virtualNetworks", vnet) + f"/subnets/{subnet}"
    # AKS itself returns the cluster ID with a lower-case "resourcegroups"; consumers must not rely on casing.
    cluster_id = (
        f"/subscriptions/{sub}/resourcegroups/{c_rg}/providers/Microsoft.ContainerService/managedClusters/{c_name}"
    )
    cluster = Cluster(
        resource_group=c_rg,
        name=c_name,
        node_resource_group=node_rg,
        outbound_type=outbound,
        kubernetes_version=k8s_version,
        network_plugin=plugin,
        agent_pools=tuple(pools),
        vnet_subnet_id=subnet_id,
        byo_vnet=byo,
        id=cluster_id,
    )

    # -- nodes: explicit, or AKS-like from the pools
    nodes: list[Node] = []
    raw_nodes = top.get("nodes", _list, None)
    if raw_nodes is not None:
        for i, raw in enumerate(raw_nodes):
            n = _Section(raw, f"nodes[{i}]")
            nodes.append(
                Node(
                    name=n.get("name", _str),
                    ip=n.get("ip", _ip),
                    pool=n.get("pool", _str, pools[0].name),
                    zone=n.get("zone", _str, "0"),
                )
            )
            n.done()
    else:
        hosts = node_subnet.hosts()
        for _ in range(3):  # Azure reserves the first addresses of a subnet: nodes start at .4
            next(hosts)
        for pool in pools:
            for j in range(pool.count):
                zone = f"{region}-{pool.zones[j % len(pool.zones)]}" if pool.zones else "0"
                try:
                    ip = str(next(hosts))
                except StopIteration:
                    raise ScenarioError("cluster.node_subnet", "too small for the nodes of the agent pools") from None
                nodes.append(Node(f"aks-{pool.name}-{digits}-vmss{_base36(j, 6)}", ip, pool.name, zone))
    seen: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for key in (node.name, node.ip):
            if key in seen:
                raise ScenarioError(f"nodes[{i}]", f"duplicate node name or IP {key!r}")
            seen[key] = i

    addresses = _Addresses()
    public_ips: list[PublicIP] = []
    prefixes: list[PublicIPPrefix] = []

    def new_ip(rg: str, ip_name: str) -> PublicIP:
        pip = PublicIP(
            _arm_id(sub, rg, "Microsoft.Network", "publicIPAddresses", ip_name), ip_name, rg, str(addresses.take())
        )
        public_ips.append(pip)
        return pip

    # -- load balancers
    lbs: list[LoadBalancer] = []
    synthetic = 0
    for i, raw in enumerate(top.get("load_balancers", _list, [])):
        path = f"load_balancers[{i}]"
        s = _Section(raw, path)
        count = s.get("count", _int(1, 100_000), 1)
        names = _expand(count, s.get("name", _name, "kubernetes"), s.sub("name"))
        rg = s.get("resource_group", _name, node_rg)
        frontends = s.get("frontend_ips", _int(1, 100), 1)
        ports = s.get("allocated_outbound_ports", _int(0, 64000), 0)
        if ports % 8:
            raise ScenarioError(s.sub("allocated_outbound_ports"), f"must be a multiple of 8, got {ports}")
        idle = s.get("idle_timeout_minutes", _int(4, 120), 30)
        backends_raw = s.raw("backends")
        usage_override = _usage_lb(s.raw("usage"), s.sub("usage"), lb_usage)
        s.done()
        for lb_name in names:
            if backends_raw is None or backends_raw == "nodes":
                backends = tuple(n.ip for n in nodes)
            elif isinstance(backends_raw, int) and not isinstance(backends_raw, bool) and backends_raw >= 0:
                first = _SYNTHETIC_BACKENDS.network_address + 4 + synthetic
                backends = tuple(str(first + k) for k in range(backends_raw))
                synthetic += backends_raw + 4
            else:
                raise ScenarioError(
                    s.sub("backends"), f"expected `nodes` or a number of backends, got {backends_raw!r}"
                )
            fes = tuple(new_ip(rg, stable_guid("lb-ip", sub, rg, lb_name, k)) for k in range(frontends))
            lbs.append(
                LoadBalancer(
                    id=_arm_id(sub, rg, "Microsoft.Network", "loadBalancers", lb_name),
                    name=lb_name,
                    resource_group=rg,
                    frontend_ips=fes,
                    allocated_outbound_ports=ports,
                    idle_timeout_minutes=idle,
                    backends=backends,
                    usage=usage_override,
                )
            )
    for lb in lbs:
        if lb.frontend_ips and lb.ports_per_backend * len(lb.backends) > PORTS_PER_LB_FRONTEND * len(lb.frontend_ips):
            raise ScenarioError(
                "load_balancers",
                f"{lb.name}: {len(lb.backends)} backends x {lb.ports_per_backend} ports exceed "
                f"{len(lb.frontend_ips)} frontend IP(s) x {PORTS_PER_LB_FRONTEND}; Azure would refuse this",
            )

    # -- NAT gateways
    nats: list[NatGateway] = []
    nat_default_rg = c_rg if outbound == "userAssignedNATGateway" else node_rg
    for i, raw in enumerate(top.get("nat_gateways", _list, [])):
        s = _Section(raw, f"nat_gateways[{i}]")
        count = s.get("count", _int(1, 100_000), 1)
        names = _expand(count, s.get("name", _name, "aks-nat-gateway" if i == 0 else _MISSING), s.sub("name"))
        rg = s.get("resource_group", _name, nat_default_rg)
        n_ips = s.get("public_ips", _int(0, 16), 1)
        prefix_lengths = [
            _int(28, 31)(p) for p in s.get("public_ip_prefixes", lambda v: [_int()(x) for x in _list(v)], [])
        ]
        idle = s.get("idle_timeout_minutes", _int(4, 120), 4)
        nat_usage_override = _usage_nat(s.raw("usage"), s.sub("usage"), nat_usage)
        s.done()
        if n_ips + sum(2 ** (32 - n) for n in prefix_lengths) > 16:
            raise ScenarioError(s.sub("public_ips"), "a NAT gateway takes at most 16 public IP addresses")
        for nat_name in names:
            ips = tuple(
                new_ip(rg, f"{nat_name}-ip-{k}" if count > 1 else stable_guid("nat-ip", sub, rg, nat_name, k))
                for k in range(n_ips)
            )
            pfx = []
            for k, length in enumerate(prefix_lengths):
                size = 2 ** (32 - length)
                start = addresses.take(size, align=size)
                pname = f"{nat_name}-prefix-{k}"
                pfx.append(
                    PublicIPPrefix(
                        _arm_id(sub, rg, "Microsoft.Network", "publicIPPrefixes", pname),
                        pname,
                        rg,
                        f"{start}/{length}",
                        length,
                    )
                )
            prefixes.extend(pfx)
            attached = (subnet_id,) if outbound in NAT_OUTBOUND and not nats else ()
            nats.append(
                NatGateway(
                    id=_arm_id(sub, rg, "Microsoft.Network", "natGateways", nat_name),
                    name=nat_name,
                    resource_group=rg,
                    public_ips=ips,
                    public_ip_prefixes=tuple(pfx),
                    idle_timeout_minutes=idle,
                    subnets=attached,
                    usage=nat_usage_override,
                )
            )
    if outbound in NAT_OUTBOUND and not nats:
        raise ScenarioError("nat_gateways", f"outbound_type {outbound} needs at least one NAT gateway")
    if outbound == "loadBalancer" and not any(lb.name == "kubernetes" for lb in lbs):
        raise ScenarioError("load_balancers", "outbound_type loadBalancer needs a load balancer named `kubernetes`")
    names_seen: set[str] = set()
    resources: list[LoadBalancer | NatGateway] = [*lbs, *nats]
    for res in resources:
        if res.name.lower() in names_seen:
            raise ScenarioError(
                "load_balancers" if res.kind == "loadBalancers" else "nat_gateways",
                f"duplicate resource name {res.name!r}",
            )
        names_seen.add(res.name.lower())

    # -- events
    events: list[Event] = []
    for i, raw in enumerate(top.get("events", _list, [])):
        s = _Section(raw, f"events[{i}]")
        kind = s.get("kind", _choice("climb"))
        node_ref = s.raw("node")
        nat_ref = s.raw("nat_gateway")
        if (node_ref is None) == (nat_ref is None):
            raise ScenarioError(s.path, "give exactly one of `node` (index, name or IP) or `nat_gateway` (name)")
        if node_ref is not None:
            target = _resolve_node(node_ref, nodes, lbs, s.sub("node"))
            to_level = s.get("to", _float(0, 10))
            from_level = s.get("from", _float(0, 10), None)
        else:
            matching = [n.name for n in nats if n.name.lower() == _str(nat_ref).lower()]
            if not matching:
                raise ScenarioError(s.sub("nat_gateway"), f"no NAT gateway named {nat_ref!r}")
            target = matching[0]
            to_level = s.get("to", _float(0))
            from_level = s.get("from", _float(0), None)
        start = s.get("start_minute", _float())
        end = s.get("end_minute", _float())
        until = s.get("until_minute", _float(), None)
        failed = s.get("failed_per_minute", _float(0), 0.0)
        s.done()
        if end < start:
            raise ScenarioError(s.sub("end_minute"), f"must not be before start_minute ({start})")
        if until is not None and until < end:
            raise ScenarioError(s.sub("until_minute"), f"must not be before end_minute ({end})")
        events.append(Event(kind, target, start, end, to_level, from_level, until, failed))

    faults: list[Fault] = []
    for i, raw in enumerate(top.get("faults", _list, [])):
        try:
            faults.append(fault_from_mapping(raw))
        except ScenarioError as err:
            raise ScenarioError(f"faults[{i}].{err.path}" if err.path else f"faults[{i}]", err.message) from None
        except (ValueError, TypeError) as err:
            raise ScenarioError(f"faults[{i}]", str(err)) from None
    top.done()

    subnets: dict[str, str | None] = {subnet_id: None}
    for nat in nats:
        for sid in nat.subnets:
            subnets[sid] = nat.id
    return Scenario(
        name=name,
        description=description,
        subscription_id=sub,
        tenant_id=tenant,
        region=region,
        lag_minutes=lag,
        revise_minutes=revise,
        revise_fraction=revise_fraction,
        ratelimit_reads=reads,
        ratelimit_refill_per_second=refill,
        batch_series_limit=batch_limit,
        cluster=cluster,
        nodes=tuple(nodes),
        load_balancers=tuple(lbs),
        nat_gateways=tuple(nats),
        public_ips=tuple(public_ips),
        public_ip_prefixes=tuple(prefixes),
        subnets=subnets,
        events=tuple(events),
        faults=tuple(faults),
    )


def _resolve_node(ref: Any, nodes: list[Node], lbs: list[LoadBalancer], path: str) -> str:
    if isinstance(ref, int) and not isinstance(ref, bool):
        if not 0 <= ref < len(nodes):
            raise ScenarioError(path, f"node index {ref} out of range (0..{len(nodes) - 1})")
        return nodes[ref].ip
    text = str(ref)
    for node in nodes:
        if text in (node.name, node.ip):
            return node.ip
    if any(text in lb.backends for lb in lbs):
        return text
    raise ScenarioError(path, f"no node or backend {text!r}")


def builtin_scenarios() -> list[str]:
    folder = importlib_resources.files("snat_exporter.simulator") / "scenarios"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_scenario(source: str | Path | Mapping[str, Any]) -> Scenario:
    """A built-in scenario by name (``steady``, ``exhaustion``, ``natgw``), a YAML file path, or a parsed mapping."""
    if isinstance(source, Mapping):
        return parse_scenario(source)
    text_source = str(source)
    if isinstance(source, str) and re.fullmatch(r"[a-z0-9-]+", source):
        folder = importlib_resources.files("snat_exporter.simulator") / "scenarios"
        candidate = folder / f"{source}.yaml"
        if candidate.is_file():
            return _parse_text(candidate.read_text(encoding="utf-8"), source, f"built-in scenario {source}")
        if not Path(source).exists():
            raise ScenarioError("", f"no built-in scenario {source!r} (built-ins: {', '.join(builtin_scenarios())})")
    path = Path(text_source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ScenarioError("", f"cannot read scenario file {path}: {err.strerror or err}") from None
    return _parse_text(text, path.stem, str(path))


def _parse_text(text: str, name: str, origin: str) -> Scenario:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ScenarioError("", f"{origin}: not valid YAML: {err}") from None
    return parse_scenario(data, name)


def iter_resources(scenario: Scenario) -> Iterator[LoadBalancer | NatGateway]:
    yield from scenario.load_balancers
    yield from scenario.nat_gateways
