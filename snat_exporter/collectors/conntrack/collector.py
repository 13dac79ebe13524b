"""The node conntrack collector: counters and the aggregated flow table of the node it runs on.

Sources, by preference: ctnetlink (needs CAP_NET_ADMIN; works on kernels built without
CONFIG_NF_CONNTRACK_PROCFS), then procfs (``/proc/net/nf_conntrack``, ``/proc/net/stat/nf_conntrack``). On a
node where Cilium masquerades pod egress in BPF (eBPF host routing) nf_conntrack never sees those flows: the flow
table is then read from Cilium's pinned SNAT maps (:mod:`cilium`), chosen per collection by :mod:`datapath`, and
the kernel's conntrack counters still come from netlink or procfs. The entry
count and limit also come from ``/proc/sys/net/netfilter``, which needs no privilege, so a collector without
CAP_NET_ADMIN and without procfs access still says how full the table is. What cannot be read is logged once at
start-up with the reason; the rest is served.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import time
from collections import Counter
from pathlib import Path

from snat_exporter.collectors.base import CollectError, CollectorContext
from snat_exporter.collectors.conntrack import cilium, datapath, netlink
from snat_exporter.collectors.conntrack.access import Access, announce, probe
from snat_exporter.collectors.conntrack.aggregate import FlowSummary, OutboundFilter, SourceResolver, summarise
from snat_exporter.collectors.conntrack.config import ConntrackConfig
from snat_exporter.collectors.conntrack.metrics import (
    CILIUM_MAP_ERRORS,
    DUMP_DURATION,
    ENTRIES_READ,
    NETLINK_ERRORS,
    SLOW_PATH_ENTRIES,
)
from snat_exporter.collectors.conntrack.parse.procfs import parse_proc_int, parse_proc_stat, parse_proc_table
from snat_exporter.collectors.conntrack.parse.records import FlowKey, MalformedError
from snat_exporter.collectors.conntrack.series import Reading, snapshot_of
from snat_exporter.snapshot import Snapshot

log = logging.getLogger("snat_exporter.conntrack")


def node_name(configured: str | None) -> str:
    return configured or os.environ.get("NODE_NAME") or socket.gethostname()


class ConntrackCollector:
    name = "conntrack"

    def __init__(self, config: ConntrackConfig, context: CollectorContext):
        self.config = config
        self.context = context
        self.node = node_name(config.node_name)
        self.proc = Path(config.procfs_path)
        self.access = Access()
        registry = context.registry
        self._duration = DUMP_DURATION.histogram(registry)
        self._entries_read = ENTRIES_READ.counter(registry)
        self._slow = SLOW_PATH_ENTRIES.counter(registry)
        self._netlink_errors = NETLINK_ERRORS.counter(registry)
        self._cilium_errors = CILIUM_MAP_ERRORS.counter(registry)
        self._failing: tuple[str, str] | None = None
        self._cilium_failing: dict[str, str] = {}  # map -> reason already logged (once per streak)
        self._table_choice = ""

    # ------------------------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self.access = await asyncio.to_thread(probe, self.config, self.proc)
        announce(self.access, self.config, self.node)

    async def collect(self) -> Snapshot:
        reading = await asyncio.to_thread(self._read)
        return self._snapshot(reading)

    async def close(self) -> None:
        pass  # every netlink request opens and closes its own socket

    # ---------------------------------------------------------------------------------------------- reading
    def _read(self) -> Reading:
        r = Reading()
        a = self.access
        if a.netlink:
            try:
                count = netlink.read_count()
                r.entries = count.get("entries")
                r.limit = count.get("limit")
                r.stats, _cpus = netlink.read_stats()
                r.counters_source = "netlink"
            except (OSError, MalformedError) as e:
                self._netlink_error(e, "counters", fallback=True)  # procfs or the sysctl count remain
        if r.counters_source == "none" and a.proc_stat:
            stats, entries = parse_proc_stat(self._read_text("net/stat/nf_conntrack"))
            r.stats, r.counters_source = stats, "procfs"
            r.entries = entries if r.entries is None else r.entries
        if r.entries is None:
            r.entries = self._sysctl("nf_conntrack_count")
        if r.limit is None:
            r.limit = self._sysctl("nf_conntrack_max")
        r.local_addresses = self._local_addresses()
        started = time.monotonic()
        choice = self._choose_table()
        if choice == datapath.CILIUM:
            self._read_cilium(r)
        elif a.netlink:
            try:
                dump = netlink.dump_table()
                r.flows, r.table_source = dump.flows, "netlink"
                self._entries_read.labels("netlink").inc(dump.entries)
                if dump.slow_entries:
                    self._slow.inc(dump.slow_entries)
                self._failing = None
            except (OSError, MalformedError, netlink.DumpInterrupted) as e:
                self._netlink_error(e, "table", fallback=self.config.source == "auto" and a.proc_table)
        if r.flows is None and a.proc_table and choice != datapath.CILIUM:
            with open(self.proc / "net/nf_conntrack") as f:
                r.flows, r.table_source = parse_proc_table(f), "procfs"
            self._entries_read.labels("procfs").inc(sum(r.flows.values()))
        if r.flows is not None:
            self._duration.labels(r.table_source).observe(time.monotonic() - started)
        if r.table_source == "none" and r.counters_source == "none" and r.entries is None:
            # The reason says which fix applies: a capability for a denial, a mount or a kernel option otherwise.
            whys = [w for w in (a.netlink_why, a.proc_table_why, a.proc_stat_why) if w]
            reason = "permission_denied" if any("permission denied" in w for w in whys) else "unavailable"
            raise CollectError(reason, "no conntrack source is readable: " + "; ".join(whys))
        return r

    def _choose_table(self) -> str:
        try:
            node = self.context.identity.node_by_name(self.node)
            cilium_config = self.context.identity.cilium_config()
        except Exception:  # a lookup bug must not cost the node its flow figures
            log.warning("identity lookup of the node failed", extra={"node": self.node}, exc_info=True)
            node, cilium_config = None, None
        choice = datapath.table_source(self.config.source, node, cilium_config)
        if choice != self._table_choice:
            # Said when it changes: with `auto` the first collections may run before the node object is known.
            log.info(
                "conntrack flow table source",
                extra={
                    "node": self.node,
                    "table": choice,
                    "configured": self.config.source,
                    "bpf_masquerade": datapath.masquerades_in_bpf(node, cilium_config),
                },
            )
            self._table_choice = choice
        return choice

    def _read_cilium(self, r: Reading) -> None:
        counts = cilium.NatCounts()
        missing: list[tuple[cilium.Layout, str]] = []
        for layout in cilium.LAYOUTS:
            path = cilium.map_path(self.config.bpffs, layout)
            try:
                r.cilium_maps.append(cilium.read_map(path, layout, counts))
                self._cilium_failing.pop(layout.label, None)
            except FileNotFoundError:
                missing.append((layout, path))
            except cilium.LayoutError as e:
                self._cilium_error(layout, "layout", str(e), logging.ERROR)
            except PermissionError as e:
                self._cilium_error(
                    layout,
                    "permission_denied",
                    f"{path}: {e.strerror}: the pinned map is root's (mode 0600): run as uid 0, or add "
                    "CAP_DAC_READ_SEARCH (kernels before 6.5 also need CAP_BPF)",
                    logging.WARNING,
                )
            except OSError as e:
                self._cilium_error(layout, "error", f"{path}: {e}", logging.WARNING)
        # One family missing is the cluster's IP family choice (Cilium pins no v6 map with IPv6 off); no map at
        # all means nothing to read here: the wrong bpffs, or Cilium is not masquerading in BPF on this node.
        if len(missing) == len(cilium.LAYOUTS):
            for layout, path in missing:
                self._cilium_error(
                    layout,
                    "missing",
                    f"{path} is not pinned (is the host's bpffs mounted at conntrack.bpffs, and does Cilium "
                    "masquerade in BPF on this node?)",
                    logging.WARNING,
                )
        else:
            for layout, _path in missing:
                self._cilium_failing.pop(layout.label, None)
        if r.cilium_maps:
            r.flows, r.table_source, r.nat = counts.flows(), "cilium", counts
            # The egress addresses are the node's own, even where the agent's network namespace does not show them.
            r.local_addresses |= counts.egress_addresses()
            self._entries_read.labels("cilium").inc(counts.entries)

    def _cilium_error(self, layout: cilium.Layout, reason: str, message: str, level: int) -> None:
        self._cilium_errors.labels(layout.label, reason).inc()
        if self._cilium_failing.get(layout.label) == reason:
            level = logging.DEBUG  # said once per streak: a node must not log every 15 s
        self._cilium_failing[layout.label] = reason
        log.log(
            level,
            "cannot read Cilium's SNAT map; its flows are not served",
            extra={"node": self.node, "map": layout.map_name, "reason": reason, "error": message},
        )

    def _netlink_error(self, e: BaseException, what: str, *, fallback: bool) -> None:
        if isinstance(e, PermissionError):
            reason = "permission_denied"
        elif isinstance(e, netlink.DumpInterrupted):
            reason = "interrupted"
        elif isinstance(e, MalformedError):
            reason = "malformed"
        elif isinstance(e, OSError) and e.errno == errno.ENOBUFS:
            reason = "enobufs"
        else:
            reason = "error"
        self._netlink_errors.labels(reason).inc()
        if not fallback:
            raise CollectError(reason, f"netlink {what}: {e}")  # the runner logs it, once per streak
        # Logged once per streak of the same fault, like the runner does: a node must not log every 15 s.
        level = logging.WARNING if self._failing != (what, reason) else logging.DEBUG
        self._failing = (what, reason)
        log.log(
            level,
            "conntrack netlink read failed, using procfs",
            extra={"what": what, "reason": reason, "error": str(e)},
        )

    def _read_text(self, rel: str) -> str:
        return (self.proc / rel).read_text()

    def _sysctl(self, name: str) -> int | None:
        try:
            return parse_proc_int(self._read_text(f"sys/net/netfilter/{name}"))
        except FileNotFoundError:
            return None  # conntrack not loaded in this namespace: nothing to report, not a fault
        except (OSError, MalformedError) as e:
            log.debug("cannot read sysctl", extra={"name": name, "error": str(e)})
            return None

    def _local_addresses(self) -> set[str]:
        try:
            return netlink.local_addresses()
        except (OSError, MalformedError) as e:
            log.warning("cannot list the node's addresses", extra={"error": str(e)})
            return set()

    # ---------------------------------------------------------------------------------------------- series
    def summarise(self, flows: Counter[FlowKey], local_addresses: set[str]) -> FlowSummary:
        return summarise(
            flows,
            is_outbound=OutboundFilter(self.config.non_masquerade_cidrs, local_addresses),
            source_of=SourceResolver(self.context.identity, local_addresses),
            top_k=self.config.top_k,
        )

    def _snapshot(self, r: Reading) -> Snapshot:
        summary = self.summarise(r.flows, r.local_addresses) if r.flows is not None else None
        return snapshot_of(r, self.node, summary, self.config)


def create(section: ConntrackConfig, context: CollectorContext) -> ConntrackCollector:
    return ConntrackCollector(section, context)
