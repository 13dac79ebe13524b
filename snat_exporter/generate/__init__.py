"""Everything generated from code, behind one command: ``snat-exporter generate --config mixin.yaml --out DIR``.

Reads the metric catalogues, the settings declarations and the mixin config (:mod:`.mixin`); never the runner,
the server or a collector at work. Writes the same tree into ``DIR`` that the repository commits with the
defaults (``make generate`` is ``snat-exporter generate --out .``):

- ``alerts/*.yml``: Prometheus rule files;
- ``dashboards/out/*.json``: Grafana dashboards (:mod:`.dashboards`);
- ``deploy/kubernetes/overlays/kube-prometheus-stack/generated/``: PrometheusRules and dashboard ConfigMaps
  (:mod:`.deploy`);
- ``docs/configuration.md``, ``docs/metrics.md`` (:mod:`.docs`), and README.md's generated tables when ``DIR``
  has a README.md with the markers.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path, PurePosixPath

from snat_exporter.generate import deploy, docs
from snat_exporter.generate.deploy import GenerateError
from snat_exporter.generate.mixin import MixinConfig

Files = dict[PurePosixPath, str]
# Only generating needs these; the exporter's image and a plain `pip install snat-exporter` go without them.
EXTRA_MODULES = ("grafana_foundation_sdk",)


def require_extra() -> None:
    missing = [m for m in EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise GenerateError(
            f"generating needs {', '.join(missing)}, which a plain install leaves out: "
            "pip install 'snat-exporter[generate]'"
        )


def rule_files(out: Path) -> Files:
    """The rule files under ``out/alerts`` (hand-written until the rule generator lands)."""
    found = sorted({p for pattern in ("*.yml", "*.yaml") for p in (out / "alerts").glob(pattern) if p.is_file()})
    return {PurePosixPath("alerts") / p.name: p.read_text() for p in found}


def render(mixin: MixinConfig, out: Path) -> Files:
    """Every generated file (path relative to ``out``) and its exact content."""
    require_extra()
    from snat_exporter.generate import dashboards  # needs the `generate` extra (Grafana Foundation SDK)

    files: Files = {}
    files.update(rule_files(out))
    files.update({PurePosixPath("dashboards/out") / name: text for name, text in dashboards.render(mixin).items()})
    files.update(deploy.render(files, folder=mixin.dashboards.folder))
    files.update(docs.render())
    readme = out / docs.README
    if readme.is_file() and docs.README_MARKER in readme.read_text():
        files[docs.README] = docs.readme_md(readme.read_text())
    return files


def stale(out: Path, files: Files) -> list[PurePosixPath]:
    """Files in a directory the generator owns whole that no input produces any more."""
    directory = out / deploy.GENERATED
    if not directory.is_dir():
        return []
    return sorted(p for p in (deploy.GENERATED / c.name for c in directory.iterdir()) if p not in files)


def differences(out: Path, files: Files) -> list[str]:
    problems = [f"{p}: stale (nothing generates it)" for p in stale(out, files)]
    for rel, text in sorted(files.items()):
        path = out / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif path.read_text() != text:
            problems.append(f"{rel}: out of date")
    return problems


def write(out: Path, files: Files) -> list[PurePosixPath]:
    """Writes what differs, removes what is stale; returns the paths changed."""
    changed = []
    for rel in stale(out, files):
        (out / rel).unlink()
        changed.append(rel)
    for rel, text in sorted(files.items()):
        path = out / rel
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(rel)
    return changed
