"""Finding what to watch: the AKS cluster's outbound type and its load balancer / NAT gateways, from ARM.

This mirrors the first step of Microsoft's SNAT troubleshooting checklist: read the managed cluster's
``networkProfile.outboundType``, then find the resource that does the SNAT. ``loadBalancer``: the load balancer
named ``kubernetes`` in the node resource group. ``managedNATGateway``: the NAT gateways in the node resource
group. ``userAssignedNATGateway``: the NAT gateway attached to the agent pools' subnets. ``userDefinedRouting``:
nothing Azure Monitor can show (the egress is a firewall or NVA).

The JSON helpers are pure; :class:`Discoverer` does the GETs.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from snat_exporter.azure_facts import LOAD_BALANCERS, NAT_GATEWAYS
from snat_exporter.collectors.azure.config import ResourceId
from snat_exporter.collectors.azure.parse import MalformedResponse
from snat_exporter.labels import is_label_text

log = logging.getLogger("snat_exporter.azure.discovery")

CONTAINER_SERVICE_API = "2024-10-01"
NETWORK_API = "2024-05-01"
AKS_LOAD_BALANCER = "kubernetes"
# Explicit resources of one (subscription, resource group, type) are read with one list call from this many on:
# a thousand explicit load balancers cost a page or two of ARM reads instead of a thousand GETs.
LIST_FROM = 3
NAT_OUTBOUND_TYPES = ("managedNATGateway", "managedNATGatewayV2")

GetJson = Callable[[str, str, str], Awaitable[Any]]  # (operation, path, api-version) -> body


@dataclass(frozen=True)
class ClusterInfo:
    name: str
    resource_group: str
    subscription_id: str
    node_resource_group: str
    outbound_type: str


@dataclass(frozen=True)
class Target:
    """A resource to query, with what its ARM object says about capacity (None when unknown)."""

    resource: ResourceId
    frontend_ips: int | None = None
    outbound_ports: int | None = None
    public_ips: int | None = None
    location: str | None = None  # ARM region ("westeurope"); None when the ARM object could not be read

    @property
    def region(self) -> str | None:
        """The region as the metrics data-plane host spells it (``{region}.metrics.monitor.azure.com``)."""
        return self.location.replace(" ", "").lower() if self.location else None


@dataclass(frozen=True)
class Discovery:
    cluster: ClusterInfo | None
    targets: tuple[Target, ...]
    rejected: tuple[str, ...] = ()  # what ARM named that cannot be a label value (left out), for the log


def _labelable(*texts: str) -> bool:
    return all(is_label_text(t) for t in texts)


# ----------------------------------------------------------------------------------------------- pure helpers


def _names(r: ResourceId) -> tuple[str, str, str]:
    return r.name, r.resource_group, r.subscription_id


def field(obj: Any, *path: str) -> Any:
    """``obj[a][b]...`` with keys matched case-insensitively (ARM spells publicIpAddresses both ways)."""
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        if key in obj:
            obj = obj[key]
            continue
        lowered = key.lower()
        obj = next((v for k, v in obj.items() if isinstance(k, str) and k.lower() == lowered), None)
    return obj


def _list(obj: Any) -> list[Any]:
    return obj if isinstance(obj, list) else []


def parse_cluster(body: Any, subscription_id: str, resource_group: str, name: str) -> tuple[ClusterInfo, list[str]]:
    """(cluster info, distinct agent pool subnet IDs) from a managedClusters GET."""
    if not isinstance(body, Mapping) or not isinstance(field(body, "properties"), Mapping):
        raise MalformedResponse("managed cluster: no properties")
    outbound = field(body, "properties", "networkProfile", "outboundType") or "loadBalancer"
    node_rg = field(body, "properties", "nodeResourceGroup")
    if not isinstance(node_rg, str) or not node_rg:
        raise MalformedResponse("managed cluster: no properties.nodeResourceGroup")
    subnets: list[str] = []
    for pool in _list(field(body, "properties", "agentPoolProfiles")):
        subnet = field(pool, "vnetSubnetID")
        if isinstance(subnet, str) and subnet and subnet.lower() not in (s.lower() for s in subnets):
            subnets.append(subnet)
    info = ClusterInfo(
        name=str(field(body, "name") or name),
        resource_group=resource_group,
        subscription_id=subscription_id,
        node_resource_group=node_rg,
        outbound_type=str(outbound),
    )
    return info, subnets


def lb_capacity(body: Any) -> tuple[int, int | None]:
    """(frontend IPs used for outbound SNAT, the outbound rule's allocatedOutboundPorts or None)."""
    frontends = _list(field(body, "properties", "frontendIPConfigurations"))
    rules = _list(field(body, "properties", "outboundRules"))
    used: set[str] = set()
    ports: int | None = None
    for rule in rules:
        for ref in _list(field(rule, "properties", "frontendIPConfigurations")):
            rid = field(ref, "id")
            if isinstance(rid, str):
                used.add(rid.lower())
        value = field(rule, "properties", "allocatedOutboundPorts")
        if isinstance(value, int) and not isinstance(value, bool):
            ports = value if ports is None else max(ports, value)
    return (len(used) if used else len(frontends)), ports


def nat_ip_refs(body: Any) -> tuple[int, list[str]]:
    """(public IP addresses, public IP prefix IDs) of a NAT gateway."""
    addresses = _list(field(body, "properties", "publicIpAddresses"))
    prefixes = [p for p in (field(r, "id") for r in _list(field(body, "properties", "publicIpPrefixes"))) if p]
    return len(addresses), [str(p) for p in prefixes]


def prefix_size(body: Any) -> int:
    length = field(body, "properties", "prefixLength")
    version = str(field(body, "properties", "publicIPAddressVersion") or "IPv4")
    if version.lower() == "ipv6":
        return 0  # SNAT port capacity is counted on IPv4 addresses
    if not isinstance(length, int) or isinstance(length, bool) or not 0 <= length <= 32:
        raise MalformedResponse(f"public IP prefix: bad prefixLength {length!r}")
    return 2 ** (32 - length)


def resource_path(resource: ResourceId) -> str:
    return resource.uri


# An Azure region name (westeurope, eastus2, usgovvirginia). It becomes the host of the getBatch endpoint, which
# receives a bearer token: anything else (a dot, a slash, a port) could send it to another host.
_REGION = re.compile(r"[a-z0-9]{1,40}")


def location(body: Any) -> str | None:
    """The resource's region, None when absent or not a region name (the resource is then read per resource)."""
    value = field(body, "location")
    if not isinstance(value, str):
        return None
    region = value.strip().lower().replace(" ", "")
    return region if _REGION.fullmatch(region) else None


# ---------------------------------------------------------------------------------------------------- the I/O


class Discoverer:
    def __init__(self, get_json: GetJson, *, subscription_id: str | None, cluster: tuple[str, str] | None):
        self._get = get_json
        self.subscription_id = subscription_id
        self.cluster = cluster

    async def discover(self, explicit: tuple[ResourceId, ...]) -> Discovery:
        """Everything to watch. Raises when the cluster cannot be read; an explicit resource whose ARM object
        cannot be read is still watched, without its capacity gauges."""
        info: ClusterInfo | None = None
        found: list[Target] = []
        if self.cluster is not None and self.subscription_id is not None:
            info, found = await self._from_cluster(self.subscription_id, *self.cluster)
        known = {t.resource for t in found}
        groups: dict[tuple[str, str, str], list[ResourceId]] = {}
        for r in explicit:
            if r not in known:
                known.add(r)
                groups.setdefault((r.subscription_id, r.resource_group.lower(), r.kind), []).append(r)
        described = await asyncio.gather(*(self._describe_group(members) for members in groups.values()))
        by_resource = {t.resource: t for targets in described for t in targets}
        extra: list[Target] = []
        for r in explicit:  # in the configured order, each once
            target = by_resource.pop(r, None)
            if target is not None:
                extra.append(target)
        # Names ARM returned become labels of every series: one that cannot be a label value (a lone surrogate, a
        # control character) leaves out that resource (or the cluster's info series), never the whole block.
        rejected = [t.resource.uri for t in found if not _labelable(*_names(t.resource))]
        found = [t for t in found if _labelable(*_names(t.resource))]
        if info is not None and not _labelable(
            info.name, info.resource_group, info.subscription_id, info.node_resource_group, info.outbound_type
        ):
            rejected.append(f"managed cluster {info.name!r}")
            info = None
        return Discovery(info, tuple(found) + tuple(extra), tuple(rejected))

    async def _describe_group(self, members: list[ResourceId]) -> list[Target]:
        if len(members) < LIST_FROM:
            return list(await asyncio.gather(*(self._describe_explicit(r) for r in members)))
        first = members[0]
        path = (
            f"/subscriptions/{first.subscription_id}/resourceGroups/{first.resource_group}"
            f"/providers/Microsoft.Network/{first.kind}"
        )
        operation = "list_load_balancers" if first.kind == LOAD_BALANCERS else "list_nat_gateways"
        try:
            bodies = await self._list(operation, path)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # e.g. no read right on the group, only on each resource: one GET each
            log.info(
                "cannot list the resource group; reading each explicit resource instead",
                extra={"path": path, "error": f"{type(e).__name__}: {str(e)[:200]}"},
            )
            return list(await asyncio.gather(*(self._describe_explicit(r) for r in members)))
        by_name = {str(field(b, "name") or "").lower(): b for b in bodies}
        out: list[Target] = []
        for resource in members:
            body = by_name.get(resource.name.lower())
            if body is None:
                log.warning(
                    "an explicit resource is not in its resource group; its metrics are still queried",
                    extra={"resource": resource.uri},
                )
                out.append(Target(resource))
            elif resource.kind == LOAD_BALANCERS:
                frontends, ports = lb_capacity(body)
                out.append(Target(resource, frontend_ips=frontends, outbound_ports=ports, location=location(body)))
            else:
                out.append(await self._explicit_nat(resource, body))
        return out

    async def _explicit_nat(self, resource: ResourceId, body: Any) -> Target:
        try:
            return await self._nat_target(resource, body)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning(
                "cannot read a NAT gateway's public IP prefixes; its metrics are still queried",
                extra={"resource": resource.uri, "error": f"{type(e).__name__}: {str(e)[:200]}"},
            )
            return Target(resource, location=location(body))

    async def _from_cluster(self, sub: str, rg: str, name: str) -> tuple[ClusterInfo, list[Target]]:
        path = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}"
        body = await self._get("get_managed_cluster", path, CONTAINER_SERVICE_API)
        info, subnets = parse_cluster(body, sub, rg, name)
        targets: list[Target] = []
        if info.outbound_type == "loadBalancer":
            targets = await self._cluster_load_balancers(sub, info.node_resource_group)
        elif info.outbound_type in NAT_OUTBOUND_TYPES:
            targets = await self._nat_gateways_in(sub, info.node_resource_group)
        elif info.outbound_type == "userAssignedNATGateway":
            targets = await self._nat_gateways_of_subnets(subnets)
        else:
            log.info(
                "the cluster's outbound type has no Azure SNAT resource to watch",
                extra={"cluster": info.name, "outbound_type": info.outbound_type},
            )
        if not targets and info.outbound_type in ("loadBalancer", "userAssignedNATGateway", *NAT_OUTBOUND_TYPES):
            log.warning(
                "no outbound resource found for the cluster",
                extra={"cluster": info.name, "outbound_type": info.outbound_type, "node_rg": info.node_resource_group},
            )
        return info, targets

    async def _list(self, operation: str, path: str) -> list[Any]:
        items: list[Any] = []
        next_path: str | None = path
        pages = 0
        while next_path and pages < 50:
            body = await self._get(operation, next_path, NETWORK_API)
            if not isinstance(body, Mapping) or not isinstance(body.get("value"), list):
                raise MalformedResponse(f"{operation}: no `value` list")
            items.extend(body["value"])
            link = body.get("nextLink")
            next_path = link if isinstance(link, str) and link else None
            pages += 1
        return items

    async def _cluster_load_balancers(self, sub: str, node_rg: str) -> list[Target]:
        path = f"/subscriptions/{sub}/resourceGroups/{node_rg}/providers/Microsoft.Network/loadBalancers"
        lbs = await self._list("list_load_balancers", path)
        chosen = [lb for lb in lbs if str(field(lb, "name") or "").lower() == AKS_LOAD_BALANCER]
        if not chosen:  # not the AKS naming: fall back to whatever does outbound SNAT
            chosen = [lb for lb in lbs if _list(field(lb, "properties", "outboundRules"))]
        out = []
        for lb in chosen:
            resource = ResourceId(sub, node_rg, LOAD_BALANCERS, str(field(lb, "name")))
            frontends, ports = lb_capacity(lb)
            out.append(Target(resource, frontend_ips=frontends, outbound_ports=ports, location=location(lb)))
        return out

    async def _nat_gateways_in(self, sub: str, node_rg: str) -> list[Target]:
        path = f"/subscriptions/{sub}/resourceGroups/{node_rg}/providers/Microsoft.Network/natGateways"
        gateways = await self._list("list_nat_gateways", path)
        return [
            await self._nat_target(ResourceId(sub, node_rg, NAT_GATEWAYS, str(field(g, "name"))), g) for g in gateways
        ]

    async def _nat_gateways_of_subnets(self, subnets: list[str]) -> list[Target]:
        ids: list[ResourceId] = []
        for subnet in subnets:
            body = await self._get("get_subnet", subnet, NETWORK_API)
            nat_id = field(body, "properties", "natGateway", "id")
            if isinstance(nat_id, str) and nat_id:
                resource = ResourceId.parse(nat_id)
                if resource not in ids:
                    ids.append(resource)
        out = []
        for resource in ids:
            body = await self._get("get_nat_gateway", resource.uri, NETWORK_API)
            out.append(await self._nat_target(resource, body))
        return out

    async def _nat_target(self, resource: ResourceId, body: Any) -> Target:
        addresses, prefixes = nat_ip_refs(body)
        total = addresses
        for prefix in prefixes:
            total += prefix_size(await self._get("get_public_ip_prefix", prefix, NETWORK_API))
        return Target(resource, public_ips=total, location=location(body))

    async def _describe_explicit(self, resource: ResourceId) -> Target:
        try:
            if resource.kind == LOAD_BALANCERS:
                body = await self._get("get_load_balancer", resource.uri, NETWORK_API)
                frontends, ports = lb_capacity(body)
                return Target(resource, frontend_ips=frontends, outbound_ports=ports, location=location(body))
            body = await self._get("get_nat_gateway", resource.uri, NETWORK_API)
            return await self._nat_target(resource, body)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning(
                "cannot read an explicit resource; its metrics are still queried",
                extra={"resource": resource.uri, "error": f"{type(e).__name__}: {str(e)[:200]}"},
            )
            return Target(resource)
