"""The mixin configuration: what a team sets once so the generated rules and dashboards fit its monitoring stack.

Modelled on kubernetes-mixin's ``_config``: the job selectors of the two scrape jobs, the label that tells clusters
apart, every alert threshold, ``for:`` duration and severity, where runbook links point, and the dashboards'
identity. The defaults reproduce the committed ``alerts/``, ``dashboards/`` and ``deploy/`` files.
``snat-exporter generate --config mixin.yaml`` reads it through the same settings machinery as the exporter's own
config, so a bad value exits 2 naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from snat_exporter.settings import (
    ConfigError,
    build_section,
    parse_choice,
    parse_duration,
    parse_str,
    parse_string_list,
    setting,
)

SEVERITIES = ("critical", "warning", "info")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# One or more label matchers, as they go between the braces of a selector: job="snat", namespace=~"mon.*".
_MATCHER = r'\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*'
_MATCHERS = re.compile(rf"^{_MATCHER}(,{_MATCHER})*$")


def parse_label_name(value: Any) -> str:
    text = parse_str(value)
    if not _LABEL_NAME.match(text) or text.startswith("__"):
        raise ValueError(f"expected a Prometheus label name like cluster, got {value!r}")
    return text


def parse_matchers(value: Any) -> str:
    """Label matchers without braces (``job="snat-exporter"``); braces around them are accepted and dropped."""
    text = parse_str(value).strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if not _MATCHERS.match(text):
        raise ValueError(f'expected label matchers like job="snat-exporter" (comma-separated), got {value!r}')
    return text


def parse_ratio(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a number between 0 and 1, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"expected a number between 0 and 1, got {value!r}") from None
    if not 0 < number <= 1:
        raise ValueError(f"expected a number in (0, 1], got {value!r}")
    return number


def parse_url_base(value: Any) -> str:
    text = parse_str(value).strip()
    if any(c.isspace() for c in text) or "#" in text:
        raise ValueError(f"expected a URL or path without spaces or '#', got {value!r}")
    return text


@dataclass(frozen=True)
class Selectors:
    cluster_exporter: str = setting(
        'job="snat-exporter"',
        "Label matchers of the cluster exporter's scrape job (Azure and Kubernetes metrics).",
        parse=parse_matchers,
    )
    node_agent: str = setting(
        'job="snat-exporter-node"',
        "Label matchers of the node agents' scrape job (conntrack metrics).",
        parse=parse_matchers,
    )


@dataclass(frozen=True)
class Thresholds:
    ports_used_ratio: float = setting(
        0.8, "SnatPortsNearlyExhausted: share of a node's load balancer SNAT ports in use.", parse=parse_ratio
    )
    ports_exhausted_ratio: float = setting(
        0.99, "SnatPortsExhausted: share of a node's SNAT ports that counts as none left.", parse=parse_ratio
    )
    ports_prediction_floor_ratio: float = setting(
        0.5, "SnatPortsExhaustionPredicted only fires once this share is in use.", parse=parse_ratio
    )
    natgw_datapath_availability_ratio: float = setting(
        0.9, "SnatNatGatewayDatapathAvailabilityLow: availability below this.", parse=parse_ratio
    )
    natgw_connections_ratio: float = setting(
        0.8, "SnatNatGatewayConnectionsNearLimit: share of the 2,000,000 connections per gateway.", parse=parse_ratio
    )
    natgw_destination_connections_ratio: float = setting(
        0.8,
        "SnatNatGatewayDestinationLimitAtRisk: share of 50,000 connections per public IP.",
        parse=parse_ratio,
    )
    conntrack_entries_ratio: float = setting(
        0.75, "SnatConntrackTableNearlyFull: share of nf_conntrack_max in use.", parse=parse_ratio
    )
    destination_pressure_ratio: float = setting(
        0.8,
        "SnatDestinationPressureHigh: a node's flows to one destination over its SNAT ports.",
        parse=parse_ratio,
    )
    cilium_nat_tuple_ratio: float = setting(
        0.8,
        "SnatCiliumNatTuplePressureHigh: flows of a node's busiest (egress IP, destination) over the ports of Cilium's "
        "NAT range.",
        parse=parse_ratio,
    )
    natgw_destination_pressure_ratio: float = setting(
        0.8,
        "SnatNatGatewayDestinationPressureHigh: the cluster's flows to one destination over the NAT gateway's limit.",
        parse=parse_ratio,
    )
    azure_metric_age: float = setting(900.0, "SnatAzureMetricsDelayed: Azure data older than this.")
    exporter_down_lookback: float = setting(
        86400.0,
        "SnatExporterDown remembers a cluster's targets this long after they disappear.",
    )


@dataclass(frozen=True)
class Dashboards:
    cluster_overview_uid: str = setting("snat-cluster-overview", "uid of the Cluster Overview dashboard.")
    cluster_overview_title: str = setting("Cluster Overview", "Title of the Cluster Overview dashboard.")
    snat_activity_uid: str = setting("snat-activity", "uid of the standalone SNAT Activity dashboard.")
    snat_activity_title: str = setting("SNAT Activity", "Title of the standalone SNAT Activity dashboard.")
    tags: tuple[str, ...] = setting(
        ("snat-exporter", "snat", "azure", "kubernetes", "network"),
        "Tags of both dashboards.",
        parse=parse_string_list(),
        example="[snat-exporter, snat, azure, kubernetes, network]",
    )
    folder: str = setting(
        "",
        "Grafana folder of the kube-prometheus-stack dashboard ConfigMaps (the sidecar's `grafana_folder` "
        "annotation); empty: the sidecar's default folder.",
    )


@dataclass(frozen=True)
class AlertSetting:
    """One alert's ``for:`` (seconds) and severity; :data:`ALERT_DEFAULTS` holds each alert's default."""

    for_seconds: float
    severity: str


@dataclass(frozen=True)
class MixinConfig:
    cluster_label: str = setting(
        "cluster",
        "The label that tells clusters apart in a Prometheus shared by several (relabelling, external labels).",
        parse=parse_label_name,
    )
    selectors: Selectors = setting(default_factory=Selectors, doc="Scrape job selectors.")
    thresholds: Thresholds = setting(default_factory=Thresholds, doc="Alert thresholds.")
    alerts: Mapping[str, Mapping[str, Any]] = setting(
        default_factory=dict,
        doc="Per alert name: `for` (duration) and `severity` (critical, warning, info) overriding the defaults.",
        parse=lambda v: _parse_alerts(v),
        example="{}",
    )
    runbook_url_base: str = setting(
        "alerts/runbook.md",
        "Where runbook links point; `#<alert name in lower case>` is appended. The default is the runbook's path "
        "in this repository (and in the release archive), which resolves on any Git host; set a full URL such as "
        "https://git.example.com/sre/snat-exporter/blob/v1/alerts/runbook.md for clickable links.",
        parse=parse_url_base,
    )
    dashboards: Dashboards = setting(default_factory=Dashboards, doc="Grafana dashboards.")

    def alert(self, name: str) -> AlertSetting:
        default = ALERT_DEFAULTS[name]
        override = self.alerts.get(name, {})
        return AlertSetting(
            for_seconds=override.get("for", default.for_seconds),
            severity=override.get("severity", default.severity),
        )

    def runbook_url(self, alert: str) -> str:
        return f"{self.runbook_url_base}#{alert.lower()}"


# Each alert's `for:` and severity when the config says nothing (today's behaviour).
ALERT_DEFAULTS: dict[str, AlertSetting] = {
    name: AlertSetting(for_seconds=parse_duration(for_), severity=severity)
    for name, for_, severity in (
        ("SnatPortsNearlyExhausted", "5m", "warning"),
        ("SnatPortsExhausted", "2m", "critical"),
        ("SnatLoadBalancerConnectionsFailing", "5m", "critical"),
        ("SnatPortsExhaustionPredicted", "10m", "warning"),
        ("SnatNatGatewayConnectionsFailing", "5m", "critical"),
        ("SnatNatGatewayPacketsDropped", "15m", "warning"),
        ("SnatNatGatewayDatapathAvailabilityLow", "15m", "critical"),
        ("SnatNatGatewayConnectionsNearLimit", "15m", "warning"),
        ("SnatNatGatewayDestinationLimitAtRisk", "15m", "warning"),
        ("SnatConntrackTableNearlyFull", "5m", "warning"),
        ("SnatConntrackInsertFailing", "5m", "warning"),
        ("SnatDestinationPressureHigh", "5m", "warning"),
        ("SnatCiliumNatTuplePressureHigh", "5m", "warning"),
        ("SnatNatGatewayDestinationPressureHigh", "5m", "warning"),
        ("SnatExporterDown", "15m", "critical"),
        ("SnatExporterTargetDown", "15m", "warning"),
        ("SnatExporterCollectorFailing", "15m", "warning"),
        ("SnatExporterDataStale", "10m", "warning"),
        ("SnatAzureMetricsDelayed", "10m", "warning"),
    )
}


def _parse_alerts(value: Any) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping of alert name to {{for, severity}}, got {type(value).__name__}")
    out: dict[str, dict[str, Any]] = {}
    severity = parse_choice(*SEVERITIES)
    for name, item in value.items():
        if name not in ALERT_DEFAULTS:
            raise ValueError(f"{name}: unknown alert (known: {', '.join(ALERT_DEFAULTS)})")
        if not isinstance(item, Mapping):
            raise ValueError(f"{name}: expected a mapping with `for` and/or `severity`")
        unknown = set(item) - {"for", "severity"}
        if unknown:
            raise ValueError(f"{name}: unknown key {sorted(unknown)[0]!r} (known: for, severity)")
        parsed: dict[str, Any] = {}
        try:
            if "for" in item:
                parsed["for"] = parse_duration(item["for"])
            if "severity" in item:
                parsed["severity"] = severity(item["severity"])
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
        out[str(name)] = parsed
    return out


def load_mixin(path: str | Path | None = None) -> MixinConfig:
    """The mixin config of ``path`` (YAML), or the defaults. Raises ConfigError naming each bad field."""
    raw: Any = {}
    if path is not None:
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as e:
            raise ConfigError([(str(path), f"cannot read: {e.strerror or e}")]) from None
        except yaml.YAMLError as e:
            raise ConfigError([(str(path), f"not valid YAML: {e}")]) from None
    problems: list[tuple[str, str]] = []
    config = build_section(MixinConfig, raw, "", problems)
    if problems:
        raise ConfigError(problems)
    return config
