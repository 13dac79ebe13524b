"""From observations to ranked findings, each with the concrete remedy (Microsoft's outbound checklist, done)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from snat_exporter import azure_facts as facts
from snat_exporter.diagnose import capacity
from snat_exporter.diagnose.model import (
    LOAD_BALANCER,
    NAT_GATEWAY_TYPES,
    NodeObservation,
    Observations,
)

SEVERITIES = ("critical", "warning", "info")
NEARLY_EXHAUSTED = 0.8


@dataclass
class Finding:
    severity: str
    title: str
    detail: str
    remedy: str
    node: str = ""
    resource: str = ""
    numbers: dict[str, Any] = field(default_factory=dict)

    def rank(self) -> int:
        return SEVERITIES.index(self.severity)


@dataclass
class Capacity:
    """The arithmetic section of the report."""

    outbound_type: str
    nodes: int
    surge_nodes: int
    frontend_ips: int = 0
    allocated_outbound_ports: int = 0  # the configured setting (0 = automatic)
    effective_ports_per_node: int = 0  # what each node gets now
    default_allocation: int | None = None  # the table's value for this pool size and IP count
    max_ports_per_node: int | None = None  # the most the current IPs allow every node
    max_nodes: int | None = None  # the node count at which the current setting stops fitting
    natgw_public_ips: int = 0
    natgw_total_ports: int | None = None
    peak_concurrent_flows: float | None = None


def _pods_text(node: NodeObservation) -> str:
    if not node.top_pods:
        return ""
    pods = ", ".join(f"{p.namespace}/{p.pod} ({p.flows:.0f} flows)" for p in node.top_pods[:3])
    return f" Busiest pods: {pods}."


def _destinations_text(node: NodeObservation) -> str:
    if not node.top_destinations:
        return ""
    dests = ", ".join(
        f"{d.destination}:{d.port}/{d.protocol} ({d.flows:.0f})" if d.port else f"{d.destination}/{d.protocol}"
        for d in node.top_destinations[:3]
    )
    return f" Busiest destinations: {dests}."


def lb_capacity(obs: Observations) -> Capacity:
    nodes = len(obs.nodes)
    lb = obs.load_balancers[0] if obs.load_balancers else None
    frontend_ips = lb.frontend_ips if lb else 0
    setting = lb.allocated_outbound_ports if lb else 0
    cap = Capacity(obs.outbound_type, nodes, obs.surge_nodes, frontend_ips, setting)
    if nodes and frontend_ips:
        total = nodes + obs.surge_nodes
        if total <= 1000:
            cap.default_allocation = facts.default_allocation(total, frontend_ips)
        cap.max_ports_per_node = capacity.max_ports_per_node(frontend_ips, total)
        observed = [n.allocated_ports for n in obs.nodes if n.allocated_ports]
        cap.effective_ports_per_node = int(max(observed)) if observed else (setting or cap.default_allocation or 0)
        if setting:
            cap.max_nodes = capacity.max_nodes(setting, frontend_ips)
    return cap


def natgw_capacity(obs: Observations) -> Capacity:
    ips = sum(g.public_ips for g in obs.nat_gateways)
    cap = Capacity(obs.outbound_type, len(obs.nodes), obs.surge_nodes, natgw_public_ips=ips)
    cap.natgw_total_ports = capacity.natgw_total_ports(ips) if ips else None
    peaks = [g.active_connections_peak for g in obs.nat_gateways if g.active_connections_peak is not None]
    cap.peak_concurrent_flows = sum(peaks) if peaks else None
    return cap


def analyse(obs: Observations) -> tuple[Capacity, list[Finding]]:
    if obs.outbound_type in NAT_GATEWAY_TYPES or (obs.nat_gateways and not obs.load_balancers):
        cap = natgw_capacity(obs)
        findings = _natgw_findings(obs, cap)
    elif obs.outbound_type in (LOAD_BALANCER, "") and obs.load_balancers:
        cap = lb_capacity(obs)
        findings = _lb_findings(obs, cap)
    else:
        cap = Capacity(obs.outbound_type, len(obs.nodes), obs.surge_nodes)
        findings = [
            Finding(
                "info",
                f"Outbound type {obs.outbound_type or 'unknown'}: no Azure SNAT resource to check",
                "With userDefinedRouting, outbound traffic leaves through your own appliance (e.g. Azure Firewall, "
                "2,496 ports per public IP); its SNAT limits are not visible to Azure Monitor's LB/NAT metrics.",
                "Check the appliance's own SNAT metrics; the node agent's per-destination flows still apply.",
            )
        ]
    findings += _node_agent_findings(obs)
    if not any(f.rank() <= 1 for f in findings):
        findings.append(
            Finding(
                "info",
                "No SNAT pressure found",
                f"Nothing at warning or above over the last {obs.since_seconds / 3600:g}h.",
                "None needed.",
            )
        )
    findings.sort(key=lambda f: (f.rank(), f.node, f.title))
    return cap, findings


def _lb_findings(obs: Observations, cap: Capacity) -> list[Finding]:
    out: list[Finding] = []
    peak_used = max((n.used_peak or 0.0) for n in obs.nodes) if obs.nodes else 0.0
    plan = capacity.plan_lb(peak_used or 0.0, len(obs.nodes) or 1, obs.surge_nodes)
    remedy_lb = (
        "Reuse connections first (HTTP keep-alive, connection pools, fewer short-lived connections to the same "
        f"destination). Then give each node more ports: `az aks update {plan.az_flags()}` "
        f"(room for {plan.max_nodes} nodes at {plan.ports_per_node} ports). "
        "Or move to NAT Gateway (`--outbound-type managedNATGateway`): 64,512 ports per IP, allocated on demand."
    )
    if not plan.fits:
        remedy_lb += " Even 100 outbound IPs cannot give every node that many ports: NAT Gateway is the way out."
    for node in obs.nodes:
        util = node.peak_utilisation
        numbers = {
            "allocated_ports": node.allocated_ports,
            "used_now": node.used_now,
            "used_peak": node.used_peak,
            "failed_connections": node.failed_connections,
            "peak_utilisation": util,
        }
        if node.failed_connections > 0:
            out.append(
                Finding(
                    "critical",
                    f"SNAT connections failing on node {node.node}",
                    f"{node.failed_connections:.0f} outbound connections failed for lack of SNAT ports; peak "
                    f"{node.used_peak or 0:.0f} of {node.allocated_ports or 0:.0f} ports used."
                    + _pods_text(node)
                    + _destinations_text(node),
                    remedy_lb,
                    node=node.node,
                    numbers=numbers,
                )
            )
        elif util is not None and util >= NEARLY_EXHAUSTED:
            out.append(
                Finding(
                    "warning",
                    f"SNAT ports nearly exhausted on node {node.node}",
                    f"Peak {node.used_peak or 0:.0f} of {node.allocated_ports or 0:.0f} ports ({util:.0%})."
                    + _pods_text(node)
                    + _destinations_text(node),
                    remedy_lb,
                    node=node.node,
                    numbers=numbers,
                )
            )
    total = len(obs.nodes) + obs.surge_nodes
    if cap.allocated_outbound_ports and cap.max_nodes is not None and total > cap.max_nodes:
        out.append(
            Finding(
                "critical",
                "The outbound port setting does not fit the node count",
                f"{cap.allocated_outbound_ports} ports x {total} nodes (with {obs.surge_nodes} surge) needs "
                f"{cap.allocated_outbound_ports * total:,} ports; {cap.frontend_ips} IP(s) give "
                f"{cap.frontend_ips * facts.LB_PORTS_PER_IP:,} (room for {cap.max_nodes} nodes).",
                f"`az aks update --load-balancer-managed-outbound-ip-count "
                f"{capacity.ips_needed(cap.allocated_outbound_ports, total)}`, or lower the ports per node.",
            )
        )
    if not cap.allocated_outbound_ports and cap.nodes:
        for largest, _ in facts.DEFAULT_ALLOCATION_TABLE:
            if cap.nodes <= largest < cap.nodes + obs.surge_nodes + 1 and largest < 1000:
                after = facts.default_allocation(largest + 1, max(1, cap.frontend_ips))
                out.append(
                    Finding(
                        "warning",
                        "Automatic port allocation is at a pool-size boundary",
                        f"{cap.nodes} nodes get {cap.effective_ports_per_node} ports each by the default table; "
                        f"at {largest + 1} nodes (an upgrade surge or a scale-out) every node drops to {after}.",
                        f"Pin the allocation: `az aks update {plan.az_flags()}`.",
                    )
                )
                break
    return out


def _natgw_findings(obs: Observations, cap: Capacity) -> list[Finding]:
    out: list[Finding] = []
    for gw in obs.nat_gateways:
        more_ips = min(facts.NATGW_MAX_IPS, gw.public_ips + 1)
        remedy = (
            "Reuse connections (keep-alive, pooling) in the pods named below; add public IPs to the NAT gateway "
            f"(`az aks update --nat-gateway-managed-outbound-ip-count {more_ips}`: "
            f"{capacity.natgw_total_ports(more_ips):,} ports); keep the idle timeout at 4 minutes."
        )
        numbers = {
            "public_ips": gw.public_ips,
            "total_ports": capacity.natgw_total_ports(gw.public_ips),
            "active_connections_peak": gw.active_connections_peak,
            "failed_connections": gw.failed_connections,
        }
        if gw.failed_connections > 0:
            out.append(
                Finding(
                    "critical",
                    f"SNAT connections failing on NAT gateway {gw.name}",
                    f"{gw.failed_connections:.0f} connections failed (port exhaustion or a connection limit).",
                    remedy,
                    resource=gw.name,
                    numbers=numbers,
                )
            )
        limit = min(facts.NATGW_CONNECTIONS_PER_IP_PER_DESTINATION * gw.public_ips, facts.NATGW_MAX_CONNECTIONS)
        peak = gw.active_connections_peak
        if peak is not None and peak >= NEARLY_EXHAUSTED * limit:
            out.append(
                Finding(
                    "warning",
                    f"NAT gateway {gw.name} is near its connection limits",
                    f"Peak {peak:,.0f} active connections against {limit:,} (50,000 per public IP to one "
                    f"destination, 2M per gateway).",
                    remedy,
                    resource=gw.name,
                    numbers=numbers,
                )
            )
    return out


def _node_agent_findings(obs: Observations) -> list[Finding]:
    out: list[Finding] = []
    for node in obs.nodes:
        if node.max_flows_per_destination is None or not node.allocated_ports:
            continue
        if node.failed_connections > 0:
            continue  # already reported with its pods and destinations
        ratio = node.max_flows_per_destination / node.allocated_ports
        if ratio >= NEARLY_EXHAUSTED:
            out.append(
                Finding(
                    "warning",
                    f"Node {node.node} holds {node.max_flows_per_destination:.0f} flows to one destination",
                    f"{ratio:.0%} of its {node.allocated_ports:.0f} SNAT ports for a single destination."
                    + _pods_text(node)
                    + _destinations_text(node),
                    "Pool connections to that destination (keep-alive), or spread it over more destination IPs.",
                    node=node.node,
                )
            )
    return out
