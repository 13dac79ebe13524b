"""Every series of the conntrack collector: the node's conntrack table, read each interval (cached between
collections, like every collector here), and the collector's own self-metrics."""

from __future__ import annotations

from snat_exporter.catalogue import MetricSpec

SOURCE = "conntrack"
CACHED = " Read every conntrack.interval and served from the last collection."

ENTRIES = MetricSpec(
    "snat_conntrack_entries",
    "gauge",
    "Entries in the node's conntrack table (kernel nf_conntrack_count, via ctnetlink IPCTNL_MSG_CT_GET_STATS)."
    + CACHED,
    ("node",),
    SOURCE,
)
ENTRIES_LIMIT = MetricSpec(
    "snat_conntrack_entries_limit",
    "gauge",
    "Maximum entries of the node's conntrack table (kernel nf_conntrack_max); when it is full new flows are "
    "dropped." + CACHED,
    ("node",),
    SOURCE,
)

_STAT_HELP = {
    "found": "Conntrack lookups that found an existing entry (climbs fast while NAT searches for a free port).",
    "invalid": "Packets conntrack could not track (kernel stat invalid).",
    "insert_failed": "New flows whose entry could not be inserted, e.g. because source NAT found no free port for "
    "the destination: SNAT port exhaustion on this node (kernel stat insert_failed).",
    "drop": "Packets dropped because conntrack could not create or insert their entry (kernel stat drop).",
    "early_drop": "Entries evicted to make room because the table was full (kernel stat early_drop).",
    "error": "Packets whose ICMP/ICMPv6 error could not be matched to a flow (kernel stat error / icmp_error).",
    "search_restart": "Table lookups restarted because of a concurrent hash resize (kernel stat search_restart).",
    "clash_resolve": "Insert clashes (two packets creating the same flow at once) that were resolved (kernel stat "
    "clash_resolve; Linux 5.9+).",
    "chain_toolong": "Lookups that found a hash chain too long (kernel stat chaintoolong; Linux 5.19+).",
}
STATS = {
    name: MetricSpec(
        f"snat_conntrack_{name}_total",
        "counter",
        text + " Summed over CPUs, since the network namespace was created." + CACHED,
        ("node",),
        SOURCE,
    )
    for name, text in _STAT_HELP.items()
}

OUTBOUND_FLOWS = MetricSpec(
    "snat_outbound_flows",
    "gauge",
    "Conntrack flows whose destination is outside conntrack.non_masquerade_cidrs (and not the node): flows that "
    'spend an Azure SNAT port. tcp_state is the lower-case conntrack TCP state ("" for other protocols, and for '
    'every flow read from Cilium\'s SNAT map, which keeps no TCP state); snat is "true" when the node itself '
    'source-NATed the flow (pods), "false" for flows the node started.' + CACHED,
    ("node", "protocol", "tcp_state", "snat"),
    SOURCE,
)
MAX_PER_DESTINATION = MetricSpec(
    "snat_outbound_flows_max_per_destination",
    "gauge",
    "Concurrent outbound flows to the busiest single destination of this node (TCP: destination IP and port; "
    "UDP and others: destination IP). Compare with azure_lb_snat_ports_allocated: new flows to that destination "
    "fail when it reaches the node's SNAT ports." + CACHED,
    ("node", "protocol"),
    SOURCE,
)
DESTINATION_FLOWS = MetricSpec(
    "snat_destination_flows",
    "gauge",
    "Concurrent outbound flows per destination, for the conntrack.top_k busiest destinations of this node "
    '(port is "" for UDP and other protocols, whose SNAT budget is per destination IP).' + CACHED,
    ("node", "destination", "port", "protocol"),
    SOURCE,
)
POD_FLOWS = MetricSpec(
    "snat_pod_outbound_flows",
    "gauge",
    'Concurrent outbound flows per source pod, for the conntrack.top_k busiest sources of this node. pod="host" '
    'gathers the node\'s own flows (host-network pods, kubelet), pod="unknown" sources the Kubernetes identity '
    "does not know." + CACHED,
    ("node", "namespace", "pod", "workload"),
    SOURCE,
)

