"""The Grafana dashboards, built with Grafana's Foundation SDK from the mixin config.

Two dashboards share one set of panels: "Cluster Overview" (an overview row, then the "Network: SNAT Activity"
row) and a standalone "SNAT Activity" for teams that already have a Cluster Overview of their own (they can also
put the row into theirs: ``snat-exporter dashboards add-row``). Queries read the recording rules where one exists,
so panels and alerts agree, and every query selects the cluster (``cluster_label``) and the scrape job of its
source (``selectors``), like the rules.

Variables: datasource; cluster (the cluster label your Prometheus adds by relabelling; "All" also matches series
without the label, so a single-cluster Prometheus needs nothing); node; load balancer; NAT gateway.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import bargauge, prometheus, stat, timeseries
from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from snat_exporter.azure_facts import every_cycle_metrics
from snat_exporter.generate.mixin import MixinConfig, Thresholds

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
ROW_TITLE = "Network: SNAT Activity"


def fresh_metrics_regex() -> str:
    """The Azure metrics asked every cycle, as the freshness panel and SnatAzureMetricsDelayed select them."""
    return "|".join(every_cycle_metrics())


@dataclass(frozen=True)
class Sel:
    """The label matchers every query is built from: the cluster variable on the configured cluster label, and
    the scrape job of the series' source."""

    cluster: str
    exporter: str
    agent: str

    @classmethod
    def of(cls, mixin: MixinConfig) -> Sel:
        cluster = f'{mixin.cluster_label}=~"$cluster"'
        return cls(
            cluster=cluster,
            exporter=f"{cluster}, {mixin.selectors.cluster_exporter}",
            agent=f"{cluster}, {mixin.selectors.node_agent}",
        )

    @property
    def lb(self) -> str:
        return f'{self.exporter}, node=~"$node", load_balancer=~"$load_balancer"'

    @property
    def natgw(self) -> str:
        return f'{self.exporter}, nat_gateway=~"$nat_gateway"'

    @property
    def node(self) -> str:
        return f'{self.agent}, node=~"$node"'


def pct(ratio: float) -> str:
    return f"{ratio * 100:g}%"


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


# -------------------------------------------------------------------------------------------------- variables
def variables(mixin: MixinConfig, s: Sel) -> list[Any]:
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
            f"label_values(snat_exporter_build_info{{{mixin.selectors.cluster_exporter}}}, {mixin.cluster_label})",
            f"The `{mixin.cluster_label}` label your Prometheus adds (relabelling or federation). All also matches series "
            "without it.",
        ),
        query_var(
            "node",
            "Node",
            f'label_values({{__name__=~"azure_lb_snat_ports_allocated|snat_conntrack_entries", {s.cluster}}}, node)',
            "Kubernetes nodes seen by the load balancer metrics or the node agents.",
        ),
        query_var(
            "load_balancer",
            "Load balancer",
            f"label_values(azure_lb_snat_ports_allocated{{{s.exporter}}}, load_balancer)",
            "Azure load balancers whose SNAT ports are exported.",
        ),
        query_var(
            "nat_gateway",
            "NAT gateway",
            f"label_values(azure_natgw_public_ips{{{s.exporter}}}, nat_gateway)",
            "Azure NAT gateways whose metrics are exported.",
        ),
    ]


def base(mixin: MixinConfig, title: str, uid: str, description: str) -> dash.Dashboard:
    board = (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(list(mixin.dashboards.tags))
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .time("now-3h", "now")
        .timezone("browser")
        .refresh("1m")
    )
    # A relative runbook path (the default) means nothing to Grafana: link only a full URL.
    if mixin.runbook_url_base.startswith(("https://", "http://")):
        board = board.link(
            dash.DashboardLink("Runbook")
            .type(model.DashboardLinkType.LINK)
            .url(mixin.runbook_url_base)
            .target_blank(True)
            .icon("doc")
        )
    for var in variables(mixin, Sel.of(mixin)):
        board = board.with_variable(var)
    return board


def cluster_overview(mixin: MixinConfig) -> dict[str, Any]:
    s, t = Sel.of(mixin), mixin.thresholds
    board = base(
        mixin,
        mixin.dashboards.cluster_overview_title,
        mixin.dashboards.cluster_overview_uid,
        f"Cluster outbound health at a glance, with the {ROW_TITLE} row (snat-exporter).",
    )
    board = board.with_row(dash.Row("Overview"))
    for panel in overview_panels(s, t):
        board = board.with_panel(panel)
    board = board.with_row(dash.Row(ROW_TITLE))
    for panel in snat_panels(s, t):
        board = board.with_panel(panel)
    return to_dict(board)


def snat_activity(mixin: MixinConfig) -> dict[str, Any]:
    s, t = Sel.of(mixin), mixin.thresholds
    board = base(
        mixin,
        mixin.dashboards.snat_activity_title,
        mixin.dashboards.snat_activity_uid,
        "SNAT ports, connections and conntrack per node, NAT gateway capacity, top destinations and pods "
        "(snat-exporter).",
    )
    board = board.with_row(dash.Row(ROW_TITLE))
    for panel in snat_panels(s, t):
        board = board.with_panel(panel)
    return to_dict(board)


def to_dict(board: dash.Dashboard) -> dict[str, Any]:
    built = board.build()
    data: dict[str, Any] = json.loads(json.dumps(built, cls=JSONEncoder))
    # Stable panel ids in reading order: Grafana needs them unique, the drift check needs them fixed.
    for number, panel in enumerate(data.get("panels", []), start=1):
        panel["id"] = number
    return data


DASHBOARDS: dict[str, Callable[[MixinConfig], dict[str, Any]]] = {
    "cluster-overview.json": cluster_overview,
    "snat-activity.json": snat_activity,
}


def dump(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, sort_keys=True) + "\n"


def render(mixin: MixinConfig) -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: dump(build(mixin)) for name, build in DASHBOARDS.items()}
