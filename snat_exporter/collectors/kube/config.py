"""Settings of the Kubernetes identity collector (section ``kubernetes``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from snat_exporter.settings import parse_int, setting


@dataclass(frozen=True)
class KubernetesConfig:
    enabled: bool = setting(False, "Name nodes and pods behind IPs, from a list+watch cache of the API server.")
    kubeconfig: str | None = setting(None, "Path of a kubeconfig file; in-cluster config when unset.")
    nodes: bool = setting(True, "Watch nodes (InternalIP -> node, node pool, zone). The cluster exporter needs it.")
    pods: bool = setting(
        False,
        "Watch pods (pod IP -> namespace, pod, workload). The node agent sets this and watches only its own node.",
    )
    own_node: bool = setting(
        True,
        "With pods watched for one node and nodes off (the node agent), still watch that one Node object (field "
        "selector metadata.name): its labels tell conntrack.source=auto whether Cilium masquerades in BPF there. "
        "Needs get/list/watch on nodes.",
    )
    cilium_config: str = setting(
        "kube-system/cilium-config",
        "namespace/name of Cilium's ConfigMap, read by the node agent (with own_node) each run: its keys "
        "enable-bpf-masquerade and enable-host-legacy-routing tell conntrack.source=auto whether Cilium masquerades "
        "in BPF. Needs get on that one ConfigMap; empty: not read.",
    )
    node_name: str | None = setting(
        None,
        "Watch only pods on this node (field selector spec.nodeName). Default: $NODE_NAME when pods is true; "
        "with neither, every pod of the cluster is watched.",
    )
    interval: float = setting(
        15.0, "How often the cache's series and health are reported (the cache itself follows the watch events)."
    )
    timeout: float = setting(30.0, "Deadline of one list request (one page) and of one collector run.")
    watch_timeout: float = setting(
        300.0,
        "Server-side timeout of one watch request (it then resumes from its last resourceVersion, without a "
        "relist); also how long a silently dead connection can go unnoticed.",
    )
    page_size: int = setting(
        500, "Objects per page of a full list (limit/continue): bounds the memory of a relist.", parse=parse_int(1)
    )
    max_age: float = setting(600.0, "How long a cache that lost its watch keeps answering before it is dropped.")

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.cilium_config and len(self.cilium_config.split("/")) != 2:
            yield "cilium_config", "must be namespace/name, or empty"
        if self.enabled and not (self.nodes or self.pods):
            yield "nodes", "enabled with neither nodes nor pods: nothing to watch"
