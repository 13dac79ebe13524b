"""The proof: the real Prometheus and Alertmanager, loaded with alerts/ and scraping exporters that run on the
simulator and a node agent that reads a real kernel conntrack table, page on SNAT exhaustion with the node named,
warn on node-side destination pressure with the pod named, fill every dashboard panel, and stay quiet on a healthy
cluster; `snat-exporter diagnose --prometheus` reads the same Prometheus. See tests/e2e/stack.py for the clock and
the `for:` shortening, tests/e2e/node_agent.py for the node agent's lab (root only: it fails, never skips, without).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from snat_exporter.diagnose.report import SCHEMA_PATH
from tests.conftest import ROOT, FakeClock
from tests.e2e.cilium_agent import start_cilium_agent
from tests.e2e.node_agent import BUSY_POD, RESOLVER, UDP_FLOWS, NodeAgent, start_node_agent
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
from tests.netns.lab import PYTHON

pytestmark = pytest.mark.e2e

EXHAUSTED_NODE = "aks-nodepool1-85638540-vmss000002"  # node index 2 of the `exhaustion` scenario
EBPF_NODE = "aks-nodepool1-85638540-vmss000004"  # a node whose agent reads Cilium's SNAT map


class Rig:
    def __init__(self, stack: Stack, targets: list[Target], clock: FakeClock, agent: NodeAgent | None):
        self.stack, self.targets, self.clock, self.agent = stack, targets, clock, agent

    async def minute(self) -> None:
        await azure_minute(self.clock, self.stack, self.targets)


@pytest.fixture
async def rig_for(tmp_path: Path) -> AsyncIterator[Any]:
    stoppable: list[Any] = []
    errors: list[str] = []
    session = aiohttp.ClientSession()
    clock = FakeClock(time.time())  # Prometheus stamps samples in wall time; the exporters start from it

    async def make(
        *scenarios: str,
        node_agent_on: str | None = None,
        cluster_of: dict[str, str] | None = None,
        cilium_agent_on: str | None = None,
    ) -> Rig:
        """Exporters on the scenarios (each its own `cluster` label, the scenario's name unless ``cluster_of``
        says otherwise, as a Prometheus shared by several clusters has) and a node agent on ``node_agent_on``, in
        the cluster of the first scenario; beside it, on ``cilium_agent_on``, the agent of an eBPF host routing
        node, reading Cilium's SNAT map."""
        cluster_of = cluster_of or {}
        targets, clusters = [], {}
        for name in scenarios:
            target, parts = await start_exporter(tmp_path, clock, name, kube=name != "natgw")
            targets.append(target)
            clusters[target.instance] = cluster_of.get(name, name)
            stoppable.extend(parts)
        agent = None
        if node_agent_on is not None:
            agent = await start_node_agent(tmp_path, session, node_agent_on)
            stoppable.append(agent)
            clusters[agent.instance] = cluster_of.get(scenarios[0], scenarios[0])
        node_targets = [agent.instance] if agent else []
        if cilium_agent_on is not None:
            assert agent is not None, "the Cilium agent runs beside the node agent"
            cilium = await start_cilium_agent(tmp_path, session, cilium_agent_on, agent)
            stoppable.insert(stoppable.index(agent), cilium)  # its map and mount go before the lab
            clusters[cilium.instance] = clusters[agent.instance]
            node_targets.append(cilium.instance)
        stack = Stack(tmp_path, session)
        stoppable.insert(0, stack)
        node_scrape = agent.scrape if agent else None
        await stack.start([t.instance for t in targets], node_targets, clusters, node_scrape)
        return Rig(stack, targets, clock, agent)

    yield make
    try:
        for part in stoppable:
            try:
                await part.stop()
            except Exception as e:  # the remaining parts (namespaces!) are torn down all the same
                errors.append(f"{type(part).__name__}: {e!r}")
    finally:
        await session.close()
    assert not errors, errors


