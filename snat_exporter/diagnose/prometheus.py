"""Observations read from a Prometheus that scrapes snat-exporter (the cluster exporter and the node agents).

One report is about one AKS cluster. A Prometheus that scrapes several (``azure_cluster_outbound_info`` names more
than one ``managed_cluster``) needs ``cluster=NAME`` (``--cluster``); its series are then told apart by the
``cluster`` target label when the scrape config adds one (as docs/dashboards.md asks for multi-cluster setups),
else by the subscription and node resource group that hold the cluster's load balancer or NAT gateway.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from snat_exporter.diagnose.model import (
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


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _regex_quote(value: str) -> str:
    """A label value as a case-insensitive RE2 literal (ARM spells resource groups in either case)."""
    return _quote("(?i)" + re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", value))


@dataclass(frozen=True)
class _Cluster:
    name: str
    outbound_type: str
    subscription_id: str
    node_resource_group: str
    label: str | None  # the `cluster` target label of its exporter, when the scrape config adds one


class PrometheusSource:
    def __init__(self, url: str, since_seconds: float, timeout: float = 30.0, cluster: str | None = None):
        self.url = url.rstrip("/")
        self.since = since_seconds
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.cluster = cluster
        self._azure_scope: tuple[str, ...] = ()  # matchers for every azure_* selector
        self._agent_scope: tuple[str, ...] = ()  # matchers for every node agent selector
        self._known_nodes_only = False  # node agents cannot be scoped: keep those on the cluster's nodes

    def _sel(self, metric: str, *matchers: str, agent: bool = False) -> str:
        """``metric{matchers}`` restricted to the chosen cluster's series."""
        scope = self._agent_scope if agent else self._azure_scope
        every = (*matchers, *scope)
        return f"{metric}{{{', '.join(every)}}}" if every else metric

    async def _query(self, session: aiohttp.ClientSession, promql: str) -> list[dict[str, Any]]:
        try:
            async with session.get(f"{self.url}/api/v1/query", params={"query": promql}) as resp:
                raw = await resp.read()
                status, reason, content_type = resp.status, resp.reason, resp.content_type
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise PrometheusError(f"cannot query {self.url}: {type(e).__name__}: {e}") from None
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        # Prometheus answers every query, failed ones too (400, 422, 503), with {"status": ...}: anything else is
        # another server (the exporter's own URL, a UI, a proxy's error page), and saying so beats a JSON error.
        if not isinstance(body, dict) or "status" not in body:
            answer = " ".join(str(part) for part in (status, reason) if part)
            raise PrometheusError(
                f"{self.url} is not the Prometheus HTTP API: GET /api/v1/query answered HTTP {answer} ({content_type})"
            )
        if body.get("status") != "success":
            error = body.get("error")
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

    async def _choose_cluster(self, s: aiohttp.ClientSession, obs: Observations) -> None:
        labels = ("managed_cluster", "outbound_type", "subscription_id", "node_resource_group", "cluster")
        info = await self._query(s, f"max by ({', '.join(labels)}) (azure_cluster_outbound_info)")
        clusters = sorted(
            {
                _Cluster(
                    m.get("managed_cluster", ""),
                    m.get("outbound_type", ""),
                    m.get("subscription_id", ""),
                    m.get("node_resource_group", ""),
                    m.get("cluster"),
                )
                for m in (r["metric"] for r in info)
            },
            key=lambda c: (c.name, c.subscription_id, c.label or ""),
        )
        names = sorted({c.name for c in clusters})
        if self.cluster is not None:
            chosen = [c for c in clusters if c.name == self.cluster]
            if not chosen:
                raise PrometheusError(
                    f"{self.url} has no cluster {self.cluster!r} (azure_cluster_outbound_info names: "
                    f"{', '.join(names) or 'none'})"
                )
        elif len(names) > 1:
            raise PrometheusError(
                f"{self.url} holds {len(names)} AKS clusters ({', '.join(names)}): choose one with --cluster NAME"
            )
        else:
            chosen = clusters
        if not chosen:
            obs.notes.append("azure_cluster_outbound_info is absent: is the cluster exporter scraped?")
            return
        cluster = chosen[0]
        obs.cluster, obs.outbound_type = cluster.name, cluster.outbound_type
        if len(names) <= 1:
            return  # every series of this Prometheus is about this cluster
        if cluster.label is not None and all(c.label != cluster.label for c in clusters if c.name != cluster.name):
            self._azure_scope = self._agent_scope = (f"cluster={_quote(cluster.label)}",)
            return
        self._azure_scope = (
            f"subscription_id={_quote(cluster.subscription_id)}",
            f"resource_group=~{_regex_quote(cluster.node_resource_group)}",
        )
        self._known_nodes_only = True
        obs.notes.append(
            "several clusters share this Prometheus without a `cluster` target label: Azure series are those of "
            f"the node resource group {cluster.node_resource_group}, and node agents count only on nodes Azure "
            "names (add a `cluster` label to the scrape config to include a NAT gateway elsewhere and every agent)"
        )

    async def observe(self) -> Observations:
        w = _range(self.since)
        obs = Observations(source=self.url, since_seconds=self.since)
        async with aiohttp.ClientSession(timeout=self.timeout) as s:
            await self._choose_cluster(s, obs)
            for (name, rg), ips in self._by(
                await self._query(s, f"max by (load_balancer, resource_group) ({self._sel('azure_lb_frontend_ips')})"),
                "load_balancer",
                "resource_group",
            ).items():
                rule = self._sel(
                    "azure_lb_outbound_rule_allocated_ports",
                    f"load_balancer={_quote(name)}",
                    f"resource_group={_quote(rg)}",
                )
                ports = self._by(await self._query(s, f"max({rule})"))
                obs.load_balancers.append(
                    LoadBalancerObservation(name, rg, int(ips), int(next(iter(ports.values()), 0)))
                )
            await self._nodes(s, obs, w)
            await self._natgw(s, obs, w)
            await self._node_agent(s, obs, w)
        return obs

    async def _nodes(self, s: aiohttp.ClientSession, obs: Observations, w: str) -> None:
        by = "node, backend_ip"
        allocated_series, used = self._sel("azure_lb_snat_ports_allocated"), self._sel("azure_lb_snat_ports_used")
        failed_series = self._sel("azure_lb_snat_connections_total", 'state="failed"')
        allocated = self._by(await self._query(s, f"max by ({by}) ({allocated_series})"), "node", "backend_ip")
        now = self._by(await self._query(s, f"max by ({by}) ({used})"), "node", "backend_ip")
        peak = self._by(await self._query(s, f"max by ({by}) (max_over_time({used}[{w}]))"), "node", "backend_ip")
        failed = self._by(
            await self._query(s, f"sum by ({by}) (increase({failed_series}[{w}]))"),
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
            await self._query(s, f"max by (nat_gateway, resource_group) ({self._sel('azure_natgw_public_ips')})"),
            "nat_gateway",
            "resource_group",
        )
        active = self._sel("azure_natgw_active_connections")
        peak = self._by(
            await self._query(s, f"max_over_time(sum by (nat_gateway) ({active})[{w}:1m])"),
            "nat_gateway",
        )
        failed_series = self._sel("azure_natgw_snat_connections_total", 'state="failed"')
        failed = self._by(
            await self._query(s, f"sum by (nat_gateway) (increase({failed_series}[{w}]))"),
            "nat_gateway",
        )
        dropped = self._by(
            await self._query(
                s, f"sum by (nat_gateway) (increase({self._sel('azure_natgw_dropped_packets_total')}[{w}]))"
            ),
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
        max_per_destination = self._sel("snat_outbound_flows_max_per_destination", agent=True)
        max_dest = self._by(
            await self._query(s, f"max by (node) (max_over_time({max_per_destination}[{w}]))"),
            "node",
        )
        dests = await self._query(
            s,
            f"topk by (node) ({TOP}, max by (node, destination, port, protocol) "
            f"(max_over_time({self._sel('snat_destination_flows', agent=True)}[{w}])))",
        )
        pods = await self._query(
            s,
            f"topk by (node) ({TOP}, max by (node, namespace, pod, workload) "
            f"(max_over_time({self._sel('snat_pod_outbound_flows', agent=True)}[{w}])))",
        )
        if not max_dest:
            obs.notes.append("no node agent (conntrack) series: busiest pods and destinations are unknown")
        for (name,), value in max_dest.items():
            node = nodes.get(name)
            if node is None and self._known_nodes_only:
                continue  # an agent of another cluster, or of a node Azure does not name
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
