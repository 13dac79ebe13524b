"""The wheel works on its own: built by `python -m build`, installed (not editable) into an empty venv, it runs
`--version`, `check-config` on every shipped example config and `demo` up to node-named SNAT series.

The dependencies come from the wheelhouse `make deps` fills (pip download of pyproject's runtime dependencies,
at the constraints.txt versions), so the install here is offline and a dependency the wheel does not declare
is missing in the venv, as it would be on a user's machine.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.deploy.manifests import pod_files

WHEELHOUSE = Path(sys.prefix) / "wheelhouse"
REVISION = "0123456789abcdef0123456789abcdef01234567"  # baked into this build, as the release workflow does
EXAMPLE_CONFIGS = sorted((ROOT / "deploy" / "kubernetes" / "base" / "config").glob("*.yaml"))
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path
    venv: Path
    workdir: Path

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=self.workdir, env=clean_env(self.venv), capture_output=True, text=True, timeout=timeout
        )


def clean_env(venv: Path) -> dict[str, str]:
    """The environment of a user's shell: the venv first on PATH, nothing pointing back at this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "SNAT_EXPORTER_"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def copy_source(dest: Path) -> Path:
    """What `git archive` would give: the build must not depend on a developer's untracked files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    if not any(WHEELHOUSE.glob("*.whl")):
        pytest.fail(f"{WHEELHOUSE} is empty: `make deps` fills it with the runtime dependencies")
    tmp = tmp_path_factory.mktemp("wheel")
    src = copy_source(tmp / "src")
    (src / "snat_exporter" / "REVISION").write_text(REVISION + "\n")
    dist = tmp / "dist"
    # Without isolation: the pinned setuptools of the project venv builds it, with no download.
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)],
        check=True,
        capture_output=True,
    )
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # The project venv's pip installs into the empty one; offline, from the wheelhouse only.
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet", "--no-compile",
         "--no-index", "--find-links", str(WHEELHOUSE), "--disable-pip-version-check", str(wheel)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    workdir = tmp / "elsewhere"
    workdir.mkdir()
    return Built(sdist, wheel, venv, workdir)


def test_build_makes_an_sdist_and_a_wheel_of_the_pyproject_version(built: Built) -> None:
    version = PROJECT["version"]
    assert built.sdist.name == f"snat_exporter-{version}.tar.gz"
    assert built.wheel.name == f"snat_exporter-{version}-py3-none-any.whl"


def test_the_wheel_holds_one_top_level_package_and_its_data(built: Built) -> None:
    names = zipfile.ZipFile(built.wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"snat_exporter", f"snat_exporter-{PROJECT['version']}.dist-info"}
    for needed in (
        "snat_exporter/py.typed",
        "snat_exporter/diagnose/report.schema.json",
        "snat_exporter/REVISION",
        f"snat_exporter-{PROJECT['version']}.dist-info/licenses/LICENSE",
    ):
        assert needed in names
    shipped = {Path(n).name for n in names if n.startswith("snat_exporter/simulator/scenarios/")}
    assert shipped == {p.name for p in (ROOT / "snat_exporter" / "simulator" / "scenarios").glob("*.yaml")}
    metadata = zipfile.ZipFile(built.wheel).read(f"snat_exporter-{PROJECT['version']}.dist-info/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata


def test_the_installed_wheel_is_the_only_snat_exporter_and_exporter_is_gone(built: Built) -> None:
    where = built.run("python", "-c", "import snat_exporter; print(snat_exporter.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(built.venv)
    old = built.run("python", "-c", "import exporter")
    assert old.returncode == 1 and "No module named 'exporter'" in old.stderr


def test_version_and_check_config_from_the_wheel(built: Built) -> None:
    version = built.run("snat-exporter", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith(f"snat-exporter {PROJECT['version']} (revision {REVISION}, Python ")
    assert EXAMPLE_CONFIGS
    web_config = (EXAMPLE_CONFIGS[0].parent / "web-config.yml").read_text()
    for example in EXAMPLE_CONFIGS:
        # As the pod reads it: beside its web config, with the TLS files of the Secret it mounts.
        config = pod_files(
            {"config.yaml": example.read_text(), "web-config.yml": web_config}, built.workdir / example.stem
        )
        checked = built.run("snat-exporter", "check-config", str(config))
        assert checked.returncode == 0, (example.name, checked.stderr)
        assert checked.stdout.startswith(f"{config}: ok")


@pytest.fixture
def demo(built: Built) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    out = built.workdir / "demo.out"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            ["snat-exporter", "demo", "--listen", "127.0.0.1:0", "--log-level", "warning"],
            cwd=built.workdir, env=clean_env(built.venv), stdout=sink, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    try:
        yield proc, out
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)


def poll(condition: object, what: str, timeout: float = 60.0) -> str:
    """Re-evaluates ``condition`` (a callable returning text or None) until it gives text; the pause between
    polls only spaces the HTTP requests out."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()  # type: ignore[operator]
        if value:
            return str(value)
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def test_demo_from_the_wheel_serves_node_named_snat_series(built: Built, demo: tuple[subprocess.Popen, Path]) -> None:
    proc, out = demo

    def metrics_url() -> str | None:
        assert proc.poll() is None, out.read_text()
        match = re.search(r"metrics:\s+(http://\S+/metrics)", out.read_text())
        return match.group(1) if match else None

    url = poll(metrics_url, "the demo to print its metrics URL")

    def node_series() -> str | None:
        assert proc.poll() is None, out.read_text()
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        return text if re.search(r'^azure_lb_snat_ports_used\{[^}]*node="aks-', text, re.M) else None

    metrics = poll(node_series, "azure_lb_snat_ports_used with a node label")
    # --version and build_info say the same thing.
    match = re.search(r"^snat_exporter_build_info\{([^}]*)\} 1", metrics, re.M)
    assert match, "no snat_exporter_build_info"
    labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
    version = built.run("snat-exporter", "--version").stdout.strip()
    assert (
        version
        == f"snat-exporter {labels['version']} (revision {labels['revision']}, Python {labels['python_version']})"
    )
