"""Rendering the diagnosis: a text report for people and a JSON document (schema: report.schema.json)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from snat_exporter.diagnose.findings import Capacity, Finding
from snat_exporter.diagnose.model import NAT_GATEWAY_TYPES, Observations

SCHEMA_PATH = Path(__file__).with_name("report.schema.json")
SCHEMA_VERSION = 1

MEANING = {
    "loadBalancer": "Azure Load Balancer outbound rules: every node gets a FIXED number of SNAT ports, and one node can "
    "run out while others have plenty.",
    "managedNATGateway": "Azure NAT Gateway: a DYNAMIC pool of 64,512 ports per public IP shared by all nodes; Azure "
    "has no per-node view, so the node agent's conntrack data is the only per-node signal.",
    "userAssignedNATGateway": "Your own Azure NAT Gateway on the node subnet: a DYNAMIC pool of 64,512 ports per public "
    "IP shared by all nodes; no per-node view in Azure.",
    "userDefinedRouting": "Traffic leaves through your own route (firewall or appliance): its SNAT is not Azure LB/NAT "
    "Gateway SNAT.",
}
MEANING["managedNATGatewayV2"] = MEANING["managedNATGateway"]


def exit_code(findings: list[Finding]) -> int:
    return 1 if any(f.severity in ("critical", "warning") for f in findings) else 0


def to_json(obs: Observations, cap: Capacity, findings: list[Finding]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "source": obs.source,
        "since_seconds": obs.since_seconds,
        "cluster": obs.cluster,
        "outbound": {
            "type": obs.outbound_type,
            "meaning": MEANING.get(obs.outbound_type, ""),
            "load_balancers": [asdict(lb) for lb in obs.load_balancers],
            "nat_gateways": [asdict(gw) for gw in obs.nat_gateways],
        },
        "nodes": [
            {
                "node": n.node,
                "backend_ip": n.backend_ip,
                "allocated_ports": n.allocated_ports,
                "used_now": n.used_now,
                "used_peak": n.used_peak,
                "peak_utilisation": n.peak_utilisation,
                "failed_connections": n.failed_connections,
                "max_flows_per_destination": n.max_flows_per_destination,
                "top_destinations": [asdict(d) for d in n.top_destinations],
                "top_pods": [asdict(p) for p in n.top_pods],
            }
            for n in obs.nodes
        ],
        "capacity": asdict(cap),
        "findings": [asdict(f) for f in findings],
        "notes": list(obs.notes),
        "exit_code": exit_code(findings),
    }


def _fmt(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def to_text(obs: Observations, cap: Capacity, findings: list[Finding]) -> str:
    lines = [
        f"SNAT diagnosis of {obs.cluster or 'the cluster'} (source: {obs.source}, last {obs.since_seconds / 3600:g}h)",
        "",
    ]
    lines.append(f"1. Outbound type: {obs.outbound_type or 'unknown'}")
    if obs.outbound_type in MEANING:
        lines.append(f"   {MEANING[obs.outbound_type]}")
    for lb in obs.load_balancers:
        setting = lb.allocated_outbound_ports or "automatic (default table)"
        lines.append(f"   Load balancer {lb.name}: {lb.frontend_ips} frontend IP(s), ports per node: {setting}")
    for gw in obs.nat_gateways:
        lines.append(f"   NAT gateway {gw.name}: {gw.public_ips} public IP(s)")
    lines += ["", "2. Nodes"]
    if obs.nodes:
        lines.append(f"   {'node':<40} {'allocated':>9} {'used now':>9} {'peak':>7} {'util':>6} {'failed':>8}")
        for n in sorted(obs.nodes, key=lambda n: -(n.peak_utilisation or 0)):
            util = "-" if n.peak_utilisation is None else f"{n.peak_utilisation:.0%}"
            lines.append(
                f"   {n.node:<40} {_fmt(n.allocated_ports):>9} {_fmt(n.used_now):>9} {_fmt(n.used_peak):>7} "
                f"{util:>6} {_fmt(n.failed_connections):>8}"
            )
            for d in n.top_destinations[:3]:
                lines.append(f"      destination {d.destination}:{d.port}/{d.protocol}: {d.flows:.0f} flows")
            for p in n.top_pods[:3]:
                lines.append(f"      pod {p.namespace}/{p.pod} ({p.workload or '-'}): {p.flows:.0f} flows")
    else:
        lines.append("   no per-node data")
    lines += ["", "3. Capacity"]
    if obs.outbound_type in NAT_GATEWAY_TYPES or cap.natgw_public_ips:
        lines.append(
            f"   {cap.natgw_public_ips} public IP(s) x 64,512 = {_fmt(cap.natgw_total_ports, ',.0f')} ports; "
            f"peak concurrent connections {_fmt(cap.peak_concurrent_flows, ',.0f')}"
        )
    else:
        lines.append(
            f"   {cap.nodes} nodes (+{cap.surge_nodes} surge), {cap.frontend_ips} outbound IP(s) x 64,000 ports"
        )
        lines.append(f"   ports per node now: {cap.effective_ports_per_node}")
        if cap.default_allocation is not None:
            lines.append(f"   default table for this pool size: {cap.default_allocation} ports per node")
        if cap.max_ports_per_node is not None:
            lines.append(f"   most ports per node these IPs allow: {cap.max_ports_per_node}")
        if cap.max_nodes is not None:
            lines.append(f"   the current setting fits up to {cap.max_nodes} nodes")
    lines += ["", "4. Findings"]
    for f in findings:
        lines.append(f"   [{f.severity.upper()}] {f.title}")
        lines.append(f"      {f.detail}")
        lines.append(f"      Remedy: {f.remedy}")
    for note in obs.notes:
        lines.append(f"   note: {note}")
    return "\n".join(lines) + "\n"


def render(obs: Observations, cap: Capacity, findings: list[Finding], output: str) -> str:
    if output == "json":
        return json.dumps(to_json(obs, cap, findings), indent=2, sort_keys=True) + "\n"
    return to_text(obs, cap, findings)
