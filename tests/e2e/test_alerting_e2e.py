"""The proof: the real Prometheus and Alertmanager, loaded with alerts/ and scraping exporters that run on the
simulator, page on SNAT exhaustion with the node named, fill every dashboard panel, and stay quiet on a healthy
cluster. See tests/e2e/stack.py for the clock and the `for:` shortening.

Panels fed by the node agent (conntrack) are not checked here: these exporters read Azure only, and a conntrack
table with SNAT flows needs the network-namespace lab. CONNTRACK_PANELS lists them; their recording rules are
covered by alerts/tests/*.yml (promtool).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import FakeClock
from tests.e2e.stack import (
    Stack,
    Target,
    azure_minute,
    dashboard_queries,
    start_exporter,
    variable_queries,
    wait_for,
    with_all_selected,
)

pytestmark = pytest.mark.e2e

EXHAUSTED_NODE = "aks-nodepool1-85638540-vmss000002"  # node index 2 of the `exhaustion` scenario
CONNTRACK_PANELS = {
    "Worst conntrack table",
    "Conntrack table utilisation per node",
    "Conntrack insert failures per node",
    "Node-side destination pressure",
    "Outbound flows by TCP state",
    "Top destinations by concurrent outbound flows",
    "Top pods by concurrent outbound flows",
}


class Rig:
    def __init__(self, stack: Stack, targets: list[Target], clock: FakeClock):
        self.stack, self.targets, self.clock = stack, targets, clock

    async def minute(self) -> None:
        await azure_minute(self.clock, self.stack, self.targets)


@pytest.fixture
async def rig_for(tmp_path: Path) -> AsyncIterator[Any]:
    stoppable: list[Any] = []
    session = aiohttp.ClientSession()
    clock = FakeClock(time.time())  # Prometheus stamps samples in wall time; the exporters start from it

    async def make(*scenarios: str) -> Rig:
        targets = []
        for name in scenarios:
            target, parts = await start_exporter(tmp_path, clock, name, kube=name != "natgw")
            targets.append(target)
            stoppable.extend(parts)
        stack = Stack(tmp_path, session)
        stoppable.insert(0, stack)
        await stack.start([t.instance for t in targets])
        return Rig(stack, targets, clock)

    yield make
    for part in stoppable:
        await part.stop()
    await session.close()


async def test_snat_failure_pages_with_the_node_named_and_every_panel_has_data(rig_for) -> None:
    rig = await rig_for("exhaustion", "natgw")
    stack = rig.stack

    async def paged() -> list[dict[str, Any]]:
        await rig.minute()  # failed connections keep arriving, one Azure minute at a time
        return stack.webhook.firing("SnatLoadBalancerConnectionsFailing")

    alerts = await wait_for("SnatLoadBalancerConnectionsFailing at the webhook", paged, 90)
    assert {a["labels"]["node"] for a in alerts} == {EXHAUSTED_NODE}
    (alert,) = alerts
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["backend_ip"] == "10.224.0.6"
    assert EXHAUSTED_NODE in alert["annotations"]["description"]
    assert alert["annotations"]["runbook_url"].endswith("runbook.md#snatloadbalancerconnectionsfailing")

    # The exhausted node is also reported as out of ports; the five healthy nodes are not.
    firing = await stack.query('ALERTS{alertstate="firing", alertname=~"SnatPorts.*"}')
    assert {a["metric"]["node"] for a in firing} == {EXHAUSTED_NODE}

    # A second minute so that every rate() has two samples, then every panel query must return data.
    await rig.minute()
    empty = []
    for board, title, expr in dashboard_queries():
        if title in CONNTRACK_PANELS:
            continue
        if not await stack.query(with_all_selected(expr)):
            empty.append(f"{board}: {title}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)

    for board, name, query in variable_queries():
        selector, label = query.removeprefix("label_values(").removesuffix(")").rsplit(", ", 1)
        values = {s.get(label) for s in await stack.series(with_all_selected(selector))} - {None, ""}
        assert values, f"{board}: ${name} lists nothing"
        if name == "node":
            assert EXHAUSTED_NODE in values


async def test_nothing_fires_on_a_healthy_cluster(rig_for) -> None:
    rig = await rig_for("steady")
    stack = rig.stack
    for _ in range(3):
        await rig.minute()
    # Data is there (60 nodes x TCP and UDP) and every rule was evaluated well past the shortened `for:`.
    ratios = await stack.query("node:azure_lb_snat_ports_used_per_allocated:ratio")
    assert len(ratios) == 120
    assert max(float(r["value"][1]) for r in ratios) < 0.8
    after = time.time() + 5
    await wait_for("rules evaluated past `for:`", lambda: stack.rules_evaluated_after(after), 30)

    alerts = await stack.query('ALERTS{severity!="info"}')
    assert alerts == [], [a["metric"] for a in alerts]
    assert stack.webhook.alerts == []
