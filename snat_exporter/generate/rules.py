"""The recording rules and alerts, built from the mixin config: ``alerts/recording_rules.yml`` and ``alerts/alerts.yml``.

One definition feeds three targets: the Prometheus rule files (and so the PrometheusRules of kube-prometheus-stack)
and the Azure Monitor rule groups (:mod:`.azure_rules`). Conventions (docs/alerts.md explains them):

- Alert names are CamelCase with the prefix Snat; severity: critical pages, warning makes a ticket, info is context.
  ``summary`` is a static sentence; ``description`` names the node / pod / destination the series carry.
- Recording rules are named level:metric:operations; numerators and denominators are aggregated apart, then
  divided. Every aggregation keeps the cluster label (``without (...)``, or ``by`` lists that name it), so one
  Prometheus can hold many clusters and each alert fires for, and its drill-down queries look at, one cluster.
- Raw series are selected by the scrape job of their source (``selectors``); recorded series keep that job label.
- Azure Monitor data arrives 2-10 minutes late, one value per minute, with gaps: Azure alerts read
  ``*_over_time()`` windows, and every data alert has a health alert that fires when its data is missing.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field

import yaml

from snat_exporter.azure_facts import every_cycle_metrics
from snat_exporter.generate.mixin import MixinConfig
from snat_exporter.settings import format_duration


@dataclass(frozen=True)
class DrillDown:
    """Part of a description that runs a PromQL query from the template (``query``): left out where a rule engine
    has no such function (Azure Monitor)."""

    text: str


Segment = str | DrillDown


@dataclass(frozen=True)
class Rule:
    expr: str
    record: str | None = None
    alert: str | None = None
    summary: str = ""
    description: tuple[Segment, ...] = ()
    comment: str = ""

    @property
    def name(self) -> str:
        return self.alert or self.record or ""

    def description_text(self, *, drill_downs: bool = True) -> str:
        return "".join(
            s if isinstance(s, str) else s.text for s in self.description if drill_downs or isinstance(s, str)
        )


@dataclass(frozen=True)
class Group:
    name: str
    rules: tuple[Rule, ...]
    comment: str = ""


@dataclass(frozen=True)
class RuleFile:
    name: str
    header: str
    groups: tuple[Group, ...] = field(default_factory=tuple)


def pct(ratio: float) -> str:
    return f"{ratio * 100:g}%"


def words(seconds: float) -> str:
    """15 minutes, 2 minutes, 1 hour, 90 seconds: a ``for:`` as the description says it."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds:g} seconds"


class Context:
    """What the rule definitions read from the mixin config, named for how they use it."""

    def __init__(self, mixin: MixinConfig):
        self.mixin = mixin
        self.t = mixin.thresholds
        self.c = mixin.cluster_label
        self.exporter = mixin.selectors.cluster_exporter
        self.agent = mixin.selectors.node_agent

    def x(self, metric: str, extra: str = "") -> str:
        """A cluster exporter series, selected by its job."""
        return f"{metric}{{{self.exporter}{', ' + extra if extra else ''}}}"

    def a(self, metric: str, extra: str = "") -> str:
        """A node agent series, selected by its job."""
        return f"{metric}{{{self.agent}{', ' + extra if extra else ''}}}"

    def both(self, metric: str) -> str:
        """A series both the cluster exporter and the node agents export (their own health)."""
        if self.exporter == self.agent:
            return self.x(metric)
        return f"({self.x(metric)} or {self.a(metric)})"

    def label(self, name: str) -> str:
        return f"{{{{ $labels.{name} }}}}"

    @property
    def in_cluster(self) -> str:
        """`` in cluster X`` when the series has a cluster label; nothing on a single-cluster Prometheus."""
        return f"{{{{ with $labels.{self.c} }}}} in cluster {{{{ . }}}}{{{{ end }}}}"

    def query_cluster(self) -> str:
        """The drill-down matcher for the alert's own cluster (empty matches series without the label)."""
        return f"{self.c}=%q"


# ------------------------------------------------------------------------------------------------ recording rules
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


