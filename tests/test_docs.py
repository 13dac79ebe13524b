"""The generated references are committed up to date, and the README documents what a user needs."""

from __future__ import annotations

import pytest

from snat_exporter.generate.docs import DOCS, GENERATED, README, readme_md
from tests.conftest import ROOT


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_reference_is_current(name: str) -> None:
    committed = (ROOT / DOCS / name).read_text()
    assert committed == GENERATED[name](), f"docs/{name} is out of date: run `make generate`"


def test_readme_names_the_two_commands_and_links_the_references() -> None:
    readme = (ROOT / "README.md").read_text()
    for needle in ("make demo", "make test", "docs/configuration.md", "docs/metrics.md"):
        assert needle in readme


def test_readme_reference_tables_are_current() -> None:
    text = (ROOT / README).read_text()
    assert text == readme_md(text), "README.md's generated tables are out of date: run `make generate`"
