"""Every series of the Azure collector: the Azure Monitor data (snapshot families) and its own self-metrics.

Names and labels are fixed by the team's metrics contract (alerts and dashboards are written against them).
"""

from __future__ import annotations

from snat_exporter.catalogue import MetricSpec

_LB = ("load_balancer", "resource_group", "subscription_id")
_NAT = ("nat_gateway", "resource_group", "subscription_id")
_SRC = "azure"

LB_PORTS_ALLOCATED = MetricSpec(
    "azure_lb_snat_ports_allocated",
    "gauge",
    "SNAT ports the load balancer allocated to a backend (node), per frontend IP and protocol. Azure Monitor "
    "AllocatedSnatPorts, Average at PT1M, newest minute that has a value (Azure data lags minutes; see "
    "azure_metric_sample_age_seconds). Cached between collections.",
    (*_LB, "frontend_ip", "backend_ip", "node", "protocol"),
    _SRC,
)
LB_PORTS_USED = MetricSpec(
    "azure_lb_snat_ports_used",
    "gauge",
    "SNAT ports a backend (node) uses, per frontend IP and protocol. Azure Monitor UsedSnatPorts, Average at "
    "PT1M, newest minute that has a value. Cached between collections.",
    (*_LB, "frontend_ip", "backend_ip", "node", "protocol"),
    _SRC,
)
LB_CONNECTIONS = MetricSpec(
    "azure_lb_snat_connections_total",
    "counter",
    "New outbound SNAT connections through the load balancer by state (successful, failed, pending). Azure "
    "Monitor SnatConnectionCount, per-minute Totals, each minute counted once (late fills and upward revisions "
    "add the difference); counting starts with the minutes of the first query window.",
    (*_LB, "frontend_ip", "backend_ip", "node", "state"),
    _SRC,
)
LB_FRONTEND_IPS = MetricSpec(
    "azure_lb_frontend_ips",
    "gauge",
    "Frontend IP configurations the load balancer uses for outbound SNAT (those of its outbound rules, else "
    "all); each gives 64,000 SNAT ports. From the ARM resource.",
    _LB,
    _SRC,
)
LB_OUTBOUND_PORTS = MetricSpec(
    "azure_lb_outbound_rule_allocated_ports",
    "gauge",
    "allocatedOutboundPorts of the load balancer's outbound rule: SNAT ports per backend instance per frontend "
    "IP; 0 means automatic allocation by backend pool size. From the ARM resource.",
    _LB,
    _SRC,
)
LB_DATA_PATH = MetricSpec(
    "azure_lb_data_path_availability_ratio",
    "gauge",
    "Data path availability of a load balancer frontend, 0-1. Azure Monitor VipAvailability, Average at PT1M "
    "/ 100, newest valued minute.",
    (*_LB, "frontend_ip"),
    _SRC,
)
LB_HEALTH_PROBE = MetricSpec(
    "azure_lb_health_probe_status_ratio",
    "gauge",
    "Health probe status of a backend (node), 0-1. Azure Monitor DipAvailability, Average at PT1M / 100, "
    "newest valued minute.",
    (*_LB, "backend_ip", "node"),
    _SRC,
)
NAT_CONNECTIONS = MetricSpec(
    "azure_natgw_snat_connections_total",
    "counter",
    "New SNAT connections through the NAT gateway by protocol and state (attempted, failed). Azure Monitor "
    "SNATConnectionCount, per-minute Totals, each minute counted once.",
    (*_NAT, "protocol", "state"),
    _SRC,
)
NAT_ACTIVE = MetricSpec(
    "azure_natgw_active_connections",
    "gauge",
    "Active SNAT connections of the NAT gateway by protocol. Azure Monitor TotalConnectionCount, Total of the "
    "newest valued minute (a per-minute sample).",
    (*_NAT, "protocol"),
    _SRC,
)
NAT_DROPPED = MetricSpec(
    "azure_natgw_dropped_packets_total",
    "counter",
    "Packets the NAT gateway dropped. Azure Monitor PacketDropCount, per-minute Totals, each minute counted once.",
    _NAT,
    _SRC,
)
NAT_AVAILABILITY = MetricSpec(
    "azure_natgw_datapath_availability_ratio",
    "gauge",
    "Datapath availability of the NAT gateway, 0-1. Azure Monitor DatapathAvailability, Average at PT1M / 100, "
    "newest valued minute.",
    _NAT,
    _SRC,
)
NAT_BYTES = MetricSpec(
    "azure_natgw_bytes_total",
    "counter",
    "Bytes through the NAT gateway by direction (in, out) and protocol. Azure Monitor ByteCount, per-minute "
    "Totals, each minute counted once.",
    (*_NAT, "direction", "protocol"),
    _SRC,
)
NAT_PACKETS = MetricSpec(
    "azure_natgw_packets_total",
    "counter",
    "Packets through the NAT gateway by direction and protocol. Azure Monitor PacketCount, per-minute Totals, "
    "each minute counted once.",
    (*_NAT, "direction", "protocol"),
    _SRC,
)
NAT_PUBLIC_IPS = MetricSpec(
    "azure_natgw_public_ips",
    "gauge",
    "Public IPv4 addresses of the NAT gateway, a public IP prefix counting as its size; each gives 64,512 SNAT "
    "ports. From the ARM resource.",
    _NAT,
    _SRC,
)
CLUSTER_OUTBOUND = MetricSpec(
    "azure_cluster_outbound_info",
    "info",
    "The AKS cluster's networkProfile.outboundType (loadBalancer, managedNATGateway, userAssignedNATGateway, "
    "userDefinedRouting: with the last, Azure has no SNAT resource to watch).",
    ("managed_cluster", "resource_group", "subscription_id", "node_resource_group", "outbound_type"),
    _SRC,
)
SAMPLE_AGE = MetricSpec(
    "azure_metric_sample_age_seconds",
    "gauge",
    "Seconds since the newest valued minute of an Azure Monitor metric (the oldest across the metric's series). "
    "Grows while Azure lags or while queries fail and the last good values are served.",
    ("resource_type", "resource", "metric"),
    _SRC,
)

