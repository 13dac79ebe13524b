"""Who is behind an IP: the read-only lookup the Kubernetes collector offers every other collector.

Azure reports SNAT usage by backend IP (the node's InternalIP) and conntrack reports flows by source IP. A
collector asks this lookup for names; with the Kubernetes collector disabled or not yet synced it gets None and
keeps the IP labels, so a Kubernetes outage never makes data vanish.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

# AKS labels nodes whose pods egress through Cilium's eBPF host routing (ACNS, BpfVeth acceleration); there
# Cilium masquerades in BPF and nf_conntrack never sees pod egress.
EBPF_HOST_ROUTING_LABEL = "kubernetes.azure.com/ebpf-host-routing"


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    pool: str = ""  # the AKS agent pool (label kubernetes.azure.com/agentpool or agentpool)
    zone: str = ""  # topology.kubernetes.io/zone
    ebpf_host_routing: bool = False  # label EBPF_HOST_ROUTING_LABEL is "true"


@dataclass(frozen=True, slots=True)
class PodInfo:
    namespace: str
    name: str
    workload: str = ""  # the owning Deployment / StatefulSet / DaemonSet / Job / CronJob name
    workload_kind: str = ""
    host_network: bool = False


class Identity(Protocol):
    def node_by_ip(self, ip: str) -> NodeInfo | None: ...

    def node_by_name(self, name: str) -> NodeInfo | None: ...

    def cilium_config(self) -> Mapping[str, str] | None:
        """The data of Cilium's ConfigMap (cilium-config), None while unknown or where there is none."""
        ...

    def pod_by_ip(self, ip: str) -> PodInfo | None: ...


class NoIdentity:
    """The lookup used when the Kubernetes collector is disabled: nothing is known."""

    def node_by_ip(self, ip: str) -> NodeInfo | None:
        return None

    def node_by_name(self, name: str) -> NodeInfo | None:
        return None

    def cilium_config(self) -> Mapping[str, str] | None:
        return None

    def pod_by_ip(self, ip: str) -> PodInfo | None:
        return None
