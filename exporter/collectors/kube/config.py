"""Settings of the Kubernetes identity collector (section ``kubernetes``)."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.settings import setting


@dataclass(frozen=True)
class KubernetesConfig:
    enabled: bool = setting(False, "Name nodes and pods behind IPs, from a list+watch cache of the API server.")
    kubeconfig: str | None = setting(None, "Path of a kubeconfig file; in-cluster config when unset.")
    nodes: bool = setting(True, "Watch nodes (InternalIP -> node, node pool, zone). The cluster exporter needs it.")
    pods: bool = setting(
        False,
        "Watch pods (pod IP -> namespace, pod, workload). The node agent sets this and watches only its own node.",
    )
    node_name: str | None = setting(
        None,
        "Watch only pods on this node (field selector spec.nodeName). Default: $NODE_NAME when pods is true.",
    )
    timeout: float = setting(30.0, "Deadline of one list request and the server-side timeout of one watch.")
    max_age: float = setting(600.0, "How long a cache that lost its watch keeps answering before it is dropped.")