# Self-metrics: live, counted across collections.
REQUESTS = MetricSpec(
    "snat_exporter_azure_requests_total",
    "counter",
    "HTTP requests to Azure (each retry counted) by operation (metrics_list: per-resource Metrics List; "
    "metrics_batch: metrics:getBatch; the ARM GETs of discovery) and status (HTTP code, or timeout / unreachable "
    "/ auth / error when no response came back).",
    ("operation", "status"),
    _SRC,
)
REQUEST_DURATION = MetricSpec(
    "snat_exporter_azure_request_duration_seconds",
    "histogram",
    "Duration of one HTTP request to Azure, by operation.",
    ("operation",),
    _SRC,
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
THROTTLED = MetricSpec(
    "snat_exporter_azure_throttled_requests_total",
    "counter",
    "Requests Azure answered with HTTP 429 (ARM throttling) or 529 (metrics data plane busy), by operation.",
    ("operation",),
    _SRC,
)
RATELIMIT_REMAINING = MetricSpec(
    "snat_exporter_azure_ratelimit_remaining",
    "gauge",
    "Last x-ms-ratelimit-remaining-<scope> header Azure Resource Manager returned (requests left in the "
    "throttling bucket), by scope (subscription-reads, subscription-global-reads, ...).",
    ("scope",),
    _SRC,
)
TRUNCATED = MetricSpec(
    "snat_exporter_azure_truncated_results_total",
    "counter",
    "Queries whose result filled `top` (series were probably cut off: raise azure.top), by resource and metric.",
    ("resource", "metric"),
    _SRC,
)
METRIC_ERRORS = MetricSpec(
    "snat_exporter_azure_metric_errors_total",
    "counter",
    "Azure Monitor metrics that came back unusable (an errorCode inside an HTTP 200, a failed request, a "
    "malformed answer, or no valued minute where there was data before), by resource, metric and code.",
    ("resource", "metric", "code"),
    _SRC,
)
REJECTED_VALUES = MetricSpec(
    "snat_exporter_azure_rejected_values_total",
    "counter",
    "Data points and series of Azure Monitor answers dropped where they enter, the rest of the answer kept, by "
    "resource, metric and reason: non_finite (a NaN or infinite value), negative, too_large (above 2^53: not a "
    "count), future (a minute after now), bad_label (a dimension value that cannot be a label value: the series).",
    ("resource", "metric", "reason"),
    _SRC,
)
DOWNWARD_REVISIONS = MetricSpec(
    "snat_exporter_azure_downward_revisions_total",
    "counter",
    "Per-minute Totals Azure revised downwards after they were counted (ignored: a counter never goes down), "
    "by resource and metric.",
    ("resource", "metric"),
    _SRC,
)
DISCOVERY_ERRORS = MetricSpec(
    "snat_exporter_azure_discovery_errors_total",
    "counter",
    "Failed (re-)discoveries of the cluster's outbound resources, by reason; the last known resources stay watched. "
    "Reason bad_label counts the resources (or the cluster) a discovery left out because ARM named them with text "
    "that cannot be a label value.",
    ("reason",),
    _SRC,
)
WATCHED_RESOURCES = MetricSpec(
    "snat_exporter_azure_watched_resources",
    "gauge",
    "Load balancers and NAT gateways the collector queries, by resource_type (explicit and discovered; with "
    "sharding, this replica's share).",
    ("resource_type",),
    _SRC,
)

BATCH_ENABLED = MetricSpec(
    "snat_exporter_azure_batch_enabled",
    "gauge",
    "1 while the last cycle read metrics with metrics:getBatch, 0 while it queried each resource with Metrics List "
    "(batch: never, getBatch refused, or no resource with a known region).",
    (),
    _SRC,
)
BATCH_FALLBACKS = MetricSpec(
    "snat_exporter_azure_batch_fallbacks_total",
    "counter",
    "Times metrics:getBatch failed in a way per-resource Metrics List does not and the collector fell back to it "
    "until a re-probe (5 minutes, doubling up to an hour), by reason: auth (401), permission_denied (403: it needs "
    "Monitoring Reader on the subscription), not_found (404), unreachable, dns, tls (the regional data-plane host).",
    ("reason",),
    _SRC,
)
BATCH_SPLITS = MetricSpec(
    "snat_exporter_azure_batch_splits_total",
    "counter",
    "getBatch calls Azure refused for returning too many time series, then split in two and asked again.",
    (),
    _SRC,
)
SHARD_INDEX = MetricSpec(
    "snat_exporter_azure_shard_index",
    "gauge",
    "Index of the shard whose resources this replica queries (0-based; see snat_exporter_azure_shards).",
    (),
    _SRC,
)
SHARDS = MetricSpec(
    "snat_exporter_azure_shards",
    "gauge",
    "Number of shards the Azure resources are split into (1: this replica queries them all).",
    (),
    _SRC,
)

SNAPSHOT_SPECS = (
    LB_PORTS_ALLOCATED,
    LB_PORTS_USED,
    LB_CONNECTIONS,
    LB_FRONTEND_IPS,
    LB_OUTBOUND_PORTS,
    LB_DATA_PATH,
    LB_HEALTH_PROBE,
    NAT_CONNECTIONS,
    NAT_ACTIVE,
    NAT_DROPPED,
    NAT_AVAILABILITY,
    NAT_BYTES,
    NAT_PACKETS,
    NAT_PUBLIC_IPS,
    CLUSTER_OUTBOUND,
    SAMPLE_AGE,
)

SPECS = (
    *SNAPSHOT_SPECS,
    REQUESTS,
    REQUEST_DURATION,
    THROTTLED,
    RATELIMIT_REMAINING,
    TRUNCATED,
    METRIC_ERRORS,
    REJECTED_VALUES,
    DOWNWARD_REVISIONS,
    DISCOVERY_ERRORS,
    WATCHED_RESOURCES,
    BATCH_ENABLED,
    BATCH_FALLBACKS,
    BATCH_SPLITS,
    SHARD_INDEX,
    SHARDS,
)
