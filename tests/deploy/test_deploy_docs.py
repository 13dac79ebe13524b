"""docs/deploy.md is the user's only guide to a real cluster: its names and paths must be the shipped ones."""

from __future__ import annotations

import re

from tests.conftest import ROOT
from tests.deploy.manifests import ALL_TREES, one, pod_template, render

DOC = ROOT / "docs" / "deploy.md"


def _text() -> str:
    assert DOC.is_file(), "docs/deploy.md is missing"
    return DOC.read_text()


def test_every_repository_path_in_the_guide_exists() -> None:
    paths = set(re.findall(r"`((?:deploy|alerts|dashboards)/[^`\s*]+)`", _text()))
    assert paths, "the guide names no file of the repository"
    for path in sorted(paths):
        assert (ROOT / path.rstrip("/")).exists(), f"docs/deploy.md names {path}, which does not exist"


def test_federated_credential_subject_names_the_shipped_service_account() -> None:
    text = _text()
    namespace = re.search(r"^NAMESPACE=(\S+)", text, flags=re.M)
    account = re.search(r"^SERVICE_ACCOUNT=(\S+)", text, flags=re.M)
    assert namespace and account
    assert "system:serviceaccount:${NAMESPACE}:${SERVICE_ACCOUNT}" in text
    base = render(ALL_TREES["base"])
    deployment = one(base, "Deployment", "snat-exporter-cluster")
    assert deployment["metadata"]["namespace"] == namespace.group(1)
    assert pod_template(deployment)["spec"]["serviceAccountName"] == account.group(1)


def test_deploy_to_aks_covers_identity_roles_config_and_apply() -> None:
    text = _text()
    section = text.split("## Deploy to AKS", 1)[1].split("\n## ", 1)[0]
    for needle in (
        "--enable-workload-identity",
        "az identity create",
        "oidcIssuerProfile.issuerUrl",
        "az identity federated-credential create",
        '--role "Monitoring Reader" --scope "$NODE_RG_ID"',
        '--role "Reader" --scope "$CLUSTER_ID"',
        "check-config",
        "kubectl apply -k deploy/kubernetes/overlays/kube-prometheus-stack",
        "kubectl apply -k deploy/kubernetes/overlays/azure-managed-prometheus",
    ):
        assert needle in section, f"'Deploy to AKS' lacks {needle}"
    assert "## Why the node agent runs as uid 0 with NET_ADMIN only" in text
    assert "### What the agent does without NET_ADMIN" in text
