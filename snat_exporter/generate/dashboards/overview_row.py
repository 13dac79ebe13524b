"""The "Overview" row of Cluster Overview: the worst node, failed connections, the fullest conntrack table, firing
alerts."""

from __future__ import annotations

from snat_exporter.generate.dashboards.panels import GREEN, ORANGE, RED, PanelBuilder, Query, single_stat
from snat_exporter.generate.dashboards.selectors import Sel
from snat_exporter.generate.mixin import Thresholds


def overview_panels(s: Sel, t: Thresholds) -> list[PanelBuilder]:
    return [
        single_stat(
            "Worst node SNAT port utilisation",
            "The highest SNAT port utilisation of any node on the selected load balancers (used / allocated).",
            Query(f"max(node:azure_lb_snat_ports_used_per_allocated:ratio{{{s.lb}}})", "worst node"),
            unit="percentunit",
            steps=[(None, GREEN), (t.ports_used_ratio, ORANGE), (t.ports_exhausted_ratio, RED)],
        ),
        single_stat(
            "Failed SNAT connections",
            "Failed SNAT connections per second, all nodes and NAT gateways (5-minute rate). Anything above 0 "
            "means some pod could not connect out.",
            Query(
                f'sum(node:azure_lb_snat_connections:rate5m{{{s.lb}, state="failed"}}) or '
                f'sum(nat_gateway:azure_natgw_snat_connections:rate5m{{{s.natgw}, state="failed"}}) or vector(0)',
                "failed",
            ),
            unit="cps",
            steps=[(None, GREEN), (0.001, RED)],
        ),
        single_stat(
            "Worst conntrack table",
            "The fullest conntrack table among the selected nodes.",
            Query(f"max(node:snat_conntrack_entries_per_limit:ratio{{{s.node}}})", "worst node"),
            unit="percentunit",
            steps=[(None, GREEN), (t.conntrack_entries_ratio, ORANGE), (0.9, RED)],
        ),
        single_stat(
            "Firing SNAT alerts",
            "Alerts of snat-exporter's rule set firing now (critical and warning).",
            Query(
                f'count(ALERTS{{{s.cluster}, alertname=~"Snat.*", alertstate="firing", severity!="info"}}) or vector(0)',
                "firing",
            ),
            unit="short",
            steps=[(None, GREEN), (1, RED)],
        ),
    ]
