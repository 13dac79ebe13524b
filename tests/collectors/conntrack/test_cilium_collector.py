"""The conntrack collector with source ``cilium`` on the real kernel: Cilium's SNAT map layout created and pinned
through bpf(2) in a bpffs the test mounts, filled as Cilium's datapath fills it (an egress and a reverse entry
per flow, host-network flows with their own port), then read by the agent.

The entries are written by the test, not by Cilium: docs/conntrack.md says how to check the decoder once on a
real eBPF host routing node against ``cilium-dbg bpf nat list``.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.registry import CollectorRegistry

from snat_exporter.collectors.base import CollectorContext
from snat_exporter.collectors.conntrack import cilium
from snat_exporter.collectors.conntrack.collector import ConntrackCollector
from snat_exporter.collectors.conntrack.datapath import masquerades_in_bpf, table_source
from snat_exporter.config import load_config
from snat_exporter.identity import NodeInfo, PodInfo
from snat_exporter.snapshot import Snapshot
from tests.collectors.conntrack.bpfmaps import TCP, UDP, SnatMap, bpffs, key, value

ROOT = Path(__file__).resolve().parents[3]
NODE_NAME = "aks-ebpf-1"
NODE_IP = "10.224.0.4"
CART, WEB, STRAY = "10.244.0.10", "10.244.0.11", "10.244.0.99"
API, DNS = "20.50.1.2", "20.50.1.3"
PODS = {CART: ["shop", "cart-1", "cart"], WEB: ["shop", "web-1", "web"]}


def fill(m: SnatMap) -> None:
    """40 TCP flows of cart-1 and 2 of an unknown pod to API:443, 10 TCP flows of web-1 to DNS:443 and 5 UDP
    to API:53, 3 of the node's own flows to API:443 (port kept), and one NodePort flow SNATed to a backend pod
    (inside the cluster: not outbound)."""
    nat = iter(range(32768, 65536))
    for i in range(40):
        m.flow(CART, 40000 + i, API, 443, TCP, NODE_IP, next(nat))
    for i in range(2):
        m.flow(STRAY, 41000 + i, API, 443, TCP, NODE_IP, next(nat))
    for i in range(10):
        m.flow(WEB, 42000 + i, DNS, 443, TCP, NODE_IP, next(nat))
    for i in range(5):
        m.flow(WEB, 43000 + i, API, 53, UDP, NODE_IP, next(nat))
    for i in range(3):
        m.flow(NODE_IP, 50000 + i, API, 443, TCP, NODE_IP, 50000 + i)
    m.flow("203.0.113.7", 55555, "10.244.1.5", 8080, TCP, NODE_IP, next(nat))


FLOWS = 40 + 2 + 10 + 5 + 3 + 1


def series(samples: list[dict[str, Any]], name: str) -> dict[tuple, float]:
    return {
        tuple(sorted((k, v) for k, v in s["labels"].items() if k != "node")): s["value"]
        for s in samples
        if s["name"] == name
    }


def run_agent(bpf_root: Path, *, prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    """The agent's real collection, in its own process (``tests/netns/agent.py``), pointed at ``bpf_root``."""
    args = [
        *prefix,
        sys.executable,
        "-m",
        "tests.netns.agent",
        "--identity",
        json.dumps(PODS),
        "--set",
        "conntrack.source=cilium",
        "--set",
        f"conntrack.bpffs={bpf_root}",
        "--set",
        f"conntrack.node_name={NODE_NAME}",
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def agent() -> Iterator[dict[str, Any]]:
    with bpffs() as root:
        m = SnatMap(root)
        fill(m)
        full = run_agent(root)
        # uid 0 with every capability dropped (bounding set and inheritable): the least the agent needs on a
        # kernel of 6.5 or later, where BPF_OBJ_GET checks the pin's file mode only.
        no_caps = run_agent(root, prefix=("setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"))
        m.close()
    yield {"full": full, "no_caps": no_caps}


def test_flows_per_destination_count_each_flow_once_and_skip_in_cluster_destinations(agent: dict) -> None:
    dest = series(agent["full"]["samples"], "snat_destination_flows")
    assert dest == {
        (("destination", API), ("port", "443"), ("protocol", "tcp")): 40 + 2 + 3,
        (("destination", DNS), ("port", "443"), ("protocol", "tcp")): 10,
        (("destination", API), ("port", ""), ("protocol", "udp")): 5,  # UDP: Azure's budget is per IP
    }
    assert series(agent["full"]["samples"], "snat_outbound_flows_max_per_destination") == {
        (("protocol", "tcp"),): 45,
        (("protocol", "udp"),): 5,
    }


def test_flows_per_pod_with_the_nodes_own_flows_in_the_host_bucket(agent: dict) -> None:
    pods = series(agent["full"]["samples"], "snat_pod_outbound_flows")
    assert pods == {
        (("namespace", "shop"), ("pod", "cart-1"), ("workload", "cart")): 40,
        (("namespace", "shop"), ("pod", "web-1"), ("workload", "web")): 15,
        (("namespace", ""), ("pod", "host"), ("workload", "")): 3,
        (("namespace", ""), ("pod", "unknown"), ("workload", "")): 2,
    }
    by_state = series(agent["full"]["samples"], "snat_outbound_flows")
    assert by_state[(("protocol", "tcp"), ("snat", "false"), ("tcp_state", ""))] == 3, "the node's own flows"
    assert by_state[(("protocol", "tcp"), ("snat", "true"), ("tcp_state", ""))] == 52


def test_flows_per_egress_tuple_against_ciliums_port_range(agent: dict) -> None:
    samples = agent["full"]["samples"]
    tuples = series(samples, "snat_cilium_nat_tuple_flows")
    assert tuples[(("destination", API), ("egress_ip", NODE_IP), ("port", "443"), ("protocol", "tcp"))] == 45
    assert tuples[(("destination", API), ("egress_ip", NODE_IP), ("port", "53"), ("protocol", "udp"))] == 5
    assert series(samples, "snat_cilium_nat_tuple_flows_max") == {(): 45}
    assert series(samples, "snat_cilium_nat_tuple_ports") == {(): 32768}
    assert series(samples, "snat_cilium_nat_entries") == {(("family", "v4"),): 2 * FLOWS}
    assert series(samples, "snat_cilium_nat_entries_limit") == {(("family", "v4"),): 65536}


def test_the_source_series_names_cilium(agent: dict) -> None:
    info = series(agent["full"]["samples"], "snat_exporter_conntrack_source_info")
    assert [dict(k)["table"] for k in info] == ["cilium"]
    errors = series(agent["full"]["samples"], "snat_exporter_conntrack_cilium_map_errors_total")
    assert not any(errors.values()), "the v6 map is absent on an IPv4 cluster: not an error"


def test_the_agent_reads_the_map_as_uid_0_without_any_capability(agent: dict) -> None:
    assert series(agent["no_caps"]["samples"], "snat_destination_flows") == series(
        agent["full"]["samples"], "snat_destination_flows"
    )


# ------------------------------------------------------------------------------------------ faults, in-process
class Identity:
    def __init__(self, node: NodeInfo | None = None, cilium: dict[str, str] | None = None) -> None:
        self.node = node
        self.cilium = cilium

    def node_by_ip(self, ip: str) -> NodeInfo | None:
        return None

    def node_by_name(self, name: str) -> NodeInfo | None:
        return self.node if self.node is not None and self.node.name == name else None

    def cilium_config(self) -> dict[str, str] | None:
        return self.cilium

    def pod_by_ip(self, ip: str) -> PodInfo | None:
        v = PODS.get(ip)
        return PodInfo(v[0], v[1], v[2]) if v else None


def make(
    root: Path, source: str = "cilium", node: NodeInfo | None = None, cilium: dict[str, str] | None = None
) -> tuple[ConntrackCollector, Any]:
    config = load_config(
        None,
        environ={},
        overrides={
            "conntrack.enabled": "true",
            "conntrack.source": source,
            "conntrack.bpffs": str(root),
            "conntrack.node_name": NODE_NAME,
        },
    )
    registry = CollectorRegistry()
    context = CollectorContext(registry=registry, identity=Identity(node, cilium))
    collector = ConntrackCollector(config.conntrack, context)
    return collector, registry


def names(snapshot: Snapshot) -> set[str]:
    return {s.name for f in snapshot.families for s in f.samples}


def table(snapshot: Snapshot) -> str:
    found = [s.labels["table"] for f in snapshot.families for s in f.samples if s.name.endswith("source_info")]
    return found[0]


def errors(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {
        (s.labels["map"], s.labels["reason"]): s.value
        for m in registry.collect()
        for s in m.samples
        if s.name == "snat_exporter_conntrack_cilium_map_errors_total"
    }


@pytest.fixture
def root() -> Iterator[Path]:
    with bpffs() as path:
        yield path


async def test_a_map_with_another_value_size_is_refused_clearly_while_the_rest_is_served(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = SnatMap(root, value_size=48)
    bad.raw(key(cilium.V4, CART, API, 40000, 443, TCP, 0), value(cilium.V4, NODE_IP, 32768) + b"\0" * 8)
    good = SnatMap(root, cilium.V6)
    good.flow("fd00::a", 40000, "2001:db8::1", 443, TCP, "fd00::4", 32768)
    collector, registry = make(root)
    await collector.start()
    with caplog.at_level(logging.DEBUG, logger="snat_exporter.conntrack"):
        first = await collector.collect()
        second = await collector.collect()
    refused = [r for r in caplog.records if getattr(r, "reason", "") == "layout"]
    assert [r.levelno for r in refused] == [logging.ERROR, logging.DEBUG], "said once, at ERROR"
    assert "value size 48 (want 40, struct ipv4_nat_entry)" in refused[0].__dict__["error"]
    assert errors(registry) == {("v4", "layout"): 2}
    # The v6 map's flows and the kernel's conntrack counters are still served.
    assert table(second) == "cilium"
    assert {"snat_destination_flows", "snat_conntrack_entries"} <= names(first)
    bad.close()
    good.close()


async def test_no_map_at_all_is_counted_every_collection_and_said_once(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    collector, registry = make(root)
    await collector.start()
    with caplog.at_level(logging.WARNING, logger="snat_exporter.conntrack"):
        for _ in range(3):
            snapshot = await collector.collect()
    said = [r for r in caplog.records if getattr(r, "reason", "") == "missing"]
    assert sorted(r.__dict__["map"] for r in said) == ["cilium_snat_v4_external", "cilium_snat_v6_external"]
    assert "tc/globals/cilium_snat_v4_external is not pinned" in said[0].__dict__["error"]
    assert errors(registry) == {("v4", "missing"): 3, ("v6", "missing"): 3}
    assert table(snapshot) == "none"
    assert "snat_conntrack_entries" in names(snapshot), "the counters keep being served"
    assert "snat_destination_flows" not in names(snapshot), "no flows rather than nf_conntrack's partial view"


async def test_auto_reads_ciliums_map_only_where_the_node_or_cilium_config_says_bpf_masquerade(root: Path) -> None:
    m = SnatMap(root)
    fill(m)
    labelled, _ = make(root, "auto", NodeInfo(NODE_NAME, ebpf_host_routing=True))
    configured, _ = make(
        root, "auto", NodeInfo(NODE_NAME), {"enable-bpf-masquerade": "true", "enable-host-legacy-routing": "false"}
    )
    plain, _ = make(root, "auto", NodeInfo(NODE_NAME))
    unknown, _ = make(root, "auto", None)
    for collector in (labelled, configured, plain, unknown):
        await collector.start()
    assert table(await labelled.collect()) == "cilium"
    assert table(await configured.collect()) == "cilium"
    # The map exists on every kube-proxy-replacement node: its presence alone must not switch the source.
    assert table(await plain.collect()) in ("netlink", "procfs")
    assert table(await unknown.collect()) in ("netlink", "procfs")
    m.close()


def test_the_datapath_decision() -> None:
    node = NodeInfo(NODE_NAME)
    ebpf = NodeInfo(NODE_NAME, ebpf_host_routing=True)
    bpf_masq = {"enable-bpf-masquerade": "true", "enable-host-legacy-routing": "false"}
    assert masquerades_in_bpf(None) is None, "nothing known yet"
    assert masquerades_in_bpf(ebpf) is True
    assert masquerades_in_bpf(node) is False
    assert masquerades_in_bpf(node, bpf_masq) is True
    assert masquerades_in_bpf(None, {**bpf_masq, "enable-host-legacy-routing": "true"}) is False
    assert masquerades_in_bpf(None, {"enable-bpf-masquerade": "false"}) is False
    assert masquerades_in_bpf(None, {"enable-bpf-masquerade": "true"}) is True, "legacy routing off by default"
    assert table_source("auto", ebpf) == "cilium"
    assert table_source("auto", node) == "conntrack"
    assert table_source("netlink", ebpf) == "conntrack", "an explicit choice wins over the label"
    assert table_source("cilium", None) == "cilium"
