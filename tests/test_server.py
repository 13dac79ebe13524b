"""The exporter core, through real HTTP: snapshots, health series, stale data, failure isolation, shutdown."""

from __future__ import annotations

import asyncio
import gzip
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from snat_exporter.catalogue import MetricSpec
from snat_exporter.collectors.base import CollectError
from snat_exporter.config import load_config
from snat_exporter.server import Exporter
from snat_exporter.snapshot import Families, SampleTime, Snapshot
from tests.conftest import FakeClock, unreachable_kubeconfig

VALUE = MetricSpec("snat_test_value", "gauge", "A test value.", ("node",), source="fake")
AGE = MetricSpec("snat_test_sample_age_seconds", "gauge", "Age.", ("node",), source="fake")


class FakeCollector:
    name = "conntrack"  # borrows a real section so that interval and max_age come from config

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.fail: Exception | None = None
        self.value = 1.0
        self.closed = False

    async def start(self) -> None:
        pass

    async def collect(self) -> Snapshot:
        if self.fail is not None:
            raise self.fail
        f = Families()
        f.add(VALUE, {"node": "n1"}, self.value)
        return Snapshot(f.build(), (SampleTime(AGE, (("node", "n1"),), self.clock() - 90),))

    async def close(self) -> None:
        self.closed = True


