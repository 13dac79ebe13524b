"""The recording rules (``alerts/recording_rules.yml``): one group per source, read by the alerts and the dashboards."""

from __future__ import annotations

from snat_exporter.generate.rules.model import Context, Group, Rule


def recording_groups(k: Context) -> tuple[Group, ...]:
    c = k.c
    lb = Group(
        "snat-exporter.azure-lb.rules",
        (
            Rule(
                record="node:azure_lb_snat_ports_used:sum",
                expr=f"sum without (frontend_ip) ({k.x('azure_lb_snat_ports_used')})",
                comment="Azure reports ports per backend *per frontend IP*; a node's allocation is the sum over the frontend\n"
                "IPs of the outbound rule (MIN(table value x frontend IPs, 1024) by default). TCP and UDP stay apart:\n"
                "each protocol has its own port inventory.",
            ),
            Rule(
                record="node:azure_lb_snat_ports_allocated:sum",
                expr=f"sum without (frontend_ip) ({k.x('azure_lb_snat_ports_allocated')})",
            ),
            Rule(
                record="node:azure_lb_snat_ports_used_per_allocated:ratio",
                expr="node:azure_lb_snat_ports_used:sum / (node:azure_lb_snat_ports_allocated:sum > 0)",
                comment="A backend with nothing allocated (being removed, IsAwaitingRemoval) has no meaningful ratio: left out\n"
                "rather than reported as +Inf or NaN.",
            ),
            Rule(
                record="node:azure_lb_snat_connections:rate5m",
                expr=f"sum without (frontend_ip) (rate({k.x('azure_lb_snat_connections_total')}[5m]))",
                comment="New SNAT connections per second by state (successful / failed / pending). Any failed > 0 means the\n"
                "node ran out of ports for some destination.",
            ),
        ),
    )
    natgw = Group(
        "snat-exporter.azure-natgw.rules",
        (
            Rule(
                record="nat_gateway:azure_natgw_snat_connections:rate5m",
                expr=f"sum without (protocol) (rate({k.x('azure_natgw_snat_connections_total')}[5m]))",
                comment="Attempted / failed new SNAT connections per second, both protocols together.",
            ),
            Rule(
                record="nat_gateway:azure_natgw_active_connections:sum",
                expr=f"sum without (protocol) ({k.x('azure_natgw_active_connections')})",
            ),
            Rule(
                record="nat_gateway:azure_natgw_dropped_packets:rate5m",
                expr=f"rate({k.x('azure_natgw_dropped_packets_total')}[5m])",
            ),
            Rule(
                record="nat_gateway:azure_natgw_active_connections_per_destination_limit:ratio",
                expr="nat_gateway:azure_natgw_active_connections:sum\n"
                f"/ (50000 * ({k.x('azure_natgw_public_ips')} > 0))",
                comment="Azure's limit is 50,000 concurrent connections per public IP to ONE destination; Azure Monitor only\n"
                "gives the gateway's total. The total can only be >= the busiest destination's share, so this ratio is\n"
                "an upper bound of the per-destination utilisation: it may warn early, it never misses.",
            ),
            Rule(
                record="nat_gateway:azure_natgw_active_connections_per_gateway_limit:ratio",
                expr="nat_gateway:azure_natgw_active_connections:sum / 2000000",
                comment="The gateway-wide limit: 2 million concurrent connections.",
            ),
        ),
    )
    conntrack = Group(
        "snat-exporter.conntrack.rules",
        (
            Rule(
                record="node:snat_conntrack_entries_per_limit:ratio",
                expr=f"{k.a('snat_conntrack_entries')} / ({k.a('snat_conntrack_entries_limit')} > 0)",
            ),
            Rule(
                record="node:snat_conntrack_insert_failed:rate5m",
                expr=f"rate({k.a('snat_conntrack_insert_failed_total')}[5m])",
                comment="insert_failed and drop move together, one per dropped packet, when the kernel's NAT cannot find a free\n"
                "source port; the failure is silent to the client (a connect timeout).",
            ),
            Rule(
                record="node:snat_conntrack_drop:rate5m",
                expr=f"rate({k.a('snat_conntrack_drop_total')}[5m])",
            ),
            Rule(
                record="node:snat_outbound_flows_max_per_destination_per_snat_ports_allocated:ratio",
                expr=f"{k.a('snat_outbound_flows_max_per_destination')}\n"
                f"/ on ({c}, node, protocol) group_left ()\n"
                f'max by ({c}, node, protocol) (node:azure_lb_snat_ports_allocated:sum{{node!=""}} > 0)',
                comment="Node-side destination pressure (load balancer clusters): the most concurrent outbound flows this node\n"
                "has to one destination, over the SNAT ports Azure allocated to the node for that protocol. One SNAT\n"
                "port serves one destination IP and port (TCP) or IP (UDP) at a time, so at 1 the node cannot open\n"
                "another connection to that destination, although its other ports may be free. Conntrack sees this\n"
                "seconds after it happens; Azure reports failures minutes later.\n"
                "The allocation side is reduced to one series per (cluster, node, protocol) so that two exporters, or\n"
                "two load balancers naming the same node, cannot make the join fail. NAT gateway clusters have no\n"
                "per-node allocation: this rule yields nothing there and the cluster-level rule below applies instead.",
            ),
            Rule(
                record="cluster:snat_destination_flows:sum",
                expr=f"sum without (node, instance) ({k.a('snat_destination_flows')})",
                comment="Flows to each destination summed over the nodes (each node reports its top-K destinations, so this is\n"
                "a lower bound for destinations outside some node's top-K).",
            ),
            Rule(
                record="cluster:snat_destination_flows_per_nat_gateway_destination_limit:ratio",
                expr="cluster:snat_destination_flows:sum\n"
                f"/ on ({c}) group_left ()\n"
                f"(50000 * sum by ({c}) ({k.x('azure_natgw_public_ips')}) > 0)",
                comment="NAT gateway clusters: the cluster's flows to one destination over 50,000 x the public IPs of the\n"
                "cluster's gateways (the per-destination limit, spread over every IP).",
            ),
        ),
    )
    return (lb, natgw, conntrack)
