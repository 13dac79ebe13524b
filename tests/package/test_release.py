"""What a release publishes agrees with itself: one version in pyproject.toml, the changelog, the image the
manifests pull, and the workflows that publish them."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import yaml

from tests.conftest import ROOT

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
WORKFLOWS = ROOT / ".github" / "workflows"


def workflow(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as true
    return doc


def test_the_kustomize_base_names_the_image_once_as_the_release_on_ghcr() -> None:
    kustomization = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "base" / "kustomization.yaml").read_text())
    assert kustomization["images"] == [
        {"name": "snat-exporter", "newName": "ghcr.io/snat-exporter/snat-exporter", "newTag": VERSION}
    ]
    for manifest in (ROOT / "deploy" / "kubernetes" / "base").glob("*.yaml"):
        images = re.findall(r"^\s*image:\s*(\S+)", manifest.read_text(), re.M)
        assert set(images) <= {"snat-exporter"}, (manifest.name, images)
    assert "CHANGE ME" not in (ROOT / "deploy" / "kubernetes" / "base" / "kustomization.yaml").read_text()


def test_the_changelog_has_unreleased_and_this_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert headings[:1] == ["Unreleased"]
    assert VERSION in headings
    for heading in headings:  # each version heading links to its tag or comparison
        assert re.search(rf"^\[{re.escape(heading)}\]: https://", text, re.M), heading


def test_ci_runs_make_test_as_root_on_pushes_and_pull_requests() -> None:
    ci = workflow("ci.yml")
    assert {"push", "pull_request"} <= set(ci["on"])
    runs = [step.get("run", "") for job in ci["jobs"].values() for step in job["steps"]]
    assert any(run.startswith("sudo ") and run.endswith("make test") for run in runs)


def test_release_publishes_the_tagged_version_to_pypi_and_a_multi_arch_image_to_ghcr() -> None:
    release = workflow("release.yml")
    assert release["on"] == {"push": {"tags": ["v*"]}}
    jobs = release["jobs"]
    assert jobs["test"]["uses"] == "./.github/workflows/ci.yml"
    # PyPI by trusted publishing: an OIDC token, no stored secret.
    assert jobs["pypi"]["permissions"] == {"id-token": "write"}
    assert any(s.get("uses", "").startswith("pypa/gh-action-pypi-publish@") for s in jobs["pypi"]["steps"])
    assert "secrets." not in yaml.safe_dump(jobs["pypi"])
    assert set(jobs["pypi"]["needs"] if isinstance(jobs["pypi"]["needs"], list) else [jobs["pypi"]["needs"]]) == {
        "dist"
    }
    image = next(s["with"] for s in jobs["image"]["steps"] if s.get("uses", "").startswith("docker/build-push-action@"))
    assert image["platforms"] == "linux/amd64,linux/arm64"
    assert image["sbom"] is True and image["provenance"] == "mode=max"
    assert image["push"] is True
    assert jobs["image"]["env"]["IMAGE"] == "ghcr.io/${{ github.repository_owner }}/snat-exporter"
    meta = next(s["with"] for s in jobs["image"]["steps"] if s.get("uses", "").startswith("docker/metadata-action@"))
    assert "type=raw,value=${{ needs.version.outputs.version }}" in meta["tags"]
    assert set(jobs["image"]["needs"]) == set(jobs["dist"]["needs"]) == {"version", "test"}
