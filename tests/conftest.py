from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
AZURE_EXAMPLES = ROOT / "tests" / "fixtures" / "azure_examples"


def azure_example(name: str, status: str = "200") -> Any:
    """The body of one published Azure REST API example, as kept in tests/fixtures/azure_examples (each file names
    its source in github.com/Azure/azure-rest-api-specs)."""
    return json.loads((AZURE_EXAMPLES / name).read_text())["responses"][status]["body"]


def is_root() -> bool:
    return os.geteuid() == 0


class FakeClock:
    """A clock tests move by hand, so that time-dependent behaviour is tested without sleeping."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Poll a condition on the event loop until it holds (returns its value) or the deadline passes (fails,
    naming it). The condition decides; the short pause between polls only yields to the loop."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


def unreachable_kubeconfig(folder: Path) -> Path:
    """A kubeconfig whose API server refuses connections: enables the kubernetes collector (serve refuses to run
    with none) with runs that fail at once, so no run is in flight to hold up an exit."""
    from snat_exporter.simulator.kubeobjects import write_kubeconfig

    return write_kubeconfig(folder / "kubeconfig", "http://127.0.0.1:1")
