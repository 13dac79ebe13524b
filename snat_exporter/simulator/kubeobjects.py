"""Kubernetes objects in their wire shape, for the fake API server and the tests that feed it: nodes and pods as
kube-apiserver returns them, the nodes of an Azure simulator scenario, and a kubeconfig pointing at the server."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import yaml


class ScenarioNode(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def ip(self) -> str: ...

    @property
    def pool(self) -> str: ...

    @property
    def zone(self) -> str: ...


def node_object(
    name: str,
    ip: str | Iterable[str],
    *,
    pool: str = "",
    zone: str = "",
    pool_label: str = "kubernetes.azure.com/agentpool",
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Node as the API serves it (the fields a reader may look at; status trimmed to addresses)."""
    ips = [ip] if isinstance(ip, str) else list(ip)
    all_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    if pool:
        all_labels[pool_label] = pool
    if zone:
        all_labels["topology.kubernetes.io/zone"] = zone
        all_labels["topology.kubernetes.io/region"] = zone.rsplit("-", 1)[0]
    all_labels.update(labels or {})
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {"name": name, "uid": str(uuid.uuid4()), "labels": all_labels},
        "spec": {"providerID": f"azure:///subscriptions/0/resourceGroups/mc/virtualMachineScaleSets/{pool}/0"},
        "status": {
            "addresses": [{"type": "Hostname", "address": name}] + [{"type": "InternalIP", "address": a} for a in ips],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod_object(
    namespace: str,
    name: str,
    ip: str | Iterable[str] | None,
    *,
    node: str = "",
    host_ip: str | None = None,
    owner: tuple[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    host_network: bool = False,
    phase: str = "Running",
) -> dict[str, Any]:
    """A Pod as the API serves it. ``owner`` is the controller (kind, name), e.g. ("ReplicaSet", "web-5d8f7c9b4")."""
    ips = [] if ip is None else ([ip] if isinstance(ip, str) else list(ip))
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": str(uuid.uuid4()),
        "labels": dict(labels or {}),
    }
    if owner is not None:
        kind, owner_name = owner
        api = {"ReplicaSet": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1", "Job": "batch/v1"}
        meta["ownerReferences"] = [
            {
                "apiVersion": api.get(kind, "v1"),
                "kind": kind,
                "name": owner_name,
                "uid": str(uuid.uuid4()),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    status: dict[str, Any] = {"phase": phase}
    if host_ip:
        status["hostIP"] = host_ip
        status["hostIPs"] = [{"ip": host_ip}]
    if ips:
        status["podIP"] = ips[0]
        status["podIPs"] = [{"ip": a} for a in ips]
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]}
    if node:
        spec["nodeName"] = node
    if host_network:
        spec["hostNetwork"] = True
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec, "status": status}


def write_kubeconfig(path: Path, url: str) -> Path:
    """A kubeconfig file that points the real client at this fake server (any token is accepted)."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "sim", "cluster": {"server": url}}],
                "users": [{"name": "exporter", "user": {"token": "not-a-secret"}}],
                "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": "exporter"}}],
                "current-context": "sim",
            }
        )
    )
    return path


def nodes_from_scenario(nodes: Iterable[ScenarioNode]) -> list[dict[str, Any]]:
    """Node objects for the nodes of an Azure simulator scenario (``load_scenario(name).nodes``)."""
    return [node_object(n.name, n.ip, pool=n.pool, zone=n.zone) for n in nodes]


def scenario_nodes(name: str) -> list[dict[str, Any]]:
    """Node objects for a built-in scenario of the Azure simulator, by name (``steady``, ...)."""
    from snat_exporter.simulator.scenario_load import load_scenario

    return nodes_from_scenario(load_scenario(name).nodes)