async def diagnose(prometheus: str, *args: str) -> tuple[int, dict[str, Any], str]:
    """`snat-exporter diagnose --prometheus URL --output json` as an SRE runs it: (exit code, report, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        *("-m", "snat_exporter", "diagnose", "--prometheus", prometheus, "--output", "json", *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    report = json.loads(out) if out.strip() else {}
    if report:
        jsonschema.validate(report, json.loads(SCHEMA_PATH.read_text()))
    return proc.returncode, report, err.decode(errors="replace")


async def test_snat_failure_pages_with_the_node_named_and_every_panel_has_data(rig_for) -> None:
    rig = await rig_for("exhaustion", "natgw", node_agent_on=EXHAUSTED_NODE, cilium_agent_on=EBPF_NODE)
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

    # The node agent's real flows, joined with Azure's allocation of the same node: 850 UDP flows to one resolver
    # out of 1,024 ports. The warning names the node, the destination and the pod that opens the flows.
    async def pressure() -> list[dict[str, Any]]:
        return stack.webhook.firing("SnatDestinationPressureHigh")

    (warning,) = await wait_for("SnatDestinationPressureHigh at the webhook", pressure, 30)
    assert warning["labels"]["node"] == EXHAUSTED_NODE
    assert warning["labels"]["protocol"] == "udp"
    assert warning["labels"]["severity"] == "warning"
    assert warning["labels"]["job"] == "snat-exporter-node"
    description = " ".join(warning["annotations"]["description"].split())
    namespace, pod, _, _ = BUSY_POD
    assert f"Node {EXHAUSTED_NODE} holds {UDP_FLOWS / 1024:.2%} of its allocated udp SNAT ports" in description
    assert f"a single destination ({RESOLVER[0]})" in description
    assert f"the busiest pod is {namespace}/{pod}" in description
    # Prometheus got in with its token over https: the agent asked the API server about it, once per cache period
    # (not once per 1 s scrape), and a scrape without the token is refused.
    assert rig.agent is not None
    reviews = rig.agent.api.auth.reviews
    assert 1 <= reviews["tokenreview"] <= 3 and reviews["subjectaccessreview"] == reviews["tokenreview"], reviews
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(rig.agent.url + "/metrics", ssl=rig.agent.client_ssl) as resp:
            assert resp.status == 401

    # A second minute so that every rate() has two samples, then every panel query must return data.
    await rig.minute()
    empty = []
    for board, title, expr in dashboard_queries():
        if not await stack.query(with_all_selected(expr)):
            empty.append(f"{board}: {title}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
    # The eBPF host routing node's series came from Cilium's map; every other node's from conntrack.
    sources = await stack.query("snat_exporter_conntrack_source_info")
    assert {s["metric"]["node"]: s["metric"]["table"] for s in sources} == {
        EXHAUSTED_NODE: "netlink",
        EBPF_NODE: "cilium",
    }
    top_pods = await stack.query("topk(1, sum by (namespace, pod) (snat_pod_outbound_flows))")
    assert top_pods[0]["metric"] == {"namespace": namespace, "pod": pod}
    assert float(top_pods[0]["value"][1]) == UDP_FLOWS

    for board, name, query in variable_queries():
        selector, label = query.removeprefix("label_values(").removesuffix(")").rsplit(", ", 1)
        values = {s.get(label) for s in await stack.series(with_all_selected(selector))} - {None, ""}
        assert values, f"{board}: ${name} lists nothing"
        if name == "node":
            assert EXHAUSTED_NODE in values

    # `snat-exporter diagnose --prometheus` reads the same Prometheus. It holds two AKS clusters: diagnose will
    # not mix them up and asks which one.
    code, report, err = await diagnose(stack.prom_url)
    assert (code, report) == (2, {}), report
    assert "2 AKS clusters (aks-pay, aks-shop): choose one with --cluster NAME" in err
    # The exhausted cluster: the node, its failures, and from the node agent the destination and the pod to fix.
    code, report, err = await diagnose(stack.prom_url, "--cluster", "aks-shop")
    assert code == 1 and report["exit_code"] == 1, err
    assert report["cluster"] == "aks-shop" and report["outbound"]["type"] == "loadBalancer"
    assert [lb["name"] for lb in report["outbound"]["load_balancers"]] == ["kubernetes"]
    assert report["outbound"]["nat_gateways"] == [] and len(report["nodes"]) == 6
    top = report["findings"][0]
    assert top["severity"] == "critical" and top["node"] == EXHAUSTED_NODE, report["findings"]
    assert top["numbers"]["failed_connections"] > 0
    assert f"{namespace}/{pod} ({UDP_FLOWS} flows)" in top["detail"]
    assert f"{RESOLVER[0]}/udp" in top["detail"]
    (node,) = [n for n in report["nodes"] if n["node"] == EXHAUSTED_NODE]
    assert node["allocated_ports"] == 1024 and node["failed_connections"] > 0
    assert node["max_flows_per_destination"] == UDP_FLOWS
    assert node["top_destinations"][0] == {
        "destination": RESOLVER[0],
        "port": "",
        "protocol": "udp",
        "flows": UDP_FLOWS,
    }
    assert node["top_pods"][0] == {"namespace": namespace, "pod": pod, "workload": "cart", "flows": UDP_FLOWS}
    # The NAT gateway cluster of the same Prometheus: its own numbers, no node of the other cluster.
    code, report, err = await diagnose(stack.prom_url, "--cluster", "aks-pay")
    assert report["outbound"]["type"] == "managedNATGateway", err
    assert [gw["name"] for gw in report["outbound"]["nat_gateways"]] and report["outbound"]["load_balancers"] == []
    assert report["nodes"] == [] and report["capacity"]["natgw_public_ips"] == 2
    assert code == report["exit_code"]


BLUE_NODE = "aks-nodepool1-25690385-vmss000002"  # a node of the `steady` scenario
BLUE_EBPF_NODE = "aks-nodepool1-25690385-vmss000005"  # another, whose agent reads Cilium's SNAT map


def only_cluster(expr: str, cluster: str) -> str:
    """The query as Grafana sends it with the cluster variable on ``cluster`` and every other one on "All"."""
    return with_all_selected(expr.replace("$cluster", cluster).replace("${cluster}", cluster))


async def test_two_clusters_in_one_prometheus_page_and_chart_apart(rig_for) -> None:
    """Cluster red runs out of SNAT ports; cluster blue (a load balancer, a NAT gateway and a node agent, all
    labelled blue) is healthy on the Azure side. One Prometheus holds both: the exhaustion pages for red only,
    blue's own conntrack warning stays blue's, and every panel filtered to blue shows blue's data and no red node."""
    rig = await rig_for(
        "steady",
        "exhaustion",
        "natgw",
        node_agent_on=BLUE_NODE,
        cluster_of={"steady": "blue", "natgw": "blue", "exhaustion": "red"},
        cilium_agent_on=BLUE_EBPF_NODE,
    )
    stack = rig.stack

    async def paged() -> list[dict[str, Any]]:
        await rig.minute()
        return stack.webhook.firing("SnatLoadBalancerConnectionsFailing")

    alerts = await wait_for("SnatLoadBalancerConnectionsFailing at the webhook", paged, 90)
    assert {(a["labels"]["cluster"], a["labels"]["node"]) for a in alerts} == {("red", EXHAUSTED_NODE)}
    exhaustion = await stack.query('ALERTS{alertstate="firing", alertname=~"SnatPorts.*|SnatLoadBalancer.*"}')
    assert exhaustion and {a["metric"]["cluster"] for a in exhaustion} == {"red"}, [
        (a["metric"]["alertname"], a["metric"]["cluster"]) for a in exhaustion
    ]

    # Blue's node agent holds 850 flows to one resolver on a node with 512 ports: blue's own warning, joined with
    # blue's allocation of that node, its drill-down reading blue's destination and pod.
    async def pressure() -> list[dict[str, Any]]:
        return stack.webhook.firing("SnatDestinationPressureHigh")

    (warning,) = await wait_for("SnatDestinationPressureHigh at the webhook", pressure, 30)
    assert (warning["labels"]["cluster"], warning["labels"]["node"]) == ("blue", BLUE_NODE)
    description = " ".join(warning["annotations"]["description"].split())
    assert f"a single destination ({RESOLVER[0]})" in description
    assert f"the busiest pod is {BUSY_POD[0]}/{BUSY_POD[1]}" in description
    # Blue's other alerts are its own: the natgw scenario drops a few packets. None is red's exhaustion.
    every = await stack.query('ALERTS{alertstate="firing", cluster="blue"}')
    assert {a["metric"]["alertname"] for a in every} <= {"SnatDestinationPressureHigh", "SnatNatGatewayPacketsDropped"}

    await rig.minute()  # two samples for every rate()
    red_nodes = {f"aks-nodepool1-85638540-vmss00000{i}" for i in range(6)}
    empty, leaked = [], []
    for board, title, expr in dashboard_queries():
        result = await stack.query(only_cluster(expr, "blue"))
        if not result:
            empty.append(f"{board}: {title}: {expr}")
        leaked += [f"{board}: {title}: {r['metric']}" for r in result if r["metric"].get("node") in red_nodes]
        leaked += [f"{board}: {title}: {r['metric']}" for r in result if r["metric"].get("cluster", "blue") != "blue"]
    assert not empty, "panels without data for cluster blue:\n" + "\n".join(empty)
    assert not leaked, "cluster red in panels filtered to blue:\n" + "\n".join(leaked)
    for board, name, query in variable_queries():
        if name == "cluster":
            continue
        selector, label = query.removeprefix("label_values(").removesuffix(")").rsplit(", ", 1)
        values = {s.get(label) for s in await stack.series(only_cluster(selector, "blue"))} - {None, ""}
        assert values and not values & red_nodes, f"{board}: ${name} for blue lists {sorted(values)[:5]}"


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

    code, report, err = await diagnose(stack.prom_url)
    assert code == 0 and report["exit_code"] == 0, report.get("findings", err)
    assert report["outbound"]["type"] == "loadBalancer"
    assert len(report["nodes"]) == 60
    assert [f["title"] for f in report["findings"]] == ["No SNAT pressure found"]
