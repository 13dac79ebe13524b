"""Cilium's SNAT map on the real kernel: maps created, pinned and filled through bpf(2) in a bpffs the test
mounts, then read back by the decoder (batch and key-by-key walks)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from snat_exporter.collectors.conntrack import bpf, cilium
from tests.collectors.conntrack.bpfmaps import ICMP, TCP, UDP, SnatMap, bpffs, key, value

NODE = "10.224.0.4"
POD = "10.244.0.10"
OTHER_POD = "10.244.0.11"
DEST = "20.50.1.2"


@pytest.fixture
def root() -> Iterator[Path]:
    with bpffs() as path:
        yield path


def read(
    path: Path, layout: cilium.Layout = cilium.V4, *, batch: bool = True
) -> tuple[cilium.NatCounts, cilium.MapRead]:
    counts = cilium.NatCounts()
    result = cilium.read_map(str(path), layout, counts, batch=batch)
    return counts, result


def test_counts_each_masqueraded_flow_once_from_its_egress_entry(root: Path) -> None:
    m = SnatMap(root)
    for i in range(30):
        m.flow(POD, 40000 + i, DEST, 443, TCP, NODE, 32768 + i)
    for i in range(5):
        m.flow(OTHER_POD, 50000 + i, DEST, 53, UDP, NODE, 40000 + i)
    m.flow(POD, 7, DEST, 0, ICMP, NODE, 33000)  # ICMP echo: the id stands in for the source port
    # The node's own flow: the source is the egress address and Cilium kept the port.
    m.flow(NODE, 45000, DEST, 443, TCP, NODE, 45000)
    counts, result = read(m.path)
    assert result.entries == 2 * 37 and counts.egress == 37
    assert counts.flows() == {
        (POD, TCP, DEST, 443, True, ""): 30,
        (OTHER_POD, UDP, DEST, 53, True, ""): 5,
        (POD, ICMP, DEST, 0, True, ""): 1,
        (NODE, TCP, DEST, 443, False, ""): 1,
    }
    assert counts.egress_addresses() == {NODE}
    m.close()


def test_flows_per_egress_tuple_split_by_egress_ip_and_destination_port(root: Path) -> None:
    m = SnatMap(root)
    for i in range(12):
        m.flow(POD, 40000 + i, DEST, 443, TCP, NODE, 32768 + i)
    for i in range(3):
        m.flow(POD, 41000 + i, DEST, 443, TCP, "10.224.0.99", 32768 + i)  # a second egress IP (egress gateway)
        m.flow(POD, 42000 + i, DEST, 8443, TCP, NODE, 32768 + i)
    counts, _ = read(m.path)
    assert counts.tuples() == {
        (NODE, DEST, "443", "tcp"): 12,
        ("10.224.0.99", DEST, "443", "tcp"): 3,
        (NODE, DEST, "8443", "tcp"): 3,
    }
    m.close()


def test_batch_walk_and_key_by_key_walk_read_the_same_entries(root: Path) -> None:
    m = SnatMap(root, max_entries=32768)
    for i in range(6000):  # more than one batch of 4096
        m.flow(f"10.244.{i % 7}.{i % 200 + 1}", 30000 + i, f"20.50.{i % 3}.1", 443 + i % 4, TCP, NODE, 32768 + i)
    batched, first = read(m.path)
    each, second = read(m.path, batch=False)
    assert first.batched and not second.batched
    assert first.entries == second.entries == 12000
    assert batched.raw == each.raw and batched.egress == 6000
    m.close()


def test_ipv6_map(root: Path) -> None:
    m = SnatMap(root, cilium.V6)
    m.flow("fd00:10:244::a", 40000, "2001:db8::1", 443, TCP, "fd00:10:224::4", 32768)
    m.flow("fd00:10:244::a", 40001, "2001:db8::1", 443, TCP, "fd00:10:224::4", 32769)
    counts, result = read(m.path, cilium.V6)
    assert result.info.key_size == 38 and result.info.value_size == 56
    assert counts.flows() == {("fd00:10:244::a", TCP, "2001:db8::1", 443, True, ""): 2}
    m.close()


def test_a_map_with_another_value_size_is_refused_naming_both_sizes(root: Path) -> None:
    m = SnatMap(root, value_size=48)  # as a future Cilium that grew struct ipv4_nat_entry would pin it
    m.raw(key(cilium.V4, POD, DEST, 40000, 443, TCP, 0), value(cilium.V4, NODE, 32768) + b"\0" * 8)
    with pytest.raises(cilium.LayoutError) as refused:
        read(m.path)
    message = str(refused.value)
    assert "cilium_snat_v4_external" in message
    assert "value size 48 (want 40, struct ipv4_nat_entry)" in message
    m.close()


def test_a_map_of_another_type_is_refused(root: Path) -> None:
    fd = bpf.map_create(2, 4, cilium.V4.value.size, 4, name="array")  # BPF_MAP_TYPE_ARRAY: key u32
    (root / cilium.MAP_DIR).mkdir(parents=True)
    path = root / cilium.MAP_DIR / cilium.V4.map_name
    bpf.obj_pin(fd, str(path))
    with pytest.raises(cilium.LayoutError, match=r"type array \(want lru_hash\), key size 4 \(want 14"):
        read(path)


def test_a_missing_map_is_file_not_found(root: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read(Path(cilium.map_path(str(root), cilium.V4)))
