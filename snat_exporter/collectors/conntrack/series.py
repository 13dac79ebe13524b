"""What one conntrack collection read, and the series made from it: counters, the aggregated flow table, Cilium's
NAT maps."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from snat_exporter.collectors.conntrack import cilium
from snat_exporter.collectors.conntrack.aggregate import FlowSummary
from snat_exporter.collectors.conntrack.config import ConntrackConfig
from snat_exporter.collectors.conntrack.metrics import (
    CILIUM_ENTRIES,
    CILIUM_ENTRIES_LIMIT,
    CILIUM_TUPLE_FLOWS,
    CILIUM_TUPLE_FLOWS_MAX,
    CILIUM_TUPLE_PORTS,
    DESTINATION_FLOWS,
    ENTRIES,
    ENTRIES_LIMIT,
    MAX_PER_DESTINATION,
    OUTBOUND_FLOWS,
    POD_FLOWS,
    SOURCE_INFO,
    STATS,
)
from snat_exporter.collectors.conntrack.parse.records import FlowKey
from snat_exporter.snapshot import Families, Snapshot


@dataclass
class Reading:
    """What one collection read, from whichever sources answered."""

    entries: int | None = None
    limit: int | None = None
    stats: dict[str, int] = field(default_factory=dict)
    counters_source: str = "none"
    table_source: str = "none"
    flows: Counter[FlowKey] | None = None
    local_addresses: set[str] = field(default_factory=set)
    nat: cilium.NatCounts | None = None
    cilium_maps: list[cilium.MapRead] = field(default_factory=list)


def snapshot_of(r: Reading, node_name: str, summary: FlowSummary | None, config: ConntrackConfig) -> Snapshot:
    """The series of one collection: ``summary`` is the aggregated flow table, None when no table was read."""
    f = Families()
    node = {"node": node_name}
    if r.entries is not None:
        f.add(ENTRIES, node, r.entries)
    if r.limit is not None:
        f.add(ENTRIES_LIMIT, node, r.limit)
    for name, value in r.stats.items():
        f.add(STATS[name], node, value)
    f.add(SOURCE_INFO, {**node, "table": r.table_source, "counters": r.counters_source}, 1)
    if summary is not None:
        for (proto, state, snat), n in sorted(summary.by_state.items()):
            f.add(OUTBOUND_FLOWS, {**node, "protocol": proto, "tcp_state": state, "snat": snat}, n)
        for proto, n in sorted(summary.max_per_destination.items()):
            f.add(MAX_PER_DESTINATION, {**node, "protocol": proto}, n)
        f.declare(DESTINATION_FLOWS)
        for (dst, port, proto), n in summary.destinations:
            f.add(DESTINATION_FLOWS, {**node, "destination": dst, "port": port, "protocol": proto}, n)
        f.declare(POD_FLOWS)
        for (namespace, pod, workload), n in summary.sources:
            f.add(POD_FLOWS, {**node, "namespace": namespace, "pod": pod, "workload": workload}, n)
    if r.nat is not None:
        _cilium_series(f, r.nat, r.cilium_maps, node, config)
    return Snapshot(f.build())


def _cilium_series(
    f: Families, counts: cilium.NatCounts, maps: list[cilium.MapRead], node: dict[str, str], config: ConntrackConfig
) -> None:
    for read in maps:
        f.add(CILIUM_ENTRIES, {**node, "family": read.layout.label}, read.entries)
        f.add(CILIUM_ENTRIES_LIMIT, {**node, "family": read.layout.label}, read.info.max_entries)
    tuples = counts.tuples()
    f.add(CILIUM_TUPLE_PORTS, node, config.cilium_nat_ports)
    f.add(CILIUM_TUPLE_FLOWS_MAX, node, max(tuples.values(), default=0))
    f.declare(CILIUM_TUPLE_FLOWS)
    # The k largest, ties broken by label so that the chosen series do not flap between collections.
    busiest = sorted(tuples.items(), key=lambda item: (-item[1], item[0]))[: config.top_k]
    for (egress, dst, port, proto), n in busiest:
        labels = {**node, "egress_ip": egress, "destination": dst, "port": port, "protocol": proto}
        f.add(CILIUM_TUPLE_FLOWS, labels, n)
