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
        files = render(mixin)
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


def run_add_row(config: str | None, into: Path, out: Path | None) -> int:
    """Puts the SNAT row into the dashboard ``into``; writes ``out`` (or ``into`` itself). 0 done, 2 refused."""
    import json

    from snat_exporter.generate import add_row, require_extra

    mixin = load_mixin(config)
    try:
        require_extra()
        from grafana_foundation_sdk.models.dashboard import Dashboard

        from snat_exporter.generate import dashboards

        try:
            board = json.loads(into.read_text())
        except OSError as e:
            raise GenerateError(f"{into}: cannot read: {e.strerror or e}") from None
        except json.JSONDecodeError as e:
            raise GenerateError(f"{into}: not JSON: {e}") from None
        if not isinstance(board, dict):
            raise GenerateError(f"{into}: not a Grafana dashboard (a JSON object)")
        board = board.get("dashboard", board)  # an export through the API wraps it
        result = add_row.add_row(board, dashboards.snat_activity(mixin), mixin, dashboards.ROW_TITLE)
        try:
            Dashboard.from_json(result)  # what Grafana's own schema model makes of it
        except (KeyError, TypeError, ValueError) as e:
            raise GenerateError(f"the result does not load as a Grafana dashboard: {e}") from None
    except GenerateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    target = out or into
    text = add_row.dump(result)
    if target.is_file() and target.read_text() == text:
        print(f"{target}: unchanged (the row is already there)", file=sys.stderr)
        return 0
    target.write_text(text)
    print(f"wrote {target}", file=sys.stderr)
    return 0
