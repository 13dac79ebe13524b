"""Settings of the node conntrack collector (section ``conntrack``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

from snat_exporter.settings import parse_choice, parse_cidr, parse_int, parse_string_list, setting

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# The ip-masq-agent-v2 default: RFC 1918, carrier-grade NAT and link-local never leave through SNAT.
DEFAULT_NON_MASQUERADE = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "127.0.0.0/8",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
)


@dataclass(frozen=True)
class ConntrackConfig:
    enabled: bool = setting(False, "Read this node's conntrack table (run as a DaemonSet in the host network).")
    interval: float = setting(15.0, "How often to dump and aggregate the flow table.")
    timeout: float = setting(10.0, "Deadline of one collection.")
    max_age: float = setting(120.0, "After failures, serve the last good values (marked stale) this long.")
    node_name: str | None = setting(
        None, "Value of the `node` label. Default: $NODE_NAME (downward API), else the host name."
    )
    non_masquerade_cidrs: tuple[Network, ...] = setting(
        default_factory=lambda: tuple(ipaddress.ip_network(c) for c in DEFAULT_NON_MASQUERADE),
        doc="Destinations that do not use SNAT (the ip-masq-agent nonMasqueradeCIDRs idea): flows to them are "
        "not outbound.",
        parse=parse_string_list(parse_cidr),
    )
    top_k: int = setting(20, "How many destinations and pods get their own series.", parse=parse_int(1, 1000))
    source: str = setting(
        "auto",
        "Where the flow table is read: `netlink` (ctnetlink, needs CAP_NET_ADMIN), `procfs` (/proc/net/nf_conntrack), "
        "`cilium` (Cilium's BPF SNAT maps under conntrack.bpffs, for eBPF host routing), or `auto`: `cilium` "
        "where the node masquerades in BPF (node label kubernetes.azure.com/ebpf-host-routing=true, or the "
        "cilium-config keys enable-bpf-masquerade / enable-host-legacy-routing, both from the Kubernetes "
        "collector), else netlink, then procfs.",
        parse=parse_choice("auto", "netlink", "procfs", "cilium"),
    )
    bpffs: str = setting(
        "/sys/fs/bpf",
        "Where the host's bpffs is mounted: Cilium pins its SNAT maps in <bpffs>/tc/globals/.",
    )
    cilium_nat_ports: int = setting(
        32768,
        "Ports Cilium's BPF masquerading can give one (egress IP, destination IP, destination port, protocol): its "
        "NAT range runs from the NodePort range's end + 1 to 65535 (32768-65535 by default).",
        parse=parse_int(1, 65536),
    )
    procfs_path: str = setting("/proc", "Where procfs is mounted (the fallback source and the sysctl counts).")

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.interval < 1:
            yield "interval", "must be at least 1s"
