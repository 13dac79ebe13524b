"""Running the real exporter as an unprivileged user with every capability dropped, as a node without
CAP_NET_ADMIN would."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def as_user(user: str, args: Sequence[str]) -> list[str]:
    """``args`` run as uid/gid ``user`` with no capability and no supplementary group."""
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to drop privileges")
    _let_others_reach(ROOT)
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--inh-caps=-all", *args]


def _let_others_reach(path: Path) -> None:
    # A clone inside a 0700 directory (what `mktemp -d` makes, as a fresh-clone CI run does) cannot be imported by
    # the user the test drops to: it fails with "No module named snat_exporter", which says nothing about
    # capabilities. The search bit (not read) on the directories above the checkout is all that user needs.
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(directory, stat.S_IMODE(mode) | stat.S_IXOTH)
