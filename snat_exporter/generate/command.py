"""``snat-exporter generate``: writes (or, with ``--check``, compares) every generated file under one directory."""

from __future__ import annotations

import sys
from pathlib import Path

from snat_exporter.generate import differences, render, write
from snat_exporter.generate.deploy import GenerateError
from snat_exporter.generate.mixin import load_mixin


def run_generate(config: str | None, out: Path, *, check: bool = False) -> int:
    """0 written (or up to date with ``check``), 1 ``check`` found differences, 2 a generator refused its input."""
    mixin = load_mixin(config)  # ConfigError (exit 2, naming the field) propagates to the CLI
    try:
        files = render(mixin, out)
    except GenerateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if check:
        problems = differences(out, files)
        for problem in problems:
            print(f"{out / problem}: run `snat-exporter generate --out {out}`", file=sys.stderr)
        return 1 if problems else 0
    for rel in write(out, files):
        print(f"wrote {out / rel}", file=sys.stderr)
    return 0
