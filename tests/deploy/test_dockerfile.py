"""The Dockerfile, read structurally: there is no Docker engine here, so check what a build would produce."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from snat_exporter.config import DEFAULT_PORT
from tests.conftest import ROOT


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int

    @property
    def exec_form(self) -> list[str] | None:
        try:
            value = json.loads(self.args)
        except ValueError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs and stages. Handles comments, parser directives, backslash continuations and ${ARG} bases."""
    logical: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped by the builder
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        logical.append((start, buffer + stripped))
        buffer = ""
    assert not buffer, "the Dockerfile ends inside a continued line"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
        elif not stages:
            assert keyword == "ARG", f"line {number}: only ARG may come before the first FROM"
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, rest, number))
    return args, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    path = ROOT / "Dockerfile"
    assert path.is_file(), "no Dockerfile at the repository root"
    return parse(path.read_text())


def test_multi_stage_on_slim_python_311(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    assert len(stages) >= 2, "build tools and pip stay in a build stage"
    for stage in stages:
        assert re.fullmatch(
            r"(docker\.io/(library/)?)?python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", stage.base
        ), stage.base
    final = stages[-1]
    copies = [i for i in final.all("COPY") if "--from=" in i.args]
    assert copies, "the final stage copies the installed application from the build stage"
    names = {s.name for s in stages[:-1]}
    assert all(re.search(r"--from=(\S+)", i.args).group(1) in names for i in copies)  # type: ignore[union-attr]
    # The final stage installs nothing itself: no pip, no compilers, no package manager downloads.
    for run in final.all("RUN"):
        assert not re.search(r"\b(pip|apt-get|apt|gcc|make)\b", run.args), f"line {run.line}: {run.args}"


def test_final_stage_runs_as_a_numeric_non_root_user(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    users = stages[-1].all("USER")
    assert users, "the final stage must set USER"
    user = users[-1].args.split(":")[0]
    assert user.isdigit() and int(user) != 0, "numeric, so the kubelet can verify runAsNonRoot"
    uid = int(user)
    # The manifests run the cluster exporter as the image's user.
    deployment = (ROOT / "deploy" / "kubernetes" / "base" / "cluster-exporter.yaml").read_text()
    assert f"runAsUser: {uid}" in deployment


def test_no_healthcheck(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    assert not [i for s in stages for i in s.all("HEALTHCHECK")], "Kubernetes probes /healthz and /readyz instead"


def test_dependencies_are_pinned_by_the_ci_constraints_file(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    build = stages[:-1]
    copied = " ".join(i.args for s in build for i in s.all("COPY"))
    assert "constraints.txt" in copied.split()
    installs = [i for s in build for i in s.all("RUN") if "pip install" in i.args or "pip  install" in i.args]
    assert installs, "no pip install in the build stage"
    for run in installs:
        words = shlex.split(run.args)
        pinned = (
            any(w in ("-c", "--constraint") and words[n + 1] == "constraints.txt" for n, w in enumerate(words[:-1]))
            or "--constraint=constraints.txt" in words
        )
        assert pinned, f"line {run.line}: pip install without -c constraints.txt"
        assert not any(re.search(r"\[.*dev.*\]", w) for w in words), "the dev extras stay out of the image"
        assert "-e" not in words and "--editable" not in words
    # The Makefile (CI) installs with the same file.
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()


def test_entry_point_is_snat_exporter_serving_the_mounted_config(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    _, stages = dockerfile
    final = stages[-1]
    (entrypoint,) = final.all("ENTRYPOINT")
    assert entrypoint.exec_form == ["snat-exporter"], "exec form, so SIGTERM reaches the exporter"
    (cmd,) = final.all("CMD")
    assert cmd.exec_form == ["serve", "--config", "/etc/snat-exporter/config.yaml"]
    assert any(i.args.split()[0].split("/")[0] == str(DEFAULT_PORT) for i in final.all("EXPOSE"))
    scripts = (ROOT / "pyproject.toml").read_text()
    assert 'snat-exporter = "snat_exporter.cli:main"' in scripts


def _ignored(patterns: list[str], path: str) -> bool:
    """.dockerignore semantics that matter here: last matching pattern wins, `!` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(fnmatch.fnmatch(c, pattern) for c in candidates) or (
            pattern.startswith("**/") and any(fnmatch.fnmatch(p, pattern[3:]) for p in parts)
        ):
            ignored = not negate
    return ignored


def test_build_context_holds_what_the_dockerfile_copies_and_nothing_secret(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    _, stages = dockerfile
    for stage in stages:
        for copy in stage.all("COPY"):
            if "--from=" in copy.args:
                continue
            for source in copy.args.split()[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: no such path"
                assert not _ignored(patterns, source), f"COPY {source} is excluded by .dockerignore"
    for path in (".git/config", ".venv/bin/python", "tests/conftest.py", "snat_exporter/__pycache__/x.pyc", ".env"):
        assert _ignored(patterns, path), f"{path} would be sent to the build"
    assert not _ignored(patterns, "snat_exporter/cli.py")
    assert Path(ROOT / "snat_exporter" / "cli.py").is_file()
