"""Shared pieces of the reliability tests: scraping with a stopwatch, reading series, secret-grepping log capture.

Everything here talks to a real exporter over real HTTP; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from snat_exporter.logs import LogfmtFormatter
from tests.conftest import wait_until

# /metrics must answer within this while a fault is active: it reads the last snapshot and never waits on a source.
SCRAPE_BUDGET = 0.5

Sample = tuple[str, dict[str, str], float]


@dataclass
class Scrape:
    text: str
    seconds: float
    samples: list[Sample]

    def find(self, name: str, **labels: str) -> list[Sample]:
        return [s for s in self.samples if s[0] == name and all(s[1].get(k) == v for k, v in labels.items())]

    def value(self, name: str, **labels: str) -> float | None:
        """The sum of the matching samples, None when there is none."""
        found = self.find(name, **labels)
        return sum(s[2] for s in found) if found else None


async def scrape(session: aiohttp.ClientSession, url: str, path: str = "/metrics") -> Scrape:
    started = time.monotonic()
    async with session.get(url + path, timeout=aiohttp.ClientTimeout(total=10)) as resp:
        text = await resp.text()
        assert resp.status == 200, f"{path} answered {resp.status}: {text[:200]}"
    seconds = time.monotonic() - started
    samples: list[Sample] = []
    if path == "/metrics":
        for family in text_string_to_metric_families(text):
            samples.extend((s.name, dict(s.labels), float(s.value)) for s in family.samples)
    return Scrape(text, seconds, samples)


async def scrape_during(
    run: Awaitable[bool], in_flight: Callable[[], bool], session: aiohttp.ClientSession, url: str
) -> tuple[bool, Scrape]:
    """Start a collection, wait until it is in flight (``in_flight()``, or already over), scrape meanwhile, then
    return (the run's result, that scrape). The scrape is timed against SCRAPE_BUDGET by the caller."""
    task = asyncio.ensure_future(run)
    await wait_until(lambda: in_flight() or task.done(), "the collection to reach its source")
    during = await scrape(session, url)
    return await task, during


async def scrape_until(
    session: aiohttp.ClientSession, url: str, predicate: Callable[[Scrape], Any], what: str, timeout: float = 15.0
) -> Scrape:
    """Scrape until ``predicate(scrape)`` holds (a collection in a background loop got somewhere), or fail."""
    deadline = time.monotonic() + timeout
    while True:
        s = await scrape(session, url)
        if predicate(s):
            return s
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}; last scrape:\n{s.text[-1500:]}")
        await asyncio.sleep(0.05)  # a poll interval: the condition decides, not the sleep


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """Every log record of the process at DEBUG, rendered exactly as the exporter writes them (logfmt, scrubbed)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(LogfmtFormatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
