"""The SNAT arithmetic against Microsoft's documented examples."""

from __future__ import annotations

import pytest

from snat_exporter.azure_facts import default_allocation, default_ports_per_ip
from snat_exporter.diagnose.capacity import (
    ips_needed,
    max_nodes,
    max_ports_per_node,
    natgw_total_ports,
    plan_lb,
)


@pytest.mark.parametrize(("ports", "ips", "nodes"), [(1000, 2, 128), (4000, 7, 112)])
def test_documented_sizing_examples(ports: int, ips: int, nodes: int) -> None:
    assert max_nodes(ports, ips) == nodes


@pytest.mark.parametrize(
    ("pool", "ports"),
    [
        (1, 1024),
        (50, 1024),
        (51, 512),
        (100, 512),
        (101, 256),
        (200, 256),
        (201, 128),
        (400, 128),
        (401, 64),
        (800, 64),
        (801, 32),
        (1000, 32),
    ],
)
def test_default_allocation_table(pool: int, ports: int) -> None:
    assert default_ports_per_ip(pool) == ports
    assert default_allocation(pool, 1) == ports


def test_default_allocation_is_capped_at_1024_ports() -> None:
    # The documented example: 100 VMs with 2 frontend IPs get 512 + 512; a third IP adds nothing.
    assert default_allocation(100, 2) == 1024
    assert default_allocation(100, 3) == 1024
    assert default_allocation(10, 4) == 1024
    assert default_allocation(300, 3) == 384


def test_pool_beyond_the_table_is_refused() -> None:
    with pytest.raises(ValueError):
        default_ports_per_ip(1001)


def test_max_ports_per_node_is_a_multiple_of_8() -> None:
    assert max_ports_per_node(1, 8) == 8000  # the "8 nodes, one IP" arithmetic
    assert max_ports_per_node(1, 3) == 21328  # 21,333 rounded down to a multiple of 8
    assert max_ports_per_node(2, 1) == 64000  # never more than the port range


def test_natgw_ports() -> None:
    assert natgw_total_ports(2) == 129_024
    assert natgw_total_ports(16) == 1_032_192


def test_plan_fits_peak_with_headroom_and_surge() -> None:
    plan = plan_lb(peak_used_per_node=1024, nodes=6, surge_nodes=1)
    assert plan.ports_per_node == 1536  # 1,024 x 1.5
    assert plan.outbound_ips == ips_needed(1536, 7) == 1
    assert plan.max_nodes >= 7 and plan.fits
    assert plan.az_flags() == "--load-balancer-outbound-ports 1536 --load-balancer-managed-outbound-ip-count 1"


def test_plan_needs_more_ips_for_many_nodes() -> None:
    plan = plan_lb(peak_used_per_node=3000, nodes=100, surge_nodes=10)
    assert plan.ports_per_node == 4504
    assert plan.outbound_ips == 8  # 4,504 x 110 / 64,000 = 7.7 -> 8
    assert plan.max_nodes >= 110


def test_plan_that_cannot_fit_says_so() -> None:
    plan = plan_lb(peak_used_per_node=60000, nodes=200)
    assert not plan.fits
