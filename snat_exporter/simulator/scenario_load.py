"""Loading a scenario: a built-in name, a YAML file or a mapping -> a Scenario, every derived value (node names,
IPs, resource IDs) deterministic. The file's sections are declared in ``scenario_input``; here each is turned into
the model, one function per part of the estate."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

import yaml

from snat_exporter.simulator.faults import Fault
from snat_exporter.simulator.scenario import (
    NAT_OUTBOUND,
    AgentPool,
    Cluster,
    Event,
    LoadBalancer,
    LoadBalancerUsage,
    NatGateway,
    NatGatewayUsage,
    Node,
    PublicIP,
    PublicIPPrefix,
    Scenario,
    ScenarioError,
    stable_fraction,
    stable_guid,
)
from snat_exporter.simulator.scenario import (
    PORTS_PER_LB_FRONTEND as LB_PORTS,
)
from snat_exporter.simulator.scenario_input import (
    AgentPoolInput,
    ClusterInput,
    EventInput,
    LoadBalancerInput,
    NatGatewayInput,
    NodeInput,
    RateLimitInput,
    TopInput,
    UsageInput,
    read,
    where,
)

# The largest level a node's event may reach: a used/allocated ratio, 10x over-subscribed at most.
MAX_NODE_LEVEL = 10.0

# Public addresses come from 198.18.0.0/15 (RFC 2544, benchmarking): never routable, and large enough for
# thousands of simulated frontends.
_PUBLIC_POOL = ipaddress.IPv4Network("198.18.0.0/15")
# Backends of load balancers that are not the cluster's (`backends: N`) get addresses here, apart from nodes.
_SYNTHETIC_BACKENDS = ipaddress.IPv4Network("10.128.0.0/9")


def _arm_id(sub: str, rg: str, provider: str, kind: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{provider}/{kind}/{name}"


def _base36(number: int, width: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out.rjust(width, "0")


def _expand(count: int, name: str, path: str) -> list[str]:
    if count == 1:
        return [name.replace("{i}", "0")]
    if "{i}" not in name:
        raise ScenarioError(path, "with count > 1 the name needs {i} (replaced by 0, 1, ...)")
    return [name.replace("{i}", str(i)) for i in range(count)]


@dataclass
class _Estate:
    """What the parts of a scenario share while it is built: the subscription, and the public addresses handed
    out in order (so a scenario's addresses are stable)."""

    sub: str
    next_address: int = 1
    public_ips: list[PublicIP] = field(default_factory=list)
    prefixes: list[PublicIPPrefix] = field(default_factory=list)

    def take(self, count: int = 1, align: int = 1) -> ipaddress.IPv4Address:
        self.next_address = -(-self.next_address // align) * align
        start = self.next_address
        self.next_address += count
        if self.next_address >= _PUBLIC_POOL.num_addresses:
            raise ScenarioError("", "too many public IP addresses for the simulator's address pool")
        return _PUBLIC_POOL.network_address + start

    def new_ip(self, rg: str, ip_name: str) -> PublicIP:
        pip = PublicIP(
            _arm_id(self.sub, rg, "Microsoft.Network", "publicIPAddresses", ip_name), ip_name, rg, str(self.take())
        )
        self.public_ips.append(pip)
        return pip


def _usage(cls: type[Any], base: Any, override: Mapping[str, Any] | None, path: str) -> Any:
    """A usage section over ``base``: the keys given replace base's."""
    return read(cls, {**dataclasses.asdict(base), **(override or {})}, path)


# ----------------------------------------------------------------------------------------------- the parts


def _cluster(top: TopInput) -> tuple[Cluster, ClusterInput, str]:
    """(the cluster, its section, the ID of the node subnet)."""
    c = read(ClusterInput, top.cluster, "cluster")
    sub, region = top.subscription_id, top.region
    node_rg = c.node_resource_group or f"MC_{c.resource_group}_{c.name}_{region}"
    byo = c.byo_vnet if c.byo_vnet is not None else c.outbound_type == "userAssignedNATGateway"
    pools = []
    for i, raw in enumerate(c.agent_pools):
        p = read(AgentPoolInput, raw, f"cluster.agent_pools[{i}]")
        mode = p.mode or ("System" if i == 0 else "User")
        pools.append(AgentPool(p.name, p.count, p.vm_size, p.zones, p.max_surge, mode))
    if not pools:
        raise ScenarioError("cluster.agent_pools", "needs at least one pool")
    digits = _vmss_digits(sub, c)
    if byo:
        vnet_rg, vnet, subnet = c.resource_group, f"vnet-{c.name}", "nodes"
    else:
        vnet_rg, vnet, subnet = node_rg, f"aks-vnet-{digits}", "aks-subnet"
    subnet_id = _arm_id(sub, vnet_rg, "Microsoft.Network", "virtualNetworks", vnet) + f"/subnets/{subnet}"
    # AKS itself returns the cluster ID with a lower-case "resourcegroups"; consumers must not rely on casing.
    cluster_id = (
        f"/subscriptions/{sub}/resourcegroups/{c.resource_group}/providers/Microsoft.ContainerService/"
        f"managedClusters/{c.name}"
    )
    cluster = Cluster(
        resource_group=c.resource_group,
        name=c.name,
        node_resource_group=node_rg,
        outbound_type=c.outbound_type,
        kubernetes_version=c.kubernetes_version,
        network_plugin=c.network_plugin,
        agent_pools=tuple(pools),
        vnet_subnet_id=subnet_id,
        byo_vnet=byo,
        id=cluster_id,
    )
    return cluster, c, subnet_id


def _vmss_digits(sub: str, c: ClusterInput) -> str:
    return f"{int(stable_fraction('vmss', sub, c.resource_group, c.name) * 1e8):08d}"


def _nodes(top: TopInput, cluster: Cluster, c: ClusterInput) -> list[Node]:
    """Explicit nodes, or AKS-like ones from the pools; no name or IP twice."""
    nodes: list[Node] = []
    pools = cluster.agent_pools
    if top.nodes is not None:
        for i, raw in enumerate(top.nodes):
            n = read(NodeInput, raw, f"nodes[{i}]")
            nodes.append(Node(n.name, n.ip, n.pool or pools[0].name, n.zone))
    else:
        hosts = c.node_subnet.hosts()
        for _ in range(3):  # Azure reserves the first addresses of a subnet: nodes start at .4
            next(hosts)
        digits = _vmss_digits(top.subscription_id, c)
        for pool in pools:
            for j in range(pool.count):
                zone = f"{top.region}-{pool.zones[j % len(pool.zones)]}" if pool.zones else "0"
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
    return nodes


def _load_balancers(
    top: TopInput, cluster: Cluster, nodes: list[Node], usage: LoadBalancerUsage, estate: _Estate
) -> list[LoadBalancer]:
    lbs: list[LoadBalancer] = []
    synthetic = 0
    for i, raw in enumerate(top.load_balancers):
        path = f"load_balancers[{i}]"
        s = read(LoadBalancerInput, raw, path)
        lb_usage = _usage(LoadBalancerUsage, usage, s.usage, where(path, "usage"))
        rg = s.resource_group or cluster.node_resource_group
        for lb_name in _expand(s.count, s.name, where(path, "name")):
            if s.backends is None or s.backends == "nodes":
                backends = tuple(n.ip for n in nodes)
            elif isinstance(s.backends, int) and not isinstance(s.backends, bool) and s.backends >= 0:
                first = _SYNTHETIC_BACKENDS.network_address + 4 + synthetic
                backends = tuple(str(first + k) for k in range(s.backends))
                synthetic += s.backends + 4
            else:
                raise ScenarioError(
                    where(path, "backends"), f"expected `nodes` or a number of backends, got {s.backends!r}"
                )
            sub = estate.sub
            fes = tuple(estate.new_ip(rg, stable_guid("lb-ip", sub, rg, lb_name, k)) for k in range(s.frontend_ips))
            lbs.append(
                LoadBalancer(
                    id=_arm_id(sub, rg, "Microsoft.Network", "loadBalancers", lb_name),
                    name=lb_name,
                    resource_group=rg,
                    frontend_ips=fes,
                    allocated_outbound_ports=s.allocated_outbound_ports,
                    idle_timeout_minutes=s.idle_timeout_minutes,
                    backends=backends,
                    usage=lb_usage,
                )
            )
    for lb in lbs:
        if lb.frontend_ips and lb.ports_per_backend * len(lb.backends) > LB_PORTS * len(lb.frontend_ips):
            raise ScenarioError(
                "load_balancers",
                f"{lb.name}: {len(lb.backends)} backends x {lb.ports_per_backend} ports exceed "
                f"{len(lb.frontend_ips)} frontend IP(s) x {LB_PORTS}; Azure would refuse this",
            )
    return lbs


def _nat_gateways(
    top: TopInput, cluster: Cluster, subnet_id: str, usage: NatGatewayUsage, estate: _Estate
) -> list[NatGateway]:
    nats: list[NatGateway] = []
    outbound = cluster.outbound_type
    default_rg = cluster.resource_group if outbound == "userAssignedNATGateway" else cluster.node_resource_group
    for i, raw in enumerate(top.nat_gateways):
        path = f"nat_gateways[{i}]"
        s = read(NatGatewayInput, raw, path)
        if s.name is None and i > 0:
            raise ScenarioError(where(path, "name"), "required")
        nat_usage = _usage(NatGatewayUsage, usage, s.usage, where(path, "usage"))
        rg = s.resource_group or default_rg
        for nat_name in _expand(s.count, s.name or "aks-nat-gateway", where(path, "name")):
            ips = tuple(
                estate.new_ip(
                    rg, f"{nat_name}-ip-{k}" if s.count > 1 else stable_guid("nat-ip", estate.sub, rg, nat_name, k)
                )
                for k in range(s.public_ips)
            )
            pfx = []
            for k, length in enumerate(s.public_ip_prefixes):
                size = 2 ** (32 - length)
                start = estate.take(size, align=size)
                pname = f"{nat_name}-prefix-{k}"
                pid = _arm_id(estate.sub, rg, "Microsoft.Network", "publicIPPrefixes", pname)
                pfx.append(PublicIPPrefix(pid, pname, rg, f"{start}/{length}", length))
            estate.prefixes.extend(pfx)
            attached = (subnet_id,) if outbound in NAT_OUTBOUND and not nats else ()
            nats.append(
                NatGateway(
                    id=_arm_id(estate.sub, rg, "Microsoft.Network", "natGateways", nat_name),
                    name=nat_name,
                    resource_group=rg,
                    public_ips=ips,
                    public_ip_prefixes=tuple(pfx),
                    idle_timeout_minutes=s.idle_timeout_minutes,
                    subnets=attached,
                    usage=nat_usage,
                )
            )
    return nats


def _check_outbound(cluster: Cluster, lbs: list[LoadBalancer], nats: list[NatGateway]) -> None:
    outbound = cluster.outbound_type
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


def _events(top: TopInput, nodes: list[Node], lbs: list[LoadBalancer], nats: list[NatGateway]) -> list[Event]:
    events: list[Event] = []
    for i, raw in enumerate(top.events):
        path = f"events[{i}]"
        if isinstance(raw, Mapping) and "from" in raw:  # `from` is a Python keyword: the field is from_level
            raw = {("from_level" if k == "from" else k): v for k, v in raw.items()}
        try:
            s = read(EventInput, raw, path)
        except ScenarioError as err:
            raise ScenarioError(err.path.replace(".from_level", ".from"), err.message) from None
        if (s.node is None) == (s.nat_gateway is None):
            raise ScenarioError(path, "give exactly one of `node` (index, name or IP) or `nat_gateway` (name)")
        if s.node is not None:
            target = _resolve_node(s.node, nodes, lbs, where(path, "node"))
            for key, level in (("to", s.to), ("from", s.from_level)):
                if level is not None and level > MAX_NODE_LEVEL:
                    raise ScenarioError(where(path, key), f"must be at most {MAX_NODE_LEVEL}, got {level}")
        else:
            matching = [n.name for n in nats if n.name.lower() == str(s.nat_gateway).lower()]
            if not matching:
                raise ScenarioError(where(path, "nat_gateway"), f"no NAT gateway named {s.nat_gateway!r}")
            target = matching[0]
        when = (s.start_minute, s.end_minute)
        events.append(Event(s.kind, target, *when, s.to, s.from_level, s.until_minute, s.failed_per_minute))
    return events


def _resolve_node(ref: Any, nodes: list[Node], lbs: list[LoadBalancer], path: str) -> str:
    if isinstance(ref, int) and not isinstance(ref, bool):
        if not 0 <= ref < len(nodes):
            raise ScenarioError(path, f"node index {ref} out of range (0..{len(nodes) - 1})")
        return nodes[ref].ip
    ref_text = str(ref)
    for node in nodes:
        if ref_text in (node.name, node.ip):
            return node.ip
    if any(ref_text in lb.backends for lb in lbs):
        return ref_text
    raise ScenarioError(path, f"no node or backend {ref_text!r}")


def _faults(top: TopInput) -> list[Fault]:
    faults: list[Fault] = []
    for i, raw in enumerate(top.faults):
        if isinstance(raw, Mapping) and "hits" in raw:  # a counter of the running fault, not a setting
            raise ScenarioError(f"faults[{i}].hits", "unknown key")
        faults.append(read(Fault, raw, f"faults[{i}]"))
    return faults


# ------------------------------------------------------------------------------------------------ the whole


def parse_scenario(data: Any, name: str = "custom") -> Scenario:
    """Build a Scenario from parsed YAML (a mapping); raises ScenarioError naming the bad field."""
    top = read(TopInput, data, "")
    sub = top.subscription_id
    rl = read(RateLimitInput, top.ratelimit, "ratelimit")
    usage = read(UsageInput, top.usage, "usage")
    lb_usage = _usage(LoadBalancerUsage, LoadBalancerUsage(), usage.load_balancer, "usage.load_balancer")
    nat_usage = _usage(NatGatewayUsage, NatGatewayUsage(), usage.nat_gateway, "usage.nat_gateway")
    cluster, c, subnet_id = _cluster(top)
    nodes = _nodes(top, cluster, c)
    estate = _Estate(sub)
    lbs = _load_balancers(top, cluster, nodes, lb_usage, estate)
    nats = _nat_gateways(top, cluster, subnet_id, nat_usage, estate)
    _check_outbound(cluster, lbs, nats)
    events = _events(top, nodes, lbs, nats)
    faults = _faults(top)
    subnets: dict[str, str | None] = {subnet_id: None}
    for nat in nats:
        for sid in nat.subnets:
            subnets[sid] = nat.id
    return Scenario(
        name=name,
        description=top.description,
        subscription_id=sub,
        tenant_id=top.tenant_id or stable_guid("tenant", sub),
        region=top.region,
        lag_minutes=top.lag_minutes,
        revise_minutes=top.revise_minutes,
        revise_fraction=top.revise_fraction,
        ratelimit_reads=rl.reads,
        ratelimit_refill_per_second=rl.refill_per_second,
        batch_series_limit=top.batch_series_limit,
        cluster=cluster,
        nodes=tuple(nodes),
        load_balancers=tuple(lbs),
        nat_gateways=tuple(nats),
        public_ips=tuple(estate.public_ips),
        public_ip_prefixes=tuple(estate.prefixes),
        subnets=subnets,
        events=tuple(events),
        faults=tuple(faults),
    )


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
        content = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ScenarioError("", f"cannot read scenario file {path}: {err.strerror or err}") from None
    return _parse_text(content, path.stem, str(path))


def _parse_text(content: str, name: str, origin: str) -> Scenario:
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError as err:
        raise ScenarioError("", f"{origin}: not valid YAML: {err}") from None
    return parse_scenario(data, name)
