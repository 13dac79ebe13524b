"""The kustomize tree renders, every object is valid for the API server, and the pieces refer to each other right.

No cluster here: what a `kubectl apply -k` would reject (schema, unknown fields, CRD shape) and what would deploy
but not work (a selector that matches nothing, a port name that does not exist, a config the exporter refuses) is
checked on the output of the real `kubectl kustomize`.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from snat_exporter import __version__
from snat_exporter.config import DEFAULT_PORT, load_config
from tests.conftest import ROOT
from tests.deploy.manifests import (
    ALL_TREES,
    OVERLAYS,
    Obj,
    containers,
    key,
    labels_match,
    of_kind,
    one,
    pod_files,
    pod_template,
    render,
    render_dir,
    validate_custom,
    workloads,
)

# AKS keeps about four minor versions in support; check the oldest we claim and the newest the validator ships.
KUBERNETES_VERSIONS = ("1.32", kubernetes_validate.utils.latest_version())
CUSTOM_GROUPS = ("monitoring.coreos.com/", "azmonitoring.coreos.com/")
CONFIG_PATH = "/etc/snat-exporter/config.yaml"
CLUSTER, AGENT = "snat-exporter-cluster", "snat-exporter-node-agent"
EBPF_AGENT = "snat-exporter-node-agent-ebpf"
EBPF_LABEL = "kubernetes.azure.com/ebpf-host-routing"


def is_custom(obj: Obj) -> bool:
    return obj["apiVersion"].startswith(CUSTOM_GROUPS)


@pytest.mark.parametrize("tree", sorted(ALL_TREES))
def test_every_tree_renders_with_kubectl_kustomize(tree: str) -> None:
    objs = render(ALL_TREES[tree])
    kinds = {o["kind"] for o in objs}
    assert {"Namespace", "ServiceAccount", "ClusterRole", "Deployment", "DaemonSet", "ConfigMap"} <= kinds
    assert len({key(o) for o in objs}) == len(objs), "two objects with the same kind, namespace and name"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("tree", sorted(ALL_TREES))
def test_every_builtin_object_validates_against_the_kubernetes_schema(tree: str, version: str) -> None:
    failures = []
    for obj in render(ALL_TREES[tree]):
        if is_custom(obj):
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            failures.append(f"{key(obj)} at {'.'.join(map(str, e.path))}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            failures.append(f"{key(obj)}: {e.message}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("tree", sorted(OVERLAYS))
def test_every_custom_object_validates_against_its_crd_schema(tree: str) -> None:
    custom = [o for o in render(OVERLAYS[tree]) if is_custom(o)]
    assert custom, f"the {tree} overlay adds no scrape objects"
    for obj in custom:
        validate_custom(obj)


def test_the_crd_check_rejects_what_the_api_server_would() -> None:
    """The CRD subsets are only worth something if a wrong field or value fails them."""
    monitor = one(render(OVERLAYS["azure-managed-prometheus"]), "PodMonitor", CLUSTER)
    typo = yaml.safe_load(yaml.safe_dump(monitor))
    typo["spec"]["podMetricsEndpoints"][0]["honourLabels"] = True
    with pytest.raises(jsonschema.ValidationError, match="honourLabels"):
        validate_custom(typo)
    upper = yaml.safe_load(yaml.safe_dump(monitor))
    upper["spec"]["podMetricsEndpoints"][0]["scheme"] = "HTTP"  # accepted upstream, not by Azure's older CRD
    with pytest.raises(jsonschema.ValidationError, match="HTTP"):
        validate_custom(upper)
    rule = one(render(OVERLAYS["kube-prometheus-stack"]), "PrometheusRule", "snat-exporter-alerts")
    rule["spec"]["groups"][0]["rules"][0]["for"] = "five minutes"
    with pytest.raises(jsonschema.ValidationError, match="five minutes"):
        validate_custom(rule)


@pytest.mark.parametrize("tree", sorted(OVERLAYS))
def test_overlays_only_add_to_the_base(tree: str) -> None:
    """Both overlays deploy the same exporter; they differ only in how Prometheus finds it."""
    base = {key(o): o for o in render(ALL_TREES["base"])}
    overlay = {key(o): o for o in render(OVERLAYS[tree])}
    assert set(base) <= set(overlay)
    for k, obj in base.items():
        other = overlay[k]
        other["metadata"].get("labels", {}).pop("release", None)
        assert other == obj, f"{k} differs from the base in the {tree} overlay"
    for k in set(overlay) - set(base):
        obj = overlay[k]
        # The identity a managed Prometheus scrapes with (its token, its /metrics permission) is part of scraping.
        scraper = obj["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "scraper"
        assert is_custom(obj) or obj["kind"] == "ConfigMap" or scraper, f"{k}: overlays add scrape objects only"


# ------------------------------------------------------------------------------------------------ wiring
@pytest.fixture(scope="module")
def base() -> list[Obj]:
    return render(ALL_TREES["base"])


def test_everything_namespaced_lives_in_the_one_namespace(base: list[Obj]) -> None:
    namespaces = of_kind(base, "Namespace")
    assert [n["metadata"]["name"] for n in namespaces] == ["snat-exporter"]
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass"}
    for obj in base:
        if obj["kind"] not in cluster_scoped:
            assert obj["metadata"].get("namespace") == "snat-exporter", key(obj)


def test_one_cluster_exporter_and_one_agent_per_node(base: list[Obj]) -> None:
    deployment = one(base, "Deployment", CLUSTER)
    daemonset = one(base, "DaemonSet", AGENT)
    assert deployment["spec"]["replicas"] == 1
    for workload in (deployment, daemonset):
        labels = pod_template(workload)["metadata"]["labels"]
        assert labels_match(workload["spec"]["selector"], labels)
        # No other workload's pods answer to this selector (a Service or monitor would pick up both).
        others = [w for w in workloads(base) if w is not workload]
        assert not any(
            labels_match(workload["spec"]["selector"], pod_template(w)["metadata"]["labels"]) for w in others
        )


def test_the_image_is_this_release_and_the_entry_point_serves_the_mounted_config(base: list[Obj]) -> None:
    for workload in workloads(base):
        spec = pod_template(workload)["spec"]
        (container,) = spec["containers"]
        assert container["image"].endswith(f"/snat-exporter:{__version__}"), container["image"]
        assert "command" not in container, "the image's ENTRYPOINT (snat-exporter) is the command"
        assert container["args"] == ["serve", "--config", CONFIG_PATH]
        mount = next(m for m in container["volumeMounts"] if CONFIG_PATH.startswith(m["mountPath"] + "/"))
        volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        configmap = one(base, "ConfigMap", volume["configMap"]["name"])
        assert Path(CONFIG_PATH).name in configmap["data"], "the mounted ConfigMap has no config.yaml"


def _config_of(base: list[Obj], workload: Obj, tmp: Path) -> Path:
    """The config.yaml of the workload, written with the files it names (see pod_files)."""
    spec = pod_template(workload)["spec"]
    names = [v["configMap"]["name"] for v in spec["volumes"] if "configMap" in v]
    (name,) = names
    return pod_files(one(base, "ConfigMap", name)["data"], tmp)


@pytest.mark.parametrize(
    ("kind", "name", "collectors"),
    [
        ("Deployment", CLUSTER, "azure, kubernetes"),
        ("DaemonSet", AGENT, "kubernetes, conntrack"),
        ("DaemonSet", EBPF_AGENT, "kubernetes, conntrack"),
    ],
)
def test_shipped_configs_pass_check_config(
    base: list[Obj], tmp_path: Path, kind: str, name: str, collectors: str
) -> None:
    """The exact bytes the pod will read, through the real CLI: exit 0 and the intended collectors."""
    path = _config_of(base, one(base, kind, name), tmp_path)
    env = {"PATH": "/usr/bin:/bin"}  # no SNAT_EXPORTER_* from the developer's shell
    proc = subprocess.run(
        [sys.executable, "-m", "snat_exporter", "check-config", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"collectors enabled: {collectors})" in proc.stdout


def test_configs_give_each_role_only_its_own_collectors(base: list[Obj], tmp_path: Path) -> None:
    cluster_file = _config_of(base, one(base, "Deployment", CLUSTER), tmp_path / "cluster")
    agent_file = _config_of(base, one(base, "DaemonSet", AGENT), tmp_path / "agent")
    cluster, agent = load_config(cluster_file, environ={}), load_config(agent_file, environ={})
    assert cluster.azure.credential == "workload_identity"
    assert cluster.kubernetes.nodes and not cluster.kubernetes.pods and not cluster.conntrack.enabled
    assert agent.kubernetes.pods and not agent.kubernetes.nodes and not agent.azure.enabled
    # The node name comes from the downward API, not from a value baked into a cluster-wide ConfigMap.
    assert agent.kubernetes.node_name is None and agent.conntrack.node_name is None
    assert agent.conntrack.source == "auto"
    ebpf_file = _config_of(base, one(base, "DaemonSet", EBPF_AGENT), tmp_path / "ebpf")
    ebpf = load_config(ebpf_file, environ={})
    assert (ebpf.conntrack.source, ebpf.conntrack.bpffs) == ("cilium", "/sys/fs/bpf")
    assert ebpf.kubernetes.pods and not ebpf.kubernetes.nodes and not ebpf.azure.enabled
    for config in (cluster, agent):
        assert config.listen[1] == DEFAULT_PORT


def test_ports_probes_and_service_line_up(base: list[Obj]) -> None:
    for workload in workloads(base):
        (container,) = pod_template(workload)["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"https": DEFAULT_PORT}
        # The probes' paths are the two that auth: kubernetes leaves open; the kubelet does not check certificates.
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
        assert container["startupProbe"]["httpGet"]["port"] == "https"
        assert container["startupProbe"]["httpGet"]["scheme"] == "HTTPS"
    service = one(base, "Service", CLUSTER)
    deployment = one(base, "Deployment", CLUSTER)
    assert labels_match({"matchLabels": service["spec"]["selector"]}, pod_template(deployment)["metadata"]["labels"])
    daemonset = one(base, "DaemonSet", AGENT)
    assert not labels_match({"matchLabels": service["spec"]["selector"]}, pod_template(daemonset)["metadata"]["labels"])
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["https"]
    agents = one(base, "Service", AGENT)
    assert agents["spec"]["clusterIP"] == "None"
    assert labels_match({"matchLabels": agents["spec"]["selector"]}, pod_template(daemonset)["metadata"]["labels"])


def test_node_agent_runs_on_every_linux_node_in_the_host_network(base: list[Obj]) -> None:
    daemonset = one(base, "DaemonSet", AGENT)
    spec = pod_template(daemonset)["spec"]
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert {"operator": "Exists"} in spec["tolerations"], "must tolerate every taint of every node pool"
    assert spec.get("nodeSelector") == {"kubernetes.io/os": "linux"}
    priority = one(base, "PriorityClass", spec["priorityClassName"])
    assert 0 < priority["value"] < 1_000_000_000 and priority["globalDefault"] is False
    (container,) = spec["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    # Two agents on one node would fight over the host port: a surge must not happen.
    assert daemonset["spec"]["updateStrategy"]["rollingUpdate"].get("maxSurge", 0) in (0, "0", "0%")


def _schedules_on(spec: Obj, labels: dict[str, str]) -> bool:
    """nodeSelector and required node affinity (matchExpressions of any term), as the scheduler applies them."""
    if any(labels.get(k) != v for k, v in spec.get("nodeSelector", {}).items()):
        return False
    required = spec.get("affinity", {}).get("nodeAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    return any(labels_match({"matchExpressions": t["matchExpressions"]}, labels) for t in required["nodeSelectorTerms"])


def test_each_linux_node_runs_exactly_one_node_agent(base: list[Obj]) -> None:
    agents = [one(base, "DaemonSet", AGENT), one(base, "DaemonSet", EBPF_AGENT)]
    linux = {"kubernetes.io/os": "linux"}
    for labels, expected in [
        (linux, AGENT),
        ({**linux, EBPF_LABEL: "true"}, EBPF_AGENT),
        ({**linux, EBPF_LABEL: "false"}, AGENT),
    ]:
        running = [a["metadata"]["name"] for a in agents if _schedules_on(pod_template(a)["spec"], labels)]
        assert running == [expected], labels
    assert not any(_schedules_on(pod_template(a)["spec"], {"kubernetes.io/os": "windows"}) for a in agents)


def test_ebpf_agent_reads_the_bpffs_read_only_with_cap_bpf_and_otherwise_matches_the_agent(base: list[Obj]) -> None:
    base = copy.deepcopy(base)  # the fixture is shared by the module: compare on a copy we may change
    standard, ebpf = pod_template(one(base, "DaemonSet", AGENT)), pod_template(one(base, "DaemonSet", EBPF_AGENT))
    (container,) = ebpf["spec"]["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "bpffs")
    assert mount == {
        "name": "bpffs",
        "mountPath": "/sys/fs/bpf",
        "readOnly": True,
        "mountPropagation": "HostToContainer",
    }
    volume = next(v for v in ebpf["spec"]["volumes"] if v["name"] == "bpffs")
    assert volume["hostPath"] == {"path": "/sys/fs/bpf", "type": "Directory"}
    security = container["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["BPF"]}, "no NET_ADMIN: counters from procfs"
    assert security["privileged"] is False and security["readOnlyRootFilesystem"] is True
    # Everything else is the standard agent's, so that a change to one is made to both.
    for spec in (standard, ebpf):
        spec["metadata"]["labels"].pop("app.kubernetes.io/instance")
        spec["spec"].pop("nodeSelector")
        spec["spec"].pop("affinity", None)
        (c,) = spec["spec"]["containers"]
        c["securityContext"].pop("capabilities")
        c["volumeMounts"] = [m for m in c["volumeMounts"] if m["name"] != "bpffs"]
        spec["spec"]["volumes"] = [v for v in spec["spec"]["volumes"] if v["name"] not in ("bpffs", "config")]
    assert ebpf == standard


def test_disruption_budget_covers_the_exporter_without_blocking_node_drains(base: list[Obj]) -> None:
    pdb = one(base, "PodDisruptionBudget", CLUSTER)
    deployment = one(base, "Deployment", CLUSTER)
    assert labels_match(pdb["spec"]["selector"], pod_template(deployment)["metadata"]["labels"])
    # minAvailable: 1 on one replica would stall every AKS upgrade; at least one pod must be evictable.
    assert "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["maxUnavailable"] >= deployment["spec"]["replicas"]


# ------------------------------------------------------------------------------------------------ identity
def test_only_the_cluster_exporter_gets_an_azure_identity(base: list[Obj]) -> None:
    deployment, daemonset = one(base, "Deployment", CLUSTER), one(base, "DaemonSet", AGENT)
    exporter_sa = one(base, "ServiceAccount", pod_template(deployment)["spec"]["serviceAccountName"])
    agent_sa = one(base, "ServiceAccount", pod_template(daemonset)["spec"]["serviceAccountName"])
    assert exporter_sa is not agent_sa
    assert pod_template(deployment)["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert "azure.workload.identity/client-id" in exporter_sa["metadata"]["annotations"]
    assert "azure.workload.identity/use" not in pod_template(daemonset)["metadata"]["labels"]
    assert not any(k.startswith("azure.workload.identity/") for k in agent_sa["metadata"].get("annotations", {}))


def _rules_for(base: list[Obj], service_account: str) -> list[Obj]:
    rules = []
    for binding in of_kind(base, "ClusterRoleBinding") + of_kind(base, "RoleBinding"):
        subjects = binding.get("subjects", [])
        if any(s["kind"] == "ServiceAccount" and s["name"] == service_account for s in subjects):
            assert all(s.get("namespace") == "snat-exporter" for s in subjects), key(binding)
            role = one(base, binding["roleRef"]["kind"], binding["roleRef"]["name"])
            rules += role["rules"]
    return rules


def _grants(rules: list[Obj]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def _read(*resources: tuple[str, str]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for g, r in resources for v in ("get", "list", "watch")}


# auth: kubernetes asks who a token is and what it may do; creating these reviews changes nothing in the cluster.
REVIEWS = {
    ("authentication.k8s.io", "tokenreviews", "create"),
    ("authorization.k8s.io", "subjectaccessreviews", "create"),
}


def test_rbac_is_read_only_and_split_by_role(base: list[Obj]) -> None:
    exporter = _grants(_rules_for(base, CLUSTER))
    agent = _grants(_rules_for(base, AGENT))
    assert exporter == _read(("", "nodes")) | REVIEWS
    # The kube collector derives Deployment/CronJob from owner names: no ReplicaSet or Job reads.
    # Nodes: its own Node object (field selector), whose label says where pod egress is masqueraded.
    # Cilium's ConfigMap, by name: the same fact where the label is not set.
    assert agent == _read(("", "pods"), ("", "nodes")) | REVIEWS | {("", "configmaps", "get")}
    for role in of_kind(base, "ClusterRole") + of_kind(base, "Role"):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], key(role)
            assert not rule.get("nonResourceURLs"), key(role)
            # resourceNames narrows a get to named objects; the one such rule is the agent's cilium-config read.
            if rule.get("resourceNames"):
                assert (rule["resources"], rule["resourceNames"], rule["verbs"]) == (
                    ["configmaps"],
                    ["cilium-config"],
                    ["get"],
                ), key(role)
    # Every role is bound, and every binding names an existing ServiceAccount.
    accounts = {sa["metadata"]["name"] for sa in of_kind(base, "ServiceAccount")}
    for binding in of_kind(base, "ClusterRoleBinding"):
        assert {s["name"] for s in binding["subjects"]} <= accounts


# ------------------------------------------------------------------------------------------------ scraping
def _scrape_targets(objs: list[Obj], base: list[Obj]) -> dict[str, list[Obj]]:
    """Monitor name -> the workloads whose pods it scrapes (through a Service for a ServiceMonitor)."""
    out = {}
    for monitor in [o for o in objs if o["kind"] in ("PodMonitor", "ServiceMonitor")]:
        selector = monitor["spec"]["selector"]
        if monitor["kind"] == "ServiceMonitor":
            services = [s for s in of_kind(base, "Service") if labels_match(selector, s["metadata"]["labels"])]
            assert len(services) == 1, f"{key(monitor)} selects {len(services)} Services"
            pod_selector = {"matchLabels": services[0]["spec"]["selector"]}
            ports = {p["name"] for p in services[0]["spec"]["ports"]}
            endpoints = monitor["spec"]["endpoints"]
        else:
            pod_selector = selector
            endpoints = monitor["spec"]["podMetricsEndpoints"]
            ports = None
        matched = [w for w in workloads(base) if labels_match(pod_selector, pod_template(w)["metadata"]["labels"])]
        assert matched, f"{key(monitor)} scrapes no workload"
        if ports is None:
            ports = {p["name"] for w in matched for (c,) in [pod_template(w)["spec"]["containers"]] for p in c["ports"]}
        for endpoint in endpoints:
            assert endpoint["port"] in ports, f"{key(monitor)}: no port named {endpoint['port']}"
            assert endpoint.get("path", "/metrics") == "/metrics"
            # Our own node/namespace/pod labels must not be renamed exported_* by the target's labels.
            assert endpoint.get("honorLabels") is True, key(monitor)
        out[monitor["metadata"]["name"]] = matched
    return out


def _job(monitor: Obj) -> str:
    endpoints = monitor["spec"].get("endpoints") or monitor["spec"]["podMetricsEndpoints"]
    (endpoint,) = endpoints
    jobs = [r["replacement"] for r in endpoint.get("relabelings", []) if r.get("targetLabel") == "job"]
    assert len(jobs) == 1, f"{key(monitor)}: set one stable job label"
    return str(jobs[0])


@pytest.mark.parametrize("tree", sorted(OVERLAYS))
def test_each_overlay_scrapes_both_components_under_stable_job_names(tree: str, base: list[Obj]) -> None:
    objs = render(OVERLAYS[tree])
    targets = _scrape_targets(objs, base)
    assert sorted(key(w) for ws in targets.values() for w in ws) == sorted(
        key(w)
        for w in [one(base, "Deployment", CLUSTER), one(base, "DaemonSet", AGENT), one(base, "DaemonSet", EBPF_AGENT)]
    )
    monitors = [o for o in objs if o["kind"] in ("PodMonitor", "ServiceMonitor")]
    jobs = {o["metadata"]["name"]: _job(o) for o in monitors}
    assert sorted(jobs.values()) == ["snat-exporter", "snat-exporter-node"]
    if tree == "kube-prometheus-stack":
        assert {o["apiVersion"] for o in monitors} == {"monitoring.coreos.com/v1"}
        # The chart's Prometheus selects monitors and rules by the Helm release label.
        for obj in [o for o in objs if is_custom(o)]:
            assert obj["metadata"]["labels"].get("release") == "kube-prometheus-stack", key(obj)
    else:
        assert {(o["apiVersion"], o["kind"]) for o in monitors} == {("azmonitoring.coreos.com/v1", "PodMonitor")}
        for monitor in monitors:
            limits = {
                k: monitor["spec"].get(k) for k in ("labelLimit", "labelNameLengthLimit", "labelValueLengthLimit")
            }
            assert limits == {"labelLimit": 63, "labelNameLengthLimit": 511, "labelValueLengthLimit": 1023}


def _documented_overlay() -> str:
    docs = (ROOT / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", docs, flags=re.S)
    (block,) = [b for b in blocks if b.startswith("# my-snat/kustomization.yaml")]
    return block


def test_a_user_overlay_as_documented_replaces_config_identity_and_image(tmp_path: Path) -> None:
    """docs/deploy.md tells users to keep their settings in an overlay of their own: render that very recipe."""
    checkout = tmp_path / "snat-exporter"
    checkout.symlink_to(ROOT)
    mine = tmp_path / "my-snat"
    mine.mkdir()
    config = (ROOT / "deploy" / "kubernetes" / "base" / "config" / "cluster-exporter.yaml").read_text()
    (mine / "cluster-exporter.yaml").write_text(config.replace("my-aks-cluster", "aks-prod"))
    recipe = _documented_overlay().replace("<CLIENT_ID>", "99999999-8888-7777-6666-555555555555")
    (mine / "kustomization.yaml").write_text(recipe.replace("<ACR>", "contoso"))
    objs = render_dir(mine)
    deployment = one(objs, "Deployment", CLUSTER)
    assert "aks-prod" in _config_of(objs, deployment, tmp_path / "pod").read_text()
    sa = one(objs, "ServiceAccount", CLUSTER)
    assert sa["metadata"]["annotations"]["azure.workload.identity/client-id"].startswith("99999999")
    assert (
        pod_template(deployment)["spec"]["containers"][0]["image"] == f"contoso.azurecr.io/snat-exporter:{__version__}"
    )
    assert all(
        c["image"].startswith("contoso.azurecr.io/")
        for w in workloads(objs)
        for c in containers(pod_template(w)["spec"])
    )
