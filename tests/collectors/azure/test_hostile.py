"""Issue 15: answers that are legal JSON but not measurements, read through the real SDK on both paths (Metrics
List and getBatch). Each is contained where it enters: the one point or series is dropped and counted, the rest of
the answer is served, no counter moves backwards or to infinity, and the next normal cycle serves every series.

A second exporter reads the same simulator directly (no proxy, same clock): after the hostile cycle and one
normal cycle, the hostile one must show exactly what the twin shows.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from snat_exporter.collectors.azure.config import AzureConfig, ResourceId
from snat_exporter.collectors.azure.parse import MetricResult, Point, Series
from snat_exporter.collectors.azure.planning import Planner, floor_minute
from snat_exporter.collectors.azure.queries import LOAD_BALANCERS, plan
from snat_exporter.config import load_config
from snat_exporter.server import Exporter
from snat_exporter.simulator import Fault, Simulator, exporter_settings, load_scenario
from tests.collectors.azure.hostile import HostileProxy, set_dimension, set_timestamps, set_values
from tests.conftest import FakeClock

Sample = tuple[str, tuple[tuple[str, str], ...], float]
DATA = ("azure_lb_", "azure_natgw_", "azure_cluster_")


@dataclass
class Side:
    exporter: Exporter
    url: str

    async def scrape(self, session: aiohttp.ClientSession) -> list[Sample]:
        async with session.get(self.url + "/metrics") as resp:
            assert resp.status == 200
            raw = await resp.read()
        text = raw.decode("utf-8")  # strict: the exposition is valid UTF-8
        return sorted(
            (s.name, tuple(sorted(s.labels.items())), float(s.value))
            for family in text_string_to_metric_families(text)
            for s in family.samples
        )

    async def run(self) -> bool:
        return await self.exporter.runners["azure"].run_once()


@dataclass
class Pair:
    hostile: Side
    twin: Side
    proxy: HostileProxy
    sim: Simulator
    clock: FakeClock
    session: aiohttp.ClientSession

    async def cycle(self, minutes: int = 1) -> tuple[bool, bool]:
        self.clock.advance(60 * minutes)
        return await self.hostile.run(), await self.twin.run()

    async def data(self, side: Side) -> list[Sample]:
        return [s for s in await side.scrape(self.session) if s[0].startswith(DATA)]

    async def value(self, name: str, **labels: str) -> float:
        found = [
            s[2]
            for s in await self.hostile.scrape(self.session)
            if s[0] == name and all((k, v) in s[1] for k, v in labels.items())
        ]
        return sum(found)


@pytest.fixture(params=["never", "always"], ids=["list", "batch"])
async def pair(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Pair]:
    scenario = load_scenario("exhaustion")
    sim = Simulator(scenario, clock=clock)
    sim_url = await sim.start("127.0.0.1", 0)
    proxy = HostileProxy(sim_url)
    proxy_url = await proxy.start()
    sides = []
    for url in (proxy_url, sim_url):
        settings = {
            **exporter_settings(scenario, url),
            "azure.timeout": "5s",
            "azure.retries": "0",
            "azure.batch": request.param,
        }
        exporter = Exporter(load_config(None, environ={}, overrides=settings), clock=clock)
        sides.append(Side(exporter, await exporter.start(host="127.0.0.1", port=0, background=False)))
    session = aiohttp.ClientSession()
    p = Pair(sides[0], sides[1], proxy, sim, clock, session)
    try:
        assert await p.hostile.run(), p.hostile.exporter.store.get("azure").last_error
        assert await p.twin.run(), p.twin.exporter.store.get("azure").last_error
        assert await p.data(p.hostile) == await p.data(p.twin)
        yield p
    finally:
        await session.close()
        for side in sides:
            await side.exporter.stop()
        await proxy.stop()
        await sim.stop()


def counters(samples: list[Sample]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(n, labels): v for n, labels, v in samples if n.endswith("_total")}


async def assert_healed(pair: Pair) -> None:
    """The next normal cycle serves every series again, with the values an exporter that never saw the hostile
    answer serves."""
    assert await pair.cycle() == (True, True)
    assert await pair.data(pair.hostile) == await pair.data(pair.twin)


async def test_a_lone_surrogate_in_one_backend_ip_drops_that_series_only(pair: Pair) -> None:
    before = await pair.data(pair.hostile)
    pair.proxy.hit(set_dimension("UsedSnatPorts", "BackendIPAddress", "10.0.0.\ud800"))
    assert await pair.cycle() == (True, True)
    during = await pair.data(pair.hostile)  # valid UTF-8 and parseable (Side.scrape)
    used = [s for s in during if s[0] == "azure_lb_snat_ports_used"]
    assert len(used) == len([s for s in before if s[0] == "azure_lb_snat_ports_used"]) - 1
    assert len([s for s in during if s[0] == "azure_lb_snat_ports_allocated"]) == 12  # the rest of the block
    assert await pair.value("snat_exporter_azure_rejected_values_total", reason="bad_label") == 1
    assert await pair.value("snat_exporter_collector_success", collector="azure") == 1
    await assert_healed(pair)


@pytest.mark.parametrize("value", [-8.0, 1e308, float("inf"), float("nan")], ids=["negative", "1e308", "inf", "nan"])
async def test_an_impossible_total_is_never_counted(pair: Pair, value: float) -> None:
    """A negative Total made a counter go down (a reset for Prometheus: a false page), 1e308 left it at +Inf."""
    before = counters(await pair.data(pair.hostile))
    pair.proxy.hit(set_values("SnatConnectionCount", "total", value))
    assert await pair.cycle() == (True, True)
    during = counters(await pair.data(pair.hostile))
    for key, v in during.items():
        assert math.isfinite(v), key
        assert v >= before.get(key, 0.0), f"{key} went from {before.get(key)} to {v}"
    assert await pair.value("snat_exporter_azure_rejected_values_total", metric="SnatConnectionCount") > 0
    await assert_healed(pair)


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
async def test_one_non_finite_point_drops_that_point_not_the_query(pair: Pair, value: float) -> None:
    """Both port metrics of every node used to be lost for one NaN in one backend's newest minute."""
    pair.proxy.hit(set_values("UsedSnatPorts", "average", value, series=0, newest_only=True))
    assert await pair.cycle() == (True, True)
    hostile, twin = await pair.data(pair.hostile), await pair.data(pair.twin)
    ports = ("azure_lb_snat_ports_used", "azure_lb_snat_ports_allocated")
    assert [s for s in hostile if s[0] == ports[1]] == [s for s in twin if s[0] == ports[1]]
    assert len([s for s in hostile if s[0] == ports[0]]) == 12
    assert await pair.value("snat_exporter_azure_metric_errors_total", resource="kubernetes") == 0
    assert await pair.value("snat_exporter_azure_rejected_values_total", reason="non_finite") == 1
    await assert_healed(pair)