CILIUM_ENTRIES = MetricSpec(
    "snat_cilium_nat_entries",
    "gauge",
    "Entries in Cilium's BPF SNAT map (cilium_snat_v4_external / _v6_external): two per masqueraded flow, an "
    "egress and a reverse one. Served when the flow table is read from Cilium (conntrack.source)." + CACHED,
    ("node", "family"),
    SOURCE,
)
CILIUM_ENTRIES_LIMIT = MetricSpec(
    "snat_cilium_nat_entries_limit",
    "gauge",
    "Maximum entries of Cilium's BPF SNAT map (its max_entries; an LRU map evicts the oldest mappings when "
    "full)." + CACHED,
    ("node", "family"),
    SOURCE,
)
CILIUM_TUPLE_FLOWS = MetricSpec(
    "snat_cilium_nat_tuple_flows",
    "gauge",
    "Flows Cilium masquerades per (egress IP, destination IP, destination port, protocol), for the "
    "conntrack.top_k busiest: each such tuple gets at most snat_cilium_nat_tuple_ports ports, then new flows "
    'are dropped ("No mapping for NAT masquerade").' + CACHED,
    ("node", "egress_ip", "destination", "port", "protocol"),
    SOURCE,
)
CILIUM_TUPLE_FLOWS_MAX = MetricSpec(
    "snat_cilium_nat_tuple_flows_max",
    "gauge",
    "Flows of the busiest (egress IP, destination IP, destination port, protocol) tuple in Cilium's SNAT map: "
    "divided by snat_cilium_nat_tuple_ports, how close the node is to Cilium's own port exhaustion." + CACHED,
    ("node",),
    SOURCE,
)
CILIUM_TUPLE_PORTS = MetricSpec(
    "snat_cilium_nat_tuple_ports",
    "gauge",
    "Ports Cilium's BPF masquerading can give one (egress IP, destination IP, destination port, protocol) tuple "
    "(conntrack.cilium_nat_ports).",
    ("node",),
    SOURCE,
)
CILIUM_MAP_ERRORS = MetricSpec(
    "snat_exporter_conntrack_cilium_map_errors_total",
    "counter",
    "Failed reads of a Cilium SNAT map (map: v4, v6), by reason: missing (not pinned under conntrack.bpffs), "
    "layout (another type, key or value size than Cilium 1.14-1.19), permission_denied, error.",
    ("map", "reason"),
    SOURCE,
)

SOURCE_INFO = MetricSpec(
    "snat_exporter_conntrack_source_info",
    "info",
    "Where the last collection read the flow table (table: netlink, procfs, cilium or none) and the counters "
    "(counters: netlink or procfs). table=\"cilium\" means the node's flow series come from Cilium's BPF SNAT "
    "map (eBPF host routing), not nf_conntrack.",
    ("node", "table", "counters"),
    SOURCE,
)
DUMP_DURATION = MetricSpec(
    "snat_exporter_conntrack_dump_duration_seconds",
    "histogram",
    "Wall time of one flow-table read and aggregation (dump, parse, aggregate).",
    ("source",),
    SOURCE,
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
ENTRIES_READ = MetricSpec(
    "snat_exporter_conntrack_entries_read_total",
    "counter",
    "Flow-table entries read, by source.",
    ("source",),
    SOURCE,
)
SLOW_PATH_ENTRIES = MetricSpec(
    "snat_exporter_conntrack_slow_path_entries_total",
    "counter",
    "Netlink entries parsed attribute by attribute because their buffer did not fit the fast path (ICMP, zones, "
    "offloaded flows...). A high share means slower collections, not wrong ones.",
    (),
    SOURCE,
)
NETLINK_ERRORS = MetricSpec(
    "snat_exporter_conntrack_netlink_errors_total",
    "counter",
    "Failed netlink requests, by reason (permission_denied, enobufs, interrupted, malformed, error).",
    ("reason",),
    SOURCE,
)

SPECS = (
    ENTRIES,
    ENTRIES_LIMIT,
    *STATS.values(),
    OUTBOUND_FLOWS,
    MAX_PER_DESTINATION,
    DESTINATION_FLOWS,
    POD_FLOWS,
    CILIUM_ENTRIES,
    CILIUM_ENTRIES_LIMIT,
    CILIUM_TUPLE_FLOWS,
    CILIUM_TUPLE_FLOWS_MAX,
    CILIUM_TUPLE_PORTS,
    CILIUM_MAP_ERRORS,
    SOURCE_INFO,
    DUMP_DURATION,
    ENTRIES_READ,
    SLOW_PATH_ENTRIES,
    NETLINK_ERRORS,
)
