"""Rendering the kustomize tree with the real kubectl, and looking things up in the rendered objects."""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT

KUBERNETES = ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
OVERLAYS = {
    "kube-prometheus-stack": KUBERNETES / "overlays" / "kube-prometheus-stack",
    "azure-managed-prometheus": KUBERNETES / "overlays" / "azure-managed-prometheus",
}
ALL_TREES = {"base": BASE, **OVERLAYS}
CRDS = Path(__file__).resolve().parent / "crds"

Obj = dict[str, Any]


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl is not on PATH: the deploy tests render the manifests with `kubectl kustomize`")
    return path


def render_dir(directory: Path) -> list[Obj]:
    proc = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"kubectl kustomize {directory} failed:\n{proc.stderr}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@cache
def _render_cached(directory: str) -> tuple[Obj, ...]:
    return tuple(render_dir(Path(directory)))


def render(directory: Path) -> list[Obj]:
    """Rendered once per test session; each caller gets its own copy to poke at."""
    return copy.deepcopy(list(_render_cached(str(directory))))


def key(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"


def of_kind(objs: list[Obj], kind: str, api_version: str | None = None) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind and (api_version is None or o["apiVersion"] == api_version)]


def one(objs: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet", "Job", "CronJob", "ReplicaSet", "Pod")


def workloads(objs: list[Obj]) -> list[Obj]:
    return [o for o in objs if o["kind"] in WORKLOAD_KINDS]


def pod_template(obj: Obj) -> Obj:
    if obj["kind"] == "Pod":
        return obj
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]
    return obj["spec"]["template"]


def containers(pod_spec: Obj) -> Iterator[Obj]:
    yield from pod_spec.get("initContainers", [])
    yield from pod_spec.get("containers", [])
    yield from pod_spec.get("ephemeralContainers", [])


def labels_match(selector: Obj, labels: dict[str, str]) -> bool:
    """matchLabels and the set-based operators of a LabelSelector, as the API server evaluates them."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        present, value = expr["key"] in labels, labels.get(expr["key"])
        op, values = expr["operator"], expr.get("values", [])
        ok = {
            "In": present and value in values,
            "NotIn": not present or value not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[op]
        if not ok:
            return False
    return True


# ------------------------------------------------------------------------------------------------ CRD schemas
def _strict(schema: Any) -> Any:
    """The API server's strict field validation (kubectl's default) as JSON Schema: unknown fields are errors."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if isinstance(out.get("pattern"), str) and out["pattern"].startswith("^(?i)"):
        # The API server's RE2 takes inline flags anywhere; Python wants them at the very start.
        out["pattern"] = "(?i)^" + out["pattern"][len("^(?i)") :]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd_schemas() -> dict[tuple[str, str], Obj]:
    """(apiVersion, kind) -> strict JSON schema, from every CRD file in tests/deploy/crds."""
    out: dict[tuple[str, str], Obj] = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            jsonschema.Draft7Validator.check_schema(schema)
            out[(f"{group}/{version['name']}", kind)] = schema
    return out


def validate_custom(obj: Obj) -> None:
    schema = crd_schemas().get((obj["apiVersion"], obj["kind"]))
    if schema is None:
        pytest.fail(f"no CRD schema for {obj['apiVersion']} {obj['kind']} in {CRDS}")
    jsonschema.Draft7Validator(schema).validate(obj)


def dump(objs: list[Obj]) -> str:
    return yaml.safe_dump_all(objs, sort_keys=False)


def pod_files(data: dict[str, str], tmp: Path) -> Path:
    """The files a pod reads, under ``tmp`` instead of /: the ConfigMap's entries at /etc/snat-exporter and a
    throw-away certificate where the Secret snat-exporter-tls is mounted; paths in them are rewritten to match.
    Returns the config.yaml to pass to the CLI."""
    from tests.web.certs import CA

    config_dir, tls_dir = tmp / "etc" / "snat-exporter", tmp / "etc" / "snat-exporter-tls"
    config_dir.mkdir(parents=True, exist_ok=True)
    tls_dir.mkdir(parents=True, exist_ok=True)
    ca = CA()
    ca.write(tls_dir / "ca.crt")
    ca.issue("snat-exporter", dns=("snat-exporter",)).write(tls_dir / "tls.crt", tls_dir / "tls.key")
    for name, text in data.items():
        text = text.replace("/etc/snat-exporter-tls/", f"{tls_dir}/").replace("/etc/snat-exporter/", f"{config_dir}/")
        (config_dir / name).write_text(text)
    return config_dir / "config.yaml"
