"""Observations read from a Prometheus that scrapes snat-exporter (the cluster exporter and the node agents)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from exporter.diagnose.model import (
    Destination,
    LoadBalancerObservation,
    NatGatewayObservation,
    NodeObservation,
    Observations,
    PodFlows,
)

TOP = 3


class PrometheusError(Exception):
    pass


def _range(seconds: float) -> str:
    return f"{int(seconds)}s"


class PrometheusSource:
    def __init__(self, url: str, since_seconds: float, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.since = since_seconds
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def _query(self, session: aiohttp.ClientSession, promql: str) -> list[dict[str, Any]]:
        try:
            async with session.get(f"{self.url}/api/v1/query", params={"query": promql}) as resp:
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise PrometheusError(f"cannot query {self.url}: {type(e).__name__}: {e}") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else body
            raise PrometheusError(f"{self.url} refused {promql!r}: {error}")
        result = body["data"]["result"]
        return result if isinstance(result, list) else []

    @staticmethod
    def _by(results: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float]:
        out = {}
        for r in results:
            key = tuple(r["metric"].get(label, "") for label in labels)
            out[key] = float(r["value"][1])
        return out

    async def observe(self) -> Observations:
        w = _range(self.since)
        obs = Observations(source=self.url, since_seconds=self.since)
        async with aiohttp.ClientSession(timeout=self.timeout) as s:
            info = await self._query(s, "max by (managed_cluster, outbound_type) (azure_cluster_outbound_info)")
            if info:
                obs.cluster = info[0]["metric"].get("managed_cluster", "")
                obs.outbound_type = info[0]["metric"].get("outbound_type", "")
            else:
                obs.notes.append("azure_cluster_outbound_info is absent: is the cluster exporter scraped?")
            for (name, rg), ips in self._by(
                await self._query(s, "max by (load_balancer, resource_group) (azure_lb_frontend_ips)"),
                "load_balancer",
                "resource_group",
            ).items():
                ports = self._by(
                    await self._query(
                        s,
                        f'max(azure_lb_outbound_rule_allocated_ports{{load_balancer="{name}",resource_group="{rg}"}})',
                    )
                )
                obs.load_balancers.append(
                    LoadBalancerObservation(name, rg, int(ips), int(next(iter(ports.values()), 0)))
                )
            await self._nodes(s, obs, w)
            await self._natgw(s, obs, w)
            await self._node_agent(s, obs, w)
        return obs

    async def _nodes(self, s: aiohttp.ClientSession, obs: Observations, w: str) -> None:
        by = "node, backend_ip"
        allocated = self._by(
            await self._query(s, f"max by ({by}) (azure_lb_snat_ports_allocated)"), "node", "backend_ip"
        )
        now = self._by(await self._query(s, f"max by ({by}) (azure_lb_snat_ports_used)"), "node", "backend_ip")
        peak = self._by(
            await self._query(s, f"max by ({by}) (max_over_time(azure_lb_snat_ports_used[{w}]))"), "node", "backend_ip"
        )
        failed = self._by(
            await self._query(s, f'sum by ({by}) (increase(azure_lb_snat_connections_total{{state="failed"}}[{w}]))'),
            "node",
            "backend_ip",
        )
        for key in sorted(set(allocated) | set(peak)):
            node, ip = key
            obs.nodes.append(
                NodeObservation(
                    node=node or ip,
                    backend_ip=ip,
                    allocated_ports=allocated.get(key),
                    used_now=now.get(key),
                    used_peak=peak.get(key),
                    failed_connections=round(failed.get(key, 0.0)),
                )
            )

    async def _natgw(self, s: aiohttp.ClientSession, obs: Observations, w: str) -> None:
        ips = self._by(
            await self._query(s, "max by (nat_gateway, resource_group) (azure_natgw_public_ips)"),
            "nat_gateway",
            "resource_group",
        )
        peak = self._by(
            await self._query(s, f"max_over_time(sum by (nat_gateway) (azure_natgw_active_connections)[{w}:1m])"),
            "nat_gateway",
        )
        failed = self._by(
            await self._query(
                s, f'sum by (nat_gateway) (increase(azure_natgw_snat_connections_total{{state="failed"}}[{w}]))'
            ),
            "nat_gateway",
        )
        dropped = self._by(
            await self._query(s, f"sum by (nat_gateway) (increase(azure_natgw_dropped_packets_total[{w}]))"),
            "nat_gateway",
        )
        for (name, rg), count in sorted(ips.items()):
            obs.nat_gateways.append(
                NatGatewayObservation(
                    name=name,
                    resource_group=rg,
                    public_ips=int(count),
                    active_connections_peak=peak.get((name,)),
                    failed_connections=round(failed.get((name,), 0.0)),
                    dropped_packets=round(dropped.get((name,), 0.0)),
                )
            )

    async def _node_agent(self, s: aiohttp.ClientSession, obs: Observations, w: str) -> None:
        nodes: Mapping[str, NodeObservation] = {n.node: n for n in obs.nodes}
        max_dest = self._by(
            await self._query(s, f"max by (node) (max_over_time(snat_outbound_flows_max_per_destination[{w}]))"),
            "node",
        )
        dests = await self._query(
            s,
            f"topk by (node) ({TOP}, max by (node, destination, port, protocol) "
            f"(max_over_time(snat_destination_flows[{w}])))",
        )
        pods = await self._query(
            s,
            f"topk by (node) ({TOP}, max by (node, namespace, pod, workload) "
            f"(max_over_time(snat_pod_outbound_flows[{w}])))",
        )
        if not max_dest:
            obs.notes.append("no node agent (conntrack) series: busiest pods and destinations are unknown")
        for (name,), value in max_dest.items():
            node = nodes.get(name)
            if node is None:
                node = NodeObservation(node=name)
                obs.nodes.append(node)
                nodes = {n.node: n for n in obs.nodes}
            node.max_flows_per_destination = value
        for r in sorted(dests, key=lambda r: -float(r["value"][1])):
            m = r["metric"]
            if m.get("node") in nodes:
                nodes[m["node"]].top_destinations.append(
                    Destination(
                        m.get("destination", ""), m.get("port", ""), m.get("protocol", ""), float(r["value"][1])
                    )
                )
        for r in sorted(pods, key=lambda r: -float(r["value"][1])):
            m = r["metric"]
            if m.get("node") in nodes:
                nodes[m["node"]].top_pods.append(
                    PodFlows(m.get("namespace", ""), m.get("pod", ""), m.get("workload", ""), float(r["value"][1]))
                )
