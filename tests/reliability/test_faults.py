"""Every fault of issue 8, as one table: each row runs the real exporter against the real source (the Azure
simulator through the Azure SDK, the fake Kubernetes API through the official client, the kernel) and checks what
an SRE would notice:

- /metrics answers within SCRAPE_BUDGET while the fault is active, also while a collection is in flight;
- the failure is counted in a self-metric (``snat_exporter_collector_errors_total{reason}`` or the collector's own);
- the last good data is still served but marked (``snat_exporter_collector_stale 1``, or the per-metric
  ``azure_metric_sample_age_seconds`` for a fault that hits one metric), then dropped after the section's
  documented ``max_age`` (the defaults are used, so the test proves the documented TTL);
- everything is back once the fault ends.

docs/reliability.md lists the same rows with what the user sees.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from snat_exporter.collectors.azure import client as azure_client
from snat_exporter.collectors.kube.collector import KubeCollector
from snat_exporter.config import load_config
from snat_exporter.server import Exporter
from snat_exporter.simulator import Fault, Simulator, exporter_settings, load_scenario
from snat_exporter.simulator.kubeapi import KubeApiServer
from snat_exporter.simulator.kubeobjects import node_object, write_kubeconfig
from tests.collectors.azure.hostile import HostileProxy, set_dimension, set_timestamps, set_values
from tests.conftest import FakeClock, is_root, wait_until
from tests.reliability.harness import (
    SCRAPE_BUDGET,
    Scrape,
    captured_logs,
    scrape,
    scrape_during,
    scrape_until,
)
from tests.unprivileged import as_user

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable

# A client secret and a token as a broken credential might echo them. They must never reach a log line, /, or
# /metrics: the secret is also in the environment (AZURE_CLIENT_SECRET), as it is in a real pod.
FAKE_SECRET = "Zq8~rel1ability.Fake-Secret_0042"
FAKE_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQuYXp1cmUuY29tIn0.c2lnbmF0dXJlLWZha2U"


@dataclass(frozen=True)
class Row:
    """One fault. ``reason``: the runner's error reason when the fault fails the whole collection; None when it
    hits one metric only (``metric_code`` is then the code counted in snat_exporter_azure_metric_errors_total)."""

    id: str
    area: str  # azure | azure_credential | azure_hostile | kube_* | kernel_* | process_sigterm
    fault: Fault | None = None
    reason: str | None = None
    metric_code: str | None = None
    counted: tuple[str, tuple[tuple[str, str], ...]] | None = None  # a collector's own self-metric that must move
    retry_after: float | None = None  # the runner must wait at least this long before the next try
    says: tuple[str, ...] = ()  # what the error shown on / (and logged) must say, so that an SRE knows what broke
    params: dict[str, Any] = field(default_factory=dict)


USED = "UsedSnatPorts"
THROTTLED = ("snat_exporter_azure_throttled_requests_total", ())


def rejected(reason: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("snat_exporter_azure_rejected_values_total", (("reason", reason),))


ROWS = [
    # ---- Azure Monitor, through the Azure SDK against the simulator (default config: getBatch, then Metrics List)
    Row("azure-429-retry-after", "azure", Fault("status", status=429, retry_after=600), "throttled",
        counted=THROTTLED, retry_after=600, says=("HTTP 429",)),
    Row("azure-429-no-retry-after", "azure", Fault("status", status=429), "throttled", counted=THROTTLED,
        says=("HTTP 429",)),
    Row("azure-529-server-busy", "azure", Fault("status", status=529), "throttled", counted=THROTTLED,
        says=("HTTP 529 ServerBusy",)),
    Row("azure-500", "azure", Fault("status", status=500), "http_5xx", says=("HTTP 500",)),
    Row("azure-503", "azure", Fault("status", status=503), "http_5xx", says=("HTTP 503",)),
    Row("azure-timeout", "azure", Fault("latency", seconds=30), "timeout", says=("deadline exceeded",)),
    Row("azure-reset-mid-body", "azure", Fault("reset"), "malformed", says=("IncompleteRead",)),
    Row("azure-malformed-json", "azure", Fault("malformed"), "malformed", says=("DecodeError",)),
    Row("azure-wrong-shape", "azure", Fault("wrong_shape"), "malformed", says=("MalformedResponse",)),
    Row("azure-errorcode-in-200", "azure", Fault("metric_error", metric=USED), metric_code="InvalidSamplingType"),
    Row("azure-empty-timeseries", "azure", Fault("empty_timeseries", metric=USED), metric_code="no_data"),
    Row("azure-minutes-without-values", "azure", Fault("empty_minutes", metric=USED, minutes=None),
        metric_code="no_data"),
    # ---- legal but hostile Azure answers (issue 15), rewritten by a proxy on the wire: the collection succeeds,
    # the one point or series is dropped and counted, and the next normal cycle serves every series
    Row("azure-minutes-from-the-future", "azure_hostile", counted=rejected("future"),
        params={"rewrite": set_timestamps("SnatConnectionCount", "2099-01-01T00:00:00Z")}),
    Row("azure-negative-total", "azure_hostile", counted=rejected("negative"),
        params={"rewrite": set_values("SnatConnectionCount", "total", -8.0)}),
    Row("azure-total-of-1e308", "azure_hostile", counted=rejected("too_large"),
        params={"rewrite": set_values("SnatConnectionCount", "total", 1e308)}),
    Row("azure-nan-in-one-series", "azure_hostile", counted=rejected("non_finite"),
        params={"rewrite": set_values(USED, "average", float("nan"), series=0, newest_only=True)}),
    Row("azure-lone-surrogate-in-a-label", "azure_hostile", counted=rejected("bad_label"),
        params={"rewrite": set_dimension(USED, "BackendIPAddress", "10.0.0.\ud800"), "drops_series": True}),
    Row("azure-token-acquisition-fails", "azure_credential", reason="auth",
        says=("ClientAuthenticationError", "AADSTS7000215")),
    # ---- Kubernetes, through the official client against the fake API server
    Row("kube-api-down-at-start", "kube_at_start", reason="unreachable",
        counted=("snat_exporter_kube_watch_restarts_total", (("reason", "unreachable"),))),
    Row("kube-watch-dropped", "kube_resume", params={"how": "drop"},
        counted=("snat_exporter_kube_watch_restarts_total", (("reason", "dropped"),))),
    Row("kube-410-gone", "kube_resume", params={"how": "gone"},
        counted=("snat_exporter_kube_watch_restarts_total", (("reason", "gone"),))),
    Row("kube-403-forbidden", "kube_outage", reason="forbidden", params={"how": "403"},
        counted=("snat_exporter_kube_watch_restarts_total", (("reason", "forbidden"),))),
    Row("kube-api-down-after-sync", "kube_outage", reason="unreachable", params={"how": "down"},
        counted=("snat_exporter_kube_watch_restarts_total", (("reason", "unreachable"),))),
    # ---- the kernel: this host's conntrack read-only, or a lab namespace (no traffic leaves the machine)
    Row("kernel-procfs-missing-netlink-serves", "kernel_procfs", params={"source": "auto"}),
    Row("kernel-procfs-missing-procfs-only", "kernel_procfs", reason="unavailable", params={"source": "procfs"}),
    Row("kernel-permission-denied", "kernel_unprivileged"),
    Row("kernel-conntrack-table-full", "kernel_table_full"),
    # ---- the process
    Row("process-sigterm-mid-collection", "process_sigterm"),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
async def test_fault(row: Row, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", FAKE_SECRET)
    with captured_logs() as logs:
        pages = await DRIVERS[row.area](row, clock, tmp_path, monkeypatch)
    # Whatever happened, no secret reached a log line, a page, or /metrics.
    for where, text in [("logs", logs.getvalue()), *pages]:
        for secret in (FAKE_SECRET, FAKE_JWT):
            assert secret not in text, f"{secret[:12]}... leaked into {where}"


Pages = list[tuple[str, str]]


async def pages_of(session: aiohttp.ClientSession, url: str, exporter: Exporter | None) -> Pages:
    out = [("/", (await scrape(session, url, "/")).text), ("/metrics", (await scrape(session, url)).text)]
    if exporter is not None:
        out += [(f"last_error of {s.name}", s.last_error or "") for s in exporter.store.states()]
    return out


def counted(after: Scrape, row: Row) -> float:
    assert row.counted is not None
    name, labels = row.counted
    return after.value(name, **dict(labels)) or 0.0


# --------------------------------------------------------------------------------------------------- Azure


class SwitchableCredential:
    """An Azure credential that works until told to fail; failing, it raises as MSAL does for a bad client secret,
    echoing the secret and a token in its message (the worst case the exporter must contain)."""

    def __init__(self) -> None:
        self.failing = False
        self.calls = 0

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        if self.failing:
            raise ClientAuthenticationError(
                f"AADSTS7000215: Invalid client secret provided ('{FAKE_SECRET}'); last token {FAKE_JWT}"
            )
        # Expiring at once, so the bearer policy asks again on every request instead of caching.
        return AccessToken(FAKE_JWT, int(time.time()))

    async def get_token_info(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessTokenInfo

        token = await self.get_token(*scopes)
        return AccessTokenInfo(token.token, token.expires_on)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> SwitchableCredential:
        return self

    async def __aexit__(self, *args: Any) -> None:
        pass


async def azure(row: Row, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pages:
    credential = SwitchableCredential()
    scenario = load_scenario("exhaustion")
    sim = Simulator(scenario, clock=clock)
    sim_url = await sim.start("127.0.0.1", 0)
    settings = {
        **exporter_settings(scenario, sim_url),
        "azure.timeout": "2s",  # the timeout row hangs for this long; every other row answers at once
    }
    if row.area == "azure_credential":
        settings["azure.credential"] = "environment"
        monkeypatch.setattr(azure_client, "make_credential", lambda config: credential)
    exporter = Exporter(load_config(None, environ={}, overrides=settings), clock=clock)
    url = await exporter.start(host="127.0.0.1", port=0, background=False)
    runner = exporter.runners["azure"]
    max_age = exporter.config.azure.max_age  # the documented default: 15 minutes
    try:
        async with aiohttp.ClientSession() as session:
            assert await runner.run_once(), exporter.store.get("azure").last_error
            good = await scrape(session, url)
            used = good.find("azure_lb_snat_ports_used")
            assert len(used) == 12  # 6 nodes x TCP/UDP

            if row.fault is not None:
                sim.add_fault(row.fault)
            credential.failing = True
            clock.advance(60)
            before = len(sim.requests), credential.calls
            ok, during = await scrape_during(
                runner.run_once(), lambda: (len(sim.requests), credential.calls) != before, session, url
            )
            assert during.seconds < SCRAPE_BUDGET, f"/metrics took {during.seconds:.2f}s during the fault"
            after = await scrape(session, url)
            assert after.find("azure_lb_snat_ports_used") == used, "the last good values are still served"
            if row.reason is not None:
                assert not ok
                assert (
                    after.value("snat_exporter_collector_errors_total", collector="azure", reason=str(row.reason)) == 1
                )
                assert after.value("snat_exporter_collector_stale", collector="azure") == 1
                assert after.value("snat_exporter_collector_data_age_seconds", collector="azure") == 60
                shown = exporter.store.get("azure").last_error or ""
                unclear = [w for w in row.says if w not in shown]  # checked last: the rest of the row still runs
            else:  # one metric failed: the run succeeds, that metric's age grows and its error is counted
                assert ok
                assert (
                    after.value("snat_exporter_azure_metric_errors_total", metric=USED, code=str(row.metric_code)) == 1
                )
                assert after.value("snat_exporter_collector_stale", collector="azure") == 0
                age_used = after.value("azure_metric_sample_age_seconds", metric=USED)
                age_allocated = after.value("azure_metric_sample_age_seconds", metric="AllocatedSnatPorts")
                assert age_used is not None and age_allocated is not None and age_used >= age_allocated + 60
            if row.counted is not None:
                assert counted(after, row) >= 1
            if row.retry_after is not None:
                assert runner.next_delay(0) >= row.retry_after

            # Past max_age the old values are dropped, not passed off as current.
            clock.advance(max_age)
            assert await runner.run_once() == (row.reason is None)
            expired = await scrape(session, url)
            assert expired.seconds < SCRAPE_BUDGET
            assert not expired.find("azure_lb_snat_ports_used"), "values older than max_age must be dropped"
            if row.reason is not None:
                assert expired.value("snat_exporter_collector_stale", collector="azure") == 1
                assert not expired.find("azure_lb_snat_ports_allocated")
            else:
                assert expired.find("azure_lb_snat_ports_allocated"), "the healthy metrics stay fresh"

            # The fault ends: everything is back on the next run.
            sim.clear_faults()
            credential.failing = False
            clock.advance(60)
            assert await runner.run_once(), exporter.store.get("azure").last_error
            healed = await scrape(session, url)
            assert healed.value("snat_exporter_collector_stale", collector="azure") == 0
            assert len(healed.find("azure_lb_snat_ports_used")) == 12
            if row.reason is not None:
                assert (
                    healed.value("snat_exporter_collector_errors_total", collector="azure", reason=str(row.reason)) == 2
                )
                assert not unclear, f"the error shown on / should say {unclear}, so an SRE knows what broke: {shown!r}"
            return await pages_of(session, url, exporter)
    finally:
        await exporter.stop()
        await sim.stop()


# ---------------------------------------------------------------------------------------------- Kubernetes


async def kube_exporter(server: KubeApiServer, clock: FakeClock, tmp_path: Path) -> tuple[Exporter, str]:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
    settings = {"kubernetes.enabled": "true", "kubernetes.kubeconfig": str(kubeconfig)}
    exporter = Exporter(load_config(None, environ={}, overrides=settings), clock=clock)
    return exporter, await exporter.start(host="127.0.0.1", port=0, background=False)


@asynccontextmanager
async def kube_server() -> AsyncIterator[KubeApiServer]:
    server = KubeApiServer()
    await server.start()
    server.add(node_object("aks-system-0", "10.224.0.4", pool="system", zone="westeurope-1"))
    try:
        yield server
    finally:
        await server.stop()


def node_names(s: Scrape) -> set[str]:
    return {labels["node"] for _, labels, _ in s.find("snat_kube_node_info")}


async def kube_at_start(row: Row, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pages:
    async with kube_server() as server:
        await server.stop()  # down before the exporter starts; the kubeconfig keeps its port
        exporter, url = await kube_exporter(server, clock, tmp_path)
        runner = exporter.runners["kubernetes"]
        try:
            async with aiohttp.ClientSession() as session:
                ok, during = await scrape_during(runner.run_once(), lambda: False, session, url)
                assert during.seconds < SCRAPE_BUDGET
                assert not ok
                after = await scrape(session, url)
                assert after.value(
                    "snat_exporter_collector_errors_total", collector="kubernetes", reason=str(row.reason)
                )
                assert counted(after, row) >= 1
                assert not after.find("snat_kube_node_info")
                await server.start()
                collector: Any = exporter.collectors[0]
                await wait_until(lambda: collector.reflectors[0].synced, "the cache to sync once the API is up")
                assert await runner.run_once()
                healed = await scrape(session, url)
                assert node_names(healed) == {"aks-system-0"}
                assert healed.value("snat_exporter_collector_stale", collector="kubernetes") == 0
                return await pages_of(session, url, exporter)
        finally:
            await exporter.stop()


async def kube_resume(row: Row, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pages:
    async with kube_server() as server:
        exporter, url = await kube_exporter(server, clock, tmp_path)
        runner = exporter.runners["kubernetes"]
        collector: KubeCollector = exporter.collectors[0]  # type: ignore[assignment]
        try:
            async with aiohttp.ClientSession() as session:
                assert await runner.run_once()
                await wait_until(lambda: server.open_watches("nodes"), "the node watch")
                lists = server.requests[("list", "nodes")]
                if row.params["how"] == "gone":
                    server.fail(410, resources=["nodes"], times=1)
                server.drop_watches()
                await wait_until(lambda: counted_live(exporter, row) >= 1, f"the {row.id} restart to be counted")
                server.add(node_object("aks-system-1", "10.224.0.5", pool="system", zone="westeurope-2"))
                await wait_until(lambda: collector.identity.node_by_ip("10.224.0.5"), "the node added after the fault")
                # A dropped watch resumes from its resourceVersion; only 410 Gone costs a full relist.
                assert server.requests[("list", "nodes")] == lists + (1 if row.params["how"] == "gone" else 0)
                ok, during = await scrape_during(runner.run_once(), lambda: False, session, url)
                assert ok and during.seconds < SCRAPE_BUDGET
                after = await scrape(session, url)
                assert node_names(after) == {"aks-system-0", "aks-system-1"}
                assert after.value("snat_exporter_collector_stale", collector="kubernetes") == 0
                assert counted(after, row) >= 1
                return await pages_of(session, url, exporter)
        finally:
            await exporter.stop()


def counted_live(exporter: Exporter, row: Row) -> float:
    assert row.counted is not None
    name, labels = row.counted
    return exporter.registry.get_sample_value(name, {"resource": "nodes", **dict(labels)}) or 0.0


async def kube_outage(row: Row, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pages:
    async with kube_server() as server:
        exporter, url = await kube_exporter(server, clock, tmp_path)
        runner = exporter.runners["kubernetes"]
        collector: KubeCollector = exporter.collectors[0]  # type: ignore[assignment]
        max_age = exporter.config.kubernetes.max_age  # documented default: 10 minutes
        try:
            async with aiohttp.ClientSession() as session:
                assert await runner.run_once()
                synced_at = (await scrape(session, url)).value("snat_exporter_kube_last_sync_timestamp_seconds")
                await wait_until(lambda: server.open_watches("nodes"), "the node watch")
                if row.params["how"] == "403":
                    server.fail(403)
                    server.drop_watches()
                else:
                    await server.stop()
                await wait_until(lambda: counted_live(exporter, row) >= 1, "the lost watch to be counted")
                # Within max_age the names keep coming, and the age of the cache shows on /metrics.
                clock.advance(max_age / 2)
                ok, during = await scrape_during(runner.run_once(), lambda: False, session, url)
                assert ok and during.seconds < SCRAPE_BUDGET
                after = await scrape(session, url)
                assert node_names(after) == {"aks-system-0"}
                assert after.value("snat_exporter_kube_last_sync_timestamp_seconds") == synced_at
                # Past max_age the cache is dropped (the next failed retry notices) and the run fails.
                clock.advance(max_age / 2 + 1)
                await wait_until(lambda: collector.identity.node_by_ip("10.224.0.4") is None, "the cache to drop")
                assert not await runner.run_once()
                expired = await scrape(session, url)
                assert expired.seconds < SCRAPE_BUDGET
                assert expired.value(
                    "snat_exporter_collector_errors_total", collector="kubernetes", reason=str(row.reason)
                )
                assert expired.value("snat_exporter_collector_stale", collector="kubernetes") == 1
                # The lookups the other collectors use are gone already (Azure series keep bare IPs); the join
                # series of the last good run stays, marked stale, until the runner's own max_age since that run.
                assert collector.identity.node_by_ip("10.224.0.4") is None
                clock.advance(max_age / 2)
                dropped = await scrape(session, url)
                assert not dropped.find("snat_kube_node_info"), "names older than max_age must be dropped"
                if row.params["how"] == "403":
                    assert "forbidden" in (exporter.store.get("kubernetes").last_error or "")
                    server.heal()
                else:
                    await server.start()
                await wait_until(lambda: collector.reflectors[0].synced, "a relist once the fault ends", 15)
                assert await runner.run_once()
                healed = await scrape(session, url)
                assert node_names(healed) == {"aks-system-0"}
                assert healed.value("snat_exporter_collector_stale", collector="kubernetes") == 0
                return await pages_of(session, url, exporter)
        finally:
            await exporter.stop()


# -------------------------------------------------------------------------------------------------- kernel


def require_root() -> None:
    if not is_root():
        pytest.fail("the kernel rows read this host's conntrack over netlink: run the reliability tests as root")


async def kernel_procfs(row: Row, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pages:
    require_root()
    empty = tmp_path / "empty-proc"
    empty.mkdir()
    settings = {
        "conntrack.enabled": "true",
        "conntrack.procfs_path": str(empty),
        "conntrack.source": row.params["source"],
    }
    exporter = Exporter(load_config(None, environ={}, overrides=settings), clock=clock)
    url = await exporter.start(host="127.0.0.1", port=0, background=False)
    runner = exporter.runners["conntrack"]
    try:
        async with aiohttp.ClientSession() as session:
            ok, during = await scrape_during(runner.run_once(), lambda: False, session, url)
            assert during.seconds < SCRAPE_BUDGET
            after = await scrape(session, url)
            if row.reason is None:
                # netlink gives the table and the counters; procfs is not needed.
                assert ok, exporter.store.get("conntrack").last_error
                assert after.value("snat_exporter_conntrack_source_info", table="netlink", counters="netlink") == 1
                assert after.value("snat_conntrack_entries") is not None
                assert after.value("snat_conntrack_entries_limit") is not None
            else:
                # Nothing readable: the run fails with a reason that says so, and /metrics still answers.
                assert not ok
                assert after.value(
                    "snat_exporter_collector_errors_total", collector="conntrack", reason=str(row.reason)
                )
                assert "does not exist" in (exporter.store.get("conntrack").last_error or "")
                assert after.value("snat_exporter_collector_success", collector="conntrack") == 0
            return await pages_of(session, url, exporter)
    finally:
        await exporter.stop()


def serve_subprocess(*args: str, user: str | None = None, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    cmd = [PYTHON, "-m", "snat_exporter", "serve", "--listen", "127.0.0.1:0", *args]
    if user is not None:
        cmd = as_user(user, cmd)
    return subprocess.Popen(
        cmd,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 20) -> tuple[str, list[str]]:
    """stderr lines up to (and including) the first containing ``marker``. Reads the raw fd: select() on a
    buffered text stream would miss lines already sitting in Python's buffer."""
    import select

    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
        lines = data.decode(errors="replace").splitlines(keepends=True)
        for line in lines:
            if marker in line and line.endswith("\n"):
                return line, lines
    proc.kill()
    pytest.fail(f"no {marker!r} from {proc.args!r} within {timeout}s; got: {data.decode(errors='replace')[-2000:]}")


