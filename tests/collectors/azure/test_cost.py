"""What keeps a large estate cheap without changing what is exported: the secondary metric groups are asked every
`secondary_interval` (their series keep their last values meanwhile, and their age shows it), and after the first
answer each query asks only for the minutes that may still change (`revision_window`), with counters still counting
every minute exactly once. A FakeClock drives the simulator and the exporter: no sleeps."""

from __future__ import annotations

from datetime import datetime

from snat_exporter.simulator import Fault
from tests.collectors.azure.rigs import estate


def _minutes(request: object) -> float:
    query = request.query  # type: ignore[attr-defined]
    start, end = (datetime.fromisoformat(query[k].replace("Z", "+00:00")) for k in ("starttime", "endtime"))
    return (end - start).total_seconds() / 60


async def test_secondary_groups_are_asked_every_tenth_cycle_and_served_in_between(make_rig, clock) -> None:
    rig = await make_rig(estate(lbs=2, nats=1), batch="always")
    asked: list[set[str]] = []
    ages: list[float] = []
    datapath_ages: list[float] = []
    for _ in range(12):
        before = len(rig.requests("batch"))
        assert await rig.run()
        asked.append({r.query["metricnames"] for r in rig.requests("batch")[before:]})
        # data path availability is served every cycle, fresh or not; its age says how old it is
        assert len(await rig.samples("azure_lb_data_path_availability_ratio")) == 3
        ages.append(await rig.value("azure_metric_sample_age_seconds", resource="lb-0", metric="VipAvailability"))
        datapath_ages.append(
            await rig.value("azure_metric_sample_age_seconds", resource="nat-0", metric="DatapathAvailability")
        )
        clock.advance(60)
    secondary = {"VipAvailability", "DipAvailability", "ByteCount,PacketCount"}
    primary = {"AllocatedSnatPorts,UsedSnatPorts", "SnatConnectionCount", "SNATConnectionCount"}
    primary |= {"TotalConnectionCount", "PacketDropCount,DatapathAvailability"}
    assert [sorted(a & secondary) for a in asked] == [sorted(secondary)] + [[]] * 9 + [sorted(secondary), []]
    assert all(a == primary for i, a in enumerate(asked) if i not in (0, 10))  # SNAT ports, connections, drops
    assert ages[1:10] == [ages[0] + 60 * i for i in range(1, 10)]  # not asked: the same minute, older each cycle
    assert ages[10] == ages[0]  # asked again: fresh
    # NAT datapath availability shares the dropped packets' call: as fresh every cycle as the SNAT metrics
    assert datapath_ages == [datapath_ages[0]] * 12


async def test_a_secondary_group_that_failed_is_asked_again_next_cycle(make_rig, clock) -> None:
    rig = await make_rig(estate(lbs=1, nats=0), batch="always")
    rig.sim.add_fault(Fault(kind="status", operation="batch", metric="VipAvailability", status=500))
    assert await rig.run()
    rig.sim.clear_faults()
    clock.advance(60)
    before = len(rig.requests("batch"))
    assert await rig.run()
    assert "VipAvailability" in {r.query["metricnames"] for r in rig.requests("batch")[before:]}
    assert len(await rig.samples("azure_lb_data_path_availability_ratio")) == 2


async def test_shorter_window_counts_every_minute_once_like_the_whole_window(make_rig, clock) -> None:
    """Two exporters on the same estate: the default asks from 5 minutes before the newest valued minute, the
    other (revision_window 9m) nearly the whole 10-minute window every time. Azure revises the newest 4 minutes
    late; the counters and gauges of both are equal cycle after cycle, and the default asks for fewer minutes."""
    data = estate(lbs=2, nats=1, revise_minutes=4, revise_fraction=0.3)
    short = await make_rig(data, batch="always")
    whole = await make_rig(data, batch="always", revision_window="9m")
    for step in range(6):
        if step == 3:  # a failed cycle on both: the next one back-fills from where the last good one stopped
            for rig in (short, whole):
                rig.sim.add_fault(Fault(kind="status", operation="batch", status=503))
            assert not await short.run() and not await whole.run()
            for rig in (short, whole):
                rig.sim.clear_faults()
            clock.advance(60)
        assert await short.run() and await whole.run()
        assert await short.samples("azure_") == await whole.samples("azure_"), f"step {step}"
        clock.advance(60)
    counted = await short.samples("azure_lb_snat_connections_total")
    assert counted and any(s[2] > 0 for s in counted)
    ports = [r for r in short.requests("batch") if r.query["metricnames"] == "AllocatedSnatPorts,UsedSnatPorts"]
    assert _minutes(ports[0]) == 10  # the first query: the whole window
    # later ones: from 5 minutes before the oldest newest valued minute of the last answer (lag 3 minutes, one
    # minute ago: now - 4) to now, instead of the window plus the minute since the last query (11)
    assert _minutes(ports[2]) == 5 + 4
    asked = sum(_minutes(r) for r in short.requests("batch") if r.status == 200)
    asked_whole = sum(_minutes(r) for r in whole.requests("batch") if r.status == 200)
    assert asked < 0.9 * asked_whole
