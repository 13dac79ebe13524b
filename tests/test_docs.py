"""The generated references are committed up to date, and the README documents what a user needs."""

from __future__ import annotations

import pytest

from snat_exporter.generate.docs import DOCS, GENERATED
from tests.conftest import ROOT


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_reference_is_current(name: str) -> None:
    committed = (ROOT / DOCS / name).read_text()
    assert committed == GENERATED[name](), f"docs/{name} is out of date: run `make generate`"


def test_readme_names_the_two_commands_and_links_the_references() -> None:
    readme = (ROOT / "README.md").read_text()
    for needle in ("make demo", "make test", "docs/configuration.md", "docs/metrics.md", "CHANGELOG.md"):
        assert needle in readme


def test_readme_is_for_reading_not_a_reference_table() -> None:
    """The reference tables live in docs/ (linked); the README says how to start, how it works and how to test."""
    readme = (ROOT / "README.md").read_text()
    table_rows = [line for line in readme.splitlines() if line.startswith("| `snat_") or line.startswith("| `azure.")]
    assert table_rows == []
    assert "\n## Testing\n" in readme
    testing = readme.split("\n## Testing\n", 1)[1].split("\n## ", 1)[0]
    for needle in ("make test", "root", "minutes", "apt-get"):
        assert needle in testing, needle
