"""The "Network: SNAT Activity" row: Azure SNAT ports and connections, NAT gateway capacity, conntrack, top
destinations and pods, Cilium NAT, data freshness."""

from __future__ import annotations

from snat_exporter.azure_facts import every_cycle_metrics
from snat_exporter.generate.dashboards.panels import (
    GREEN,
    ORANGE,
    RED,
    PanelBuilder,
    Query,
    failed_in_red,
    graph,
    limits_dashed,
    pct,
    top_list,
)
from snat_exporter.generate.dashboards.selectors import Sel
from snat_exporter.generate.mixin import Thresholds


def fresh_metrics_regex() -> str:
    """The Azure metrics asked every cycle, as the freshness panel and SnatAzureMetricsDelayed select them."""
    return "|".join(every_cycle_metrics())


def snat_panels(s: Sel, t: Thresholds) -> list[PanelBuilder]:
    """The "Network: SNAT Activity" panels, in reading order."""
    return [
        graph(
            "SNAT port utilisation per node",
            "Load balancer SNAT ports used / allocated per node and protocol (Azure Monitor UsedSnatPorts / "
            "AllocatedSnatPorts, summed over frontend IPs; 2-10 minutes late). At 100% new outbound connections "
            f"from every pod on the node fail. Alerts: SnatPortsNearlyExhausted at {pct(t.ports_used_ratio)}, "
            f"SnatPortsExhausted at {pct(t.ports_exhausted_ratio)}.",
            [
                Query(
                    f"node:azure_lb_snat_ports_used_per_allocated:ratio{{{s.lb}}}",
                    "{{node}} {{protocol}}",
                )
            ],
            unit="percentunit",
            steps=[(None, GREEN), (t.ports_used_ratio, ORANGE), (t.ports_exhausted_ratio, RED)],
            max_val=1,
        ),
        graph(
            "Allocated vs used SNAT ports",
            "Per node and protocol: ports in use (solid) against the ports the load balancer allocated (dashed). "
            "A step down in allocated ports means the pool grew past a default-allocation boundary "
            "(50, 100, 200 ... nodes) or the outbound rule changed.",
            [
                Query(f"node:azure_lb_snat_ports_used:sum{{{s.lb}}}", "{{node}} {{protocol}} used"),
                Query(f"node:azure_lb_snat_ports_allocated:sum{{{s.lb}}}", "{{node}} {{protocol}} allocated"),
            ],
            unit="short",
            steps=[(None, GREEN), (1024, ORANGE)],
            threshold_lines=False,
            overrides=limits_dashed,
        ),
        graph(
            "SNAT connections by state",
            "New SNAT connections per second by state, per node (load balancer SnatConnectionCount) and per NAT "
            "gateway (SNATConnectionCount), 5-minute rate. Failed connections (red, right axis) mean no port was "
            "free: any value above 0 pages (SnatLoadBalancerConnectionsFailing, SnatNatGatewayConnectionsFailing).",
            [
                Query(
                    f"sum without (instance) (node:azure_lb_snat_connections:rate5m{{{s.lb}}})",
                    "{{node}} {{state}}",
                ),
                Query(
                    f"sum without (instance) (nat_gateway:azure_natgw_snat_connections:rate5m{{{s.natgw}}})",
                    "{{nat_gateway}} {{state}}",
                ),
            ],
            unit="cps",
            steps=[(None, GREEN), (0.001, RED)],
            threshold_lines=False,
            overrides=failed_in_red,
        ),
        graph(
            "NAT gateway active connections against capacity",
            "Active SNAT connections of each NAT gateway (TotalConnectionCount, both protocols) with Azure's "
            "limits: 50,000 per public IP to ONE destination (dashed; Azure only reports the total, so the total "
            "crossing it is a risk, not proof) and 2,000,000 per gateway.",
            [
                Query(f"nat_gateway:azure_natgw_active_connections:sum{{{s.natgw}}}", "{{nat_gateway}} active"),
                Query(
                    f"50000 * azure_natgw_public_ips{{{s.natgw}}}",
                    "{{nat_gateway}} per-destination limit (50,000 x public IPs)",
                ),
            ],
            unit="short",
            steps=[(None, GREEN), (1600000, ORANGE), (2000000, RED)],
            overrides=limits_dashed,
        ),
        graph(
            "NAT gateway dropped packets",
            "Packets the NAT gateway dropped per second (PacketDropCount, 5-minute rate). Sustained drops: see "
            "the SnatNatGatewayPacketsDropped runbook.",
            [Query(f"nat_gateway:azure_natgw_dropped_packets:rate5m{{{s.natgw}}}", "{{nat_gateway}}")],
            unit="pps",
            steps=[(None, GREEN), (0.001, ORANGE)],
            threshold_lines=False,
        ),
        graph(
            "Datapath availability",
            "Azure's own health of the outbound path: NAT gateway DatapathAvailability and load balancer "
            f"VipAvailability per frontend IP. Below {pct(t.natgw_datapath_availability_ratio)} for 15 minutes pages "
            "(SnatNatGatewayDatapathAvailabilityLow).",
            [
                Query(f"azure_natgw_datapath_availability_ratio{{{s.natgw}}}", "NAT gateway {{nat_gateway}}"),
                Query(
                    f'azure_lb_data_path_availability_ratio{{{s.exporter}, load_balancer=~"$load_balancer"}}',
                    "load balancer {{load_balancer}} {{frontend_ip}}",
                ),
            ],
            unit="percentunit",
            steps=[(None, RED), (t.natgw_datapath_availability_ratio, ORANGE), (0.99, GREEN)],
            min_val=None,
            max_val=1,
        ),
        graph(
            "Conntrack table utilisation per node",
            "Entries in each node's conntrack table over nf_conntrack_max (node agent). When full, the kernel "
            f"drops the first packet of new connections. Alert: SnatConntrackTableNearlyFull at {pct(t.conntrack_entries_ratio)}.",
            [Query(f"node:snat_conntrack_entries_per_limit:ratio{{{s.node}}}", "{{node}}")],
            unit="percentunit",
            steps=[(None, GREEN), (t.conntrack_entries_ratio, ORANGE), (0.9, RED)],
            max_val=1,
        ),
        graph(
            "Conntrack insert failures per node",
            "New flows the node's kernel failed to track or NAT, per second (insert_failed and drop, 5-minute "
            "rate). With SNAT this is the node running out of source ports for a destination: the client sees a "
            "connect timeout. Alert: SnatConntrackInsertFailing.",
            [
                Query(f"node:snat_conntrack_insert_failed:rate5m{{{s.node}}}", "{{node}} insert_failed"),
                Query(f"node:snat_conntrack_drop:rate5m{{{s.node}}}", "{{node}} drop"),
            ],
            unit="pps",
            steps=[(None, GREEN), (0.001, RED)],
            threshold_lines=False,
        ),
        graph(
            "Node-side destination pressure",
            "Most concurrent flows a node holds to a single destination, over the SNAT ports the load balancer "
            "allocated to it (node agent conntrack / Azure allocation). One port serves one destination at a "
            "time, so at 100% connections to that destination fail, seconds before Azure reports anything. "
            f"Load balancer clusters only. Alert: SnatDestinationPressureHigh at {pct(t.destination_pressure_ratio)}.",
            [
                Query(
                    f"node:snat_outbound_flows_max_per_destination_per_snat_ports_allocated:ratio{{{s.node}}}",
                    "{{node}} {{protocol}}",
                )
            ],
            unit="percentunit",
            steps=[(None, GREEN), (t.destination_pressure_ratio, ORANGE), (1, RED)],
        ),
        graph(
            "Outbound flows by TCP state",
            "Outbound flows that leave the node through SNAT, by protocol and TCP state (node agent). Many "
            "time_wait flows mean many short connections: a workload that does not reuse connections.",
            [
                Query(
                    f'sum by (protocol, tcp_state) (snat_outbound_flows{{{s.node}, snat="true"}})',
                    "{{protocol}} {{tcp_state}}",
                )
            ],
            unit="short",
            steps=[(None, GREEN)],
            threshold_lines=False,
        ),
        top_list(
            "Top destinations by concurrent outbound flows",
            "Destinations (IP and port) with the most concurrent outbound flows, summed over the selected nodes "
            "(each node agent reports its top-K). Compare with the per-node allocation: 1,024 ports by default.",
            Query(
                f"topk(10, sum by (destination, port, protocol) (snat_destination_flows{{{s.node}}}))",
                "{{destination}}:{{port}} {{protocol}}",
                instant=True,
            ),
            unit="short",
            steps=[(None, GREEN), (800, ORANGE), (1024, RED)],
        ),
        top_list(
            "Top pods by concurrent outbound flows",
            "Pods with the most concurrent outbound flows on the selected nodes (node agent, top-K per node): "
            "the first place to look for missing connection reuse.",
            Query(
                f"topk(10, sum by (namespace, pod) (snat_pod_outbound_flows{{{s.node}}}))",
                "{{namespace}}/{{pod}}",
                instant=True,
            ),
            unit="short",
            steps=[(None, GREEN), (800, ORANGE), (1024, RED)],
        ),
        graph(
            "Cilium NAT pressure per node (eBPF host routing)",
            "Nodes where Cilium masquerades pod egress in BPF (the node agent reads Cilium's SNAT map there: "
            'snat_exporter_conntrack_source_info{table="cilium"}). Busiest egress tuple: flows of the busiest '
            "(egress IP, destination IP, port, protocol) over the ports of Cilium's NAT range; at 100% new flows "
            'to it are dropped with "No mapping for NAT masquerade" (Cilium\'s own figure: '
            "cilium_nat_endpoint_max_connection). Map: entries of cilium_snat_v4_external over its size "
            '(cilium_bpf_map_pressure{map_name="cilium_snat_v4_external"}); when full, live mappings are evicted. '
            "The Azure allocation usually runs out first: see Node-side destination pressure.",
            [
                Query(
                    f"snat_cilium_nat_tuple_flows_max{{{s.node}}} / snat_cilium_nat_tuple_ports{{{s.node}}}",
                    "{{node}} busiest egress tuple",
                ),
                Query(
                    f"snat_cilium_nat_entries{{{s.node}}} / snat_cilium_nat_entries_limit{{{s.node}}}",
                    "{{node}} map {{family}}",
                ),
            ],
            unit="percentunit",
            steps=[(None, GREEN), (0.8, ORANGE), (1, RED)],
            max_val=1,
        ),
        top_list(
            "Top Cilium NAT tuples",
            "Flows per (egress IP, destination IP, port, protocol) in Cilium's SNAT map, on eBPF host routing "
            "nodes (node agent, top-K per node). Each tuple gets the ports of Cilium's NAT range: 32,768 with the "
            "default NodePort range.",
            Query(
                f"topk(10, sum by (egress_ip, destination, port, protocol) (snat_cilium_nat_tuple_flows{{{s.node}}}))",
                "{{egress_ip}} to {{destination}}:{{port}} {{protocol}}",
                instant=True,
            ),
            unit="short",
            steps=[(None, GREEN), (26214, ORANGE), (32768, RED)],
        ),
        graph(
            "Data freshness",
            "Age of the data behind these panels: seconds since each collector's last successful run, and the "
            "age of the newest Azure Monitor data point per resource, of the metrics asked every cycle (normally "
            "2-10 minutes; the secondary ones are asked every `secondary_interval`). Above 15 minutes "
            "the SNAT panels and alerts are behind (SnatExporterDataStale, SnatAzureMetricsDelayed).",
            [
                Query(
                    f"snat_exporter_collector_data_age_seconds{{{s.exporter}}} or "
                    f"snat_exporter_collector_data_age_seconds{{{s.agent}}}",
                    "{{instance}} {{collector}} collector",
                ),
                Query(
                    f'max by (resource_type, resource) (azure_metric_sample_age_seconds{{{s.exporter}, metric=~"{fresh_metrics_regex()}"}})',
                    "Azure {{resource_type}} {{resource}}",
                ),
            ],
            unit="s",
            steps=[(None, GREEN), (t.azure_metric_age * 2 / 3, ORANGE), (t.azure_metric_age, RED)],
            width=24,
        ),
    ]
