"""The recording rules and alerts, built from the mixin config: ``alerts/recording_rules.yml`` and ``alerts/alerts.yml``.

One definition feeds three targets: the Prometheus rule files (and so the PrometheusRules of kube-prometheus-stack)
and the Azure Monitor rule groups (:mod:`.azure`). Conventions (docs/alerts.md explains them):

- Alert names are CamelCase with the prefix Snat; severity: critical pages, warning makes a ticket, info is context.
  ``summary`` is a static sentence; ``description`` names the node / pod / destination the series carry.
- Recording rules are named level:metric:operations; numerators and denominators are aggregated apart, then
  divided. Every aggregation keeps the cluster label (``without (...)``, or ``by`` lists that name it), so one
  Prometheus can hold many clusters and each alert fires for, and its drill-down queries look at, one cluster.
- Raw series are selected by the scrape job of their source (``selectors``); recorded series keep that job label.
- Azure Monitor data arrives 2-10 minutes late, one value per minute, with gaps: Azure alerts read
  ``*_over_time()`` windows, and every data alert has a health alert that fires when its data is missing.

Where things are: :mod:`.model` (what a rule is), :mod:`.recording` (recording rules), ``alerts_*`` (the alerts of
one source each), :mod:`.prometheus` and :mod:`.azure` (rendering for each target).
"""

from __future__ import annotations

from snat_exporter.generate.mixin import MixinConfig
from snat_exporter.generate.rules.alerts_azure import load_balancer_alerts, nat_gateway_alerts
from snat_exporter.generate.rules.alerts_conntrack import conntrack_alerts
from snat_exporter.generate.rules.alerts_exporter import exporter_alerts
from snat_exporter.generate.rules.model import Context, Group, RuleFile
from snat_exporter.generate.rules.recording import recording_groups


def alert_groups(k: Context) -> tuple[Group, ...]:
    """One group per source, in the order alerts.yml lists them."""
    return (load_balancer_alerts(k), nat_gateway_alerts(k), conntrack_alerts(k), exporter_alerts(k))


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
