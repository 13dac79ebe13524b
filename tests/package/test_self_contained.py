"""A fresh clone needs nothing beside it: no project file reaches outside the repository for material."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT

# Built from parts so that this file does not match itself.
OUTSIDE = "../" + "shared"
SKIPPED_DIRS = {".git", ".venv", "build", "dist", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


def project_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        parts = set(path.relative_to(ROOT).parts)
        if path.is_file() and not parts & SKIPPED_DIRS and not any(p.endswith(".egg-info") for p in parts):
            files.append(path)
    return files


def test_no_project_file_reads_or_cites_a_folder_beside_the_checkout() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in project_files()
        if OUTSIDE.encode() in path.read_bytes() or b"/work/" + b"shared" in path.read_bytes()
    ]
    assert offenders == []
