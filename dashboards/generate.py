"""Generates the Grafana dashboards in dashboards/out/ with Grafana's Foundation SDK.

    .venv/bin/python -m dashboards.generate            # rewrite dashboards/out/*.json
    .venv/bin/python -m dashboards.generate --check    # exit 1 if a committed file differs

Two dashboards share one set of panels: "Cluster Overview" (an overview row, then the "Network: SNAT Activity"
row) and a standalone "SNAT Activity" for teams that already have a Cluster Overview of their own. Queries read
the recording rules of alerts/recording_rules.yml where one exists, so panels and alerts agree.

Variables: datasource; cluster (the `cluster` label your Prometheus adds by relabelling; "All" also matches
series without the label, so a single-cluster Prometheus needs nothing); node; load balancer; NAT gateway.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import bargauge, prometheus, stat, timeseries
from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

OUT = Path(__file__).resolve().parent / "out"

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
# The Azure metrics asked every cycle, as SnatAzureMetricsDelayed selects them (tests/dashboards check the two agree).
FRESH = "AllocatedSnatPorts|UsedSnatPorts|SnatConnectionCount|SNATConnectionCount|TotalConnectionCount|PacketDropCount|DatapathAvailability"
CLUSTER = 'cluster=~"$cluster"'
NODE = f'{CLUSTER}, node=~"$node"'
LB = f'{NODE}, load_balancer=~"$load_balancer"'
NATGW = f'{CLUSTER}, nat_gateway=~"$nat_gateway"'

GREEN, YELLOW, ORANGE, RED = "green", "yellow", "orange", "red"

# Panel builders share this shape; timeseries, stat and bargauge all have these methods.
PanelBuilder = Any


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str
    instant: bool = False


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def targets(panel: PanelBuilder, queries: list[Query]) -> PanelBuilder:
    for ref, q in zip("ABCDEFGH", queries, strict=False):
        target = prometheus.Dataquery().expr(q.expr).legend_format(q.legend).ref_id(ref)
        target = target.instant() if q.instant else target.range()
        panel = panel.with_target(target)
    return panel


def graph(
    title: str,
    description: str,
    queries: list[Query],
    *,
    unit: str,
    steps: list[tuple[float | None, str]],
    width: int = 12,
    height: int = 8,
    min_val: float | None = 0,
    max_val: float | None = None,
    threshold_lines: bool = True,
    overrides: Callable[[PanelBuilder], PanelBuilder] | None = None,
) -> PanelBuilder:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .thresholds(thresholds(*steps))
        .span(width)
        .height(height)
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .span_nulls(False)
        .legend(
            common_b.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.RIGHT)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
            .sort_by("Max")
            .sort_desc(True)
        )
        .tooltip(common_b.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING))
    )
    if threshold_lines:
        panel = panel.thresholds_style(
            common_b.GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED)
        )
    if min_val is not None:
        panel = panel.min(min_val)
    if max_val is not None:
        panel = panel.max(max_val)
    if overrides is not None:
        panel = overrides(panel)
    return targets(panel, queries)


def top_list(
    title: str, description: str, query: Query, *, unit: str, steps: list[tuple[float | None, str]]
) -> PanelBuilder:
    panel = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .thresholds(thresholds(*steps))
        .span(12)
        .height(8)
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .show_unfilled(True)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    return targets(panel, [query])


def single_stat(
    title: str, description: str, query: Query, *, unit: str, steps: list[tuple[float | None, str]]
) -> PanelBuilder:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .thresholds(thresholds(*steps))
        .span(6)
        .height(4)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.AREA)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    return targets(panel, [query])


def failed_in_red(panel: PanelBuilder) -> PanelBuilder:
    """Failed connections must stand out among the far more numerous successful ones."""
    return panel.override_by_regexp(
        ".*failed.*",
        [
            model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": RED}),
            model.DynamicConfigValue(id_val="custom.lineWidth", value=3),
            model.DynamicConfigValue(id_val="custom.axisPlacement", value="right"),
        ],
    )


def limits_dashed(panel: PanelBuilder) -> PanelBuilder:
    return panel.override_by_regexp(
        ".*(allocated|limit).*",
        [
            model.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
            model.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
        ],
    )


# ---------------------------------------------------------------------------------------------------- panels
def snat_panels() -> list[PanelBuilder]:
    """The "Network: SNAT Activity" panels, in reading order."""
    return [
        graph(
            "SNAT port utilisation per node",
            "Load balancer SNAT ports used / allocated per node and protocol (Azure Monitor UsedSnatPorts / "
            "AllocatedSnatPorts, summed over frontend IPs; 2-10 minutes late). At 100% new outbound connections "
            "from every pod on the node fail. Alerts: SnatPortsNearlyExhausted at 80%, SnatPortsExhausted at 99%.",
            [
                Query(
                    f"node:azure_lb_snat_ports_used_per_allocated:ratio{{{LB}}}",
                    "{{node}} {{protocol}}",
                )
            ],
            unit="percentunit",
            steps=[(None, GREEN), (0.8, ORANGE), (0.99, RED)],
            max_val=1,
        ),
        graph(
            "Allocated vs used SNAT ports",
            "Per node and protocol: ports in use (solid) against the ports the load balancer allocated (dashed). "
            "A step down in allocated ports means the pool grew past a default-allocation boundary "
            "(50, 100, 200 ... nodes) or the outbound rule changed.",
            [
                Query(f"node:azure_lb_snat_ports_used:sum{{{LB}}}", "{{node}} {{protocol}} used"),
                Query(f"node:azure_lb_snat_ports_allocated:sum{{{LB}}}", "{{node}} {{protocol}} allocated"),
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
                    f"sum without (instance) (node:azure_lb_snat_connections:rate5m{{{LB}}})",
                    "{{node}} {{state}}",
                ),
                Query(
                    f"sum without (instance) (nat_gateway:azure_natgw_snat_connections:rate5m{{{NATGW}}})",
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
                Query(f"nat_gateway:azure_natgw_active_connections:sum{{{NATGW}}}", "{{nat_gateway}} active"),
                Query(
                    f"50000 * azure_natgw_public_ips{{{NATGW}}}",
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
            [Query(f"nat_gateway:azure_natgw_dropped_packets:rate5m{{{NATGW}}}", "{{nat_gateway}}")],
            unit="pps",
            steps=[(None, GREEN), (0.001, ORANGE)],
            threshold_lines=False,
        ),
        graph(
            "Datapath availability",
            "Azure's own health of the outbound path: NAT gateway DatapathAvailability and load balancer "
            "VipAvailability per frontend IP. Below 90% for 15 minutes pages (SnatNatGatewayDatapathAvailabilityLow).",
            [
                Query(f"azure_natgw_datapath_availability_ratio{{{NATGW}}}", "NAT gateway {{nat_gateway}}"),
                Query(
                    f'azure_lb_data_path_availability_ratio{{{CLUSTER}, load_balancer=~"$load_balancer"}}',
                    "load balancer {{load_balancer}} {{frontend_ip}}",
                ),
            ],
            unit="percentunit",
            steps=[(None, RED), (0.9, ORANGE), (0.99, GREEN)],
            min_val=None,
            max_val=1,
        ),
        graph(
            "Conntrack table utilisation per node",
            "Entries in each node's conntrack table over nf_conntrack_max (node agent). When full, the kernel "
            "drops the first packet of new connections. Alert: SnatConntrackTableNearlyFull at 75%.",
            [Query(f"node:snat_conntrack_entries_per_limit:ratio{{{NODE}}}", "{{node}}")],
            unit="percentunit",
            steps=[(None, GREEN), (0.75, ORANGE), (0.9, RED)],
            max_val=1,
        ),
        graph(
            "Conntrack insert failures per node",
            "New flows the node's kernel failed to track or NAT, per second (insert_failed and drop, 5-minute "
            "rate). With SNAT this is the node running out of source ports for a destination: the client sees a "
            "connect timeout. Alert: SnatConntrackInsertFailing.",
            [
                Query(f"node:snat_conntrack_insert_failed:rate5m{{{NODE}}}", "{{node}} insert_failed"),
                Query(f"node:snat_conntrack_drop:rate5m{{{NODE}}}", "{{node}} drop"),
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
            "Load balancer clusters only. Alert: SnatDestinationPressureHigh at 80%.",
            [
                Query(
                    f"node:snat_outbound_flows_max_per_destination_per_snat_ports_allocated:ratio{{{NODE}}}",
                    "{{node}} {{protocol}}",
                )
            ],
            unit="percentunit",
            steps=[(None, GREEN), (0.8, ORANGE), (1, RED)],
        ),
        graph(
            "Outbound flows by TCP state",
            "Outbound flows that leave the node through SNAT, by protocol and TCP state (node agent). Many "
            "time_wait flows mean many short connections: a workload that does not reuse connections.",
            [
                Query(
                    f'sum by (protocol, tcp_state) (snat_outbound_flows{{{NODE}, snat="true"}})',
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
                f"topk(10, sum by (destination, port, protocol) (snat_destination_flows{{{NODE}}}))",
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
                f"topk(10, sum by (namespace, pod) (snat_pod_outbound_flows{{{NODE}}}))",
                "{{namespace}}/{{pod}}",
                instant=True,
            ),
            unit="short",
            steps=[(None, GREEN), (800, ORANGE), (1024, RED)],
        ),
        graph(
            "Data freshness",
            "Age of the data behind these panels: seconds since each collector's last successful run, and the "
            "age of the newest Azure Monitor data point per resource, of the metrics asked every cycle (normally "
            "2-10 minutes; the secondary ones are asked every `secondary_interval`). Above 15 minutes "
            "the SNAT panels and alerts are behind (SnatExporterDataStale, SnatAzureMetricsDelayed).",
            [
                Query(
                    f"snat_exporter_collector_data_age_seconds{{{CLUSTER}}}",
                    "{{instance}} {{collector}} collector",
                ),
                Query(
                    f'max by (resource_type, resource) (azure_metric_sample_age_seconds{{{CLUSTER}, metric=~"{FRESH}"}})',
                    "Azure {{resource_type}} {{resource}}",
                ),
            ],
            unit="s",
            steps=[(None, GREEN), (600, ORANGE), (900, RED)],
            width=24,
        ),
    ]


def overview_panels() -> list[PanelBuilder]:
    return [
        single_stat(
            "Worst node SNAT port utilisation",
            "The highest SNAT port utilisation of any node on the selected load balancers (used / allocated).",
            Query(f"max(node:azure_lb_snat_ports_used_per_allocated:ratio{{{LB}}})", "worst node"),
            unit="percentunit",
            steps=[(None, GREEN), (0.8, ORANGE), (0.99, RED)],
        ),
        single_stat(
            "Failed SNAT connections",
            "Failed SNAT connections per second, all nodes and NAT gateways (5-minute rate). Anything above 0 "
            "means some pod could not connect out.",
            Query(
                f'sum(node:azure_lb_snat_connections:rate5m{{{LB}, state="failed"}}) or '
                f'sum(nat_gateway:azure_natgw_snat_connections:rate5m{{{NATGW}, state="failed"}}) or vector(0)',
                "failed",
            ),
            unit="cps",
            steps=[(None, GREEN), (0.001, RED)],
        ),
        single_stat(
            "Worst conntrack table",
            "The fullest conntrack table among the selected nodes.",
            Query(f"max(node:snat_conntrack_entries_per_limit:ratio{{{NODE}}})", "worst node"),
            unit="percentunit",
            steps=[(None, GREEN), (0.75, ORANGE), (0.9, RED)],
        ),
        single_stat(
            "Firing SNAT alerts",
            "Alerts of snat-exporter's rule set firing now (critical and warning).",
            Query(
                f'count(ALERTS{{{CLUSTER}, alertname=~"Snat.*", alertstate="firing", severity!="info"}}) or vector(0)',
                "firing",
            ),
            unit="short",
            steps=[(None, GREEN), (1, RED)],
        ),
    ]


# -------------------------------------------------------------------------------------------------- variables
def variables() -> list[Any]:
    def query_var(name: str, label: str, query: str, description: str) -> dash.QueryVariable:
        return (
            dash.QueryVariable(name)
            .label(label)
            .description(description)
            .datasource(DATASOURCE)
            .query({"query": query, "refId": f"{name}-variable"})
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
            .include_all(True)
            .all_value(".*")
            .multi(True)
            .current(model.VariableOption(selected=True, text="All", value="$__all"))
        )

    return [
        dash.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(model.VariableOption(selected=True, text="default", value="default")),
        query_var(
            "cluster",
            "Cluster",
            "label_values(snat_exporter_build_info, cluster)",
            "The `cluster` label your Prometheus adds (relabelling or federation). All also matches series without it.",
        ),
        query_var(
            "node",
            "Node",
            f'label_values({{__name__=~"azure_lb_snat_ports_allocated|snat_conntrack_entries", {CLUSTER}}}, node)',
            "Kubernetes nodes seen by the load balancer metrics or the node agents.",
        ),
        query_var(
            "load_balancer",
            "Load balancer",
            f"label_values(azure_lb_snat_ports_allocated{{{CLUSTER}}}, load_balancer)",
            "Azure load balancers whose SNAT ports are exported.",
        ),
        query_var(
            "nat_gateway",
            "NAT gateway",
            f"label_values(azure_natgw_public_ips{{{CLUSTER}}}, nat_gateway)",
            "Azure NAT gateways whose metrics are exported.",
        ),
    ]


def base(title: str, uid: str, description: str) -> dash.Dashboard:
    board = (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["snat-exporter", "snat", "azure", "kubernetes", "network"])
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .time("now-3h", "now")
        .timezone("browser")
        .refresh("1m")
        .link(
            dash.DashboardLink("Runbook")
            .type(model.DashboardLinkType.LINK)
            .url("https://github.com/snat-exporter/snat-exporter/blob/main/alerts/runbook.md")
            .target_blank(True)
            .icon("doc")
        )
    )
    for var in variables():
        board = board.with_variable(var)
    return board


def cluster_overview() -> dict[str, Any]:
    board = base(
        "Cluster Overview",
        "snat-cluster-overview",
        "Cluster outbound health at a glance, with the Network: SNAT Activity row (snat-exporter).",
    )
    board = board.with_row(dash.Row("Overview"))
    for panel in overview_panels():
        board = board.with_panel(panel)
    board = board.with_row(dash.Row("Network: SNAT Activity"))
    for panel in snat_panels():
        board = board.with_panel(panel)
    return to_dict(board)


def snat_activity() -> dict[str, Any]:
    board = base(
        "SNAT Activity",
        "snat-activity",
        "SNAT ports, connections and conntrack per node, NAT gateway capacity, top destinations and pods "
        "(snat-exporter).",
    )
    board = board.with_row(dash.Row("Network: SNAT Activity"))
    for panel in snat_panels():
        board = board.with_panel(panel)
    return to_dict(board)


def to_dict(board: dash.Dashboard) -> dict[str, Any]:
    built = board.build()
    data: dict[str, Any] = json.loads(json.dumps(built, cls=JSONEncoder))
    # Stable panel ids in reading order: Grafana needs them unique, the drift check needs them fixed.
    for number, panel in enumerate(data.get("panels", []), start=1):
        panel["id"] = number
    return data


DASHBOARDS: dict[str, Callable[[], dict[str, Any]]] = {
    "cluster-overview.json": cluster_overview,
    "snat-activity.json": snat_activity,
}


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name](), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if dashboards/out differs from the generator")
    parser.add_argument("--out", type=Path, default=OUT, help="output directory (default dashboards/out)")
    args = parser.parse_args(argv)
    stale = []
    for name in DASHBOARDS:
        path = args.out / name
        text = render(name)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run `python -m dashboards.generate`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # Runnable as a script too: make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