async def test_minutes_from_the_future_are_dropped_and_the_window_stays_sane(pair: Pair) -> None:
    pair.proxy.hit(set_timestamps("SnatConnectionCount", "2099-01-01T00:00:00Z"))
    assert await pair.cycle() == (True, True)
    assert await pair.value("snat_exporter_azure_rejected_values_total", reason="future") > 0
    asked = len(pair.proxy.requests)
    await assert_healed(pair)
    # the next cycle's queries did not start from the future minute (every one was answered: assert_healed)
    assert all("2098" not in r and "2099" not in r for r in pair.proxy.requests[asked:])


# ------------------------------------------------------------------------------------ the query window (item 1)

LB_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Network/loadBalancers/lb"
)


def test_a_minute_after_now_never_moves_the_query_window_past_now() -> None:
    """After one answer whose points lay in 2099, every later query asked starttime=2099 and got 400, until the
    series expired. Even a minute the parser lets through (within clock skew) must not start a window in the
    future: the planner asks the whole window again."""
    cfg = AzureConfig(revision_window=60.0)
    planner = Planner(cfg)
    query = plan(LOAD_BALANCERS)[1]
    qkey = (ResourceId.parse(LB_ID), query.metricnames)
    now = 1_800_000_000.0
    for future in (now + 240.0, datetime(2099, 1, 1, tzinfo=UTC).timestamp()):
        window_start, _ = planner.query_start(qkey, now)
        series = Series((("backendipaddress", "10.224.0.4"),), (Point(now - 180.0, 1.0), Point(future, 1.0)))
        planner.answered(
            qkey, query, {"snatconnectioncount": MetricResult("SnatConnectionCount", None, "", (series,))}, window_start
        )
        later = now + 60.0
        window_start, start = planner.query_start(qkey, later)
        assert start == window_start == floor_minute(later - cfg.window), future


def _starts(requests: list[str]) -> set[str]:
    """The start of the timespan each recorded metric request asked for (Metrics List: timespan=start/end;
    getBatch: starttime=...)."""
    out = set()
    for r in requests:
        m = re.search(r"(?:timespan=|starttime=)(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)", unquote(r))
        assert m, r
        out.add(m.group(1))
    return out


async def test_a_4xx_answer_resets_the_query_window(pair: Pair) -> None:
    assert await pair.cycle() == (True, True)
    pair.sim.add_fault(Fault("status", status=400))
    assert await pair.cycle(minutes=0) == (False, False)  # same minute: the next start would still be the resume
    pair.sim.clear_faults()
    asked = len(pair.proxy.requests)
    assert await pair.cycle() == (True, True)
    window_start = datetime.fromtimestamp(floor_minute(pair.clock() - 600.0), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert _starts(pair.proxy.requests[asked:]) == {window_start}
    assert await pair.data(pair.hostile) == await pair.data(pair.twin)


async def test_a_resource_arm_names_with_a_lone_surrogate_is_left_out_not_the_block(pair: Pair) -> None:
    """The names discovery reads from ARM become labels of every series: one that cannot be a label value leaves
    out that resource (counted), and the next discovery that reads a good name brings it back."""

    def rename(doc: Any) -> bool:
        for lb in doc.get("value") or ():
            lb["name"] = lb["name"] + "\ud800"
        return bool(doc.get("value"))

    kept = [s for s in await pair.data(pair.hostile) if not s[0].startswith("azure_lb_")]
    assert kept  # the cluster's info series at least
    pair.proxy.hit(rename, path=r"/providers/Microsoft\.Network/loadBalancers$")
    while pair.proxy.rewritten == 0:  # minute by minute to the next discovery (discovery_interval)
        assert await pair.cycle() == (True, True)
    during = await pair.data(pair.hostile)  # valid UTF-8 (Side.scrape)
    assert not [s for s in during if s[0].startswith("azure_lb_")]
    assert [s for s in during if not s[0].startswith("azure_lb_")] == kept
    assert await pair.value("snat_exporter_azure_discovery_errors_total", reason="bad_label") == 1
    for _ in range(10):  # the discovery after reads a good name
        assert await pair.cycle() == (True, True)
    # every series is back (a resource left out is forgotten: its counters start again, as after a restart)
    assert [s[:2] for s in await pair.data(pair.hostile)] == [s[:2] for s in await pair.data(pair.twin)]
