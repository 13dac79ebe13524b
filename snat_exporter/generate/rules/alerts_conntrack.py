"""The node agent's alerts: conntrack table, insert failures, destination pressure on SNAT ports and Cilium's NAT."""

from __future__ import annotations

from snat_exporter.generate.rules.model import Context, DrillDown, Group, Rule


def conntrack_alerts(k: Context) -> Group:
    t, c = k.t, k.c
    lbl = k.label
    where = f"{c}=%q, node=%q"
    return Group(
        "snat-exporter.conntrack",
        (
            Rule(
                alert="SnatConntrackTableNearlyFull",
                expr=f"node:snat_conntrack_entries_per_limit:ratio >= {t.conntrack_entries_ratio:g}",
                summary="A node's conntrack table is nearly full.",
                description=(
                    f"The conntrack table of node {lbl('node')} is {{{{ $value | humanizePercentage }}}} full. When it "
                    "is full the kernel drops the first packet of every new connection.",
                ),
            ),
            Rule(
                alert="SnatConntrackInsertFailing",
                expr="node:snat_conntrack_insert_failed:rate5m > 0",
                summary="A node's kernel is dropping new connections it cannot track or NAT.",
                description=(
                    f'Node {lbl("node")} fails {{{{ $value | printf "%.3g" }}}} conntrack inserts per second: new '
                    "connections are dropped silently (the client sees a connect timeout), typically because the "
                    "node's NAT found no free source port or the table is full.",
                ),
            ),
            Rule(
                alert="SnatDestinationPressureHigh",
                expr="node:snat_outbound_flows_max_per_destination_per_snat_ports_allocated:ratio >= "
                f"{t.destination_pressure_ratio:g}",
                summary="A node holds almost as many flows to one destination as it has SNAT ports.",
                description=(
                    f"Node {lbl('node')} holds {{{{ $value | humanizePercentage }}}} of its allocated "
                    f"{lbl('protocol')} SNAT ports in concurrent flows to a single destination",
                    DrillDown(
                        f' {{{{- with printf "topk(1, snat_destination_flows{{{where}, protocol=%q}})" '
                        f"$labels.{c} $labels.node $labels.protocol | query }}}}{{{{ with . | first }}}} "
                        "({{ .Labels.destination }}{{ with .Labels.port }}:{{ . }}{{ end }}){{ end }}{{ end }}"
                    ),
                    DrillDown(
                        f' {{{{- with printf "topk(1, snat_pod_outbound_flows{{{where}}})" $labels.{c} $labels.node '
                        "| query }}{{ with . | first }}; the busiest pod is {{ .Labels.namespace }}/{{ .Labels.pod }}"
                        "{{ end }}{{ end }}"
                    ),
                    ". Azure will start failing connections to it before it reports anything.",
                ),
            ),
            Rule(
                alert="SnatCiliumNatTuplePressureHigh",
                expr=f"{k.a('snat_cilium_nat_tuple_flows_max')} / ({k.a('snat_cilium_nat_tuple_ports')} > 0) >= "
                f"{t.cilium_nat_tuple_ratio:g}",
                summary="Cilium's BPF masquerading is running out of source ports for one destination of a node.",
                description=(
                    f"Node {lbl('node')} holds {{{{ $value | humanizePercentage }}}} of the ports Cilium can give one "
                    "egress IP and destination",
                    DrillDown(
                        f' {{{{- with printf "topk(1, snat_cilium_nat_tuple_flows{{{where}}})" $labels.{c} '
                        "$labels.node | query }}{{ with . | first }} ({{ .Labels.egress_ip }} to "
                        "{{ .Labels.destination }}:{{ .Labels.port }} {{ .Labels.protocol }}){{ end }}{{ end }}"
                    ),
                    '. At 100% Cilium drops new flows to it ("No mapping for NAT masquerade"), whatever Azure allows.',
                ),
                comment="Only on nodes where the agent reads Cilium's SNAT map (eBPF host routing); Cilium's own figure is\n"
                "cilium_nat_endpoint_max_connection.",
            ),
            Rule(
                alert="SnatNatGatewayDestinationPressureHigh",
                expr="cluster:snat_destination_flows_per_nat_gateway_destination_limit:ratio >= "
                f"{t.natgw_destination_pressure_ratio:g}",
                summary="The cluster holds almost as many flows to one destination as the NAT gateway allows.",
                description=(
                    f"The cluster's nodes hold {{{{ $value | humanizePercentage }}}} of the NAT gateway's "
                    f"per-destination limit (50,000 per public IP) in concurrent {lbl('protocol')} flows to "
                    f"{lbl('destination')}:{lbl('port')}.",
                ),
            ),
        ),
    )
