"""What this build of snat-exporter is: one version, read from the installed package metadata (pyproject.toml's
``version`` is its only source), and the source revision it was built from.

The revision comes from, in order: the ``SNAT_EXPORTER_REVISION`` environment variable (for a build that sets it
at run time), the file ``snat_exporter/REVISION`` written by the release workflow or ``docker build --build-arg
REVISION=...`` before the package is built, or ``unknown`` (a source checkout or a hand-made build).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from importlib import metadata
from importlib.resources import files

DISTRIBUTION = "snat-exporter"
REVISION_ENV = "SNAT_EXPORTER_REVISION"
REVISION_FILE = "REVISION"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class BuildInfo:
    version: str
    revision: str
    python_version: str

    def labels(self) -> dict[str, str]:
        return {"version": self.version, "revision": self.revision, "python_version": self.python_version}

    def line(self) -> str:
        """What `snat-exporter --version` prints."""
        return f"snat-exporter {self.version} (revision {self.revision}, Python {self.python_version})"


def package_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # imported from a source tree that was never installed
        return "0+" + UNKNOWN


def revision() -> str:
    value = os.environ.get(REVISION_ENV, "").strip()
    if value:
        return value
    try:
        baked = files("snat_exporter").joinpath(REVISION_FILE).read_text().strip()
    except OSError:  # not baked: a source checkout
        return UNKNOWN
    return baked or UNKNOWN


def build_info() -> BuildInfo:
    return BuildInfo(package_version(), revision(), platform.python_version())


BUILD = build_info()  # fixed for the life of the process: --version, build_info and / show the same
__version__ = BUILD.version
