"""Which flow table holds this node's pod egress: nf_conntrack, or Cilium's BPF SNAT map.

Decided from what the cluster says about the node, never from the map existing: with kube-proxy replacement
Cilium pins ``cilium_snat_v4_external`` in every mode, also where iptables still masquerades pod egress (the
standard Azure CNI Powered by Cilium). Two facts count:

- the node label ``kubernetes.azure.com/ebpf-host-routing=true``, set by AKS on nodes with eBPF host routing
  (Advanced Container Networking Services, ``--acns-datapath-acceleration-mode BpfVeth``);
- the cilium-config ConfigMap keys ``enable-bpf-masquerade: "true"`` with ``enable-host-legacy-routing`` not
  ``"true"``: Cilium masquerades in its programs and its host routing bypasses iptables and nf_conntrack.
"""

from __future__ import annotations

from collections.abc import Mapping

from snat_exporter.identity import NodeInfo

CILIUM = "cilium"
CONNTRACK = "conntrack"


def masquerades_in_bpf(node: NodeInfo | None, cilium_config: Mapping[str, str] | None = None) -> bool | None:
    """True when the node masquerades pod egress in BPF, False when it does not, None while nothing is known yet
    (the node object and the ConfigMap not read): the caller then keeps what works everywhere, nf_conntrack."""
    if node is not None and node.ebpf_host_routing:
        return True
    if cilium_config is not None:
        bpf_masq = cilium_config.get("enable-bpf-masquerade", "").strip().lower() == "true"
        legacy = cilium_config.get("enable-host-legacy-routing", "").strip().lower() == "true"
        return bpf_masq and not legacy
    if node is not None:
        return False
    return None


def table_source(configured: str, node: NodeInfo | None, cilium_config: Mapping[str, str] | None = None) -> str:
    """``cilium`` or ``conntrack`` (netlink or procfs, as the collector can read them) for ``conntrack.source``."""
    if configured == CILIUM:
        return CILIUM
    if configured == "auto" and masquerades_in_bpf(node, cilium_config):
        return CILIUM
    return CONNTRACK
