"""Security properties of what `kubectl apply -k` would create, asserted on the rendered output of every tree."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.manifests import ALL_TREES, Obj, containers, key, one, pod_template, render, workloads

# The node agent needs CAP_NET_ADMIN for ctnetlink (the conntrack dump and stats); its eBPF host routing variant
# CAP_BPF, on kernels before 6.5 only, to open Cilium's pinned SNAT map. Nothing else needs any capability.
ALLOWED_CAPABILITIES = {"snat-exporter-node-agent": {"NET_ADMIN"}, "snat-exporter-node-agent-ebpf": {"BPF"}}
HOST_NETWORK = {"snat-exporter-node-agent", "snat-exporter-node-agent-ebpf"}
# The one host path: the host's bpffs, read-only, where Cilium pins its SNAT map.
HOST_PATHS = {"snat-exporter-node-agent-ebpf": {"/sys/fs/bpf"}}
# Volume types the Pod Security "restricted" profile allows.
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def _effective(pod_spec: Obj, container: Obj, field: str) -> Any:
    """A securityContext field as the kubelet resolves it: the container's value, else the pod's."""
    value = container.get("securityContext", {}).get(field)
    return value if value is not None else pod_spec.get("securityContext", {}).get(field)


def _all_containers(tree: str) -> list[tuple[Obj, Obj, Obj]]:
    out = []
    for workload in workloads(render(ALL_TREES[tree])):
        spec = pod_template(workload)["spec"]
        out += [(workload, spec, c) for c in containers(spec)]
    assert out, "no containers rendered"
    return out


TREES = sorted(ALL_TREES)


@pytest.mark.parametrize("tree", TREES)
def test_no_container_is_privileged_or_can_escalate(tree: str) -> None:
    for workload, _spec, container in _all_containers(tree):
        context = container.get("securityContext", {})
        assert context.get("privileged") is not True, key(workload)
        # Explicitly false: the default is true whenever a capability is added.
        assert context.get("allowPrivilegeEscalation") is False, key(workload)
        assert context.get("procMount", "Default") == "Default", key(workload)


@pytest.mark.parametrize("tree", TREES)
def test_capabilities_are_dropped_and_only_the_agent_adds_net_admin(tree: str) -> None:
    for workload, _spec, container in _all_containers(tree):
        capabilities = container.get("securityContext", {}).get("capabilities", {})
        assert "ALL" in capabilities.get("drop", []), key(workload)
        added = set(capabilities.get("add", []))
        assert added <= ALLOWED_CAPABILITIES.get(workload["metadata"]["name"], set()), f"{key(workload)} adds {added}"
    agent = one(render(ALL_TREES[tree]), "DaemonSet", "snat-exporter-node-agent")
    (container,) = pod_template(agent)["spec"]["containers"]
    assert container["securityContext"]["capabilities"]["add"] == ["NET_ADMIN"], "the agent cannot dump conntrack"


@pytest.mark.parametrize("tree", TREES)
def test_non_root_wherever_no_capability_is_needed(tree: str) -> None:
    for workload, spec, container in _all_containers(tree):
        needs_capability = bool(container.get("securityContext", {}).get("capabilities", {}).get("add"))
        if needs_capability:
            continue
        assert _effective(spec, container, "runAsNonRoot") is True, key(workload)
        uid = _effective(spec, container, "runAsUser")
        assert uid is not None and uid != 0, f"{key(workload)}: set a numeric non-zero runAsUser"


@pytest.mark.parametrize("tree", TREES)
def test_root_filesystem_is_read_only_and_seccomp_is_on(tree: str) -> None:
    for workload, spec, container in _all_containers(tree):
        assert container.get("securityContext", {}).get("readOnlyRootFilesystem") is True, key(workload)
        profile = _effective(spec, container, "seccompProfile") or {}
        assert profile.get("type") == "RuntimeDefault", key(workload)


@pytest.mark.parametrize("tree", TREES)
def test_no_host_namespaces_but_the_agents_network(tree: str) -> None:
    for workload in workloads(render(ALL_TREES[tree])):
        spec = pod_template(workload)["spec"]
        assert not spec.get("hostPID") and not spec.get("hostIPC"), key(workload)
        assert bool(spec.get("hostNetwork")) == (workload["metadata"]["name"] in HOST_NETWORK), key(workload)
        assert not spec.get("shareProcessNamespace"), key(workload)
        allowed = HOST_PATHS.get(workload["metadata"]["name"], set())
        host_volumes = {v["name"]: v["hostPath"]["path"] for v in spec.get("volumes", []) if "hostPath" in v}
        assert set(host_volumes.values()) <= allowed, f"{key(workload)} mounts a host path"
        for container in containers(spec):
            for mount in container.get("volumeMounts", []):
                if mount["name"] in host_volumes:
                    assert mount.get("readOnly") is True, f"{key(workload)} mounts {mount['mountPath']} writable"
        for container in containers(spec):
            assert all("hostPort" not in p or spec.get("hostNetwork") for p in container.get("ports", [])), key(
                workload
            )


@pytest.mark.parametrize("tree", TREES)
def test_every_container_has_requests_and_limits(tree: str) -> None:
    for workload, _spec, container in _all_containers(tree):
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{key(workload)}: {kind}"


def test_cluster_exporter_meets_the_restricted_pod_security_profile() -> None:
    """The agent needs `privileged` (host network, NET_ADMIN); the exporter must not need more than `restricted`."""
    deployment = one(render(ALL_TREES["base"]), "Deployment", "snat-exporter-cluster")
    spec = pod_template(deployment)["spec"]
    assert {next(k for k in v if k != "name") for v in spec.get("volumes", [])} <= RESTRICTED_VOLUMES
    for container in containers(spec):
        context = container["securityContext"]
        assert _effective(spec, container, "runAsNonRoot") is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"] and not context["capabilities"].get("add")
        assert (_effective(spec, container, "seccompProfile") or {}).get("type") in ("RuntimeDefault", "Localhost")
        assert not any("hostPort" in p for p in container.get("ports", []))


def test_namespace_admits_the_agent_and_says_so() -> None:
    namespace = one(render(ALL_TREES["base"]), "Namespace", "snat-exporter")
    labels = namespace["metadata"]["labels"]
    # hostNetwork and NET_ADMIN are outside `baseline`: anything stricter would reject the DaemonSet's pods.
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert labels["pod-security.kubernetes.io/warn"] in ("baseline", "restricted")
