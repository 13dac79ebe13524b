"""The rendered manifests lock the door: both roles serve https with auth: kubernetes, the monitors of both
overlays scrape with a token and check the certificate by a name it carries, and the optional cert-manager
component issues that certificate into the Secret the pods mount."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from snat_exporter.config import load_config
from snat_exporter.web.config import load_web_config
from tests.conftest import ROOT
from tests.deploy.manifests import (
    ALL_TREES,
    OVERLAYS,
    Obj,
    of_kind,
    one,
    pod_files,
    pod_template,
    render,
    render_dir,
    workloads,
)

COMPONENT = ROOT / "deploy" / "kubernetes" / "components" / "cert-manager"
TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def _mounted(workload: Obj, path: str) -> Obj:
    """The volume mounted at the folder holding ``path``."""
    spec = pod_template(workload)["spec"]
    (container,) = spec["containers"]
    mount = max(
        (m for m in container["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/")),
        key=lambda m: len(m["mountPath"]),
    )
    assert mount.get("readOnly") is True
    return next(v for v in spec["volumes"] if v["name"] == mount["name"])


def test_both_roles_serve_https_with_kubernetes_auth(tmp_path: Path) -> None:
    base = render(ALL_TREES["base"])
    for n, workload in enumerate(workloads(base)):
        config_map = one(base, "ConfigMap", _mounted(workload, "/etc/snat-exporter/config.yaml")["configMap"]["name"])
        web = yaml.safe_load(config_map["data"]["web-config.yml"])
        tls = web["tls_server_config"]
        # The certificate and key are where the Secret is mounted.
        for key in ("cert_file", "key_file"):
            volume = _mounted(workload, tls[key])
            assert volume["secret"]["secretName"] == "snat-exporter-tls", (workload["kind"], key)
        assert (
            yaml.safe_load(config_map["data"]["config.yaml"])["web_config_file"] == "/etc/snat-exporter/web-config.yml"
        )
        # What the pod reads (files under tmp, a throw-away certificate): auth: kubernetes and TLS, loaded.
        config = load_config(pod_files(config_map["data"], tmp_path / str(n)), environ={})
        assert config.auth == "kubernetes"
        assert config.web_config_file is not None
        assert load_web_config(config.web_config_file).tls is not None


def _endpoints(monitor: Obj) -> list[Obj]:
    return list(monitor["spec"].get("endpoints") or monitor["spec"]["podMetricsEndpoints"])


def _certificate_names() -> set[str]:
    objs = render_dir(COMPONENT)
    serving = [c for c in of_kind(objs, "Certificate") if not c["spec"].get("isCA")]
    (certificate,) = serving
    return set(certificate["spec"]["dnsNames"])


@pytest.mark.parametrize("tree", sorted(OVERLAYS))
def test_monitors_scrape_over_https_with_a_token_and_check_the_certificate(tree: str) -> None:
    objs = render(OVERLAYS[tree])
    monitors = [o for o in objs if o["kind"] in ("PodMonitor", "ServiceMonitor")]
    names = _certificate_names()
    assert len(monitors) == 2
    for monitor in monitors:
        for endpoint in _endpoints(monitor):
            assert endpoint["scheme"] == "https"
            tls: dict[str, Any] = endpoint["tlsConfig"]
            assert not tls.get("insecureSkipVerify")
            assert tls["serverName"] in names, tls["serverName"]
            assert tls["ca"]["secret"]["key"]
            if tree == "kube-prometheus-stack":
                # Prometheus's own service account token: its ClusterRole already allows get on /metrics.
                assert endpoint["bearerTokenFile"] == TOKEN_FILE
                assert tls["ca"]["secret"] == {"name": "snat-exporter-tls", "key": "ca.crt"}
            else:
                credentials = endpoint["authorization"]["credentials"]
                secret = one(objs, "Secret", credentials["name"])
                assert secret["type"] == "kubernetes.io/service-account-token"
                account = secret["metadata"]["annotations"]["kubernetes.io/service-account.name"]
                binding = one(objs, "ClusterRoleBinding", account)
                assert binding["subjects"] == [
                    {"kind": "ServiceAccount", "name": account, "namespace": "snat-exporter"}
                ]
                role = one(objs, "ClusterRole", binding["roleRef"]["name"])
                assert role["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
                # The add-on reads TLS files from this one Secret in kube-system (docs/deploy.md says what to copy).
                assert tls["ca"]["secret"]["name"] == "ama-metrics-mtls-secret"


def test_cert_manager_component_issues_the_mounted_secret_for_both_names(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # kustomize takes relative paths only
                "resources": [os.path.relpath(OVERLAYS["kube-prometheus-stack"], overlay)],
                "components": [os.path.relpath(COMPONENT, overlay)],
            }
        )
    )
    objs = render_dir(overlay)
    issuers = {i["metadata"]["name"]: i for i in of_kind(objs, "Issuer")}
    certificates = of_kind(objs, "Certificate")
    (serving,) = [c for c in certificates if not c["spec"].get("isCA")]
    (ca,) = [c for c in certificates if c["spec"].get("isCA")]
    assert serving["spec"]["secretName"] == "snat-exporter-tls"
    assert all(c["metadata"]["namespace"] == "snat-exporter" for c in certificates)
    # serving <- CA issuer <- CA certificate <- self-signed issuer: every reference resolves.
    ca_issuer = issuers[serving["spec"]["issuerRef"]["name"]]
    assert ca_issuer["spec"]["ca"]["secretName"] == ca["spec"]["secretName"]
    assert "selfSigned" in issuers[ca["spec"]["issuerRef"]["name"]]["spec"]
    for workload in workloads(objs):
        volumes = [v for v in pod_template(workload)["spec"]["volumes"] if "secret" in v]
        assert [v["secret"]["secretName"] for v in volumes] == ["snat-exporter-tls"]
    services = {s["metadata"]["name"] for s in of_kind(objs, "Service")}
    assert {f"{s}.snat-exporter.svc" for s in services} <= set(serving["spec"]["dnsNames"])
    assert "server auth" in serving["spec"]["usages"]
