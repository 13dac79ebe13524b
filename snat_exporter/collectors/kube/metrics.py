"""Series of the Kubernetes identity collector: the node info join series and the cache's own health."""

from __future__ import annotations

from snat_exporter.catalogue import MetricSpec

SOURCE = "kubernetes"

NODE_INFO = MetricSpec(
    "snat_kube_node_info",
    "info",
    "One series per node InternalIP, from the Kubernetes API (list+watch cache): join on internal_ip (or node) to "
    "name the node, node pool (label kubernetes.azure.com/agentpool) and zone (topology.kubernetes.io/zone).",
    ("node", "internal_ip", "node_pool", "zone"),
    source=SOURCE,
)
CACHE_OBJECTS = MetricSpec(
    "snat_exporter_kube_cache_objects",
    "gauge",
    "Objects held in the Kubernetes identity cache, by resource (nodes, pods).",
    ("resource",),
    source=SOURCE,
)
WATCH_RESTARTS = MetricSpec(
    "snat_exporter_kube_watch_restarts_total",
    "counter",
    "Watches of the Kubernetes API that ended and were restarted, by resource and reason: expired (the server "
    "closed it, normal), dropped (connection lost mid-stream, resumed without a relist), gone (410: history "
    "expired, full relist), or the error class of a failed request (unreachable, forbidden, auth, http_5xx, "
    "throttled, timeout, malformed, ...).",
    ("resource", "reason"),
    source=SOURCE,
)
REJECTED_OBJECTS = MetricSpec(
    "snat_exporter_kube_rejected_objects_total",
    "counter",
    "Nodes and pods not indexed because a name, namespace, node pool, zone, workload or InternalIP cannot be a "
    "label value (a lone surrogate, a control character, kilobytes of text), by resource. Their IPs stay bare.",
    ("resource",),
    source=SOURCE,
)
LAST_SYNC = MetricSpec(
    "snat_exporter_kube_last_sync_timestamp_seconds",
    "gauge",
    "Unix time at which the cache was last known current, by resource: end of a full list, or the last watch "
    "event, bookmark or watch (re)connection.",
    ("resource",),
    source=SOURCE,
)

SPECS = (NODE_INFO, CACHE_OBJECTS, WATCH_RESTARTS, REJECTED_OBJECTS, LAST_SYNC)
