"""From counted flow keys to the figures an SRE reads: outbound flows by state, per destination, per pod.

The dump already collapsed the table into distinct keys with counts, so this is one pass over those keys, not
over every flow. Label values stay bounded whatever the traffic: only the ``top_k`` destinations and sources
get their own series.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from snat_exporter.collectors.conntrack.parse.records import PROTOCOLS, FlowKey
from snat_exporter.identity import Identity

log = logging.getLogger("snat_exporter.conntrack")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Labels = tuple[str, str, str]

HOST: Labels = ("", "host", "")
UNKNOWN: Labels = ("", "unknown", "")


def protocol_name(number: int) -> str:
    return PROTOCOLS.get(number, str(number))


class OutboundFilter:
    """Is a destination outbound? Outside the non-masquerade CIDRs and not one of the node's own addresses
    (traffic to the node is inbound, whatever its source). Cached per destination for one collection."""

    def __init__(self, non_masquerade: Iterable[Network], local_addresses: Iterable[str] = ()):
        self._v4 = [n for n in non_masquerade if n.version == 4]
        self._v6 = [n for n in non_masquerade if n.version == 6]
        self._local = frozenset(local_addresses)
        self._cache: dict[str, bool] = {}

    def __call__(self, ip: str) -> bool:
        out = self._cache.get(ip)
        if out is None:
            out = self._cache[ip] = self._decide(ip)
        return out

    def _decide(self, ip: str) -> bool:
        if ip in self._local:
            return False
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        networks = self._v4 if addr.version == 4 else self._v6
        return not any(addr in net for net in networks)


class SourceResolver:
    """Source IP -> (namespace, pod, workload), through the Kubernetes identity; the node's own addresses and
    host-network pods are "host", anything else unknown is "unknown". Cached for one collection."""

    def __init__(self, identity: Identity, local_addresses: Iterable[str] = ()):
        self._identity = identity
        self._local = frozenset(local_addresses)
        self._cache: dict[str, Labels] = {}

    def __call__(self, ip: str) -> Labels:
        out = self._cache.get(ip)
        if out is None:
            out = self._cache[ip] = self._resolve(ip)
        return out

    def _resolve(self, ip: str) -> Labels:
        if ip in self._local:
            return HOST
        try:
            pod = self._identity.pod_by_ip(ip)
            if pod is not None and not pod.host_network:
                return pod.namespace, pod.name, pod.workload
            if pod is not None or self._identity.node_by_ip(ip) is not None:
                return HOST
        except Exception:  # a lookup bug must not cost the node its flow figures
            log.warning("identity lookup failed", extra={"ip": ip}, exc_info=True)
        return UNKNOWN


@dataclass(frozen=True)
class FlowSummary:
    entries: int  # every flow read, outbound or not
    outbound: int
    by_state: dict[tuple[str, str, str], int]  # (protocol, tcp_state, snat "true"/"false") -> flows
    max_per_destination: dict[str, int]  # protocol -> flows to its busiest destination
    destinations: list[tuple[tuple[str, str, str], int]]  # top-K ((destination, port, protocol), flows)
    sources: list[tuple[Labels, int]]  # top-K ((namespace, pod, workload), flows)


def destination_key(dst: str, port: int, proto: int) -> tuple[str, str, str]:
    """Azure spends a SNAT port per destination IP and port for TCP, per destination IP for UDP."""
    name = protocol_name(proto)
    return dst, (str(port) if proto == 6 else ""), name


def summarise(
    flows: Mapping[FlowKey, int],
    *,
    is_outbound: Callable[[str], bool],
    source_of: Callable[[str], Labels],
    top_k: int,
) -> FlowSummary:
    entries = outbound = 0
    by_state: dict[tuple[str, str, str], int] = {}
    per_destination: dict[tuple[str, str, str], int] = {}
    per_source_ip: dict[str, int] = {}
    for (src, proto, dst, port, snat, state), count in flows.items():
        entries += count
        if not is_outbound(dst):
            continue
        outbound += count
        key = (protocol_name(proto), state, "true" if snat else "false")
        by_state[key] = by_state.get(key, 0) + count
        dest = destination_key(dst, port, proto)
        per_destination[dest] = per_destination.get(dest, 0) + count
        per_source_ip[src] = per_source_ip.get(src, 0) + count
    max_per_destination: dict[str, int] = {}
    for (_dst, _port, proto_name), count in per_destination.items():
        if count > max_per_destination.get(proto_name, 0):
            max_per_destination[proto_name] = count
    per_source: dict[Labels, int] = {}
    for ip, count in per_source_ip.items():
        labels = source_of(ip)
        per_source[labels] = per_source.get(labels, 0) + count
    return FlowSummary(
        entries=entries,
        outbound=outbound,
        by_state=by_state,
        max_per_destination=max_per_destination,
        destinations=top(per_destination, top_k),
        sources=top(per_source, top_k),
    )


def top(counts: Mapping[tuple[str, str, str], int], k: int) -> list[tuple[tuple[str, str, str], int]]:
    """The k largest, ties broken by label so that the chosen series do not flap between collections."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:k]
