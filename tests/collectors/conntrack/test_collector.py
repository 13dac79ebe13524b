"""Aggregation and the collector's series without root: procfs read from a directory (conntrack.procfs_path),
the identity stub, top-K bounds, and the exposition checked by the real promtool."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from snat_exporter.collectors.base import CollectorContext
from snat_exporter.collectors.conntrack.aggregate import OutboundFilter, SourceResolver, summarise
from snat_exporter.collectors.conntrack.collector import ConntrackCollector
from snat_exporter.collectors.conntrack.config import DEFAULT_NON_MASQUERADE
from snat_exporter.config import load_config
from tests.collectors.conntrack.test_parse import PROC_LINES, PROC_STAT
from tests.netns.agent import StubIdentity

NON_MASQ = [ipaddress.ip_network(c) for c in DEFAULT_NON_MASQUERADE]


def test_outbound_excludes_private_ranges_and_the_node() -> None:
    out = OutboundFilter(NON_MASQ, {"192.0.2.1"})
    assert out("192.0.2.100") and out("20.50.1.1") and out("2001:db8::1")
    assert not out("10.0.0.10") and not out("172.20.1.1") and not out("fd00::1") and not out("192.0.2.1")
    assert not out("::ffff:10.1.2.3")  # IPv4-mapped addresses are judged as IPv4


def test_sources_resolve_to_pods_host_or_unknown() -> None:
    resolve = SourceResolver(StubIdentity({"10.244.0.10": ["shop", "cart-1", "cart"]}), {"192.0.2.1"})
    assert resolve("10.244.0.10") == ("shop", "cart-1", "cart")
    assert resolve("192.0.2.1") == ("", "host", "")
    assert resolve("10.244.9.9") == ("", "unknown", "")


def test_top_k_bounds_series_and_ties_do_not_flap() -> None:
    flows = {("10.244.0.10", 6, f"203.0.113.{i}", 443, True, "established"): 5 for i in range(50)}
    flows[("10.244.0.10", 6, "203.0.113.200", 443, True, "established")] = 9
    s = summarise(flows, is_outbound=lambda ip: True, source_of=lambda ip: ("", "unknown", ""), top_k=3)
    assert [d for d, _ in s.destinations] == [
        ("203.0.113.200", "443", "tcp"),
        ("203.0.113.0", "443", "tcp"),
        ("203.0.113.1", "443", "tcp"),
    ]
    assert s.max_per_destination == {"tcp": 9}
    assert s.outbound == s.entries == 5 * 50 + 9


@pytest.fixture
def procfs(tmp_path: Path) -> Path:
    (tmp_path / "net/stat").mkdir(parents=True)
    (tmp_path / "sys/net/netfilter").mkdir(parents=True)
    (tmp_path / "net/nf_conntrack").write_text(PROC_LINES)
    (tmp_path / "net/stat/nf_conntrack").write_text(PROC_STAT)
    (tmp_path / "sys/net/netfilter/nf_conntrack_count").write_text("5\n")
    (tmp_path / "sys/net/netfilter/nf_conntrack_max").write_text("262144\n")
    return tmp_path


def make(procfs: Path, **overrides: str) -> tuple[ConntrackCollector, CollectorRegistry]:
    config = load_config(
        None,
        environ={},
        overrides={
            "conntrack.enabled": "true",
            "conntrack.source": "procfs",
            "conntrack.procfs_path": str(procfs),
            "conntrack.node_name": "aks-pool-1",
            **overrides,
        },
    )
    registry = CollectorRegistry()
    identity = StubIdentity({"10.244.0.10": ["shop", "cart-1", "cart"], "10.244.0.11": ["shop", "web-1", "web"]})
    return ConntrackCollector(config.conntrack, CollectorContext(registry=registry, identity=identity)), registry


def exposition(collector_snapshot, registry: CollectorRegistry) -> str:
    class Snap:
        def collect(self):
            return collector_snapshot.families

    registry.register(Snap())
    return generate_latest(registry).decode()


async def test_procfs_source_serves_every_series_with_node(procfs: Path) -> None:
    collector, registry = make(procfs)
    await collector.start()
    snap = await collector.collect()
    reg = CollectorRegistry()
    text = exposition(snap, reg)
    assert 'snat_conntrack_entries{node="aks-pool-1"} 87.0' in text  # the stat file's entries column wins
    assert 'snat_conntrack_insert_failed_total{node="aks-pool-1"} 8.0' in text
    assert 'snat_outbound_flows{node="aks-pool-1",protocol="tcp",snat="false",tcp_state="syn_sent"} 1.0' in text
    assert (
        'snat_pod_outbound_flows{namespace="shop",node="aks-pool-1",pod="cart-1",workload="cart"} 2.0' in text
    )  # TCP + ICMP of 10.244.0.10
    assert 'snat_destination_flows{destination="192.0.2.100",node="aks-pool-1",port="",protocol="udp"} 1.0' in text
    assert 'table="procfs"' in text
    for line in text.splitlines():
        if line.startswith("snat_") and not line.startswith("snat_exporter"):
            assert 'node="aks-pool-1"' in line, line


async def test_exposition_passes_promtool(procfs: Path, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run scripts/install-system-deps.sh")
    collector, registry = make(procfs)
    await collector.start()
    snap = await collector.collect()
    text = exposition(snap, registry)
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


async def test_missing_procfs_table_still_serves_the_count(procfs: Path, caplog: pytest.LogCaptureFixture) -> None:
    (procfs / "net/nf_conntrack").unlink()
    (procfs / "net/stat/nf_conntrack").unlink()
    collector, _ = make(procfs)
    with caplog.at_level("WARNING", logger="snat_exporter.conntrack"):
        await collector.start()
    snap = await collector.collect()
    names = {s.name for f in snap.families for s in f.samples}
    assert "snat_conntrack_entries" in names and "snat_conntrack_entries_limit" in names
    assert "snat_outbound_flows" not in names
    assert any("CONFIG_NF_CONNTRACK_PROCFS" in str(r.__dict__) for r in caplog.records)
