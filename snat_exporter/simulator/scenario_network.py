"""Loading a scenario, the network part: its load balancers and NAT gateways with their public IPs and
prefixes, addresses handed out in order from a benchmarking range so that every ID and IP is deterministic."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from snat_exporter.simulator.scenario import (
    NAT_OUTBOUND,
    Cluster,
    LoadBalancer,
    LoadBalancerUsage,
    NatGateway,
    NatGatewayUsage,
    Node,
    PublicIP,
    PublicIPPrefix,
    ScenarioError,
    stable_guid,
)
from snat_exporter.simulator.scenario import (
    PORTS_PER_LB_FRONTEND as LB_PORTS,
)
from snat_exporter.simulator.scenario_input import LoadBalancerInput, NatGatewayInput, TopInput, read, where

# Public addresses come from 198.18.0.0/15 (RFC 2544, benchmarking): never routable, and large enough for
# thousands of simulated frontends.
PUBLIC_POOL = ipaddress.IPv4Network("198.18.0.0/15")
# Backends of load balancers that are not the cluster's (`backends: N`) get addresses here, apart from nodes.
SYNTHETIC_BACKENDS = ipaddress.IPv4Network("10.128.0.0/9")


def arm_id(sub: str, rg: str, provider: str, kind: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{provider}/{kind}/{name}"


def _expand(count: int, name: str, path: str) -> list[str]:
    if count == 1:
        return [name.replace("{i}", "0")]
    if "{i}" not in name:
        raise ScenarioError(path, "with count > 1 the name needs {i} (replaced by 0, 1, ...)")
    return [name.replace("{i}", str(i)) for i in range(count)]


@dataclass
class Estate:
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
        if self.next_address >= PUBLIC_POOL.num_addresses:
            raise ScenarioError("", "too many public IP addresses for the simulator's address pool")
        return PUBLIC_POOL.network_address + start

    def new_ip(self, rg: str, ip_name: str) -> PublicIP:
        pip = PublicIP(
            arm_id(self.sub, rg, "Microsoft.Network", "publicIPAddresses", ip_name), ip_name, rg, str(self.take())
        )
        self.public_ips.append(pip)
        return pip


def usage_over(cls: type[Any], base: Any, override: Mapping[str, Any] | None, path: str) -> Any:
    """A usage section over ``base``: the keys given replace base's."""
    return read(cls, {**dataclasses.asdict(base), **(override or {})}, path)


def load_balancers(
    top: TopInput, cluster: Cluster, nodes: list[Node], usage: LoadBalancerUsage, estate: Estate
) -> list[LoadBalancer]:
    lbs: list[LoadBalancer] = []
    synthetic = 0
    for i, raw in enumerate(top.load_balancers):
        path = f"load_balancers[{i}]"
        s = read(LoadBalancerInput, raw, path)
        lb_usage = usage_over(LoadBalancerUsage, usage, s.usage, where(path, "usage"))
        rg = s.resource_group or cluster.node_resource_group
        for lb_name in _expand(s.count, s.name, where(path, "name")):
            if s.backends is None or s.backends == "nodes":
                backends = tuple(n.ip for n in nodes)
            elif isinstance(s.backends, int) and not isinstance(s.backends, bool) and s.backends >= 0:
                first = SYNTHETIC_BACKENDS.network_address + 4 + synthetic
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
                    id=arm_id(sub, rg, "Microsoft.Network", "loadBalancers", lb_name),
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


def nat_gateways(
    top: TopInput, cluster: Cluster, subnet_id: str, usage: NatGatewayUsage, estate: Estate
) -> list[NatGateway]:
    nats: list[NatGateway] = []
    outbound = cluster.outbound_type
    default_rg = cluster.resource_group if outbound == "userAssignedNATGateway" else cluster.node_resource_group
    for i, raw in enumerate(top.nat_gateways):
        path = f"nat_gateways[{i}]"
        s = read(NatGatewayInput, raw, path)
        if s.name is None and i > 0:
            raise ScenarioError(where(path, "name"), "required")
        nat_usage = usage_over(NatGatewayUsage, usage, s.usage, where(path, "usage"))
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
                pid = arm_id(estate.sub, rg, "Microsoft.Network", "publicIPPrefixes", pname)
                pfx.append(PublicIPPrefix(pid, pname, rg, f"{start}/{length}", length))
            estate.prefixes.extend(pfx)
            attached = (subnet_id,) if outbound in NAT_OUTBOUND and not nats else ()
            nats.append(
                NatGateway(
                    id=arm_id(estate.sub, rg, "Microsoft.Network", "natGateways", nat_name),
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


def check_outbound(cluster: Cluster, lbs: list[LoadBalancer], nats: list[NatGateway]) -> None:
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