# ---------------------------------------------------------------------------------------------------------- alerts
def alert_groups(k: Context) -> tuple[Group, ...]:
    t, m, c = k.t, k.mixin, k.c
    lbl = k.label
    backend = f"Node {lbl('node')} (backend {lbl('backend_ip')})"
    natgw = f"NAT gateway {lbl('nat_gateway')} (resource group {lbl('resource_group')})"

    def for_words(name: str) -> str:
        return words(m.alert(name).for_seconds)

    lb = Group(
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
    nat = Group(
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
    where = f"{c}=%q, node=%q"
    conntrack = Group(
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
    lookback = format_duration(t.exporter_down_lookback)
    up = k.both("up")
    exporter = Group(
        "snat-exporter.exporter",
        (
            Rule(
                alert="SnatExporterDown",
                expr=f"group by ({c}) (max_over_time({k.x('up')}[{lookback}]) or max_over_time({k.a('up')}[{lookback}]))\n"
                f"unless on ({c})\n"
                f"group by ({c}) ({k.x('up')} == 1 or {k.a('up')} == 1)",
                summary="No snat-exporter target is up; SNAT exhaustion would go unnoticed.",
                description=(
                    f"Prometheus has not scraped any snat-exporter target{k.in_cluster} successfully for "
                    f"{for_words('SnatExporterDown')}, so none of the SNAT alerts can fire.",
                ),
                comment=f"Per cluster: a cluster whose targets all fail, or vanish from discovery, fires on its own (for\n"
                f"{lookback} after they were last seen), however many other clusters this Prometheus holds.",
            ),
            Rule(
                alert="SnatExporterTargetDown",
                expr=f"{up} == 0",
                summary="A snat-exporter target cannot be scraped.",
                description=(
                    f"Prometheus cannot scrape {lbl('instance')} (job {lbl('job')}){k.in_cluster}: its node's SNAT and "
                    "conntrack data is missing.",
                ),
            ),
            Rule(
                alert="SnatExporterCollectorFailing",
                expr=f"{k.both('snat_exporter_collector_success')} == 0",
                summary="A snat-exporter collector keeps failing.",
                description=(
                    f"The {lbl('collector')} collector of {lbl('instance')} has failed every run for "
                    f"{for_words('SnatExporterCollectorFailing')}",
                    DrillDown(
                        ' {{- with printf "topk(1, increase(snat_exporter_collector_errors_total{'
                        f'{c}=%q, instance=%q, collector=%q}}[15m]))" $labels.{c} $labels.instance $labels.collector '
                        "| query }}{{ with . | first }} (mostly: {{ .Labels.reason }}){{ end }}{{ end }}"
                    ),
                    ". Its data is served stale until max_age, then dropped.",
                ),
            ),
            Rule(
                alert="SnatExporterDataStale",
                expr=f"{k.both('snat_exporter_collector_stale')} == 1",
                summary="The exporter is serving old data.",
                description=(
                    f"The {lbl('collector')} collector of {lbl('instance')} has served data from an earlier run for "
                    f"{for_words('SnatExporterDataStale')}",
                    DrillDown(
                        ' (now {{ with printf "snat_exporter_collector_data_age_seconds{'
                        f'{c}=%q, instance=%q, collector=%q}}" $labels.{c} $labels.instance $labels.collector '
                        "| query }}{{ . | first | value | humanizeDuration }}{{ end }} old)"
                    ),
                    "; alerts on it may be late or miss a change.",
                ),
            ),
            Rule(
                alert="SnatAzureMetricsDelayed",
                expr="max without (metric) ("
                f"{k.x('azure_metric_sample_age_seconds', 'metric=~' + chr(34) + '|'.join(every_cycle_metrics()) + chr(34))})\n"
                f"> {t.azure_metric_age:g}",
                summary=f"Azure Monitor SNAT metrics are more than {words(t.azure_metric_age)} old.",
                description=(
                    f"The newest Azure Monitor data point of {lbl('resource_type')} {lbl('resource')} is "
                    "{{ $value | humanizeDuration }} old; SNAT alerts on it are late.",
                ),
                comment="Azure Monitor normally lags 2-10 minutes. Older than the threshold means Azure stopped publishing the\n"
                "metric (or the resource stopped reporting), even though the collector's requests succeed. Only the\n"
                "metrics queried every cycle (those the SNAT alerts read; every_cycle_metrics() in\n"
                "snat_exporter/azure_facts.py): the secondary ones are asked every `secondary_interval` (10m), so on\n"
                "top of Azure's lag a healthy exporter serves them up to ~20 minutes old.",
            ),
        ),
    )
    return (lb, nat, conntrack, exporter)


RECORDING_HEADER = """\
Recording rules shared by alerts/alerts.yml and the dashboards.

Names follow level:metric:operations (https://prometheus.io/docs/practices/rules/): the level lists what a
series is per, `_total` is dropped under rate(), the range is part of the name (rate5m). Numerators and
denominators are aggregated separately and then divided, never averaged as ratios. Aggregations use
`without (...)`, or name the cluster label, so that job, instance and the cluster label survive.

Levels:
  node:        one series per load-balancer backend (= Kubernetes node) and protocol, or per node (conntrack)
  nat_gateway: one series per NAT gateway
  cluster:     one series per destination across the cluster's nodes"""

ALERTS_HEADER = """\
SNAT alerts for Prometheus / Alertmanager. One group per source; runbook: alerts/runbook.md.

Conventions (docs/alerts.md explains them):
- Names are CamelCase with the prefix Snat. severity: critical pages, warning makes a ticket, info is context.
- summary is a static sentence; description names the node / pod / destination the series carry, and queries
  run from a description look at the alert's own cluster only.
- runbook_url is the mixin's runbook_url_base + #<alert name in lower case>; tests/alerts checks every anchor.
- Azure Monitor data arrives 2-10 minutes late, one value per minute, with gaps. Azure alerts read
  *_over_time() windows (a missing minute does not reset `for:`) and every data alert has a health alert
  (SnatExporterCollectorFailing, SnatExporterDataStale, SnatAzureMetricsDelayed, SnatExporterDown) that fires
  when the data it needs is missing, so silence never means "all good" by accident."""


def rule_files(mixin: MixinConfig) -> tuple[RuleFile, ...]:
    k = Context(mixin)
    return (
        RuleFile("recording_rules.yml", RECORDING_HEADER, recording_groups(k)),
        RuleFile("alerts.yml", ALERTS_HEADER, alert_groups(k)),
    )


# ------------------------------------------------------------------------------------------------------- rendering
def rule_dict(rule: Rule, mixin: MixinConfig, *, drill_downs: bool = True) -> dict[str, object]:
    """The rule as a Prometheus rule file has it."""
    if rule.record:
        return {"record": rule.record, "expr": rule.expr}
    assert rule.alert
    setting = mixin.alert(rule.alert)
    return {
        "alert": rule.alert,
        "expr": rule.expr,
        "for": format_duration(setting.for_seconds),
        "labels": {"severity": setting.severity},
        "annotations": {
            "summary": rule.summary,
            "description": rule.description_text(drill_downs=drill_downs),
            "runbook_url": mixin.runbook_url(rule.alert),
        },
    }


def _scalar(value: str) -> str:
    text = yaml.safe_dump({"k": value}, width=1 << 20, allow_unicode=True)
    return text[len("k: ") :].rstrip("\n")


def _block(key: str, value: str, indent: str, *, folded: bool = False) -> list[str]:
    """``key: value``; a multi-line value as a literal block, a long prose value folded for reading."""
    if "\n" in value:
        return [f"{indent}{key}: |-", *(f"{indent}  {line}" for line in value.split("\n"))]
    if folded and len(indent) + len(key) + len(value) > 100:
        # A template action ({{ ... }}) stays on one line: the folded text means the same either way, but reads
        # better whole.
        glued = re.sub(r"\{\{.*?\}\}", lambda m: m.group(0).replace(" ", "\0"), value)
        lines = textwrap.wrap(glued, 110 - len(indent), break_long_words=False, break_on_hyphens=False)
        return [f"{indent}{key}: >-", *(f"{indent}  {line.replace(chr(0), ' ')}" for line in lines)]
    return [f"{indent}{key}: {_scalar(value)}"]


def _comment(text: str, indent: str) -> Iterator[str]:
    for line in text.split("\n"):
        yield f"{indent}# {line}".rstrip()


def render_file(rule_file: RuleFile, mixin: MixinConfig) -> str:
    lines = [*_comment(rule_file.header, ""), "#", "# Generated by `snat-exporter generate`; do not edit.", "groups:"]
    for gi, group in enumerate(rule_file.groups):
        if gi:
            lines.append("")
        lines += [f"  - name: {group.name}", "    rules:"]
        for ri, rule in enumerate(group.rules):
            if ri and rule.alert:
                lines.append("")
            lines += _comment(rule.comment, "      ") if rule.comment else []
            data = rule_dict(rule, mixin)
            first = True
            for key, value in data.items():
                indent = "      - " if first else "        "
                first = False
                if isinstance(value, dict):
                    lines.append(f"{indent}{key}:")
                    for sub, text in value.items():
                        lines += _block(sub, str(text), "          ", folded=sub == "description")
                else:
                    block = _block(key, str(value), "        ")
                    lines += [indent + block[0].lstrip(), *block[1:]]
    text = "\n".join(lines) + "\n"
    # The hand-made layout must mean exactly the rules: a folded line or a quoting slip would change an alert.
    loaded = yaml.safe_load(text)
    expected = [{"name": g.name, "rules": [rule_dict(r, mixin) for r in g.rules]} for g in rule_file.groups]
    if loaded != {"groups": expected}:
        raise AssertionError(f"{rule_file.name}: the rendered YAML does not load back as the rules it was made from")
    return text


def render(mixin: MixinConfig) -> dict[str, str]:
    """File name -> text of each rule file."""
    return {f.name: render_file(f, mixin) for f in rule_files(mixin)}