def url_of(serving_line: str) -> str:
    for token in serving_line.split():
        if token.startswith("url="):
            return token[4:]
    raise AssertionError(serving_line)


async def kernel_unprivileged(row: Row, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pages:
    """The node agent without CAP_NET_ADMIN: the real process, as uid 65534 with every capability dropped."""
    require_root()
    proc = serve_subprocess("--set", "conntrack.enabled=true", "--set", "conntrack.interval=1s", user="65534")
    try:
        serving, lines = read_until(proc, "msg=serving")
        startup = "".join(lines)
        assert "CAP_NET_ADMIN" in startup and "permission denied" in startup, startup
        url = url_of(serving)
        async with aiohttp.ClientSession() as session:
            after = await scrape_until(
                session,
                url,
                lambda s: s.value("snat_exporter_collector_success", collector="conntrack") == 1,
                "the unprivileged agent to complete a collection",
            )
            assert after.seconds < SCRAPE_BUDGET
            # What it can read, it serves: the count from /proc/sys and the counters from /proc/net/stat ...
            assert after.value("snat_conntrack_entries") is not None
            assert after.value("snat_exporter_conntrack_source_info", table="none", counters="procfs") == 1
            # ... and the flow table, which needs CAP_NET_ADMIN (or root-only procfs), is absent, not empty.
            assert not after.find("snat_destination_flows")
            pages = [("/metrics", after.text), ("/", (await scrape(session, url, "/")).text)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        pages.append(("stderr", startup + proc.stderr.read()))
        return pages
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


# Sends one datagram from each of ``sockets`` sockets to every (address, port) of 198.51.100.0/24 x ports: each
# is a conntrack entry in the node namespace (the lab routes that range out and the far side drops it silently).
FILL = r"""
import socket, sys
src, sockets, hosts, ports = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
socks = []
for _ in range(sockets):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((src, 0)); socks.append(s)
for h in range(1, hosts + 1):
    for p in range(1000, 1000 + ports):
        for s in socks:
            s.sendto(b"x", (f"198.51.100.{h}", p))
print("sent", flush=True)
"""


async def kernel_table_full(row: Row, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pages:
    """A lab node namespace filled past the host's nf_conntrack_max (read-only per namespace, so the table is
    filled instead): the collector reports entries at the limit and the kernel's early drops."""
    require_root()
    from tests.netns.lab import POD_IPS, Lab

    with Lab(udp_timeout=600) as lab:
        limit = int(lab.ns_exec(lab.node, "cat", "/proc/sys/net/netfilter/nf_conntrack_max"))
        if limit > 300_000:
            pytest.fail(f"nf_conntrack_max is {limit}: filling the table would take too long on this host")
        sockets, ports = 40, 70
        hosts = min(254, limit * 11 // 10 // (sockets * ports) + 1)  # 10% more flows than the table holds
        lab.ns_exec(lab.pod, sys.executable, "-c", FILL, POD_IPS[0], str(sockets), str(hosts), str(ports))
        result = lab.collect("conntrack.top_k=5")
        values = {s["name"]: s["value"] for s in result["samples"] if not s["labels"].get("destination")}
        assert values["snat_conntrack_entries_limit"] == limit
        # The table is full as the kernel reports it: the count stops just short of the limit, new flows evict
        # unreplied ones (early_drop), and the exporter says so rather than failing its run.
        assert values["snat_conntrack_entries"] >= limit - 16, values["snat_conntrack_entries"]
        assert values["snat_conntrack_early_drop_total"] > 0
        assert "snat_outbound_flows_max_per_destination" in values
        return [("collector stderr", result["stderr"])]


# ------------------------------------------------------------------------------------------------- process


async def process_sigterm(row: Row, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pages:
    """SIGTERM while an Azure request hangs: the process exits 0 within a few seconds."""
    scenario = load_scenario("exhaustion")
    sim = Simulator(scenario)
    sim.add_fault(Fault("latency", operation="arm", seconds=120))
    sim_url = await sim.start("127.0.0.1", 0)
    config = tmp_path / "config.yaml"
    config.write_text(
        "azure:\n"
        "  enabled: true\n"
        f"  arm_endpoint: {sim_url}\n"
        "  credential: none\n"
        f"  subscription_id: {scenario.subscription_id}\n"
        f"  cluster: {{resource_group: {scenario.cluster.resource_group}, name: {scenario.cluster.name}}}\n"
        "  timeout: 60s\n"
    )
    proc = serve_subprocess("--config", str(config))
    try:
        serving, _ = read_until(proc, "msg=serving")
        url = url_of(serving)
        await wait_until(lambda: sim.requests, "the exporter's first (hanging) Azure request", 15)
        async with aiohttp.ClientSession() as session:
            during = await scrape(session, url)
            assert during.seconds < SCRAPE_BUDGET
            pages = await pages_of(session, url, None)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await wait_until(lambda: proc.poll() is not None, "the process to exit after SIGTERM", 10)
        assert code and proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() - t0 < 5
        assert proc.stderr is not None
        pages.append(("stderr", proc.stderr.read()))
        return pages
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        await sim.stop()


# ------------------------------------------------------------------------------------ hostile Azure answers


def counters(s: Scrape) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (n, tuple(sorted(labels.items()))): v
        for n, labels, v in s.samples
        if n.startswith("azure_") and n.endswith("_total")
    }


async def azure_hostile(row: Row, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pages:
    scenario = load_scenario("exhaustion")
    sim = Simulator(scenario, clock=clock)
    proxy = HostileProxy(await sim.start("127.0.0.1", 0))
    settings = {**exporter_settings(scenario, await proxy.start()), "azure.timeout": "2s"}
    exporter = Exporter(load_config(None, environ={}, overrides=settings), clock=clock)
    url = await exporter.start(host="127.0.0.1", port=0, background=False)
    runner = exporter.runners["azure"]
    try:
        async with aiohttp.ClientSession() as session:
            assert await runner.run_once(), exporter.store.get("azure").last_error
            good = await scrape(session, url)
            assert len(good.find("azure_lb_snat_ports_used")) == 12

            proxy.hit(row.params["rewrite"])
            clock.advance(60)
            ok, during = await scrape_during(runner.run_once(), lambda: proxy.rewritten > 0, session, url)
            assert during.seconds < SCRAPE_BUDGET, f"/metrics took {during.seconds:.2f}s during the fault"
            assert ok, exporter.store.get("azure").last_error  # contained: the collection itself succeeds
            assert proxy.rewritten == 1, "the hostile answer was served"
            after = await scrape(session, url)
            assert counted(after, row) >= 1
            assert after.value("snat_exporter_collector_stale", collector="azure") == 0
            before = counters(good)
            for key, value in counters(after).items():
                assert math.isfinite(value) and value >= before.get(key, 0.0), (key, before.get(key), value)
            expected = 11 if row.params.get("drops_series") else 12
            assert len(after.find("azure_lb_snat_ports_used")) == expected

            clock.advance(60)  # the next normal cycle serves every series again
            assert await runner.run_once(), exporter.store.get("azure").last_error
            healed = await scrape(session, url)
            assert len(healed.find("azure_lb_snat_ports_used")) == 12
            assert healed.value("snat_exporter_collector_stale", collector="azure") == 0
            assert all(math.isfinite(v) for v in counters(healed).values())
            return await pages_of(session, url, exporter)
    finally:
        await exporter.stop()
        await proxy.stop()
        await sim.stop()


DRIVERS: dict[str, Callable[[Row, FakeClock, Path, pytest.MonkeyPatch], Any]] = {
    "azure": azure,
    "azure_hostile": azure_hostile,
    "azure_credential": azure,
    "kube_at_start": kube_at_start,
    "kube_resume": kube_resume,
    "kube_outage": kube_outage,
    "kernel_procfs": kernel_procfs,
    "kernel_unprivileged": kernel_unprivileged,
    "kernel_table_full": kernel_table_full,
    "process_sigterm": process_sigterm,
}
