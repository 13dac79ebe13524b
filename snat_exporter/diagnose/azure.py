"""Observations read straight from Azure (Resource Manager + Azure Monitor), with the exporter's own client,
discovery and parser: the same code path, credentials and endpoint settings as ``serve``.

Azure knows nodes only by backend IP. Names come from the Kubernetes API when the config enables the
``kubernetes`` section (one list of nodes), else the backend IP stands in for the node.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client.registry import CollectorRegistry

from snat_exporter.azure_facts import LOAD_BALANCERS, NAT_GATEWAYS
from snat_exporter.collectors.azure.client import AzureClients, RequestMetrics
from snat_exporter.collectors.azure.config import AzureConfig
from snat_exporter.collectors.azure.discovery import CONTAINER_SERVICE_API, Discoverer, Target, field
from snat_exporter.collectors.azure.parse import Series, format_timespan, parse_response
from snat_exporter.collectors.azure.queries import protocol
from snat_exporter.config import Config
from snat_exporter.diagnose.model import (
    LoadBalancerObservation,
    NatGatewayObservation,
    NodeObservation,
    Observations,
)

DEFAULT_SURGE = 1  # AKS's historical default maxSurge when a pool sets none


def surge_nodes(cluster_body: Any) -> int:
    """Extra nodes an upgrade adds at once: the largest maxSurge among the agent pools ("1", "33%")."""
    surge = 0
    for pool in field(cluster_body, "properties", "agentPoolProfiles") or []:
        raw = str(field(pool, "upgradeSettings", "maxSurge") or "").strip()
        count = field(pool, "count")
        count = count if isinstance(count, int) else 0
        if not raw:
            value = DEFAULT_SURGE
        elif raw.endswith("%"):
            try:
                value = math.ceil(count * float(raw[:-1]) / 100)
            except ValueError:
                value = DEFAULT_SURGE
        else:
            try:
                value = int(raw)
            except ValueError:
                value = DEFAULT_SURGE
        surge = max(surge, value)
    return surge or DEFAULT_SURGE


class AzureSource:
    def __init__(self, config: Config, since_seconds: float, node_names: Mapping[str, str] | None = None):
        self.cfg: AzureConfig = config.azure
        self.since = since_seconds
        self.node_names = dict(node_names or {})
        self.clients = AzureClients(self.cfg, RequestMetrics(CollectorRegistry(auto_describe=False)))

    async def close(self) -> None:
        await self.clients.close()

    async def _metrics(
        self, target: Target, names: str, aggregation: str, flt: str | None, namespace: str
    ) -> dict[str, tuple[Series, ...]]:
        now = time.time()
        # PT1M is kept up to 24 h of history; beyond that PT5M keeps the answer small.
        interval = "PT1M" if self.since <= 86400 else "PT5M"
        response = await self.clients.monitor.metrics.list(
            target.resource.uri,
            timespan=format_timespan(now - self.since, now),
            interval=interval,
            metricnames=names,
            aggregation=aggregation,
            top=self.cfg.top if flt else None,
            filter=flt,
            metricnamespace=namespace,
            **self.clients.call_options,
        )
        return {k: r.series for k, r in parse_response(response, aggregation).items() if r.ok}

    async def observe(self) -> Observations:
        obs = Observations(source="azure", since_seconds=self.since)
        get = self.clients.get_json
        ref = self.cfg.cluster
        cluster = (ref.resource_group, ref.name) if ref.resource_group and ref.name else None
        discovery = await Discoverer(get, subscription_id=self.cfg.subscription_id, cluster=cluster).discover(
            self.cfg.resources
        )
        if discovery.cluster is not None:
            obs.cluster = discovery.cluster.name
            obs.outbound_type = discovery.cluster.outbound_type
            body = await get(
                "get_managed_cluster",
                f"/subscriptions/{discovery.cluster.subscription_id}/resourceGroups/{discovery.cluster.resource_group}"
                f"/providers/Microsoft.ContainerService/managedClusters/{discovery.cluster.name}",
                CONTAINER_SERVICE_API,
            )
            obs.surge_nodes = surge_nodes(body)
        await asyncio.gather(
            *(self._load_balancer(obs, t) for t in discovery.targets if t.resource.kind == LOAD_BALANCERS),
            *(self._nat_gateway(obs, t) for t in discovery.targets if t.resource.kind == NAT_GATEWAYS),
        )
        if not discovery.targets:
            obs.notes.append("no load balancer or NAT gateway found to read")
        if any(t.resource.kind == NAT_GATEWAYS for t in discovery.targets):
            obs.notes.append(
                "Azure has no per-node view of a NAT gateway: run with --prometheus to add the node agents' "
                "per-node, per-destination and per-pod flows"
            )
        obs.nodes.sort(key=lambda n: n.node)
        return obs

    async def _load_balancer(self, obs: Observations, target: Target) -> None:
        r = target.resource
        obs.load_balancers.append(
            LoadBalancerObservation(r.name, r.resource_group, target.frontend_ips or 1, target.outbound_ports or 0)
        )
        namespace = "Microsoft.Network/loadBalancers"
        ports, conns = await asyncio.gather(
            self._metrics(
                target,
                "AllocatedSnatPorts,UsedSnatPorts",
                "Average",
                "BackendIPAddress eq '*' and ProtocolType eq '*'",
                namespace,
            ),
            self._metrics(
                target,
                "SnatConnectionCount",
                "Total",
                "BackendIPAddress eq '*' and ConnectionState eq 'Failed'",
                namespace,
            ),
        )
        nodes: dict[str, NodeObservation] = {}

        def node(ip: str) -> NodeObservation:
            if ip not in nodes:
                nodes[ip] = NodeObservation(node=self.node_names.get(ip, ip), backend_ip=ip)
            return nodes[ip]

        for s in ports.get("allocatedsnatports", ()):
            if s.points:
                n = node(s.dims.get("backendipaddress", ""))
                n.allocated_ports = max(n.allocated_ports or 0.0, s.points[-1].value)
        for s in ports.get("usedsnatports", ()):
            if not s.points:
                continue
            n = node(s.dims.get("backendipaddress", ""))
            n.used_now = max(n.used_now or 0.0, s.points[-1].value)
            n.used_peak = max(n.used_peak or 0.0, max(p.value for p in s.points))
        for s in conns.get("snatconnectioncount", ()):
            if s.dims.get("connectionstate", "").lower() == "failed":
                node(s.dims.get("backendipaddress", "")).failed_connections += sum(p.value for p in s.points)
        obs.nodes.extend(nodes.values())

    async def _nat_gateway(self, obs: Observations, target: Target) -> None:
        namespace = "Microsoft.Network/natGateways"
        active, failures, drops = await asyncio.gather(
            self._metrics(target, "TotalConnectionCount", "Total", "Protocol eq '*'", namespace),
            self._metrics(target, "SNATConnectionCount", "Total", "ConnectionState eq 'Failed'", namespace),
            self._metrics(target, "PacketDropCount", "Total", None, namespace),
        )
        per_minute: dict[float, float] = {}
        for s in active.get("totalconnectioncount", ()):
            if protocol(s.dims.get("protocol", "")) in ("tcp", "udp", ""):
                for p in s.points:
                    per_minute[p.timestamp] = per_minute.get(p.timestamp, 0.0) + p.value
        failed = sum(p.value for s in failures.get("snatconnectioncount", ()) for p in s.points)
        dropped = sum(p.value for s in drops.get("packetdropcount", ()) for p in s.points)
        obs.nat_gateways.append(
            NatGatewayObservation(
                name=target.resource.name,
                resource_group=target.resource.resource_group,
                public_ips=target.public_ips or 0,
                active_connections_peak=max(per_minute.values()) if per_minute else None,
                failed_connections=failed,
                dropped_packets=dropped,
            )
        )