def parse(text: str) -> dict[str, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


@pytest.fixture
async def running(clock: FakeClock):
    config = load_config(None, environ={}, overrides={"conntrack.max_age": "120s", "conntrack.interval": "15s"})
    fake = FakeCollector(clock)
    exporter = Exporter(config, clock=clock, collectors=[fake])
    # Drive collections by hand: stop the background loop the server would run.
    url = await exporter.start(host="127.0.0.1", port=0, background=False)
    async with aiohttp.ClientSession() as session:
        yield exporter, fake, url, session
    await exporter.stop()


async def scrape(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with session.get(url + "/metrics") as resp:
        assert resp.status == 200
        return parse(await resp.text())


async def test_snapshot_served_with_health_and_sample_age(running, clock) -> None:
    exporter, fake, url, session = running
    assert await exporter.runners["conntrack"].run_once()
    m = await scrape(session, url)
    assert m["snat_test_value{node=n1}"] == 1.0
    assert m["snat_test_sample_age_seconds{node=n1}"] == 90.0
    assert m["snat_exporter_collector_success{collector=conntrack}"] == 1.0
    assert m["snat_exporter_collector_stale{collector=conntrack}"] == 0.0
    assert m["process_resident_memory_bytes{}"] > 0
    clock.advance(10)
    m = await scrape(session, url)
    assert m["snat_test_sample_age_seconds{node=n1}"] == 100.0  # ages grow between collections


async def test_failure_keeps_last_good_data_marked_stale_then_drops_it(running, clock) -> None:
    exporter, fake, url, session = running
    runner = exporter.runners["conntrack"]
    assert await runner.run_once()
    fake.fail = CollectError("throttled", "429 Too Many Requests", retry_after=30)
    clock.advance(60)
    assert not await runner.run_once()
    m = await scrape(session, url)
    assert m["snat_test_value{node=n1}"] == 1.0  # last good value still served...
    assert m["snat_exporter_collector_stale{collector=conntrack}"] == 1.0  # ...but marked stale
    assert m["snat_exporter_collector_success{collector=conntrack}"] == 0.0
    assert m["snat_exporter_collector_errors_total{collector=conntrack,reason=throttled}"] == 1.0
    assert m["snat_exporter_collector_data_age_seconds{collector=conntrack}"] == 60.0
    assert runner.next_delay(0) == 30  # Retry-After beats the 15 s interval
    clock.advance(61)  # now 121 s since the last success, over max_age 120 s
    m = await scrape(session, url)
    assert "snat_test_value{node=n1}" not in m
    assert m["snat_exporter_collector_stale{collector=conntrack}"] == 1.0
    fake.fail = None
    fake.value = 2.0
    assert await runner.run_once()
    m = await scrape(session, url)
    assert m["snat_test_value{node=n1}"] == 2.0
    assert m["snat_exporter_collector_stale{collector=conntrack}"] == 0.0


async def test_unexpected_exception_and_timeout_are_counted_not_fatal(running, clock) -> None:
    exporter, fake, url, session = running
    runner = exporter.runners["conntrack"]
    fake.fail = RuntimeError("boom")
    assert not await runner.run_once()

    async def hang() -> Snapshot:
        await asyncio.Event().wait()
        raise AssertionError

    fake.fail = None
    setattr(fake, "collect", hang)  # noqa: B010 - replaces the method for this test only
    runner.timeout = 0.01
    assert not await runner.run_once()
    m = await scrape(session, url)
    assert m["snat_exporter_collector_errors_total{collector=conntrack,reason=internal}"] == 1.0
    assert m["snat_exporter_collector_errors_total{collector=conntrack,reason=timeout}"] == 1.0
    assert "snat_exporter_collector_last_success_timestamp_seconds{collector=conntrack}" not in m


async def test_a_collector_that_cannot_render_does_not_fail_the_scrape(running, clock) -> None:
    exporter, fake, url, session = running
    assert await exporter.runners["conntrack"].run_once()
    bad = SampleTime(AGE, (("pod", "undeclared label"),), clock())
    state = exporter.store.get("conntrack")
    state.snapshot, state.rendered = Snapshot(sample_times=(bad,)), None  # as stored when the runner cannot render
    m = await scrape(session, url)  # answers 200 (scrape() checks) without the collector's block
    assert "snat_test_sample_age_seconds{pod=undeclared label}" not in m
    assert "snat_test_value{node=n1}" not in m
    assert m["snat_exporter_exposition_errors_total{collector=conntrack}"] == 1.0  # counted in the same scrape
    assert (
        m[f"snat_exporter_build_info{{python_version={platform.python_version()},revision=unknown,version=0.1.0}}"] == 1
    )


async def test_a_snapshot_that_cannot_be_rendered_is_a_failed_run_not_health(running, clock) -> None:
    """Issue 15: a label value no encoder accepts took the block off /metrics while success said 1 and stale 0, with
    a traceback and a re-render on the event loop at every scrape. The run fails instead: the last good block is
    served marked stale, and scrapes neither re-render nor log."""
    exporter, fake, url, session = running
    runner = exporter.runners["conntrack"]
    assert await runner.run_once()
    good = exporter.store.get("conntrack").rendered

    async def unrenderable() -> Snapshot:
        f = Families()
        f.add(VALUE, {"node": "n\ud800"}, 2.0)  # past every boundary check: the runner is the last line
        return Snapshot(f.build())

    fake.collect = unrenderable
    clock.advance(15)
    assert not await runner.run_once()
    state = exporter.store.get("conntrack")
    assert state.rendered is good and state.snapshot is None  # nothing left for a scrape to render
    m = await scrape(session, url)
    assert m["snat_test_value{node=n1}"] == 1.0  # the last good data, marked
    assert m["snat_exporter_collector_success{collector=conntrack}"] == 0
    assert m["snat_exporter_collector_stale{collector=conntrack}"] == 1
    assert m["snat_exporter_collector_errors_total{collector=conntrack,reason=internal}"] == 1
    assert "UnicodeEncodeError" in (state.last_error or "")
    assert "snat_exporter_exposition_errors_total{collector=conntrack}" not in m


async def test_openmetrics_on_request_and_endpoints(running) -> None:
    exporter, fake, url, session = running
    async with session.get(url + "/metrics", headers={"Accept": "application/openmetrics-text"}) as resp:
        assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
        assert (await resp.text()).endswith("# EOF\n")
    for path, status in (("/healthz", 200), ("/readyz", 200)):
        async with session.get(url + path) as resp:
            assert resp.status == status
    await exporter.runners["conntrack"].run_once()
    async with session.get(url + "/") as resp:
        page = await resp.text()
    assert "conntrack" in page and "ok" in page


async def test_stop_closes_collectors(clock) -> None:
    config = load_config(None, environ={})
    fake = FakeCollector(clock)
    exporter = Exporter(config, clock=clock, collectors=[fake])
    await exporter.start(host="127.0.0.1", port=0)
    await exporter.stop()
    assert fake.closed
    assert all(t.done() for t in exporter.collection._tasks) and not exporter.collection._tasks


def test_sigterm_exits_cleanly_within_seconds(tmp_path) -> None:
    with subprocess.Popen(
        # serve refuses to run with no collector: one whose runs fail at once (its API server refuses connections),
        # so that no run is in flight to hold up the exit.
        [sys.executable, "-m", "snat_exporter", "serve", "--listen", "127.0.0.1:0"]
        + ["--set", "kubernetes.enabled=true", "--set", f"kubernetes.kubeconfig={unreachable_kubeconfig(tmp_path)}"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:  # up to the "serving" line: the server is up
            if "msg=serving" in line:
                break
        else:
            pytest.fail("the exporter exited before serving")
        url = line.split("url=")[1].split()[0]
        # Idle, as a pod is when it is told to stop: the collector's first run is over (failed), the next an
        # interval away. (A run in flight holds the exit up to its own timeout.)
        deadline = time.monotonic() + 30
        while 'snat_exporter_collector_success{collector="kubernetes"}' not in (
            urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
        ):
            assert time.monotonic() < deadline, "the collector's first run did not end within 30 s"
            time.sleep(0.1)  # spaces the scrapes out; the condition above decides
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - t0 < 5


async def test_gzip_and_openmetrics_bodies_carry_the_same_series(running, clock) -> None:
    exporter, fake, url, session = running
    assert await exporter.runners["conntrack"].run_once()
    plain = await scrape(session, url)
    async with aiohttp.ClientSession(auto_decompress=False) as raw:
        async with raw.get(url + "/metrics", headers={"Accept-Encoding": "gzip"}) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            zipped = parse(gzip.decompress(await resp.read()).decode())
        headers = {"Accept-Encoding": "gzip", "Accept": "application/openmetrics-text"}
        async with raw.get(url + "/metrics", headers=headers) as resp:
            om = gzip.decompress(await resp.read()).decode()
    assert om.endswith("# EOF\n") and om.count("# EOF") == 1
    # Process figures and the open connections (the second session's own) differ between the two scrapes.
    moving = ("process_", "snat_exporter_http_open_connections")
    stable = {k: v for k, v in plain.items() if not k.startswith(moving)}
    assert {k: v for k, v in zipped.items() if not k.startswith(moving)} == stable
    assert "snat_test_value" in om and "snat_exporter_collector_success" in om


async def test_a_snapshot_is_rendered_once_not_per_scrape(running, clock) -> None:
    exporter, fake, url, session = running
    assert await exporter.runners["conntrack"].run_once()
    state = exporter.store.get("conntrack")
    rendered = state.rendered
    assert rendered is not None and state.snapshot is None  # rendered by the runner, ahead of scrapes
    await scrape(session, url)
    await scrape(session, url)
    assert state.rendered is rendered
    fake.value = 3.0
    assert await exporter.runners["conntrack"].run_once()
    assert state.rendered is not rendered
    assert (await scrape(session, url))["snat_test_value{node=n1}"] == 3.0


async def test_a_snapshot_stored_while_a_scrape_compresses_is_served_with_its_health(running, monkeypatch) -> None:
    exporter, fake, url, session = running
    from snat_exporter import exposition

    compressing, release = threading.Event(), threading.Event()
    real = exposition._Static.gzip_prefix

    def held(self: exposition._Static, openmetrics: bool) -> Any:
        compressing.set()
        release.wait(30)
        return real(self, openmetrics)

    monkeypatch.setattr(exposition._Static, "gzip_prefix", held)
    loop = asyncio.get_running_loop()
    scraping = asyncio.create_task(scrape(session, url))  # gzip: its first compression waits on `release`
    assert await loop.run_in_executor(None, compressing.wait, 30)
    assert await exporter.runners["conntrack"].run_once()  # the first snapshot arrives meanwhile
    release.set()
    m = await scraping
    # Not "collector succeeded" next to no data: both as of the same moment.
    assert m["snat_exporter_collector_success{collector=conntrack}"] == 1
    assert m["snat_test_value{node=n1}"] == 1.0


async def test_an_ipv6_listen_address_is_logged_and_linked_in_brackets(clock, caplog) -> None:
    """Issue 15: the start-up line said http://::1:PORT, which no browser or curl takes."""
    import logging

    exporter = Exporter(load_config(None, environ={}), clock=clock, collectors=[FakeCollector(clock)])
    with caplog.at_level(logging.INFO, logger="snat_exporter"):
        url = await exporter.start(host="::1", port=0, background=False)
    try:
        port = url.rsplit(":", 1)[1]
        assert url == f"http://[::1]:{port}"
        assert [r.url for r in caplog.records if r.getMessage() == "serving"] == [url]
        async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as resp:
            assert resp.status == 200  # the URL as logged works
    finally:
        await exporter.stop()
