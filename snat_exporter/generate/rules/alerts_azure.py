"""The Azure Monitor alerts: a load balancer's SNAT ports and connections, a NAT gateway's connections and health."""

from __future__ import annotations

from snat_exporter.generate.rules.model import Context, Group, Rule, pct


def load_balancer_alerts(k: Context) -> Group:
    t = k.t
    lbl = k.label
    backend = f"Node {lbl('node')} (backend {lbl('backend_ip')})"
    return Group(
        "snat-exporter.azure-lb",
        (
            Rule(
                alert="SnatPortsNearlyExhausted",
                expr=f"avg_over_time(node:azure_lb_snat_ports_used_per_allocated:ratio[5m]) >= {t.ports_used_ratio:g}",
                summary="A node is using most of its load balancer SNAT ports.",
                description=(
                    f"{backend} has used {{{{ $value | humanizePercentage }}}} of its {lbl('protocol')} SNAT ports on "
                    f"load balancer {lbl('load_balancer')} over the last 5 minutes. New outbound connections from every "
                    "pod on the node will fail once it reaches 100%.",
                ),
            ),
            Rule(
                alert="SnatPortsExhausted",
                expr=f"avg_over_time(node:azure_lb_snat_ports_used_per_allocated:ratio[5m]) >= {t.ports_exhausted_ratio:g}",
                summary="A node has no load balancer SNAT ports left.",
                description=(
                    f"{backend} has used {{{{ $value | humanizePercentage }}}} of its {lbl('protocol')} SNAT ports on "
                    f"load balancer {lbl('load_balancer')} for 5 minutes: new outbound connections from its pods are "
                    "failing or waiting for a port.",
                ),
            ),
            Rule(
                alert="SnatLoadBalancerConnectionsFailing",
                expr='node:azure_lb_snat_connections:rate5m{state="failed"} > 0',
                summary="Outbound connections through the load balancer are failing for lack of SNAT ports.",
                description=(
                    f'{backend} has {{{{ $value | printf "%.3g" }}}} failed SNAT connections per second on load '
                    f"balancer {lbl('load_balancer')} (5-minute rate). Azure only counts a failure when no SNAT port was "
                    "free: pods on this node cannot reach some destinations.",
                ),
            ),
            Rule(
                alert="SnatPortsExhaustionPredicted",
                expr="predict_linear(node:azure_lb_snat_ports_used:sum[30m], 1800) >= node:azure_lb_snat_ports_allocated:sum\n"
                f"and node:azure_lb_snat_ports_used_per_allocated:ratio >= {t.ports_prediction_floor_ratio:g}",
                summary="A node is on course to run out of load balancer SNAT ports within 30 minutes.",
                description=(
                    f"{backend} uses a growing share of its {lbl('protocol')} SNAT ports on load balancer "
                    f"{lbl('load_balancer')}; the trend of the last 30 minutes reaches its allocation within 30 minutes.",
                ),
                comment="Only once part of the ports are used: a burst from near zero projects far but means little.",
            ),
        ),
    )


def nat_gateway_alerts(k: Context) -> Group:
    t = k.t
    lbl = k.label
    for_words = k.for_words
    natgw = f"NAT gateway {lbl('nat_gateway')} (resource group {lbl('resource_group')})"
    return Group(
        "snat-exporter.azure-natgw",
        (
            Rule(
                alert="SnatNatGatewayConnectionsFailing",
                expr='nat_gateway:azure_natgw_snat_connections:rate5m{state="failed"} > 0',
                summary="Outbound connections through the NAT gateway are failing.",
                description=(
                    f'{natgw} has {{{{ $value | printf "%.3g" }}}} failed SNAT connections per second (5-minute rate): '
                    "it ran out of SNAT ports or hit a connection limit for some destination.",
                ),
            ),
            Rule(
                alert="SnatNatGatewayPacketsDropped",
                expr="nat_gateway:azure_natgw_dropped_packets:rate5m > 0",
                summary="The NAT gateway is dropping packets.",
                description=(
                    f'{natgw} has dropped {{{{ $value | printf "%.3g" }}}} packets per second for '
                    f"{for_words('SnatNatGatewayPacketsDropped')}.",
                ),
            ),
            Rule(
                alert="SnatNatGatewayDatapathAvailabilityLow",
                expr=f"avg_over_time(azure_natgw_datapath_availability_ratio{{{k.exporter}}}[15m]) < "
                f"{t.natgw_datapath_availability_ratio:g}",
                summary=f"The NAT gateway's datapath availability is below {pct(t.natgw_datapath_availability_ratio)}.",
                description=(
                    f"{natgw} reports a datapath availability of {{{{ $value | humanizePercentage }}}} over the last "
                    "15 minutes: outbound traffic of the cluster is being lost.",
                ),
                comment="Azure's own guidance: below 90% over 15 minutes; shorter windows give false positives.",
            ),
            Rule(
                alert="SnatNatGatewayConnectionsNearLimit",
                expr="avg_over_time(nat_gateway:azure_natgw_active_connections_per_gateway_limit:ratio[5m]) >= "
                f"{t.natgw_connections_ratio:g}",
                summary="The NAT gateway's active connections approach its 2 million limit.",
                description=(
                    f"{natgw} carries {{{{ $value | humanizePercentage }}}} of the 2,000,000 concurrent connections it "
                    "supports.",
                ),
            ),
            Rule(
                alert="SnatNatGatewayDestinationLimitAtRisk",
                expr="avg_over_time(nat_gateway:azure_natgw_active_connections_per_destination_limit:ratio[5m]) >= "
                f"{t.natgw_destination_connections_ratio:g}",
                summary="The NAT gateway's active connections could exceed the per-destination limit.",
                description=(
                    f"{natgw} carries {{{{ $value | humanizePercentage }}}} of 50,000 connections per public IP. Azure "
                    "allows that many to ONE destination per public IP; if most go to the same destination, new ones "
                    "will fail.",
                ),
                comment="Azure gives only the total; total >= the busiest destination's connections, so this may warn early\n"
                "but never late. The conntrack alert SnatNatGatewayDestinationPressureHigh names the destination.",
            ),
        ),
    )
